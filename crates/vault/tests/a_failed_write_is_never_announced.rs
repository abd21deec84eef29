//! An event's writes can fail (here: a family stores a state past its bucket's largest value, as
//! a full disk would fail any write). The kernel runs an entity's next event before the previous
//! one's commit is done (its writer, `crates/vault/src/writer.rs`), so this is what must hold:
//! nothing of the failed event is announced, no later event builds on what was never written
//! (the vault reads its memory again from the store), other entities go on, and after a restart
//! the store holds exactly what was announced.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod vaults;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use callvault_bus::{Bus, Subscription};
use callvault_store::Kv;
use callvault_vault::manager::VaultOptions;
use callvault_vault::modules;
use serde_json::{Value, json};
use vaults::*;

const PROBE_V2: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_family_v2.wasm"));

async fn send_note<B: Bus + Clone, K: Kv + Clone>(bus: &B, u: &User<B, K>, n: u32, entity: &str, extra: Value) {
    let mut body = json!({"type": "probe.note", "message_id": id(n), "id": entity});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    bus.publish(&format!("OwnerSpace.{}.forVault.probe.note", u.guid), Bytes::from(body.to_string())).await.unwrap();
}

/// Every probe notification that comes within `quiet` of the one before.
async fn drain(app: &mut Subscription, quiet: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Some(m) = app.next_within(quiet).await {
        seen.push(serde_json::from_slice(&m.payload).unwrap());
    }
    seen
}

async fn stored_count<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>, entity: &str) -> Value {
    let e = u.vault.buckets().state.get(&format!("probe.{entity}")).await.unwrap().expect("stored state");
    serde_json::from_slice::<Value>(&e.value).unwrap()["state"]["count"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_is_never_announced_and_nothing_builds_on_it() {
    let w = embedded();
    let bus = w.bus().await;
    let a = user(&w, &bus, VaultOptions::default()).await;
    let mut app = bus.subscribe(&format!("OwnerSpace.{}.forApp.probe.*", a.guid)).await.unwrap();
    bus.flush().await.unwrap();
    modules::install_family(&a.vault.buckets().handlers, &a.vault.runtime(), PROBE_V2).await.unwrap();
    probe_version(&a, 2).await;

    // A burst on one entity: handled in order, announced in order, each on the one before.
    for n in 1..=40 {
        send_note(&bus, &a, n, "x", json!({"text": "a"})).await;
    }
    let seen = drain(&mut app, Duration::from_millis(500)).await;
    let counts: Vec<u64> = seen.iter().map(|v| v["count"].as_u64().unwrap()).collect();
    assert_eq!(counts, (1..=40).collect::<Vec<u64>>(), "notes of one entity, in order");

    // The 41st note of `x` makes a state of 1.2 MB (the bucket keeps at most 1 MiB): its write
    // fails. Notes sent right behind it on `x` ran on it in memory; they must fail too. A note
    // of another entity, `y`, is untouched.
    let failures = a.vault.stats().write_failures.load(Ordering::Relaxed);
    send_note(&bus, &a, 41, "x", json!({"text": "0123456789abcdef0123456789abcdef", "repeat": 37_500})).await;
    for n in 42..=45 {
        send_note(&bus, &a, n, "x", json!({"text": "b"})).await;
    }
    send_note(&bus, &a, 46, "y", json!({"text": "c"})).await;
    let seen = drain(&mut app, Duration::from_millis(500)).await;
    assert!(a.vault.stats().write_failures.load(Ordering::Relaxed) > failures, "the oversize write failed");
    let of = |e: &str| -> Vec<u64> {
        seen.iter().filter(|v| v["id"] == e).map(|v| v["count"].as_u64().unwrap()).collect::<Vec<u64>>()
    };
    assert_eq!(of("y"), vec![1], "another entity goes on: {seen:?}");
    // Whatever of `x` was announced counts on from 40, never from the failed 41st: a note that
    // ran on the failed state in memory was refused with it, one that ran after the vault read
    // its memory again counts from 41.
    let x = of("x");
    assert!(x.iter().all(|c| *c >= 41 && *c <= 44), "nothing counted on the failed note: {x:?}");
    assert!(x.windows(2).all(|p| p[1] == p[0] + 1), "in order: {x:?}");

    // The next note of `x` counts on from the last one announced, and the store agrees.
    send_note(&bus, &a, 47, "x", json!({"text": "d"})).await;
    let seen = drain(&mut app, Duration::from_millis(500)).await;
    let last = x.last().copied().unwrap_or(40);
    assert_eq!(seen.iter().map(|v| v["count"].as_u64().unwrap()).collect::<Vec<_>>(), vec![last + 1]);
    assert_eq!(stored_count(&a, "x").await, json!(last + 1));
    assert_eq!(stored_count(&a, "y").await, json!(1));

    // After a restart: what was announced, nothing else.
    let Stopped { identity, key, delegation } = stop_vault(a).await;
    let a = start(&w, &bus, VaultOptions::default(), identity, key, delegation).await;
    probe_version(&a, 2).await;
    let mut app = bus.subscribe(&format!("OwnerSpace.{}.forApp.probe.*", a.guid)).await.unwrap();
    bus.flush().await.unwrap();
    send_note(&bus, &a, 48, "x", json!({})).await;
    let seen = drain(&mut app, Duration::from_millis(500)).await;
    assert_eq!(seen.iter().map(|v| v["count"].as_u64().unwrap()).collect::<Vec<_>>(), vec![last + 2]);
}

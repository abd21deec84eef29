//! A connection that sends calls faster than they ring out (each one properly sealed by its real
//! vault key) gets at most `max_ringing_per_peer` (4) of them ringing in the callee's vault; the
//! rest are rejected `busy`. Every handler run stays within its budget (each carries the
//! unsettled calls), another connection's call still rings, and once the calls ring out the
//! flooding peer can call again. On the embedded default and on NATS. (The vault-wide bound,
//! `max_unsettled`, is tested on the switchboard.)

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
use callvault_bus::Bus;
use callvault_crypto::{SecretIdentity, giftwrap};
use callvault_vault::manager::VaultOptions;
use serde_json::json;
use vaults::*;

const FLOOD: u32 = 100;
const PER_PEER: usize = 4;

async fn flood<W: Backend>(w: W) {
    let bus = w.bus().await;
    let options = VaultOptions {
        ring_timeout: Duration::from_secs(3),
        sweep_every: Duration::from_secs(1),
        ..VaultOptions::default()
    };
    let (mut a, b) = (user(&w, &bus, options.clone()).await, user(&w, &bus, options.clone()).await);
    let c = user(&w, &bus, options).await;
    connect(&a, &b).await;
    connect(&a, &c).await;

    // Bob's vault key seals a hundred calls to Alice, none of which his app placed.
    let b_key = SecretIdentity::parse(&b.vault_key_nsec).unwrap();
    let a_vault_key = callvault_vault::connections::get(&b.vault.buckets().connections, &a.guid)
        .await
        .unwrap()
        .unwrap()
        .vault_key()
        .unwrap();
    let handled_before = a.vault.stats().handled.load(Ordering::Relaxed);
    let subject = format!("MessageSpace.{}.call.incoming", a.guid);
    for n in 0..FLOOD {
        let mut m = simple("incoming", &id(70_000 + n), 70_000 + n);
        m["from_guid"] = json!(b.guid.to_string());
        m["call_type"] = json!("audio");
        let wrap = giftwrap::wrap(&b_key, &a_vault_key, &m.to_string(), now_secs()).unwrap();
        bus.publish(&subject, Bytes::from(wrap)).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.vault.stats().handled.load(Ordering::Relaxed) < handled_before + u64::from(FLOOD) {
        assert!(tokio::time::Instant::now() < deadline, "the flood was not handled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut ringing = 0;
    let mut busy = 0;
    for n in 0..FLOOD {
        let r = record(&a, &id(70_000 + n)).await;
        match (r["status"].as_str(), r["end_reason"].as_str()) {
            (Some("ringing"), _) => ringing += 1,
            (Some("rejected"), Some("busy")) => busy += 1,
            other => panic!("call {n}: {other:?}"),
        }
    }
    assert_eq!((ringing, busy), (PER_PEER, FLOOD as usize - PER_PEER));
    assert_eq!(a.vault.stats().handler_failures.load(Ordering::Relaxed), 0, "a handler run failed");

    // Carol, another connection, still gets through.
    let carols = id(79_000);
    request(&bus, &c, "initiate", initiate(&carols, &a.guid, 79_000)).await;
    incoming_call(&mut a, &carols).await;

    // The flood's calls ring out (3 s here); then Bob can call Alice for real.
    status_becomes(&a, &id(70_000), "missed").await;
    status_becomes(&a, &id(70_000 + PER_PEER as u32 - 1), "missed").await;
    status_becomes(&a, &carols, "missed").await;
    let call = id(80_000);
    request(&bus, &b, "initiate", initiate(&call, &a.guid, 80_000)).await;
    assert_eq!(incoming_call(&mut a, &call).await["call_type"], "audio");
    assert_eq!(a.vault.stats().handler_failures.load(Ordering::Relaxed), 0, "a handler run failed");
}

/// The `call.incoming` notification of `call`, skipping the others.
async fn incoming_call<B: Bus + Clone, K: callvault_store::Kv + Clone>(
    u: &mut User<B, K>,
    call: &str,
) -> serde_json::Value {
    loop {
        let m = expect(u, "incoming").await;
        if m["call_id"] == call {
            return m;
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_vault_bounds_its_unsettled_calls() {
    flood(embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_vault_bounds_its_unsettled_calls() {
    flood(nats()).await;
}

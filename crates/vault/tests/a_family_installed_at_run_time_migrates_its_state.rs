//! A family is a module and a manifest (issue 13, point 1): the test family `probe`, built by the
//! vault's build script, is installed into a running vault and takes its subjects at once, with
//! no change to the kernel; its timers fire; its newer version reads and migrates the state the
//! older one stored; and after a restart the vault loads it again from its `handlers` bucket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]

mod vaults;

use std::time::Duration;

use bytes::Bytes;
use callvault_bus::{Bus, Subscription};
use callvault_store::Kv;
use callvault_vault::manager::VaultOptions;
use callvault_vault::modules;
use serde_json::{Value, json};
use vaults::*;

const PROBE_V1: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_family_v1.wasm"));
const PROBE_V2: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe_family_v2.wasm"));

/// Sends `probe.note` for entity `entity` and returns the next probe notification.
async fn note<B: Bus + Clone, K: Kv + Clone>(
    bus: &B,
    u: &User<B, K>,
    app: &mut Subscription,
    entity: &str,
    extra: Value,
) -> (String, Value) {
    let mut body = json!({"type": "probe.note", "message_id": id(1), "id": entity});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    bus.publish(&format!("OwnerSpace.{}.forVault.probe.note", u.guid), Bytes::from(body.to_string())).await.unwrap();
    next(app).await
}

async fn next(app: &mut Subscription) -> (String, Value) {
    let m = app.next_within(WAIT).await.expect("a probe notification");
    (m.subject.rsplit('.').next().unwrap().to_owned(), serde_json::from_slice(&m.payload).unwrap())
}

async fn stored<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>, entity: &str) -> Value {
    let e = u.vault.buckets().state.get(&format!("probe.{entity}")).await.unwrap().expect("stored state");
    serde_json::from_slice(&e.value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_installed_at_run_time_runs_and_its_newer_version_migrates_its_state() {
    let w = embedded();
    let bus = w.bus().await;
    let a = user(&w, &bus, VaultOptions::default()).await;
    let mut app = bus.subscribe(&format!("OwnerSpace.{}.forApp.probe.*", a.guid)).await.unwrap();
    bus.flush().await.unwrap();

    // Before it is installed, `probe` is no family: the request is answered as unknown.
    let (kind, body) = note(&bus, &a, &mut app, "x", json!({})).await;
    assert_eq!((kind.as_str(), body["code"].as_str()), ("error", Some("invalid_message")));

    // Installed while the vault runs: its subjects work at once.
    let m = modules::install_family(&a.vault.buckets().handlers, &a.vault.runtime(), PROBE_V1).await.unwrap();
    assert_eq!((m.family.as_str(), m.state_version), ("probe", 1));
    probe_version(&a, 1).await;
    for n in 1..=2 {
        let (kind, body) = note(&bus, &a, &mut app, "x", json!({})).await;
        assert_eq!((kind.as_str(), &body["count"], &body["version"]), ("noted", &json!(n), &json!(1)));
    }
    assert_eq!(stored(&a, "x").await, json!({"v": 1, "state": {"notes": 2}}));

    // Its timers are the kernel's: set by a store, fired on time.
    let set = tokio::time::Instant::now();
    let (kind, _) = note(&bus, &a, &mut app, "y", json!({"after_ms": 300})).await;
    assert_eq!(kind, "noted");
    let (kind, body) = next(&mut app).await;
    assert_eq!((kind.as_str(), body["id"].as_str()), ("rang", Some("y")));
    assert!(set.elapsed() >= Duration::from_millis(250), "the timer fired early");
    assert_eq!(a.vault.live_entities("probe"), 0, "the timer is cleared");

    // The newer version reads what the older one stored and writes its own version.
    modules::install_family(&a.vault.buckets().handlers, &a.vault.runtime(), PROBE_V2).await.unwrap();
    probe_version(&a, 2).await;
    let (kind, body) = note(&bus, &a, &mut app, "x", json!({"text": "hi"})).await;
    assert_eq!((kind.as_str(), &body["count"], &body["version"]), ("noted", &json!(3), &json!(2)));
    assert_eq!(stored(&a, "x").await, json!({"v": 2, "state": {"count": 3, "last": "hi"}}));

    // After a restart the vault loads the installed family from its bucket.
    let a = restart_vault(&w, &bus, a, VaultOptions::default()).await;
    let (kind, body) = note(&bus, &a, &mut app, "x", json!({})).await;
    assert_eq!((kind.as_str(), &body["count"], &body["version"]), ("noted", &json!(4), &json!(2)));
    assert_eq!(stored(&a, "x").await["state"]["last"], "hi");
}

//! A connection that sends calls faster than they time out (each one properly sealed by its real
//! vault key) fills at most `max_unsettled` (64) ringing calls in the callee's vault; the rest are
//! rejected `busy`. Every handler run stays within its budget (each carries the unsettled calls),
//! the callee's own requests are answered, and once the calls time out the vault takes calls
//! again. On the embedded default and on NATS.

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
const LIMIT: usize = 64;

async fn flood<W: Backend>(w: W) {
    let bus = w.bus().await;
    let options = VaultOptions {
        ring_timeout: Duration::from_secs(3),
        sweep_every: Duration::from_secs(1),
        ..VaultOptions::default()
    };
    let (mut a, b) = (user(&w, &bus, options.clone()).await, user(&w, &bus, options).await);
    connect(&a, &b).await;

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
    assert_eq!((ringing, busy), (LIMIT, FLOOD as usize - LIMIT));
    assert_eq!(a.vault.stats().handler_failures.load(Ordering::Relaxed), 0, "a handler run failed");

    // Alice's own request is answered (refused: her vault is full), not lost to a failing run.
    request(&bus, &a, "initiate", initiate(&id(79_000), &b.guid, 79_000)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = expect(&mut a, "error").await;
        if m["in_reply_to"] == id(79_000) {
            assert_eq!(m["code"], "busy");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer to the initiate");
    }

    // The ringing calls time out (3 s here); then Bob can call Alice for real.
    status_becomes(&a, &id(70_000), "missed").await;
    status_becomes(&a, &id(70_000 + LIMIT as u32 - 1), "missed").await;
    let call = id(80_000);
    request(&bus, &b, "initiate", initiate(&call, &a.guid, 80_000)).await;
    let incoming = loop {
        let m = expect(&mut a, "incoming").await;
        if m["call_id"] == call.as_str() {
            break m;
        }
    };
    assert_eq!(incoming["call_type"], "audio");
    assert_eq!(a.vault.stats().handler_failures.load(Ordering::Relaxed), 0, "a handler run failed");
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

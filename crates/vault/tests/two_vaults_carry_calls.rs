//! Two users' vaults carry calls through their whole lifecycle over a bus, with state only in
//! their own buckets: on the embedded default (in-process bus, one redb file per vault) and on a
//! real nats-server (NATS bus, JetStream KV buckets named with each vault's guid).

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
use callvault_crypto::SecretIdentity;
use callvault_store::Kv;
use callvault_vault::connections;
use callvault_vault::manager::VaultOptions;
use serde_json::{Value, json};
use vaults::*;

async fn answered_call_with_signals_and_hang_up<W: Backend>(w: W) {
    let bus = w.bus().await;
    let (mut a, mut b) = (user(&w, &bus, VaultOptions::default()).await, user(&w, &bus, VaultOptions::default()).await);
    connect(&a, &b).await;
    let call = id(100);

    request(&bus, &a, "initiate", initiate(&call, &b.guid, 1)).await;
    expect(&mut a, "initiated").await;
    let incoming = expect(&mut b, "incoming").await;
    assert_eq!(incoming["peer_profile"]["display_name"], "Alice");
    expect(&mut a, "ringing").await;

    let mut accept = simple("accept", &call, 2);
    accept["public_key"] = json!("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=");
    accept["key_id"] = json!(id(3));
    request(&bus, &b, "accept", accept).await;
    expect(&mut b, "accepted").await;
    let accepted = expect(&mut a, "accepted").await;
    assert_eq!(accepted["public_key"], "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=");

    for (n, (from_a, t)) in
        [(true, "key_exchange"), (false, "key_exchange"), (true, "offer"), (false, "answer")].into_iter().enumerate()
    {
        let mut s = simple("signal", &call, 10 + n as u32);
        s["signal_type"] = json!(t);
        s["payload"] = json!("c2VhbGVk");
        if from_a {
            request(&bus, &a, "signal", s).await;
            assert_eq!(expect(&mut b, "signal").await["signal_type"], t);
        } else {
            request(&bus, &b, "signal", s).await;
            assert_eq!(expect(&mut a, "signal").await["signal_type"], t);
        }
    }

    tokio::time::sleep(Duration::from_millis(1100)).await; // a measurable duration
    request(&bus, &b, "end", simple("end", &call, 20)).await;
    let ended_a = expect(&mut a, "ended").await;
    assert_eq!(ended_a["status"], "ended");
    for u in [&a, &b] {
        let r = status_becomes(u, &call, "ended").await;
        assert_eq!(r["end_reason"], "callee");
        assert!(r["duration_seconds"].as_u64().unwrap() >= 1, "{r}");
        assert_eq!(r["key_exchange_complete"], true);
    }
    assert_eq!(record(&a, &call).await["direction"], "outgoing");
    assert_eq!(record(&b, &call).await["direction"], "incoming");
    assert_eq!(a.vault.stats().bad_wraps.load(Ordering::Relaxed), 0);
}

async fn rejected_missed_and_refused_calls<W: Backend>(w: W) {
    let bus = w.bus().await;
    let fast = VaultOptions {
        ring_timeout: Duration::from_secs(2),
        sweep_every: Duration::from_millis(200),
        ..VaultOptions::default()
    };
    let (mut a, mut b) = (user(&w, &bus, fast.clone()).await, user(&w, &bus, fast).await);
    connect(&a, &b).await;

    // Rejected.
    let c1 = id(201);
    request(&bus, &a, "initiate", initiate(&c1, &b.guid, 1)).await;
    expect(&mut b, "incoming").await;
    request(&bus, &b, "reject", simple("reject", &c1, 2)).await;
    assert_eq!(expect(&mut a, "rejected").await["reason"], "declined");
    status_becomes(&a, &c1, "rejected").await;
    status_becomes(&b, &c1, "rejected").await;

    // Unanswered: missed on both sides after the ring timeout.
    let c2 = id(202);
    request(&bus, &a, "initiate", initiate(&c2, &b.guid, 3)).await;
    expect(&mut b, "incoming").await;
    let ended = expect(&mut b, "ended").await;
    assert_eq!((ended["status"].as_str(), ended["reason"].as_str()), (Some("missed"), Some("timeout")));
    status_becomes(&a, &c2, "missed").await;
    status_becomes(&b, &c2, "missed").await;

    // Caller cancels while ringing: missed, not ended.
    let c3 = id(203);
    request(&bus, &a, "initiate", initiate(&c3, &b.guid, 4)).await;
    expect(&mut b, "incoming").await;
    request(&bus, &a, "end", simple("end", &c3, 5)).await;
    assert_eq!(expect(&mut b, "ended").await["status"], "missed");
    let r = status_becomes(&b, &c3, "missed").await;
    assert_eq!(r["end_reason"], "caller");
    status_becomes(&a, &c3, "missed").await;

    // A call to someone who is not a connection is refused with an error notification.
    let stranger = SecretIdentity::generate().public().guid();
    request(&bus, &a, "initiate", initiate(&id(204), &stranger, 6)).await;
    assert_eq!(expect(&mut a, "error").await["code"], "not_connected");
    // And garbage gets an error too; the vault keeps serving.
    bus.publish(&format!("OwnerSpace.{}.forVault.call.end", a.guid), Bytes::from_static(b"{not json")).await.unwrap();
    assert_eq!(expect(&mut a, "error").await["code"], "invalid_message");

    // After revoking the connection, Bob's vault no longer takes Alice's calls.
    connections::revoke(&b.vault.buckets().connections, &a.guid).await.unwrap();
    request(&bus, &a, "initiate", initiate(&id(205), &b.guid, 7)).await;
    expect(&mut a, "initiated").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.vault.stats().unknown_senders.load(Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the revoked peer's call was not dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.vault.buckets().calls.get(&id(205)).await.unwrap().is_none());
}

async fn glare_one_call_survives<W: Backend>(w: W) {
    let bus = w.bus().await;
    let (mut a, mut b) = (user(&w, &bus, VaultOptions::default()).await, user(&w, &bus, VaultOptions::default()).await);
    connect(&a, &b).await;
    // Both call each other at once; the lower call_id survives on both sides.
    let (low, high) = (id(301), id(302));
    request(&bus, &a, "initiate", initiate(&low, &b.guid, 1)).await;
    request(&bus, &b, "initiate", initiate(&high, &a.guid, 2)).await;
    for u in [&a, &b] {
        let r = status_becomes(u, &high, "rejected").await;
        assert_eq!(r["end_reason"], "glare");
        status_becomes(u, &low, "ringing").await;
    }
    // Bob, whose call lost, rings with Alice's and can answer it.
    let incoming = expect(&mut b, "incoming").await;
    assert_eq!(incoming["call_id"], low.as_str());
    let mut accept = simple("accept", &low, 3);
    accept["public_key"] = json!("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=");
    accept["key_id"] = json!(id(4));
    request(&bus, &b, "accept", accept).await;
    expect(&mut a, "accepted").await;
    status_becomes(&a, &low, "active").await;
    status_becomes(&b, &low, "active").await;
}

#[tokio::test]
async fn embedded_answered_call() {
    answered_call_with_signals_and_hang_up(embedded()).await;
}

#[tokio::test]
async fn embedded_rejected_missed_refused() {
    rejected_missed_and_refused_calls(embedded()).await;
}

#[tokio::test]
async fn embedded_glare() {
    glare_one_call_survives(embedded()).await;
}

#[tokio::test]
async fn nats_answered_call() {
    answered_call_with_signals_and_hang_up(nats()).await;
}

#[tokio::test]
async fn nats_rejected_missed_refused() {
    rejected_missed_and_refused_calls(nats()).await;
}

#[tokio::test]
async fn nats_glare() {
    glare_one_call_survives(nats()).await;
}

async fn vault_killed_mid_call_finds_and_ends_it<W: Backend>(w: W) {
    let bus = w.bus().await;
    let fast = VaultOptions {
        ring_timeout: Duration::from_secs(2),
        sweep_every: Duration::from_millis(200),
        ..VaultOptions::default()
    };
    let (a, mut b) = (user(&w, &bus, fast.clone()).await, user(&w, &bus, fast.clone()).await);
    connect(&a, &b).await;
    // A call ringing when the vault dies still times out, on both sides, after the restart.
    let ringing = id(402);
    request(&bus, &b, "initiate", initiate(&ringing, &a.guid, 10)).await;
    status_becomes(&a, &ringing, "ringing").await;
    let mut a = restart_vault(&w, &bus, a, fast.clone()).await;
    status_becomes(&a, &ringing, "missed").await;
    status_becomes(&b, &ringing, "missed").await;

    // An active call is still there after a restart and can be ended from the restarted vault.
    let active = id(401);
    answered(&bus, &mut a, &mut b, &active, 1).await;
    let a = restart_vault(&w, &bus, a, fast).await;
    assert_eq!(record(&a, &active).await["status"], "active");
    request(&bus, &a, "end", simple("end", &active, 20)).await;
    expect(&mut b, "ended").await;
    status_becomes(&a, &active, "ended").await;
    status_becomes(&b, &active, "ended").await;
}

#[tokio::test]
async fn embedded_vault_restart_mid_call() {
    vault_killed_mid_call_finds_and_ends_it(embedded()).await;
}

#[tokio::test]
async fn nats_vault_restart_mid_call() {
    vault_killed_mid_call_finds_and_ends_it(nats()).await;
}

#[tokio::test]
async fn nats_server_restart_mid_call_the_call_completes() {
    let mut w = nats();
    let bus = w.bus().await;
    let (mut a, mut b) = (user(&w, &bus, VaultOptions::default()).await, user(&w, &bus, VaultOptions::default()).await);
    connect(&a, &b).await;
    let earlier = id(500);
    answered(&bus, &mut a, &mut b, &earlier, 1).await;
    request(&bus, &a, "end", simple("end", &earlier, 4)).await;
    status_becomes(&b, &earlier, "ended").await;
    let call = id(501);
    answered(&bus, &mut a, &mut b, &call, 10).await;

    w.server.restart();

    // The app retries its hang-up (same message_id) until its vault has it: duplicates are dropped.
    let end = simple("end", &call, 20);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let _ = bus.publish(&format!("OwnerSpace.{}.forVault.call.end", a.guid), Bytes::from(end.to_string())).await;
        if let Some(e) = a.vault.buckets().calls.get(&call).await.ok().flatten()
            && serde_json::from_slice::<Value>(&e.value).unwrap()["status"] == "ended"
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the call did not complete after the restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    status_becomes(&b, &call, "ended").await;
    // Nothing lost, nothing doubled: both calls, once each, on both sides.
    for u in [&a, &b] {
        let keys = u.vault.buckets().calls.keys().await.unwrap();
        assert_eq!(keys.iter().filter(|k| **k == earlier || **k == call).count(), 2, "{keys:?}");
        assert_eq!(record(u, &earlier).await["status"], "ended");
        let history = u.vault.buckets().calls.history(&call).await.unwrap();
        assert_eq!(history.len(), 1, "calls keeps one revision per key");
    }
}

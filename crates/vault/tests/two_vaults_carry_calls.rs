//! Two users' vaults carry calls through their whole lifecycle over a bus, with state only in
//! their own buckets: on the embedded default (in-process bus, one redb file per vault).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use callvault_bus::{Bus, MemoryBus, Subscription};
use callvault_crypto::{Delegation, SecretIdentity};
use callvault_protocol::Guid;
use callvault_protocol::fields::DisplayName;
use callvault_store::{EmbeddedKv, EmbeddedStore, Kv};
use callvault_vault::connections::{self, Connection};
use callvault_vault::manager::{Vault, VaultOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

struct User {
    guid: Guid,
    vault: Arc<Vault<MemoryBus, EmbeddedKv>>,
    delegation: Delegation,
    app: Subscription,
    _dir: tempfile::TempDir,
}

async fn user(bus: &MemoryBus, name: &str, options: VaultOptions) -> User {
    let identity = SecretIdentity::generate();
    let vault_key = SecretIdentity::generate();
    let guid = identity.public().guid();
    let delegation = Delegation::sign(&identity, &vault_key.public(), 1_790_000_000).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join(format!("{name}.redb"))).unwrap();
    let vault = Arc::new(Vault::open(&store, bus.clone(), guid.clone(), vault_key, options).await.unwrap());
    let app = bus.subscribe(&format!("OwnerSpace.{guid}.forApp.call.*")).await.unwrap();
    tokio::spawn(vault.clone().run());
    User { guid, vault, delegation, app, _dir: dir }
}

async fn connect(a: &User, b: &User) {
    for (me, peer, name) in [(a, b, "Bob"), (b, a, "Alice")] {
        let c = Connection::from_delegation(&peer.delegation, DisplayName::new(name).unwrap(), "local").unwrap();
        connections::put(&me.vault.buckets().connections, &c).await.unwrap();
    }
}

fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn now() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    callvault_protocol::Timestamp::from_unix_millis(i64::try_from(ms).unwrap()).to_string()
}

async fn request(bus: &MemoryBus, u: &User, kind: &str, body: Value) {
    bus.publish(&format!("OwnerSpace.{}.forVault.call.{kind}", u.guid), Bytes::from(body.to_string())).await.unwrap();
}

/// The next notification of `kind` the user's app receives (others are skipped).
async fn expect(u: &mut User, kind: &str) -> Value {
    loop {
        let m = u.app.next_within(WAIT).await.unwrap_or_else(|| panic!("no {kind} notification"));
        if m.subject.ends_with(&format!(".{kind}")) {
            return serde_json::from_slice(&m.payload).unwrap();
        }
    }
}

async fn record(u: &User, call: &str) -> Value {
    let e = u.vault.buckets().calls.get(call).await.unwrap().expect("a record");
    serde_json::from_slice(&e.value).unwrap()
}

/// Waits until `u`'s record of `call` has `status`.
async fn status_becomes(u: &User, call: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(e) = u.vault.buckets().calls.get(call).await.unwrap() {
            let r: Value = serde_json::from_slice(&e.value).unwrap();
            if r["status"] == status {
                return r;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{call} never became {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn initiate(call: &str, peer: &Guid, n: u32) -> Value {
    json!({"type": "call.initiate", "message_id": id(n), "call_id": call, "timestamp": now(), "peer_guid": peer.to_string(), "call_type": "audio"})
}

fn simple(kind: &str, call: &str, n: u32) -> Value {
    json!({"type": format!("call.{kind}"), "message_id": id(n), "call_id": call, "timestamp": now()})
}

#[tokio::test]
async fn answered_call_with_signals_and_hang_up() {
    let bus = MemoryBus::new();
    let (mut a, mut b) =
        (user(&bus, "alice", VaultOptions::default()).await, user(&bus, "bob", VaultOptions::default()).await);
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

#[tokio::test]
async fn rejected_missed_and_refused_calls() {
    let bus = MemoryBus::new();
    let fast = VaultOptions {
        ring_timeout: Duration::from_secs(2),
        sweep_every: Duration::from_millis(200),
        ..VaultOptions::default()
    };
    let (mut a, mut b) = (user(&bus, "alice", fast.clone()).await, user(&bus, "bob", fast).await);
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

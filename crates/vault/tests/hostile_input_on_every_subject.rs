//! At least 1 000 malformed or forged messages on every subject a vault listens to: random bytes,
//! JSON of the wrong shape, oversize, requests for unknown calls, forged seals, replays. The vault
//! answers the app's broken requests with errors, drops and counts the rest, keeps serving, and no
//! stored record changes. On the embedded default and on NATS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod vaults;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_crypto::{SecretIdentity, giftwrap};
use callvault_protocol::subject::{PeerKind, RequestKind};
use callvault_store::Kv;
use callvault_vault::manager::VaultOptions;
use serde_json::json;
use vaults::*;

const PER_SUBJECT: usize = 1000;

/// A small deterministic generator (no extra dependency), for reproducible garbage.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next() as usize) % max;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

async fn snapshot<K: Kv>(kv: &K) -> BTreeMap<String, Bytes> {
    let mut out = BTreeMap::new();
    for k in kv.keys().await.unwrap() {
        out.insert(k.clone(), kv.get(&k).await.unwrap().unwrap().value);
    }
    out
}

/// Events the vault has taken off the bus: handled, or dropped before a handler.
fn processed<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>) -> u64 {
    let s = u.vault.stats();
    s.handled.load(Ordering::Relaxed) + s.bad_wraps.load(Ordering::Relaxed) + s.unknown_senders.load(Ordering::Relaxed)
}

/// Keeps at most 100 messages in flight, so the test measures hostile content, not a broker's
/// slow-consumer policy (a NATS server drops a client whose pending data passes its limit).
async fn pace<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>, sent: u64, base: u64) {
    if !sent.is_multiple_of(100) {
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while processed(u).saturating_sub(base) + 100 < sent {
        assert!(tokio::time::Instant::now() < deadline, "the vault stopped taking messages");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn flood<W: Backend>(w: W) {
    let bus = w.bus().await;
    let (mut a, mut b) = (user(&w, &bus, VaultOptions::default()).await, user(&w, &bus, VaultOptions::default()).await);
    connect(&a, &b).await;

    // A real call first, recording what B's vault sends to A's (for replays) and A's app requests.
    let mut spy = bus.subscribe(&format!("MessageSpace.{}.call.*", a.guid)).await.unwrap();
    bus.flush().await.unwrap();
    let call = id(600);
    let init = initiate(&call, &b.guid, 1);
    request(&bus, &a, "initiate", init.clone()).await;
    expect(&mut b, "incoming").await;
    request(&bus, &b, "reject", simple("reject", &call, 2)).await;
    expect(&mut a, "rejected").await;
    status_becomes(&a, &call, "rejected").await;
    let mut recorded = Vec::new();
    while let Some(m) = spy.next_within(Duration::from_millis(300)).await {
        recorded.push(m);
    }
    assert!(!recorded.is_empty(), "B's vault sent nothing to A's");
    let before = snapshot(&a.vault.buckets().calls).await;
    // The app reads its notifications as they come (a NATS client that does not would drop them).
    let mut app = std::mem::replace(&mut a.app, bus.subscribe("unused.app.placeholder").await.unwrap());
    let (errors_tx, mut errors_rx) = tokio::sync::watch::channel((0usize, false));
    let reader = tokio::spawn(async move {
        let (mut errors, mut incoming) = (0usize, false);
        while let Some(m) = app.next_within(Duration::from_secs(120)).await {
            errors += usize::from(m.subject.ends_with(".error"));
            incoming |= m.subject.ends_with(".incoming");
            let _ = errors_tx.send((errors, incoming));
        }
    });

    let mut rng = Lcg(7);
    let mallory = SecretIdentity::generate();
    let b_key = SecretIdentity::parse(&b.vault_key_nsec).unwrap();
    let a_vault_key = {
        let c = callvault_vault::connections::get(&b.vault.buckets().connections, &a.guid).await.unwrap().unwrap();
        c.vault_key().unwrap()
    };
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut app_expected_errors = 0usize;
    let base = processed(&a);
    let mut sent = 0u64;

    for kind in RequestKind::ALL {
        let subject = format!("OwnerSpace.{}.forVault.call.{}", a.guid, kind.token());
        for i in 0..PER_SUBJECT {
            let payload: Vec<u8> = match i % 5 {
                0 => rng.bytes(300),
                1 => json!({"type": format!("call.{}", kind.token()), "nonsense": i}).to_string().into_bytes(),
                2 => vec![b'['; 100 * 1024],
                3 => {
                    // Well formed, but for a call that does not exist (initiate: to a stranger).
                    let mut m = simple(kind.token(), &id(700_000 + i as u32), 10_000 + i as u32);
                    m["peer_guid"] = json!(SecretIdentity::generate().public().guid().to_string());
                    m["call_type"] = json!("audio");
                    m["signal_type"] = json!("ice");
                    m["payload"] = json!("c2VhbGVk");
                    m["public_key"] = json!("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=");
                    m["key_id"] = json!(id(1));
                    m.to_string().into_bytes()
                }
                _ => init.to_string().into_bytes(), // a replay of a handled request: no second effect, no reply
            };
            // A replayed initiate is a duplicate on the initiate subject (no reply); on any other
            // subject its type does not match and it is a broken request (a reply).
            if i % 5 != 4 || *kind != RequestKind::Initiate {
                app_expected_errors += 1;
            }
            bus.publish(&subject, Bytes::from(payload)).await.unwrap();
            sent += 1;
            pace(&a, sent, base).await;
        }
    }
    for kind in PeerKind::ALL {
        let subject = format!("MessageSpace.{}.call.{}", a.guid, kind.token());
        for i in 0..PER_SUBJECT {
            let payload: Vec<u8> = match i % 6 {
                0 => rng.bytes(400),
                1 => json!({"kind": 1059, "content": "x", "tags": [], "i": i}).to_string().into_bytes(),
                2 => vec![b' '; 200 * 1024],
                3 => {
                    // Forged: sealed by a stranger's key, claiming to come from B.
                    let m = json!({"type": format!("call.{}", kind.token()), "from_guid": b.guid.to_string(), "call_id": id(1), "message_id": id(2), "timestamp": now().to_string()});
                    giftwrap::wrap(&mallory, &a_vault_key, &m.to_string(), now()).unwrap().into_bytes()
                }
                4 => {
                    // Sealed by B's real vault key, for a call that does not exist.
                    let m = simple(kind.token(), &id(800_000 + i as u32), 20_000 + i as u32);
                    let mut m = m;
                    m["from_guid"] = json!(b.guid.to_string());
                    m["reason"] = json!("caller");
                    m["signal_type"] = json!("ice");
                    m["payload"] = json!("c2VhbGVk");
                    m["call_type"] = json!("audio");
                    m["public_key"] = json!("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=");
                    m["key_id"] = json!(id(3));
                    giftwrap::wrap(&b_key, &a_vault_key, &m.to_string(), now()).unwrap().into_bytes()
                }
                _ => recorded[i % recorded.len()].payload.to_vec(), // replays of real wraps
            };
            bus.publish(&subject, Bytes::from(payload)).await.unwrap();
            sent += 1;
            pace(&a, sent, base).await;
        }
    }
    bus.flush().await.unwrap();

    // Sentinels behind the flood on both subjects: a new real call from B reaches A's app.
    let sentinel = id(900);
    request(&bus, &b, "initiate", initiate(&sentinel, &a.guid, 50)).await;
    let all_answered = |(errors, incoming): &(usize, bool)| *incoming && *errors >= app_expected_errors;
    let waited = tokio::time::timeout(Duration::from_secs(180), errors_rx.wait_for(all_answered))
        .await
        .ok()
        .and_then(|r| r.ok().map(|g| *g));
    let (errors, incoming) = waited.unwrap_or_else(|| *errors_rx.borrow());
    assert!(waited.is_some(), "after the flood: {errors} errors of {app_expected_errors}, sentinel seen: {incoming}");
    assert_eq!(errors, app_expected_errors, "every broken app request gets exactly one error");
    reader.abort();

    let stats = a.vault.stats();
    let dropped = stats.bad_wraps.load(Ordering::Relaxed) + stats.unknown_senders.load(Ordering::Relaxed);
    assert!(dropped >= (PeerKind::ALL.len() * PER_SUBJECT * 4 / 6) as u64, "only {dropped} wraps dropped");
    assert!(stats.unknown_senders.load(Ordering::Relaxed) >= (PeerKind::ALL.len() * PER_SUBJECT / 6) as u64);

    // No stored record changed; the only new one is the sentinel call.
    let after = snapshot(&a.vault.buckets().calls).await;
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "record {k} changed");
    }
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(new, vec![&sentinel], "unexpected new records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_vault_survives_a_flood() {
    flood(embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_vault_survives_a_flood() {
    flood(nats()).await;
}

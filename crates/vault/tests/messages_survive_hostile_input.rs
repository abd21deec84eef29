//! Hostile input on the message family's subjects, on both backends: forged and replayed wraps,
//! a sender who is no connection, oversize bodies, bad schemas, a message naming another
//! conversation. Each is refused or dropped and counted, nothing is stored, the other
//! conversation is untouched, and a real message still arrives after the flood.

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
use callvault_crypto::seal::seal_message;
use callvault_crypto::{SecretIdentity, giftwrap};
use callvault_protocol::MessageId;
use callvault_store::Kv;
use callvault_vault::manager::VaultOptions;
use serde_json::{Value, json};
use vaults::*;

const PER_KIND: usize = 60;

async fn snapshot<K: Kv>(kv: &K) -> BTreeMap<String, Bytes> {
    let mut out = BTreeMap::new();
    for k in kv.keys().await.unwrap() {
        out.insert(k.clone(), kv.get(&k).await.unwrap().unwrap().value);
    }
    out
}

fn unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn deliver(
    from: &callvault_protocol::Guid,
    conversation: &callvault_protocol::Guid,
    seq: u64,
    n: u32,
    body: &str,
) -> Value {
    json!({"type": "message.deliver", "message_id": id(n), "timestamp": now(), "conversation": conversation.to_string(),
        "from_guid": from.to_string(), "seq": seq, "sent_at": now(), "body": body})
}

async fn hostile<W: Backend>(w: W) {
    let bus = w.bus().await;
    let o = VaultOptions::default();
    let (mut a, b) = (user(&w, &bus, o.clone()).await, user(&w, &bus, o.clone()).await);
    let (carol, dave) = (user(&w, &bus, o.clone()).await, user(&w, &bus, o.clone()).await);
    connect(&a, &b).await;
    connect(&a, &dave).await;
    let mut spy = bus.subscribe(&format!("MessageSpace.{}.message.*", a.guid)).await.unwrap();
    bus.flush().await.unwrap();

    // A real message from Bob (its wrap recorded for replays), and one from Dave.
    for (from, n) in [(&b, 1u32), (&dave, 2)] {
        let mid = MessageId::parse(&id(n)).unwrap();
        let body = seal_message(&from.identity, &a.identity.public(), &mid, "the real one").unwrap();
        let req = json!({"type": "message.send", "message_id": id(n), "timestamp": now(), "conversation": a.guid.to_string(), "body": body.as_str()});
        bus.publish(&format!("OwnerSpace.{}.forVault.message.send", from.guid), Bytes::from(req.to_string()))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while snapshot(&a.vault.buckets().by_name["messages"]).await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the real messages never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut recorded = Vec::new();
    while let Some(m) = spy.next_within(Duration::from_millis(300)).await {
        recorded.push(m);
    }
    assert!(!recorded.is_empty());
    let records = a.vault.buckets().by_name["messages"].clone();
    let before = snapshot(&records).await;
    let state_before = a.vault.buckets().state.get(&format!("message.{}", dave.guid)).await.unwrap().unwrap().value;
    let stats = a.vault.stats();
    // Refused by a handler, dropped before one (a bad or a stranger's wrap), or a duplicate.
    let counted = || {
        [&stats.refused, &stats.bad_wraps, &stats.unknown_senders, &stats.duplicates]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let counted_before = counted();

    let mallory = SecretIdentity::generate();
    let b_key = SecretIdentity::parse(&b.vault_key_nsec).unwrap();
    let carol_key = SecretIdentity::parse(&carol.vault_key_nsec).unwrap();
    let a_vault = callvault_vault::connections::get(&b.vault.buckets().connections, &a.guid).await.unwrap().unwrap();
    let a_vault = a_vault.vault_key().unwrap();
    let mut sent = 0u64;
    for kind in ["deliver", "delivered", "read", "deleted"] {
        let subject = format!("MessageSpace.{}.message.{kind}", a.guid);
        for i in 0..PER_KIND {
            let n = 10_000 + u32::try_from(i).unwrap();
            let wrap = |key: &SecretIdentity, m: &Value| {
                giftwrap::wrap(key, &a_vault, &m.to_string(), unix()).unwrap().into_bytes()
            };
            let payload: Vec<u8> = match i % 7 {
                0 => vec![b'{'; 1 + i * 37 % 5000],
                // Forged: sealed by a stranger, claiming to be Bob.
                1 => wrap(&mallory, &deliver(&b.guid, &b.guid, 50 + i as u64, n, "AAAA")),
                // A sender who is no connection, sealing with its own real vault key.
                2 => wrap(&carol_key, &deliver(&carol.guid, &carol.guid, 1, n, "AAAA")),
                // Bob's real key, naming another conversation (Dave's).
                3 => wrap(&b_key, &deliver(&b.guid, &dave.guid, 50 + i as u64, n, "AAAA")),
                // Bob's real key, an oversize body.
                4 => wrap(&b_key, &deliver(&b.guid, &b.guid, 50 + i as u64, n, &"A".repeat(33_000))),
                // Bob's real key, a bad schema for the kind.
                5 => wrap(
                    &b_key,
                    &json!({"type": format!("message.{kind}"), "message_id": id(n), "timestamp": now(), "conversation": b.guid.to_string(), "from_guid": b.guid.to_string(), "seq": "many"}),
                ),
                // A replay of a real wrap.
                _ => recorded[i % recorded.len()].payload.to_vec(),
            };
            bus.publish(&subject, Bytes::from(payload)).await.unwrap();
            sent += 1;
        }
    }
    // And the app's own subjects: broken requests are answered with errors, nothing stored.
    let mut errors = bus.subscribe(&format!("OwnerSpace.{}.forApp.message.error", a.guid)).await.unwrap();
    bus.flush().await.unwrap();
    let mut app_broken = 0;
    for kind in ["send", "read", "delete", "history", "retention"] {
        for i in 0..PER_KIND / 3 {
            let n = 20_000 + u32::try_from(i).unwrap();
            let payload = match i % 3 {
                0 => {
                    json!({"type": format!("message.{kind}"), "message_id": id(n), "timestamp": now(), "conversation": b.guid.to_string(), "body": "A".repeat(40_000)})
                }
                1 => {
                    json!({"type": format!("message.{kind}"), "message_id": id(n), "timestamp": now(), "conversation": b.guid.to_string(), "seq": -1, "item": "x", "days": 0})
                }
                _ => {
                    json!({"type": format!("message.{kind}"), "message_id": id(n), "timestamp": now(), "conversation": carol.guid.to_string(), "body": "AAAA", "seq": 1, "item": "1764000000000-o-1", "days": 1})
                }
            };
            bus.publish(&format!("OwnerSpace.{}.forVault.message.{kind}", a.guid), Bytes::from(payload.to_string()))
                .await
                .unwrap();
            app_broken += 1;
        }
    }
    // Requests naming Carol's conversation (no connection) for history and retention are taken:
    // they touch only that conversation. Count the answers that are errors.
    let mut got = 0;
    while errors.next_within(Duration::from_secs(3)).await.is_some() {
        got += 1;
    }
    assert!(got >= app_broken * 2 / 3, "{got} errors for {app_broken} broken requests");

    // The flood was counted, and a real message still arrives.
    let deadline = tokio::time::Instant::now() + WAIT;
    while counted() < counted_before + sent * 5 / 7 {
        assert!(tokio::time::Instant::now() < deadline, "only {} of {sent} counted", counted() - counted_before);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stats.unknown_senders.load(Ordering::Relaxed) >= (4 * PER_KIND / 7) as u64,
        "Carol's wraps are dropped as unknown"
    );
    let mid = MessageId::parse(&id(3)).unwrap();
    let body = seal_message(&b.identity, &a.identity.public(), &mid, "after the flood").unwrap();
    let req = json!({"type": "message.send", "message_id": id(3), "timestamp": now(), "conversation": a.guid.to_string(), "body": body.as_str()});
    bus.publish(&format!("OwnerSpace.{}.forVault.message.send", b.guid), Bytes::from(req.to_string())).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = a.notes.next_within(WAIT).await.expect("the sentinel message");
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        if m.subject.ends_with(".message.received") && v["sent_message_id"] == id(3) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
    }

    // Nothing hostile was stored: the only new record is the sentinel; Dave's conversation is as it was.
    let after = snapshot(&records).await;
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "record {k} changed");
    }
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(new.len(), 1, "unexpected new records: {new:?}");
    assert!(new[0].starts_with(b.guid.as_str()), "{new:?}");
    let state_after = a.vault.buckets().state.get(&format!("message.{}", dave.guid)).await.unwrap().unwrap().value;
    assert_eq!(state_before, state_after, "Dave's conversation was touched");
    assert_eq!(stats.handler_failures.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_messages_survive_hostile_input() {
    hostile(embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_messages_survive_hostile_input() {
    hostile(nats()).await;
}

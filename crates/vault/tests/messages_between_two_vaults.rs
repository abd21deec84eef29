//! The `message` family (issue 13, point 6) between two vaults, on both backends: sent,
//! delivered, read, history paged, deleted for me and for both, retention applied, a peer's vault
//! that was down gets what was sent meanwhile, and the texts are sealed app to app (no vault
//! store holds them).

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
use callvault_crypto::PublicIdentity;
use callvault_crypto::seal::{open_message, seal_message};
use callvault_protocol::MessageId;
use callvault_protocol::messaging::SealedBody;
use callvault_store::Kv;
use callvault_vault::manager::VaultOptions;
use serde_json::{Value, json};
use vaults::*;

/// The next message-family notification of `kind` (others are skipped).
async fn note<B: Bus + Clone, K: Kv + Clone>(u: &mut User<B, K>, kind: &str) -> Value {
    next_of(&mut u.notes, &format!("message.{kind}")).await
}

async fn ask<B: Bus + Clone, K: Kv + Clone>(bus: &B, u: &User<B, K>, kind: &str, body: Value) {
    bus.publish(&format!("OwnerSpace.{}.forVault.message.{kind}", u.guid), Bytes::from(body.to_string()))
        .await
        .unwrap();
}

fn header(kind: &str, n: u32) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("type".into(), json!(format!("message.{kind}")));
    m.insert("message_id".into(), json!(id(n)));
    m.insert("timestamp".into(), json!(now()));
    m
}

fn with(kind: &str, n: u32, fields: Value) -> Value {
    let mut m = header(kind, n);
    m.extend(fields.as_object().unwrap().clone());
    Value::Object(m)
}

/// Alice's app seals `text` to `to` and sends it; returns the `message.sent` notification.
async fn send<B: Bus + Clone, K: Kv + Clone>(
    bus: &B,
    a: &mut User<B, K>,
    to: &PublicIdentity,
    n: u32,
    text: &str,
) -> Value {
    let mid = MessageId::parse(&id(n)).unwrap();
    let body = seal_message(&a.identity, to, &mid, text).unwrap();
    ask(bus, a, "send", with("send", n, json!({"conversation": to.guid().to_string(), "body": body.as_str()}))).await;
    note(a, "sent").await
}

fn open<B: Bus + Clone, K: Kv + Clone>(me: &User<B, K>, other: &User<B, K>, mid: &Value, body: &Value) -> String {
    let mid = MessageId::parse(mid.as_str().unwrap()).unwrap();
    let body = SealedBody::new(body.as_str().unwrap()).unwrap();
    open_message(&me.identity, &other.identity.public(), &mid, &body).unwrap().to_string()
}

async fn a_conversation<W: Backend>(w: W) {
    let bus = w.bus().await;
    let options = VaultOptions::default();
    let (mut a, mut b) = (user(&w, &bus, options.clone()).await, user(&w, &bus, options.clone()).await);
    connect(&a, &b).await;

    // Sent, received, delivered.
    let sent = send(&bus, &mut a, &b.identity.public(), 1, "hello Bob, this is secret").await;
    assert_eq!(sent["in_reply_to"], json!(id(1)));
    assert_eq!(sent["seq"], json!(1));
    let got = note(&mut b, "received").await;
    assert_eq!(got["conversation"], json!(a.guid.to_string()));
    assert_eq!(got["sent_message_id"], json!(id(1)));
    assert_eq!(open(&b, &a, &got["sent_message_id"], &got["body"]), "hello Bob, this is secret");
    // Alice's other devices open what she sent (the same identity key).
    assert_eq!(open(&a, &b, &sent["in_reply_to"], &sent["body"]), "hello Bob, this is secret");
    let delivered = note(&mut a, "delivered").await;
    assert_eq!((delivered["conversation"].clone(), delivered["seq"].clone()), (json!(b.guid.to_string()), json!(1)));

    // A repeat of the app's message_id (an app that lost the answer) is a duplicate: answered
    // as the first was, without the body, and nothing is sent again.
    let dups = a.vault.stats().duplicates.load(Ordering::Relaxed);
    let mid = MessageId::parse(&id(1)).unwrap();
    let body = seal_message(&a.identity, &b.identity.public(), &mid, "hello Bob, this is secret").unwrap();
    ask(&bus, &a, "send", with("send", 1, json!({"conversation": b.guid.to_string(), "body": body.as_str()}))).await;
    let again = note(&mut a, "sent").await;
    assert_eq!((again["seq"].clone(), again["item"].clone()), (sent["seq"].clone(), sent["item"].clone()));
    assert!(again.get("body").is_none(), "{again}");
    assert_eq!(a.vault.stats().duplicates.load(Ordering::Relaxed), dups + 1);
    assert!(b.notes.next_within(Duration::from_millis(300)).await.is_none(), "Bob got nothing new");

    // Read receipt: Bob's app showed message 1.
    ask(&bus, &b, "read", with("read", 10, json!({"conversation": a.guid.to_string(), "seq": 1}))).await;
    let mine = note(&mut b, "read").await;
    assert_eq!(mine["reader"], json!("own"));
    let theirs = note(&mut a, "read").await;
    assert_eq!((theirs["reader"].clone(), theirs["seq"].clone()), (json!("peer"), json!(1)));

    // Bob answers; four more from Alice: seven messages, paged three at a time, newest first.
    let mid = MessageId::parse(&id(20)).unwrap();
    let body = seal_message(&b.identity, &a.identity.public(), &mid, "hi Alice").unwrap();
    ask(&bus, &b, "send", with("send", 20, json!({"conversation": a.guid.to_string(), "body": body.as_str()}))).await;
    note(&mut b, "sent").await;
    note(&mut a, "received").await;
    for n in 2..=5 {
        let mid = MessageId::parse(&id(n)).unwrap();
        let body = seal_message(&a.identity, &b.identity.public(), &mid, &format!("message {n}")).unwrap();
        ask(&bus, &a, "send", with("send", n, json!({"conversation": b.guid.to_string(), "body": body.as_str()})))
            .await;
        note(&mut b, "received").await;
    }
    let (mut sent, mut delivered) = (0, 0);
    while sent < 4 || delivered < 4 {
        let m = a.notes.next_within(WAIT).await.expect("sent and delivered notifications");
        sent += usize::from(m.subject.ends_with(".message.sent"));
        delivered += usize::from(m.subject.ends_with(".message.delivered"));
    }
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut req = json!({"conversation": b.guid.to_string(), "limit": 3});
        if let Some(c) = &before {
            req["before"] = json!(c);
        }
        ask(&bus, &a, "history", with("history", 100 + pages.len() as u32, req)).await;
        let page = note(&mut a, "history").await;
        let items = page["messages"].as_array().unwrap().clone();
        before = items.last().map(|m| m["item"].as_str().unwrap().to_owned());
        let more = page["more"].as_bool().unwrap();
        pages.push(items);
        if !more {
            break;
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3]);
    let all: Vec<Value> = pages.concat();
    let texts: Vec<String> = all.iter().map(|m| open(&a, &b, &m["sent_message_id"], &m["body"])).collect();
    assert_eq!(
        texts,
        ["message 5", "message 4", "message 3", "message 2", "hi Alice", "hello Bob, this is secret"],
        "newest first, in the sender's order"
    );
    assert_eq!(all[5]["status"], json!("read"));
    assert_eq!(all[0]["status"], json!("delivered"));
    assert_eq!(all[4]["direction"], json!("incoming"));
    assert_eq!(all[4]["status"], json!("received"));

    // Delete for both: Alice's message 5 goes from both vaults; for me: Bob's "hi Alice" only
    // from Alice's.
    let five = all[0]["item"].as_str().unwrap().to_owned();
    ask(
        &bus,
        &a,
        "delete",
        with("delete", 200, json!({"conversation": b.guid.to_string(), "item": five, "for_both": true})),
    )
    .await;
    assert_eq!(note(&mut a, "deleted").await["item"], json!(five));
    let gone = note(&mut b, "deleted").await;
    assert_eq!(gone["item"], json!(five.replace("-o-", "-i-")));
    let hi = all[4]["item"].as_str().unwrap().to_owned();
    ask(&bus, &a, "delete", with("delete", 201, json!({"conversation": b.guid.to_string(), "item": hi}))).await;
    note(&mut a, "deleted").await;
    // Bob may not delete Alice's message for both.
    let bobs_copy = five.replace("-o-5", "-i-4");
    ask(
        &bus,
        &b,
        "delete",
        with("delete", 202, json!({"conversation": a.guid.to_string(), "item": bobs_copy, "for_both": true})),
    )
    .await;
    let refused = note(&mut b, "error").await;
    assert_eq!(refused["code"], json!("invalid_state"));
    ask(&bus, &a, "history", with("history", 300, json!({"conversation": b.guid.to_string()}))).await;
    let page = note(&mut a, "history").await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 4, "{page}");
    ask(&bus, &b, "history", with("history", 301, json!({"conversation": a.guid.to_string()}))).await;
    let page = note(&mut b, "history").await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 5, "Bob keeps his own and four of Alice's: {page}");

    // No store holds a text: the records are sealed.
    let records = a.vault.buckets().by_name["messages"].clone();
    for key in records.keys().await.unwrap() {
        let v = records.get(&key).await.unwrap().unwrap().value;
        let s = String::from_utf8_lossy(&v);
        assert!(!s.contains("secret") && !s.contains("message 2") && !s.contains("hi Alice"), "{key}: {s}");
    }

    // Retention: a message planted as three days old goes once Alice keeps one day.
    let old_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
        - 3 * 24 * 3600 * 1000;
    let old_key = format!("{}.{old_ms:013}-o-99", b.guid);
    let old = json!({"message_id": id(99), "direction": "outgoing", "seq": 99, "sent_at": callvault_protocol::Timestamp::from_unix_millis(old_ms as i64).to_string(), "body": "AAAA"});
    records.put(&old_key, Bytes::from(old.to_string())).await.unwrap();
    ask(&bus, &a, "retention", with("retention", 400, json!({"conversation": b.guid.to_string(), "days": 1}))).await;
    assert_eq!(note(&mut a, "retention").await["days"], json!(1));
    let expired = note(&mut a, "deleted").await;
    assert_eq!(expired["item"], json!(format!("{old_ms:013}-o-99")));
    assert!(records.get(&old_key).await.unwrap().is_none(), "the expired record is gone");
    ask(&bus, &a, "history", with("history", 401, json!({"conversation": b.guid.to_string()}))).await;
    let page = note(&mut a, "history").await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 4, "the recent ones stay: {page}");
    assert_eq!(page["retention_days"], json!(1));
    assert_eq!(a.vault.live_entities("message"), 1, "the conversation's timer waits for the next expiry");

    // Bob's vault goes down (what came before acknowledged: acknowledgements are gathered for
    // up to 200 ms); Alice sends three; they arrive, in order, when it is back.
    until("the earlier messages were acknowledged", || a.vault.unacknowledged() == 0).await;
    let stopped = stop_vault(b).await;
    for n in 500..503 {
        send(&bus, &mut a, &stopped.identity.public(), n, &format!("while you were away {n}")).await;
    }
    assert_eq!(a.vault.unacknowledged(), 3);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let Stopped { identity, key, delegation } = stopped;
    let mut b = start(&w, &bus, options, identity, key, delegation).await;
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let got = note(&mut b, "received").await;
        seqs.push(got["seq"].as_u64().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![6, 7, 8]);
    until("the outboxes never emptied", || a.vault.unacknowledged() == 0 && b.vault.unacknowledged() == 0).await;
    // And the store's: the acknowledged entries' deletes are written too.
    let deadline = tokio::time::Instant::now() + WAIT;
    for u in [&a, &b] {
        while u.vault.buckets().state.keys().await.unwrap().iter().any(|k| k.starts_with("outbox.")) {
            assert!(tokio::time::Instant::now() < deadline, "acknowledged entries stay in the stored outbox");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    ask(&bus, &b, "history", with("history", 600, json!({"conversation": a.guid.to_string(), "limit": 3}))).await;
    let page = note(&mut b, "history").await;
    let got: Vec<u64> = page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![8, 7, 6], "shown in the sender's order");
    assert_eq!(a.vault.stats().handler_failures.load(Ordering::Relaxed), 0);
    assert_eq!(b.vault.stats().handler_failures.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_conversation() {
    a_conversation(embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_conversation() {
    a_conversation(nats()).await;
}

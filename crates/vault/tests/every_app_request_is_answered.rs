//! Every request an app sends its vault gets an answer, refusals included: request types no
//! handler takes (`call.foo`, a subject with extra tokens, an area the vault does not know, an
//! unknown connection verb) are answered `invalid_message` on `forApp.<area>.error`, in reply to
//! the request's `message_id`. On the embedded default and on NATS.
//!
//! Regression (issue 12, point 10): on the earlier `main` the vault listened only to the subjects
//! of known request types, so `forVault.call.foo` got no answer at all.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod vaults;

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_vault::manager::VaultOptions;
use serde_json::{Value, json};
use vaults::*;

async fn unknown_requests_are_answered<W: Backend>(w: W) {
    let bus = w.bus().await;
    let u = user(&w, &bus, VaultOptions::default()).await;
    let mut app = bus.subscribe(&format!("OwnerSpace.{}.forApp.>", u.guid)).await.unwrap();
    bus.flush().await.unwrap();
    let cases = [
        ("call.foo", "call.error"),
        ("call.initiate.again", "call.error"),
        ("foo.bar", "foo.error"),
        ("profile", "profile.error"),
        ("connection.foo", "connection.error"),
        ("history.everything", "history.error"),
    ];
    for (n, (tail, answer)) in cases.into_iter().enumerate() {
        let message_id = id(7_000 + u32::try_from(n).unwrap());
        let body = json!({"type": tail, "message_id": message_id, "timestamp": now(), "call_id": id(1)});
        bus.publish(&format!("OwnerSpace.{}.forVault.{tail}", u.guid), Bytes::from(body.to_string())).await.unwrap();
        let m = app.next_within(WAIT).await.unwrap_or_else(|| panic!("no answer to {tail}"));
        assert_eq!(m.subject, format!("OwnerSpace.{}.forApp.{answer}", u.guid), "answer to {tail}");
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["code"], "invalid_message", "{tail}: {v}");
        assert_eq!(v["in_reply_to"], message_id.as_str(), "{tail}: {v}");
        assert_eq!(v["type"], answer, "{tail}: {v}");
    }
    // Not JSON at all: still answered.
    bus.publish(&format!("OwnerSpace.{}.forVault.call.foo", u.guid), Bytes::from_static(b"\x00garbage")).await.unwrap();
    let m = app.next_within(WAIT).await.expect("an answer to garbage");
    assert!(m.subject.ends_with(".forApp.call.error"), "{}", m.subject);
}

#[tokio::test]
async fn embedded_unknown_requests_are_answered() {
    unknown_requests_are_answered(embedded()).await;
}

#[tokio::test]
async fn nats_unknown_requests_are_answered() {
    unknown_requests_are_answered(nats()).await;
}

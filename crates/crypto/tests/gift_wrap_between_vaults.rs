//! Vault-to-vault gift wraps: round trip, and every refusal with its own error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use callvault_crypto::SecretIdentity;
use callvault_crypto::giftwrap::{self, CALL_RUMOR_KIND, GiftWrapError, MAX_AGE, MAX_SKEW};
use nostr::prelude::*;

const NOW: u64 = 1_790_000_000;
const MSG: &str = r#"{"type":"call.ringing","message_id":"6f9619ff-8b86-4d01-b42d-00cf4fc964ff"}"#;

fn pair() -> (SecretIdentity, SecretIdentity) {
    (SecretIdentity::generate(), SecretIdentity::generate())
}

#[test]
fn round_trip_names_the_sealing_vault() {
    let (a, b) = pair();
    let w = giftwrap::wrap(&a, &b.public(), MSG, NOW).unwrap();
    let u = giftwrap::unwrap(&b, w.as_bytes(), NOW + 5).unwrap();
    assert_eq!((u.content.as_str(), u.created_at, u.sender), (MSG, NOW, a.public()));
    assert!(u.clone().expect_sender(&a.public()).is_ok());
    assert_eq!(u.expect_sender(&b.public()).unwrap_err(), GiftWrapError::UnexpectedSender);
    // The outer event reveals neither the sender nor the time: another key signed it, backdated.
    let outer = Event::from_json(&w).unwrap();
    assert_ne!(outer.pubkey.to_hex(), a.public().to_hex());
    assert!(outer.created_at.as_secs() <= Timestamp::now().as_secs());
    assert!(!w.contains("call.ringing"));
}

#[test]
fn someone_else_cannot_open_it() {
    let (a, b) = pair();
    let c = SecretIdentity::generate();
    let w = giftwrap::wrap(&a, &b.public(), MSG, NOW).unwrap();
    assert_eq!(giftwrap::unwrap(&c, w.as_bytes(), NOW).unwrap_err(), GiftWrapError::NotForUs);
}

#[test]
fn freshness_comes_from_the_rumor() {
    let (a, b) = pair();
    let w = giftwrap::wrap(&a, &b.public(), MSG, NOW).unwrap();
    assert!(giftwrap::unwrap(&b, w.as_bytes(), NOW + MAX_AGE.as_secs()).is_ok());
    assert_eq!(giftwrap::unwrap(&b, w.as_bytes(), NOW + MAX_AGE.as_secs() + 1).unwrap_err(), GiftWrapError::Stale(121));
    assert!(giftwrap::unwrap(&b, w.as_bytes(), NOW - MAX_SKEW.as_secs()).is_ok());
    assert_eq!(
        giftwrap::unwrap(&b, w.as_bytes(), NOW - MAX_SKEW.as_secs() - 1).unwrap_err(),
        GiftWrapError::FromTheFuture(31)
    );
}

#[test]
fn tampering_with_the_outer_event_is_detected() {
    let (a, b) = pair();
    let w = giftwrap::wrap(&a, &b.public(), MSG, NOW).unwrap();
    let mut outer: serde_json::Value = serde_json::from_str(&w).unwrap();
    let content = outer["content"].as_str().unwrap().to_owned();
    let flipped = format!("{}{}", &content[..10], if &content[10..11] == "A" { "B" } else { "A" }) + &content[11..];
    outer["content"] = flipped.into();
    assert_eq!(giftwrap::unwrap(&b, outer.to_string().as_bytes(), NOW).unwrap_err(), GiftWrapError::BadWrapSignature);
    assert_eq!(giftwrap::unwrap(&b, &w.as_bytes()[..w.len() / 2], NOW).unwrap_err(), GiftWrapError::Malformed);
    assert_eq!(
        giftwrap::unwrap(&b, &vec![b' '; giftwrap::MAX_WRAP_BYTES + 1], NOW).unwrap_err(),
        GiftWrapError::TooLarge
    );
    let note = EventBuilder::new(Kind::TextNote, "hi").finalize(&Keys::generate()).unwrap();
    assert_eq!(giftwrap::unwrap(&b, note.as_json().as_bytes(), NOW).unwrap_err(), GiftWrapError::NotAGiftWrap);
}

#[test]
fn a_seal_whose_rumor_claims_another_author_is_a_forgery() {
    let (mallory, b) = pair();
    let victim = SecretIdentity::generate();
    // Mallory seals a rumor that claims to come from the victim's vault.
    let rumor = EventBuilder::new(Kind::Custom(CALL_RUMOR_KIND), MSG)
        .custom_created_at(Timestamp::from_secs(NOW))
        .finalize_unsigned(PublicKey::parse(&victim.public().to_hex()).unwrap());
    let keys = Keys::parse(&mallory.to_nsec()).unwrap();
    let receiver = PublicKey::parse(&b.public().to_hex()).unwrap();
    let wrap = GiftWrapBuilder::new(receiver, rumor).finalize(&keys).unwrap();
    assert_eq!(giftwrap::unwrap(&b, wrap.as_json().as_bytes(), NOW).unwrap_err(), GiftWrapError::ForgedSender);
}

#[test]
fn a_rumor_of_another_kind_is_not_a_call_message() {
    let (a, b) = pair();
    let keys = Keys::parse(&a.to_nsec()).unwrap();
    let rumor = EventBuilder::new(Kind::PrivateDirectMessage, "hello")
        .custom_created_at(Timestamp::from_secs(NOW))
        .finalize_unsigned(keys.public_key());
    let receiver = PublicKey::parse(&b.public().to_hex()).unwrap();
    let wrap = GiftWrapBuilder::new(receiver, rumor).finalize(&keys).unwrap();
    assert_eq!(giftwrap::unwrap(&b, wrap.as_json().as_bytes(), NOW).unwrap_err(), GiftWrapError::WrongKind(14));
}

#[test]
fn oversized_messages_are_not_wrapped() {
    let (a, b) = pair();
    assert_eq!(giftwrap::wrap(&a, &b.public(), &"x".repeat(41_000), NOW).unwrap_err(), GiftWrapError::TooLarge);
    // Quotes are escaped in the rumor's JSON: the limit applies after escaping.
    assert_eq!(giftwrap::wrap(&a, &b.public(), &"\"".repeat(30_000), NOW).unwrap_err(), GiftWrapError::TooLarge);
    let big = "x".repeat(40_000);
    let w = giftwrap::wrap(&a, &b.public(), &big, NOW).unwrap();
    assert!(w.len() <= giftwrap::MAX_WRAP_BYTES, "{} bytes", w.len());
    assert_eq!(giftwrap::unwrap(&b, w.as_bytes(), NOW).unwrap().content, big);
}

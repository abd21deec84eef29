//! The official NIP-44 v2 vectors (`vectors/nip44.vectors.json`, checksum asserted) through
//! callvault-crypto's API: every valid and every invalid case.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use base64::Engine;
use callvault_crypto::nip44::{self, Nip44Error};
use serde_json::Value;
use sha2::{Digest, Sha256};

const SHA256: &str = "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040";

fn vectors() -> Value {
    let bytes = include_bytes!("../vectors/nip44.vectors.json");
    assert_eq!(hex::encode(Sha256::digest(bytes)), SHA256, "the vectors file changed");
    serde_json::from_slice(bytes).unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("missing {k}"))
}

fn b32(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

fn pubkey_of(sec_hex: &str) -> String {
    callvault_crypto::SecretIdentity::parse(sec_hex).unwrap().public().to_hex()
}

#[test]
fn valid_conversation_keys() {
    let v = vectors();
    let cases = v["v2"]["valid"]["get_conversation_key"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for c in cases {
        let ck = nip44::conversation_key_from_hex(s(c, "sec1"), s(c, "pub2")).unwrap();
        assert_eq!(hex::encode(ck.as_bytes()), s(c, "conversation_key"));
    }
}

#[test]
fn invalid_conversation_keys_are_refused() {
    let v = vectors();
    for c in v["v2"]["invalid"]["get_conversation_key"].as_array().unwrap() {
        assert_eq!(
            nip44::conversation_key_from_hex(s(c, "sec1"), s(c, "pub2")).err(),
            Some(Nip44Error::InvalidKey),
            "{}",
            s(c, "note")
        );
    }
}

#[test]
fn message_keys_and_padding() {
    let v = vectors();
    let mk = &v["v2"]["valid"]["get_message_keys"];
    let ck =
        nostr::nips::nip44::v2::ConversationKey::from_slice(&hex::decode(s(mk, "conversation_key")).unwrap()).unwrap();
    for c in mk["keys"].as_array().unwrap() {
        let k = nip44::message_keys(&ck, &b32(s(c, "nonce"))).unwrap();
        assert_eq!(
            (hex::encode(k.chacha_key), hex::encode(k.chacha_nonce), hex::encode(k.hmac_key)),
            (s(c, "chacha_key").to_owned(), s(c, "chacha_nonce").to_owned(), s(c, "hmac_key").to_owned())
        );
    }
    for pair in v["v2"]["valid"]["calc_padded_len"].as_array().unwrap() {
        let (len, padded) = (pair[0].as_u64().unwrap() as usize, pair[1].as_u64().unwrap() as usize);
        assert_eq!(nip44::padded_len(len), padded, "len {len}");
    }
}

#[test]
fn encrypt_decrypt_cases() {
    let v = vectors();
    for c in v["v2"]["valid"]["encrypt_decrypt"].as_array().unwrap() {
        let ck = nip44::conversation_key_from_hex(s(c, "sec1"), &pubkey_of(s(c, "sec2"))).unwrap();
        assert_eq!(hex::encode(ck.as_bytes()), s(c, "conversation_key"));
        let payload = nip44::encrypt_with_nonce(&ck, s(c, "plaintext").as_bytes(), &b32(s(c, "nonce"))).unwrap();
        assert_eq!(payload, s(c, "payload"));
        // Both directions share the conversation key.
        let back = nip44::conversation_key_from_hex(s(c, "sec2"), &pubkey_of(s(c, "sec1"))).unwrap();
        assert_eq!(&**nip44::decrypt(&back, &payload).unwrap(), s(c, "plaintext").as_bytes());
    }
}

#[test]
fn long_messages() {
    let v = vectors();
    for c in v["v2"]["valid"]["encrypt_decrypt_long_msg"].as_array().unwrap() {
        let ck = nostr::nips::nip44::v2::ConversationKey::from_slice(&hex::decode(s(c, "conversation_key")).unwrap())
            .unwrap();
        let plaintext = s(c, "pattern").repeat(c["repeat"].as_u64().unwrap() as usize);
        assert_eq!(hex::encode(Sha256::digest(plaintext.as_bytes())), s(c, "plaintext_sha256"));
        let payload = nip44::encrypt_with_nonce(&ck, plaintext.as_bytes(), &b32(s(c, "nonce"))).unwrap();
        assert_eq!(hex::encode(Sha256::digest(payload.as_bytes())), s(c, "payload_sha256"));
        assert_eq!(&**nip44::decrypt(&ck, &payload).unwrap(), plaintext.as_bytes());
    }
}

#[test]
fn invalid_lengths_and_payloads_are_refused() {
    let v = vectors();
    let ck = nostr::nips::nip44::v2::ConversationKey::new([7; 32]);
    for len in v["v2"]["invalid"]["encrypt_msg_lengths"].as_array().unwrap() {
        let len = len.as_u64().unwrap() as usize;
        assert_eq!(nip44::encrypt(&ck, &vec![b'a'; len]).err(), Some(Nip44Error::PlaintextLength(len)));
    }
    let cases = v["v2"]["invalid"]["decrypt"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let ck = nostr::nips::nip44::v2::ConversationKey::from_slice(&hex::decode(s(c, "conversation_key")).unwrap())
            .unwrap();
        let r = nip44::decrypt(&ck, s(c, "payload"));
        assert!(r.is_err(), "{} was accepted", s(c, "note"));
    }
    // And a valid payload is refused after any single-character change.
    let payload = nip44::encrypt(&ck, b"hello").unwrap();
    let raw = base64::engine::general_purpose::STANDARD.decode(&payload).unwrap();
    for i in 1..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 1;
        let bad = base64::engine::general_purpose::STANDARD.encode(bad);
        assert!(nip44::decrypt(&ck, &bad).is_err(), "byte {i}");
    }
}

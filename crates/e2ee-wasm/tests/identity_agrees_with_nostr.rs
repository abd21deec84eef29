//! The browser's pure-Rust identity (`identity`, what the page runs as WASM) agrees with the
//! NIP-44 v2 vectors, with rust-nostr (through `callvault-crypto`) and with nostr-tools (pinned in
//! `crates/crypto/tests/interop`, installed by `.ci/run`): same keys and guids, events each
//! verifies, NIP-44 payloads each opens.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::process::{Command, Stdio};

use callvault_crypto::{SecretIdentity, nip44, verify_note};
use callvault_e2ee_wasm::identity::{self, IdentityError};
use callvault_e2ee_wasm::identity_op;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SHA256: &str = "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040";

fn vectors() -> Value {
    let bytes = include_bytes!("../../crypto/vectors/nip44.vectors.json");
    assert_eq!(hex::encode(Sha256::digest(bytes)), SHA256, "the vectors file changed");
    serde_json::from_slice(bytes).unwrap()
}

fn b32(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("missing {k}"))
}

#[test]
fn nip44_vectors_hold() {
    let v = vectors();
    for c in v["v2"]["valid"]["get_conversation_key"].as_array().unwrap() {
        let ck = identity::conversation_key(&b32(s(c, "sec1")), &b32(s(c, "pub2"))).unwrap();
        assert_eq!(hex::encode(*ck), s(c, "conversation_key"));
    }
    for c in v["v2"]["invalid"]["get_conversation_key"].as_array().unwrap() {
        let (sec, public) = (hex::decode(s(c, "sec1")).unwrap(), hex::decode(s(c, "pub2")).unwrap());
        let (Ok(sec), Ok(public)) = (<[u8; 32]>::try_from(sec), <[u8; 32]>::try_from(public)) else { continue };
        assert!(identity::conversation_key(&sec, &public).is_err(), "{}", s(c, "note"));
    }
    for c in v["v2"]["valid"]["encrypt_decrypt"].as_array().unwrap() {
        let sec2_public = identity::public_key(&b32(s(c, "sec2"))).unwrap();
        let ck = identity::conversation_key(&b32(s(c, "sec1")), &sec2_public).unwrap();
        assert_eq!(hex::encode(*ck), s(c, "conversation_key"));
        let payload = identity::encrypt(&ck, &b32(s(c, "nonce")), s(c, "plaintext")).unwrap();
        assert_eq!(payload, s(c, "payload"));
        let back = identity::conversation_key(&b32(s(c, "sec2")), &identity::public_key(&b32(s(c, "sec1"))).unwrap());
        assert_eq!(identity::decrypt(&back.unwrap(), &payload).unwrap(), s(c, "plaintext"));
    }
    for c in v["v2"]["valid"]["encrypt_decrypt_long_msg"].as_array().unwrap() {
        let ck = b32(s(c, "conversation_key"));
        let plaintext = s(c, "pattern").repeat(c["repeat"].as_u64().unwrap() as usize);
        let payload = identity::encrypt(&ck, &b32(s(c, "nonce")), &plaintext).unwrap();
        assert_eq!(hex::encode(Sha256::digest(payload.as_bytes())), s(c, "payload_sha256"));
        assert_eq!(identity::decrypt(&ck, &payload).unwrap(), plaintext);
    }
    for len in v["v2"]["invalid"]["encrypt_msg_lengths"].as_array().unwrap() {
        let text = "a".repeat(len.as_u64().unwrap() as usize);
        assert_eq!(identity::encrypt(&[7; 32], &[1; 32], &text), Err(IdentityError::PlaintextLength));
    }
    for c in v["v2"]["invalid"]["decrypt"].as_array().unwrap() {
        assert!(identity::decrypt(&b32(s(c, "conversation_key")), s(c, "payload")).is_err(), "{}", s(c, "note"));
    }
}

#[test]
fn keys_events_and_payloads_agree_with_rust_nostr() {
    let me = SecretIdentity::generate();
    let secret = *me.secret_bytes();
    let public = identity::public_key(&secret).unwrap();
    assert_eq!(hex::encode(public), me.public().to_hex());
    let ours = identity_op(&json!({"op": "public", "secret": hex::encode(secret)})).unwrap();
    assert_eq!(ours["guid"], me.public().guid().to_string());
    // An event we sign, rust-nostr verifies (with its tags and content).
    let tags = vec![vec!["vault".to_owned(), "ab".repeat(32)], vec!["guid".to_owned(), me.public().guid().to_string()]];
    let content = "callvault vault delegation v1\n\"quoted\" \u{1}";
    let event = identity::sign_event(&secret, 1_790_000_000, 9470, &tags, content, &[9; 32]).unwrap();
    let v = verify_note(event.to_string().as_bytes(), 9470).unwrap();
    assert_eq!(v.signer, me.public());
    assert_eq!(v.tag("vault"), Some("ab".repeat(32).as_str()));
    // A changed content no longer verifies.
    let mut forged = event.clone();
    forged["content"] = json!("something else");
    assert!(verify_note(forged.to_string().as_bytes(), 9470).is_err());
    // NIP-44 both ways.
    let peer = SecretIdentity::generate();
    let peer_public = b32(&peer.public().to_hex());
    let ck = identity::conversation_key(&secret, &peer_public).unwrap();
    let payload = identity::encrypt(&ck, &[3; 32], "an SDP offer, sealed").unwrap();
    let theirs = nip44::conversation_key(&peer, &me.public()).unwrap();
    assert_eq!(&**nip44::decrypt(&theirs, &payload).unwrap(), b"an SDP offer, sealed");
    let back = nip44::encrypt(&theirs, "the answer".as_bytes()).unwrap();
    assert_eq!(identity::decrypt(&ck, &back).unwrap(), "the answer");
    // Bad requests are errors, not panics.
    let sk = hex::encode(secret);
    for bad in [
        json!({"op": "public", "secret": "00".repeat(32)}),
        json!({"op": "public", "secret": "ff".repeat(32)}),
        json!({"op": "sign", "secret": sk}),
        json!({"op": "encrypt", "secret": sk, "peer": "00".repeat(32), "nonce": "00".repeat(32), "plaintext": "x"}),
        json!({"op": "decrypt", "secret": sk, "peer": hex::encode(peer_public), "payload": "#"}),
        json!({"op": "steal", "secret": sk}),
    ] {
        assert!(identity_op(&bad).is_err(), "{bad}");
    }
}

#[test]
fn nostr_tools_verifies_our_events_and_opens_our_payloads() {
    let dir = callvault_testkit::manifest_dir(env!("CARGO_MANIFEST_DIR")).join("../crypto/tests/interop");
    assert!(
        dir.join("node_modules/nostr-tools").is_dir(),
        "run `npm ci --prefix crates/crypto/tests/interop` first (.ci/run does)"
    );
    let (secret, peer) = ([0x42u8; 32], SecretIdentity::generate());
    let our_public = hex::encode(identity::public_key(&secret).unwrap());
    let event =
        identity::sign_event(&secret, 1_790_000_000, 22242, &[], "a challenge: \u{fc}n\u{ef}code \u{2713}", &[7; 32])
            .unwrap();
    let ck = identity::conversation_key(&secret, &b32(&peer.public().to_hex())).unwrap();
    let payload = identity::encrypt(&ck, &[5; 32], "sealed for the peer").unwrap();
    let request = json!({"event": event, "payload": payload, "our_public": our_public,
        "peer_secret": hex::encode(*peer.secret_bytes()), "reply_plaintext": "sealed back"});
    let mut child = Command::new("node")
        .arg("pure.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node is needed for this test: {e}"));
    child.stdin.take().unwrap().write_all(request.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["verified"], true);
    assert_eq!(got["plaintext"], "sealed for the peer");
    assert_eq!(identity::decrypt(&ck, got["reply"].as_str().unwrap()).unwrap(), "sealed back");
}

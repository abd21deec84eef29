//! Every entry point that takes outside bytes gets random and mutated input: it returns a typed
//! error (or, for an unchanged input, the right answer) and never panics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::sync::LazyLock;
use std::time::Duration;

use callvault_crypto::frame::{FrameDecryptor, FrameEncryptor};
use callvault_crypto::keyfile::{self, KdfParams, KeyKind};
use callvault_crypto::mls::MlsParticipant;
use callvault_crypto::{Delegation, SecretIdentity, giftwrap, seal};
use callvault_protocol::CallId;
use callvault_protocol::fields::{SignalPayload, SignalType};
use proptest::prelude::*;

const NOW: u64 = 1_790_000_000;

struct Fixture {
    alice: SecretIdentity,
    bob: SecretIdentity,
    wrap: String,
    payload: String,
    frame: Vec<u8>,
    keyfile: Vec<u8>,
    delegation: String,
}

static F: LazyLock<Fixture> = LazyLock::new(|| {
    let (alice, bob) = (SecretIdentity::generate(), SecretIdentity::generate());
    let wrap = giftwrap::wrap(&alice, &bob.public(), r#"{"type":"call.end"}"#, NOW).unwrap();
    let call = CallId::from_bytes([1; 16]);
    let payload =
        seal::seal_signal(&alice, &bob.public(), &call, SignalType::KeyExchange, &[5; 32]).unwrap().as_str().to_owned();
    let frame = FrameEncryptor::new(&[9; 32], 2).unwrap().encrypt(b"an opus frame").unwrap();
    let keyfile =
        keyfile::seal_key(&alice, KeyKind::User, "pw", KdfParams { memory_kib: 64, iterations: 1, lanes: 1 }).unwrap();
    let delegation = Delegation::sign(&alice, &bob.public(), NOW).unwrap().to_json();
    Fixture { alice, bob, wrap, payload, frame, keyfile, delegation }
});

/// A byte string derived from `original`: flipped, truncated, extended, or replaced.
fn mutated(original: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = original.len();
    let o1 = original.clone();
    let o2 = original.clone();
    let o3 = original;
    prop_oneof![
        (0..len.max(1), any::<u8>()).prop_map(move |(i, x)| {
            let mut v = o1.clone();
            if let Some(b) = v.get_mut(i) {
                *b ^= x.max(1);
            }
            v
        }),
        (0..len.max(1)).prop_map(move |n| o2[..n].to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(move |tail| [o3.clone(), tail].concat()),
        proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn gift_wrap_unwrap(bytes in mutated(F.wrap.as_bytes().to_vec())) {
        let r = giftwrap::unwrap(&F.bob, &bytes, NOW);
        if bytes == F.wrap.as_bytes() {
            prop_assert!(r.is_ok());
        } else if let Ok(u) = r {
            // A change that survives must be JSON-insignificant (e.g. whitespace): same message.
            prop_assert_eq!(u.content, r#"{"type":"call.end"}"#);
        }
    }

    #[test]
    fn seal_open(text in mutated(F.payload.as_bytes().to_vec())) {
        let Ok(s) = String::from_utf8(text) else { return Ok(()) };
        let Ok(p) = SignalPayload::new(s.clone()) else { return Ok(()) };
        let r = seal::open_signal(&F.bob, &F.alice.public(), &CallId::from_bytes([1; 16]), SignalType::KeyExchange, &p);
        prop_assert_eq!(r.is_ok(), s == F.payload);
    }

    #[test]
    fn frame_decrypt(bytes in mutated(F.frame.clone())) {
        let mut rx = FrameDecryptor::default();
        rx.add_key(Duration::ZERO, &[9; 32], 2, |_| false).unwrap();
        let r = rx.decrypt(Duration::ZERO, &bytes);
        prop_assert_eq!(r.is_ok(), bytes == F.frame);
    }

    #[test]
    fn key_file_open(bytes in mutated(F.keyfile.clone())) {
        let r = keyfile::open_key(&bytes, KeyKind::User, "pw");
        prop_assert_eq!(r.is_ok(), bytes == F.keyfile);
    }

    #[test]
    fn delegation_parse_and_verify(bytes in mutated(F.delegation.as_bytes().to_vec())) {
        let Ok(s) = String::from_utf8(bytes) else { return Ok(()) };
        if let Ok(v) = Delegation::from_json(&s).and_then(|d| d.verify()) {
            prop_assert_eq!(v.vault, F.bob.public());
        }
    }

    #[test]
    fn mls_process_and_join(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut p = MlsParticipant::new(b"x").unwrap();
        prop_assert!(p.join(&bytes).is_err());
        p.create_group(b"g").unwrap();
        prop_assert!(p.process(&bytes).is_err());
        prop_assert_eq!(p.epoch(), Some(0));
    }
}

//! SFrame: the RFC 9605 vectors through our API, 1:1 media with the call keys, key rotation that
//! keeps in-flight frames for a bounded window, and refusals.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::Duration;

use callvault_crypto::callkeys::{EphemeralKey, Role, key_id};
use callvault_crypto::frame::{FrameDecryptor, FrameEncryptor, FrameError};
use callvault_protocol::{CallId, Guid};
use serde_json::Value;
use sha2::{Digest, Sha256};

const VECTORS_SHA256: &str = "b8d35efd41749567427cb9ae52d9a7362904154978ff6a5fb20c0258a8ffdec1";

fn vectors() -> Value {
    let bytes = include_bytes!("../vectors/sframe-rfc9605.json");
    assert_eq!(hex::encode(Sha256::digest(bytes)), VECTORS_SHA256, "the SFrame vectors changed");
    serde_json::from_slice(bytes).unwrap()
}

fn h(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().unwrap()).unwrap()
}

#[test]
fn rfc9605_vectors_for_our_suite() {
    let v = vectors();
    let ours: Vec<&Value> = v["sframe"].as_array().unwrap().iter().filter(|c| c["cipher_suite"] == 4).collect();
    assert!(!ours.is_empty(), "no AES_128_GCM_SHA256_128 vector");
    for c in ours {
        let (kid, ctr) = (c["kid"].as_u64().unwrap(), c["ctr"].as_u64().unwrap());
        let (base, meta, pt, ct) = (h(c, "base_key"), h(c, "metadata"), h(c, "pt"), h(c, "ct"));
        let mut enc = FrameEncryptor::with_counter(&base, kid, ctr).unwrap();
        assert_eq!(enc.encrypt_with_metadata(&pt, &meta).unwrap(), ct, "encryption of kid {kid} ctr {ctr}");
        let mut dec = FrameDecryptor::default();
        dec.add_key(Duration::ZERO, &base, kid, |_| false).unwrap();
        assert_eq!(dec.decrypt_with_metadata(Duration::ZERO, &ct, &meta).unwrap(), pt);
        // Metadata is authenticated: other metadata fails.
        assert_eq!(dec.decrypt_with_metadata(Duration::ZERO, &ct, b"other").unwrap_err(), FrameError::Authentication);
    }
}

#[test]
fn a_one_to_one_call_encrypts_each_direction_with_its_own_key() {
    let (caller, callee) = (Guid::from_public_key(&[1; 32]), Guid::from_public_key(&[2; 32]));
    let call = CallId::from_bytes([3; 16]);
    let (a, b) = (EphemeralKey::generate(), EphemeralKey::generate());
    let (a_pub, b_pub) = (a.public(), b.public());
    let ka = a.agree(Role::Caller, &call, &caller, &callee, &b_pub).unwrap();
    let kb = b.agree(Role::Callee, &call, &caller, &callee, &a_pub).unwrap();

    let mut a_tx = FrameEncryptor::new(ka.send_base_key(), ka.send_key_id()).unwrap();
    let mut b_rx = FrameDecryptor::default();
    b_rx.add_key(Duration::ZERO, kb.recv_base_key(), kb.recv_key_id(), |_| false).unwrap();
    let opus = b"\x78\x01\x02 opus frame";
    let sealed = a_tx.encrypt(opus).unwrap();
    assert!(!sealed.windows(opus.len()).any(|w| w == opus), "payload visible in the frame");
    assert_eq!(b_rx.decrypt(Duration::ZERO, &sealed).unwrap(), opus);
    // B's own key does not open A's frames: directions are separate.
    let mut wrong = FrameDecryptor::default();
    wrong.add_key(Duration::ZERO, kb.send_base_key(), kb.recv_key_id(), |_| false).unwrap();
    assert_eq!(wrong.decrypt(Duration::ZERO, &sealed).unwrap_err(), FrameError::Authentication);
}

#[test]
fn rotation_keeps_in_flight_frames_for_the_grace_period_only() {
    let same_sender = |id: u64| id & 1 == 0; // caller's key ids
    let mut tx = FrameEncryptor::new(&[1; 32], key_id(0, Role::Caller)).unwrap();
    let mut rx = FrameDecryptor::new(Duration::from_secs(2));
    rx.add_key(Duration::ZERO, &[1; 32], key_id(0, Role::Caller), same_sender).unwrap();
    let old = tx.encrypt(b"sent before the rotation").unwrap();

    tx.rotate(&[2; 32], key_id(1, Role::Caller)).unwrap();
    rx.add_key(Duration::from_secs(10), &[2; 32], key_id(1, Role::Caller), same_sender).unwrap();
    let new = tx.encrypt(b"sent after").unwrap();
    assert_eq!(rx.decrypt(Duration::from_secs(10), &new).unwrap(), b"sent after");
    // The frame in flight under the old key still decrypts within the grace period...
    assert_eq!(rx.decrypt(Duration::from_millis(11_900), &old).unwrap(), b"sent before the rotation");
    // ...and not after it.
    assert_eq!(rx.decrypt(Duration::from_secs(12), &old).unwrap_err(), FrameError::UnknownKeyId { key_id: 0 });
    assert_eq!(rx.key_ids(), vec![2]);
}

#[test]
fn keys_of_other_senders_are_not_retired_by_a_rotation() {
    let mut rx = FrameDecryptor::new(Duration::from_secs(1));
    rx.add_key(Duration::ZERO, &[1; 32], 0, |id| id & 1 == 0).unwrap();
    rx.add_key(Duration::ZERO, &[2; 32], 1, |id| id & 1 == 1).unwrap();
    rx.add_key(Duration::from_secs(5), &[3; 32], 2, |id| id & 1 == 0).unwrap();
    let mut callee = FrameEncryptor::new(&[2; 32], 1).unwrap();
    let f = callee.encrypt(b"still here").unwrap();
    assert_eq!(rx.decrypt(Duration::from_secs(100), &f).unwrap(), b"still here");
    assert_eq!(rx.key_ids(), vec![1, 2]);
}

#[test]
fn tampered_unknown_and_garbage_frames_are_refused() {
    let mut tx = FrameEncryptor::new(&[7; 32], 4).unwrap();
    let mut rx = FrameDecryptor::default();
    rx.add_key(Duration::ZERO, &[7; 32], 4, |_| false).unwrap();
    let frame = tx.encrypt(b"hello").unwrap();
    for i in 0..frame.len() {
        let mut bad = frame.clone();
        bad[i] ^= 0x80;
        assert!(rx.decrypt(Duration::ZERO, &bad).is_err(), "byte {i} flipped was accepted");
    }
    let mut other = FrameEncryptor::new(&[7; 32], 9).unwrap();
    assert_eq!(
        rx.decrypt(Duration::ZERO, &other.encrypt(b"x").unwrap()).unwrap_err(),
        FrameError::UnknownKeyId { key_id: 9 }
    );
    assert_eq!(rx.decrypt(Duration::ZERO, &[]).unwrap_err(), FrameError::Malformed);
    assert_eq!(rx.decrypt(Duration::ZERO, &vec![0; 2 * 1024 * 1024]).unwrap_err(), FrameError::Malformed);
    rx.remove_key(4);
    assert_eq!(rx.decrypt(Duration::ZERO, &frame).unwrap_err(), FrameError::UnknownKeyId { key_id: 4 });
}

mod same_frames_as_the_sframe_crate {
    use callvault_crypto::frame::{FrameDecryptor, FrameEncryptor, SUITE};
    use proptest::prelude::*;
    use sframe::frame::{EncryptedFrame, MediaFrame, SingleUseCounter};
    use sframe::key::{DecryptionKey, EncryptionKey};
    use std::time::Duration;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Our frame layer (AES keyed once per key) produces the very bytes the `sframe` crate
        /// produces, and each decrypts the other's frames.
        #[test]
        fn byte_for_byte_and_both_ways(
            payload in proptest::collection::vec(any::<u8>(), 1..3000),
            metadata in proptest::collection::vec(any::<u8>(), 0..24),
            base in proptest::collection::vec(any::<u8>(), 16..64),
            key_id in prop_oneof![0u64..8, any::<u64>()],
            counter in prop_oneof![0u64..8, 0u64..u64::MAX / 2],
        ) {
            let ours = FrameEncryptor::with_counter(&base, key_id, counter).unwrap().encrypt_with_metadata(&payload, &metadata).unwrap();
            let key = EncryptionKey::derive_from(SUITE, key_id, &base).unwrap();
            let theirs = MediaFrame::try_with_meta_data(&mut SingleUseCounter::new(counter), &payload, &metadata)
                .unwrap()
                .encrypt(&key)
                .unwrap()
                .sframe_cipher_text()
                .to_vec();
            prop_assert_eq!(&ours, &theirs);
            let dk = DecryptionKey::derive_from(SUITE, key_id, &base).unwrap();
            let opened = EncryptedFrame::try_with_meta_data(&ours, &metadata).unwrap().decrypt(&dk).unwrap();
            prop_assert_eq!(opened.payload(), &payload[..]);
            let mut rx = FrameDecryptor::default();
            rx.add_key(Duration::ZERO, &base, key_id, |_| false).unwrap();
            prop_assert_eq!(rx.decrypt_with_metadata(Duration::ZERO, &theirs, &metadata).unwrap(), payload);
        }
    }
}

#[test]
fn the_counter_advances_and_is_never_reused() {
    let mut tx = FrameEncryptor::with_counter(&[1; 32], 3, u64::MAX - 1).unwrap();
    let a = tx.encrypt(b"x").unwrap();
    assert_eq!(tx.encrypt(b"x").unwrap_err(), FrameError::CounterExhausted);
    let header = sframe::header::SframeHeader::deserialize(&a).unwrap();
    assert_eq!((header.key_id(), header.counter()), (3, u64::MAX - 1));
    let mut tx = FrameEncryptor::new(&[1; 32], 3).unwrap();
    let (f0, f1) = (tx.encrypt(b"same").unwrap(), tx.encrypt(b"same").unwrap());
    assert_ne!(f0, f1, "the same payload twice must not give the same frame");
}

//! MLS for group calls: three members through add, update and remove; every member derives the
//! same SFrame base key per epoch, keys differ across epochs, a removed member cannot decrypt
//! frames sent after its removal, and a new member cannot decrypt frames sent before it joined.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::HashSet;
use std::time::Duration;

use callvault_crypto::frame::{FrameDecryptor, FrameEncryptor, FrameError};
use callvault_crypto::mls::{MlsError, MlsParticipant};

fn base(p: &MlsParticipant) -> Vec<u8> {
    p.sframe_base_key().unwrap().to_vec()
}

/// `sender` encrypts a frame under its key for the current epoch; `receiver` tries to decrypt
/// with what it has derived (its current epoch's base key).
fn frame_from(sender: &MlsParticipant, text: &[u8]) -> Vec<u8> {
    let kid = MlsParticipant::sframe_key_id(sender.own_index().unwrap(), sender.epoch().unwrap());
    FrameEncryptor::new(&base(sender), kid).unwrap().encrypt(text).unwrap()
}

fn can_read(receiver_base: &[u8], sender_index: u32, epoch: u64, frame: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut rx = FrameDecryptor::default();
    rx.add_key(Duration::ZERO, receiver_base, MlsParticipant::sframe_key_id(sender_index, epoch), |_| false).unwrap();
    rx.decrypt(Duration::ZERO, frame)
}

#[test]
fn three_members_add_update_remove() {
    let mut alice = MlsParticipant::new(b"alice").unwrap();
    let mut bob = MlsParticipant::new(b"bob").unwrap();
    let mut carol = MlsParticipant::new(b"carol").unwrap();
    alice.create_group(b"call-1").unwrap();
    let mut seen_keys = HashSet::new();

    // Epoch 1: Alice adds Bob.
    let c = alice.add(&[bob.key_package().unwrap()]).unwrap();
    bob.join(c.welcome.as_ref().unwrap()).unwrap();
    assert_eq!((alice.epoch(), bob.epoch()), (Some(1), Some(1)));
    assert_eq!(base(&alice), base(&bob));
    assert!(seen_keys.insert(base(&alice)));

    // A frame Alice sends in epoch 1, before Carol joins.
    let before_carol = frame_from(&alice, b"before carol");

    // Epoch 2: Bob adds Carol; Alice processes the commit.
    let c = bob.add(&[carol.key_package().unwrap()]).unwrap();
    assert_eq!(alice.process(&c.commit).unwrap(), Some(2));
    carol.join(c.welcome.as_ref().unwrap()).unwrap();
    let all = [&alice, &bob, &carol];
    assert!(all.iter().all(|p| p.epoch() == Some(2) && p.member_count() == 3));
    assert!(all.iter().all(|p| base(p) == base(&alice)));
    assert!(seen_keys.insert(base(&alice)), "epoch 2 reuses a key");

    // Carol never had epoch 1's secret: Alice's earlier frame is closed to her.
    let alice_index = alice.own_index().unwrap();
    assert_eq!(can_read(&base(&carol), alice_index, 1, &before_carol).unwrap_err(), FrameError::Authentication);
    assert_eq!(can_read(&base(&bob), alice_index, 2, &frame_from(&alice, b"now")).unwrap(), b"now");

    // Epoch 3: Carol updates her leaf.
    let c = carol.self_update().unwrap();
    assert_eq!(alice.process(&c.commit).unwrap(), Some(3));
    assert_eq!(bob.process(&c.commit).unwrap(), Some(3));
    assert!([&alice, &bob, &carol].iter().all(|p| base(p) == base(&carol)));
    assert!(seen_keys.insert(base(&alice)), "epoch 3 reuses a key");
    let carol_base_epoch3 = base(&carol);

    // Epoch 4: Alice removes Carol.
    let c = alice.remove(&[b"carol"]).unwrap();
    assert_eq!(bob.process(&c.commit).unwrap(), Some(4));
    assert_eq!(carol.process(&c.commit).unwrap(), None, "Carol learns she was removed");
    assert!(!carol.is_active());
    assert_eq!(carol.sframe_base_key().unwrap_err(), MlsError::NoGroup);
    assert_eq!(base(&alice), base(&bob));
    assert!(seen_keys.insert(base(&alice)), "epoch 4 reuses a key");

    // Frames after the removal are closed to Carol, whatever she kept.
    let after = frame_from(&bob, b"after carol left");
    let bob_index = bob.own_index().unwrap();
    assert_eq!(can_read(&base(&alice), bob_index, 4, &after).unwrap(), b"after carol left");
    assert_eq!(can_read(&carol_base_epoch3, bob_index, 4, &after).unwrap_err(), FrameError::Authentication);
    assert_eq!(alice.member_count(), 2);
}

#[test]
fn malformed_messages_and_misuse_are_refused() {
    let mut alice = MlsParticipant::new(b"alice").unwrap();
    assert_eq!(alice.sframe_base_key().unwrap_err(), MlsError::NoGroup);
    assert!(matches!(alice.join(b"not a welcome"), Err(MlsError::Malformed(_))));
    alice.create_group(b"g").unwrap();
    assert!(matches!(alice.process(&[0u8; 64]), Err(MlsError::Malformed(_))));
    assert!(matches!(alice.add(&[b"junk".to_vec()]), Err(MlsError::Malformed(_))));
    assert_eq!(alice.remove(&[b"nobody"]).unwrap_err(), MlsError::UnknownMember);
    assert!(matches!(alice.process(&vec![0u8; 2 * 1024 * 1024]), Err(MlsError::Malformed(_))));
    // A welcome for someone else does not let an outsider in.
    let mut bob = MlsParticipant::new(b"bob").unwrap();
    let mut eve = MlsParticipant::new(b"eve").unwrap();
    let c = alice.add(&[bob.key_package().unwrap()]).unwrap();
    assert!(eve.join(c.welcome.as_ref().unwrap()).is_err());
    bob.join(c.welcome.as_ref().unwrap()).unwrap();
    assert_eq!(bob.member_count(), 2);
}

//! 1:1 call keys: both sides derive the same keys and SAS; a man in the middle shows different
//! digits; low-order points are refused; ratcheting keeps the sides in step.

use callvault_crypto::callkeys::{EphemeralKey, KeyAgreementError, Role, key_id, parse_public};
use callvault_protocol::{CallId, Guid};

fn guids() -> (Guid, Guid) {
    (Guid::from_public_key(&[1; 32]), Guid::from_public_key(&[2; 32]))
}

#[test]
fn both_sides_agree_on_keys_and_the_short_authentication_string() {
    let (caller, callee) = guids();
    let call = CallId::from_bytes([5; 16]);
    let (a, b) = (EphemeralKey::generate(), EphemeralKey::generate());
    let (a_pub, b_pub) = (a.public(), b.public());
    // The callee's key travels base64 in call.accept; parse it as the caller would.
    let b_field = b.public_field().unwrap();
    assert_eq!(parse_public(&b_field).unwrap(), b_pub);
    let ka = a.agree(Role::Caller, &call, &caller, &callee, &b_pub).unwrap();
    let kb = b.agree(Role::Callee, &call, &caller, &callee, &a_pub).unwrap();
    assert_eq!(ka.send_base_key(), kb.recv_base_key());
    assert_eq!(ka.recv_base_key(), kb.send_base_key());
    assert_ne!(ka.send_base_key(), ka.recv_base_key());
    assert_eq!(ka.sas(), kb.sas());
    assert_eq!(ka.sas().as_str().len(), 7);
    assert_eq!((ka.send_key_id(), ka.recv_key_id()), (kb.recv_key_id(), kb.send_key_id()));
    assert_eq!((key_id(0, Role::Caller), key_id(0, Role::Callee), key_id(3, Role::Callee)), (0, 1, 7));
    let shown = format!("{ka:?}");
    assert!(!shown.contains(&format!("{:?}", ka.send_base_key())), "{shown}");
}

#[test]
fn a_man_in_the_middle_cannot_match_the_digits() {
    let (caller, callee) = guids();
    let call = CallId::from_bytes([6; 16]);
    let (a, b) = (EphemeralKey::generate(), EphemeralKey::generate());
    let (m1, m2) = (EphemeralKey::generate(), EphemeralKey::generate());
    let (a_pub, b_pub, m1_pub, m2_pub) = (a.public(), b.public(), m1.public(), m2.public());
    // Mallory answers Alice with m1 and calls Bob with m2.
    let ka = a.agree(Role::Caller, &call, &caller, &callee, &m1_pub).unwrap();
    let kb = b.agree(Role::Callee, &call, &caller, &callee, &m2_pub).unwrap();
    let km_a = m1.agree(Role::Callee, &call, &caller, &callee, &a_pub).unwrap();
    let km_b = m2.agree(Role::Caller, &call, &caller, &callee, &b_pub).unwrap();
    assert_eq!(ka.sas(), km_a.sas());
    assert_eq!(kb.sas(), km_b.sas());
    assert_ne!(ka.sas(), kb.sas(), "Alice and Bob read different digits aloud");
}

#[test]
fn the_transcript_binds_call_and_identities() {
    let (caller, callee) = guids();
    let (a1, b1) = (EphemeralKey::generate(), EphemeralKey::generate());
    let (a1_pub, b1_pub) = (a1.public(), b1.public());
    let k1 = a1.agree(Role::Caller, &CallId::from_bytes([7; 16]), &caller, &callee, &b1_pub).unwrap();
    let k2 = b1.agree(Role::Callee, &CallId::from_bytes([8; 16]), &caller, &callee, &a1_pub).unwrap();
    assert_ne!(k1.send_base_key(), k2.recv_base_key(), "another call_id gives other keys");
}

#[test]
fn low_order_and_malformed_keys_are_refused() {
    let (caller, callee) = guids();
    let call = CallId::from_bytes([9; 16]);
    let zero = [0u8; 32];
    let e = EphemeralKey::generate().agree(Role::Caller, &call, &caller, &callee, &zero).unwrap_err();
    assert_eq!(e, KeyAgreementError::NonContributory);
    let short = callvault_protocol::fields::PublicKey::new("AAAA").unwrap();
    assert_eq!(parse_public(&short).unwrap_err(), KeyAgreementError::InvalidPublicKey);
}

#[test]
fn ratcheting_keeps_both_sides_in_step_and_changes_the_keys() {
    let (caller, callee) = guids();
    let call = CallId::from_bytes([10; 16]);
    let (a, b) = (EphemeralKey::generate(), EphemeralKey::generate());
    let (a_pub, b_pub) = (a.public(), b.public());
    let mut ka = a.agree(Role::Caller, &call, &caller, &callee, &b_pub).unwrap();
    let mut kb = b.agree(Role::Callee, &call, &caller, &callee, &a_pub).unwrap();
    let before = *ka.send_base_key();
    ka.next_epoch();
    kb.next_epoch();
    assert_eq!((ka.epoch(), kb.epoch()), (1, 1));
    assert_ne!(*ka.send_base_key(), before);
    assert_eq!(ka.send_base_key(), kb.recv_base_key());
    assert_eq!(ka.send_key_id(), 2);
    assert_eq!(kb.send_key_id(), 3);
}

#[test]
fn keys_exchanged_inside_sealed_key_exchange_signals() {
    use callvault_crypto::SecretIdentity;
    use callvault_crypto::seal::{self, SealError};
    use callvault_protocol::fields::SignalType;

    let (alice, bob) = (SecretIdentity::generate(), SecretIdentity::generate());
    let (caller, callee) = (alice.public().guid(), bob.public().guid());
    let call = CallId::from_bytes([11; 16]);
    let (a, b) = (EphemeralKey::generate(), EphemeralKey::generate());
    // Each side seals its ephemeral public key to the other's identity; vaults relay it blind.
    let a_msg = seal::seal_signal(&alice, &bob.public(), &call, SignalType::KeyExchange, &a.public()).unwrap();
    let b_msg = seal::seal_signal(&bob, &alice.public(), &call, SignalType::KeyExchange, &b.public()).unwrap();
    let a_pub_at_bob: [u8; 32] = seal::open_signal(&bob, &alice.public(), &call, SignalType::KeyExchange, &a_msg)
        .unwrap()
        .as_slice()
        .try_into()
        .unwrap();
    let b_pub_at_alice: [u8; 32] = seal::open_signal(&alice, &bob.public(), &call, SignalType::KeyExchange, &b_msg)
        .unwrap()
        .as_slice()
        .try_into()
        .unwrap();
    let ka = a.agree(Role::Caller, &call, &caller, &callee, &b_pub_at_alice).unwrap();
    let kb = b.agree(Role::Callee, &call, &caller, &callee, &a_pub_at_bob).unwrap();
    assert_eq!(ka.sas(), kb.sas());
    assert_eq!(ka.send_base_key(), kb.recv_base_key());
    // The same key_exchange replayed into another call is refused before any key is derived.
    let other = CallId::from_bytes([12; 16]);
    assert_eq!(
        seal::open_signal(&bob, &alice.public(), &other, SignalType::KeyExchange, &a_msg).unwrap_err(),
        SealError::WrongCall
    );
}

#[test]
fn keys_from_given_random_bytes_agree_like_generated_ones() {
    let call = callvault_protocol::CallId::from_bytes([4; 16]);
    let (a, b) =
        (callvault_protocol::Guid::from_public_key(&[1; 32]), callvault_protocol::Guid::from_public_key(&[2; 32]));
    let x = callvault_crypto::callkeys::EphemeralKey::from_random_bytes([0x42; 32]);
    let same = callvault_crypto::callkeys::EphemeralKey::from_random_bytes([0x42; 32]);
    assert_eq!(x.public(), same.public(), "the key is the given bytes");
    assert_ne!(x.public(), callvault_crypto::callkeys::EphemeralKey::from_random_bytes([0x43; 32]).public());
    let y = callvault_crypto::callkeys::EphemeralKey::generate();
    let (px, py) = (x.public(), y.public());
    let kx = x.agree(callvault_crypto::callkeys::Role::Caller, &call, &a, &b, &py).unwrap();
    let ky = y.agree(callvault_crypto::callkeys::Role::Callee, &call, &a, &b, &px).unwrap();
    assert_eq!(kx.sas(), ky.sas());
    assert_eq!(kx.send_base_key(), ky.recv_base_key());
}

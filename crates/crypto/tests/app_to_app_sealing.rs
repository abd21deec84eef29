//! call.signal payloads sealed app-to-app: vaults cannot read them, and a payload sealed for one
//! call or signal type cannot be replayed as another.

use callvault_crypto::SecretIdentity;
use callvault_crypto::seal::{self, MAX_BODY, SealError};
use callvault_protocol::CallId;
use callvault_protocol::fields::{SignalPayload, SignalType};

fn ids() -> (CallId, CallId) {
    (CallId::from_bytes([1; 16]), CallId::from_bytes([2; 16]))
}

#[test]
fn round_trip_and_only_the_peer_can_open() {
    let (alice, bob, vault) = (SecretIdentity::generate(), SecretIdentity::generate(), SecretIdentity::generate());
    let (call, _) = ids();
    let sdp = b"v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\n";
    let p = seal::seal_signal(&alice, &bob.public(), &call, SignalType::Offer, sdp).unwrap();
    assert!(!p.as_str().contains("IN IP4"));
    assert_eq!(&**seal::open_signal(&bob, &alice.public(), &call, SignalType::Offer, &p).unwrap(), sdp);
    // Someone else, e.g. a vault relaying it, cannot open it.
    assert_eq!(
        seal::open_signal(&vault, &alice.public(), &call, SignalType::Offer, &p).unwrap_err(),
        SealError::Decrypt
    );
    // Nor does it open as if from another sender.
    assert_eq!(seal::open_signal(&bob, &vault.public(), &call, SignalType::Offer, &p).unwrap_err(), SealError::Decrypt);
}

#[test]
fn a_key_exchange_from_another_call_or_of_another_type_is_refused() {
    let (alice, bob) = (SecretIdentity::generate(), SecretIdentity::generate());
    let (call1, call2) = ids();
    let kx = seal::seal_signal(&alice, &bob.public(), &call1, SignalType::KeyExchange, &[9u8; 32]).unwrap();
    assert_eq!(
        seal::open_signal(&bob, &alice.public(), &call2, SignalType::KeyExchange, &kx).unwrap_err(),
        SealError::WrongCall
    );
    assert_eq!(
        seal::open_signal(&bob, &alice.public(), &call1, SignalType::Answer, &kx).unwrap_err(),
        SealError::WrongSignalType
    );
}

#[test]
fn the_largest_body_fits_the_protocol_payload_and_larger_is_refused() {
    let (alice, bob) = (SecretIdentity::generate(), SecretIdentity::generate());
    let (call, _) = ids();
    let p = seal::seal_signal(&alice, &bob.public(), &call, SignalType::Ice, &vec![0xab; MAX_BODY]).unwrap();
    assert!(p.as_str().len() <= SignalPayload::MAX_CHARS);
    // And the call.signal that carries it still fits a vault-to-vault gift wrap.
    let message = format!(
        r#"{{"type":"call.signal","signal_type":"ice","payload":"{}","message_id":"6f9619ff-8b86-4d01-b42d-00cf4fc964ff","call_id":"{call}","from_guid":"0123456789abcdef0123456789abcdef01234567","timestamp":"2026-11-22T10:00:00Z"}}"#,
        p.as_str()
    );
    let (va, vb) = (SecretIdentity::generate(), SecretIdentity::generate());
    let w = callvault_crypto::giftwrap::wrap(&va, &vb.public(), &message, 1_790_000_000).unwrap();
    assert_eq!(callvault_crypto::giftwrap::unwrap(&vb, w.as_bytes(), 1_790_000_000).unwrap().content, message);
    assert_eq!(
        seal::seal_signal(&alice, &bob.public(), &call, SignalType::Ice, &vec![0; MAX_BODY + 1]).unwrap_err(),
        SealError::TooLarge(MAX_BODY + 1)
    );
    let garbage = SignalPayload::new("A".repeat(200)).unwrap();
    assert!(seal::open_signal(&bob, &alice.public(), &call, SignalType::Ice, &garbage).is_err());
}

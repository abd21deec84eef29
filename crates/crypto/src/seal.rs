//! App-to-app sealing of `call.signal` payloads (SDP, ICE candidates, key-exchange material) and
//! of message texts: NIP-44 v2 from the sending user's identity key to the peer user's, so the
//! vaults that forward a payload cannot read it. The sealed envelope names the call and the
//! signal type (a message: its message_id), and opening checks them, so a payload from one call
//! (or of one type, or one message) cannot be replayed into another.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use callvault_protocol::CallId;
use callvault_protocol::fields::{SignalPayload, SignalType};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::nip44::{self, conversation_key};
use crate::{PublicIdentity, SecretIdentity};

/// Largest body sealed: 20 000 bytes (an SDP offer with video and simulcast is under 10 KB). The
/// sealed payload is then at most 38 300 characters, so a `call.signal` carrying it still fits a
/// vault-to-vault gift wrap ([`crate::giftwrap::MAX_RUMOR_BYTES`]).
pub const MAX_BODY: usize = 20_000;
const ENVELOPE_VERSION: u8 = 1;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The body is over [`MAX_BODY`].
    #[error("body of {0} bytes is over the limit")]
    TooLarge(usize),
    /// The key pair is not usable.
    #[error("invalid key")]
    InvalidKey,
    /// The payload does not decrypt for this key pair (tampered, or not from that sender).
    #[error("payload does not decrypt")]
    Decrypt,
    /// The decrypted envelope is not valid.
    #[error("malformed envelope")]
    Malformed,
    /// Sealed for another call.
    #[error("payload belongs to another call")]
    WrongCall,
    /// Sealed as another signal type.
    #[error("payload is another signal type")]
    WrongSignalType,
    /// Sealed for another message.
    #[error("body belongs to another message")]
    WrongMessage,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    v: u8,
    call_id: String,
    signal_type: SignalType,
    body: String,
}

/// Seals `body` from `sender` to `recipient` for `call_id` as `signal_type`.
pub fn seal_signal(
    sender: &SecretIdentity,
    recipient: &PublicIdentity,
    call_id: &CallId,
    signal_type: SignalType,
    body: &[u8],
) -> Result<SignalPayload, SealError> {
    if body.len() > MAX_BODY {
        return Err(SealError::TooLarge(body.len()));
    }
    let env = Envelope { v: ENVELOPE_VERSION, call_id: call_id.to_string(), signal_type, body: STANDARD.encode(body) };
    let json = Zeroizing::new(serde_json::to_vec(&env).map_err(|_| SealError::Malformed)?);
    let ck = conversation_key(sender, recipient).map_err(|_| SealError::InvalidKey)?;
    let payload = nip44::encrypt(&ck, &json).map_err(|_| SealError::TooLarge(body.len()))?;
    SignalPayload::new(payload).map_err(|_| SealError::TooLarge(body.len()))
}

/// Opens a payload that `sender` sealed to `recipient`, checking call and signal type.
pub fn open_signal(
    recipient: &SecretIdentity,
    sender: &PublicIdentity,
    call_id: &CallId,
    signal_type: SignalType,
    payload: &SignalPayload,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let ck = conversation_key(recipient, sender).map_err(|_| SealError::InvalidKey)?;
    let json = nip44::decrypt(&ck, payload.as_str()).map_err(|_| SealError::Decrypt)?;
    let env: Envelope = serde_json::from_slice(&json).map_err(|_| SealError::Malformed)?;
    if env.v != ENVELOPE_VERSION {
        return Err(SealError::Malformed);
    }
    if env.call_id != call_id.as_str() {
        return Err(SealError::WrongCall);
    }
    if env.signal_type != signal_type {
        return Err(SealError::WrongSignalType);
    }
    STANDARD.decode(env.body.as_bytes()).map(Zeroizing::new).map_err(|_| SealError::Malformed)
}

/// The largest message text sealed (see [`callvault_protocol::messaging::MAX_TEXT_BYTES`]).
pub const MAX_TEXT: usize = callvault_protocol::messaging::MAX_TEXT_BYTES;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageEnvelope {
    v: u8,
    message_id: String,
    text: String,
}

/// Seals a message's `text` from `sender` to `recipient`, bound to its `message_id`. The NIP-44
/// conversation key is the same from both ends, so the sender's other devices (holding the same
/// identity) open it as well as the recipient.
pub fn seal_message(
    sender: &SecretIdentity,
    recipient: &PublicIdentity,
    message_id: &callvault_protocol::MessageId,
    text: &str,
) -> Result<callvault_protocol::messaging::SealedBody, SealError> {
    if text.len() > MAX_TEXT {
        return Err(SealError::TooLarge(text.len()));
    }
    let env = MessageEnvelope { v: ENVELOPE_VERSION, message_id: message_id.to_string(), text: STANDARD.encode(text) };
    let json = Zeroizing::new(serde_json::to_vec(&env).map_err(|_| SealError::Malformed)?);
    let ck = conversation_key(sender, recipient).map_err(|_| SealError::InvalidKey)?;
    let payload = nip44::encrypt(&ck, &json).map_err(|_| SealError::TooLarge(text.len()))?;
    callvault_protocol::messaging::SealedBody::new(payload).map_err(|_| SealError::TooLarge(text.len()))
}

/// Opens a message body sealed between `me` and `other` (either end sealed it), checking that it
/// is bound to `message_id`.
pub fn open_message(
    me: &SecretIdentity,
    other: &PublicIdentity,
    message_id: &callvault_protocol::MessageId,
    body: &callvault_protocol::messaging::SealedBody,
) -> Result<Zeroizing<String>, SealError> {
    let ck = conversation_key(me, other).map_err(|_| SealError::InvalidKey)?;
    let json = nip44::decrypt(&ck, body.as_str()).map_err(|_| SealError::Decrypt)?;
    let env: MessageEnvelope = serde_json::from_slice(&json).map_err(|_| SealError::Malformed)?;
    if env.v != ENVELOPE_VERSION {
        return Err(SealError::Malformed);
    }
    if env.message_id != message_id.as_str() {
        return Err(SealError::WrongMessage);
    }
    let bytes = Zeroizing::new(STANDARD.decode(env.text.as_bytes()).map_err(|_| SealError::Malformed)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| SealError::Malformed)?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod message_tests {
    use super::*;

    #[test]
    fn the_largest_text_seals_within_the_body_bound_and_both_ends_open_it() {
        let (a, b) = (SecretIdentity::generate(), SecretIdentity::generate());
        let id = callvault_protocol::MessageId::from_bytes([7; 16]);
        let text = "é".repeat(MAX_TEXT / 2);
        let body = seal_message(&a, &b.public(), &id, &text).unwrap();
        assert!(body.as_str().len() <= callvault_protocol::messaging::SealedBody::MAX_CHARS);
        assert_eq!(*open_message(&b, &a.public(), &id, &body).unwrap(), text);
        // The sender's other device, with the same identity, opens it too.
        assert_eq!(*open_message(&a, &b.public(), &id, &body).unwrap(), text);
        let other = callvault_protocol::MessageId::from_bytes([8; 16]);
        assert_eq!(open_message(&b, &a.public(), &other, &body), Err(SealError::WrongMessage));
        assert_eq!(
            seal_message(&a, &b.public(), &id, &"x".repeat(MAX_TEXT + 1)),
            Err(SealError::TooLarge(MAX_TEXT + 1))
        );
        let eve = SecretIdentity::generate();
        assert_eq!(open_message(&eve, &a.public(), &id, &body), Err(SealError::Decrypt));
    }
}

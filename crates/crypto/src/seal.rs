//! App-to-app sealing of `call.signal` payloads (SDP, ICE candidates, key-exchange material):
//! NIP-44 v2 from the sending user's identity key to the peer user's, so the vaults that forward
//! a payload cannot read it. The sealed envelope names the call and the signal type, and opening
//! checks both, so a payload from one call (or of one type) cannot be replayed into another.

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

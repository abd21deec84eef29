//! Vault-to-vault envelopes: a NIP-59 gift wrap (NIP-17 style) whose rumor carries one protocol
//! message, sealed by the sending vault's key and addressed to the receiving vault's key.
//!
//! Unwrapping checks, in order, each with its own error: size; the outer event parses, is kind
//! 1059, has a valid id and signature, and is addressed (`p` tag) to us; the seal decrypts, is kind
//! 13 with no tags and a valid signature; the rumor decrypts, has a valid id, the seal's author as
//! its author, and kind [`CALL_RUMOR_KIND`]; and the rumor is fresh.
//!
//! Freshness comes from the rumor's own `created_at`, not the wrap's or the seal's, which NIP-59
//! backdates by up to two days on purpose. A rumor is accepted from [`MAX_AGE`] in the past to
//! [`MAX_SKEW`] in the future of the receiver's clock. Duplicates inside that window are the
//! receiver's to drop (by `message_id`).

use std::time::Duration;

use nostr::prelude::*;

use crate::nip44::{self, conversation_key};
use crate::{PublicIdentity, SecretIdentity};

/// Nostr kind of the rumor that carries one callvault protocol message.
pub const CALL_RUMOR_KIND: u16 = 25_050;
/// Largest gift wrap accepted, in bytes of JSON.
pub const MAX_WRAP_BYTES: usize = 160 * 1024;
/// Oldest rumor accepted.
pub const MAX_AGE: Duration = Duration::from_secs(120);
/// Largest rumor JSON wrapped. NIP-44 pads it to at most 40 960 bytes, which keeps the seal's
/// JSON (the wrap's plaintext) under NIP-44's 65 535-byte limit.
pub const MAX_RUMOR_BYTES: usize = 40_960;
/// How far in the future a rumor may be (clock skew).
pub const MAX_SKEW: Duration = Duration::from_secs(30);

/// Why a gift wrap was refused. Safe to log: no content, no keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GiftWrapError {
    /// Larger than [`MAX_WRAP_BYTES`] (or a message too large to wrap).
    #[error("gift wrap too large")]
    TooLarge,
    /// Not a Nostr event.
    #[error("not a Nostr event")]
    Malformed,
    /// Not kind 1059.
    #[error("not a gift wrap")]
    NotAGiftWrap,
    /// The outer id or signature does not verify.
    #[error("gift wrap signature does not verify")]
    BadWrapSignature,
    /// Addressed to another key.
    #[error("gift wrap is addressed to someone else")]
    NotForUs,
    /// A layer does not decrypt (tampered, or not for this key).
    #[error("a layer does not decrypt")]
    Decrypt,
    /// The seal is not a valid kind-13 event with no tags.
    #[error("invalid seal")]
    BadSeal,
    /// The seal's signature does not verify.
    #[error("seal signature does not verify")]
    BadSealSignature,
    /// The rumor is not a valid unsigned event with a correct id.
    #[error("invalid rumor")]
    BadRumor,
    /// The rumor claims another author than the seal's signer.
    #[error("rumor author is not the seal's signer")]
    ForgedSender,
    /// The rumor is not a callvault message.
    #[error("rumor kind {0} is not a callvault message")]
    WrongKind(u16),
    /// The sealing vault is not the one expected.
    #[error("sealed by an unexpected vault")]
    UnexpectedSender,
    /// Older than [`MAX_AGE`].
    #[error("message is {0} s old")]
    Stale(u64),
    /// Further in the future than [`MAX_SKEW`].
    #[error("message is {0} s in the future")]
    FromTheFuture(u64),
    /// Signing or encryption failed.
    #[error("wrapping failed")]
    Wrap,
}

/// An unwrapped message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped {
    /// The vault key that sealed it (checked against the rumor's author).
    pub sender: PublicIdentity,
    /// The protocol message (JSON).
    pub content: String,
    /// When the sender created it (Unix seconds, from the rumor).
    pub created_at: u64,
}

impl Unwrapped {
    /// Fails unless `expected` sealed it.
    pub fn expect_sender(self, expected: &PublicIdentity) -> Result<Self, GiftWrapError> {
        if &self.sender == expected { Ok(self) } else { Err(GiftWrapError::UnexpectedSender) }
    }
}

/// Wraps `message` (protocol JSON) from `sender` to `receiver`, created at `now` (Unix seconds).
pub fn wrap(
    sender: &SecretIdentity,
    receiver: &PublicIdentity,
    message: &str,
    now: u64,
) -> Result<String, GiftWrapError> {
    if message.len() > MAX_RUMOR_BYTES {
        return Err(GiftWrapError::TooLarge);
    }
    let mut rumor = EventBuilder::new(Kind::Custom(CALL_RUMOR_KIND), message)
        .custom_created_at(Timestamp::from_secs(now))
        .finalize_unsigned(sender.keys().public_key());
    rumor.ensure_id();
    // JSON escaping can make the rumor longer than the message.
    if rumor.try_as_json().map_err(|_| GiftWrapError::Wrap)?.len() > MAX_RUMOR_BYTES {
        return Err(GiftWrapError::TooLarge);
    }
    let wrap =
        GiftWrapBuilder::new(*receiver.nostr(), rumor).finalize(sender.keys()).map_err(|_| GiftWrapError::Wrap)?;
    wrap.try_as_json().map_err(|_| GiftWrapError::Wrap)
}

/// Unwraps a gift wrap addressed to `receiver`, checking everything listed in the module docs.
pub fn unwrap(receiver: &SecretIdentity, wrap: &[u8], now: u64) -> Result<Unwrapped, GiftWrapError> {
    if wrap.len() > MAX_WRAP_BYTES {
        return Err(GiftWrapError::TooLarge);
    }
    let outer = Event::from_json(wrap).map_err(|_| GiftWrapError::Malformed)?;
    if outer.kind != Kind::GiftWrap {
        return Err(GiftWrapError::NotAGiftWrap);
    }
    outer.verify().map_err(|_| GiftWrapError::BadWrapSignature)?;
    let me = receiver.keys().public_key();
    if !outer.tags.public_keys().any(|pk| pk == me) {
        return Err(GiftWrapError::NotForUs);
    }
    let wrapper = PublicIdentity::checked(outer.pubkey).map_err(|_| GiftWrapError::BadWrapSignature)?;
    let ck = conversation_key(receiver, &wrapper).map_err(|_| GiftWrapError::Decrypt)?;
    let seal_json = nip44::decrypt(&ck, &outer.content).map_err(|_| GiftWrapError::Decrypt)?;
    let seal = Event::from_json(seal_json.as_slice()).map_err(|_| GiftWrapError::BadSeal)?;
    if seal.kind != Kind::Seal || !seal.tags.is_empty() {
        return Err(GiftWrapError::BadSeal);
    }
    seal.verify().map_err(|_| GiftWrapError::BadSealSignature)?;
    let sealer = PublicIdentity::checked(seal.pubkey).map_err(|_| GiftWrapError::BadSeal)?;
    let ck = conversation_key(receiver, &sealer).map_err(|_| GiftWrapError::Decrypt)?;
    let rumor_json = nip44::decrypt(&ck, &seal.content).map_err(|_| GiftWrapError::Decrypt)?;
    let rumor = UnsignedEvent::from_json(rumor_json.as_slice()).map_err(|_| GiftWrapError::BadRumor)?;
    if rumor.id.is_none() || rumor.verify_id().is_err() {
        return Err(GiftWrapError::BadRumor);
    }
    if rumor.pubkey != seal.pubkey {
        return Err(GiftWrapError::ForgedSender);
    }
    if rumor.kind != Kind::Custom(CALL_RUMOR_KIND) {
        return Err(GiftWrapError::WrongKind(rumor.kind.as_u16()));
    }
    let created = rumor.created_at.as_secs();
    if created.saturating_add(MAX_AGE.as_secs()) < now {
        return Err(GiftWrapError::Stale(now.saturating_sub(created)));
    }
    if created > now.saturating_add(MAX_SKEW.as_secs()) {
        return Err(GiftWrapError::FromTheFuture(created.saturating_sub(now)));
    }
    Ok(Unwrapped { sender: sealer, content: rumor.content, created_at: created })
}

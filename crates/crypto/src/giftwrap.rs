//! Vault-to-vault envelopes: a NIP-59 gift wrap (NIP-17 style) whose rumor carries one protocol
//! message, sealed by the sending vault's key and addressed to the receiving vault's key.
//!
//! Unwrapping checks, in order, each with its own error: size; the outer event parses, is kind
//! 1059, is addressed (`p` tag) to us, and has a valid id and signature; the seal decrypts, is kind
//! 13 with no tags and a valid signature; the rumor decrypts, has a valid id, the seal's author as
//! its author, and kind [`CALL_RUMOR_KIND`]; and the rumor is fresh.
//!
//! Freshness comes from the rumor's own `created_at`, not the wrap's or the seal's, which NIP-59
//! backdates by up to two days on purpose. A rumor is accepted from [`MAX_AGE`] in the past to
//! [`MAX_SKEW`] in the future of the receiver's clock. Duplicates inside that window are the
//! receiver's to drop (by `message_id`).
//!
//! A vault wraps and unwraps through [`SealKeys`], which keeps the seal layer's conversation key
//! per peer vault: one ECDH per message instead of two.

use std::time::Duration;

use nostr::prelude::*;

use nostr::nips::nip44::v2::ConversationKey;

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

/// Seal-layer conversation keys, derived once per (own key, peer key) pair and kept.
///
/// A gift wrap has two NIP-44 layers. The outer one is keyed by a fresh ephemeral key every time;
/// the seal's is the ECDH of the two vaults' long-lived keys, the same for every message between
/// them, so a vault derives it once per peer instead of once per message. At most
/// [`SealKeys::CAPACITY`] pairs are kept (then the cache starts over), so senders with ever new
/// keys cannot grow it. The keys stay in this process's memory, as the vault key itself does.
#[derive(Default)]
pub struct SealKeys {
    /// Keyed by (own public key, peer public key).
    cache: std::sync::Mutex<std::collections::HashMap<KeyPair, ConversationKey>>,
}

/// (own public key, peer public key), x-only bytes.
type KeyPair = ([u8; 32], [u8; 32]);

impl std::fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKeys").finish_non_exhaustive()
    }
}

impl SealKeys {
    /// Most pairs kept.
    pub const CAPACITY: usize = 4096;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, me: &SecretIdentity, peer: &PublicIdentity) -> Result<ConversationKey, GiftWrapError> {
        let pair = (me.public().to_bytes(), peer.to_bytes());
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ck) = cache.get(&pair) {
            return Ok(*ck);
        }
        let ck = conversation_key(me, peer).map_err(|_| GiftWrapError::Decrypt)?;
        if cache.len() >= Self::CAPACITY {
            cache.clear();
        }
        cache.insert(pair, ck);
        Ok(ck)
    }
}

/// NIP-59: seals and wraps are dated up to two days before `now`, at random.
fn tweaked(now: u64) -> Timestamp {
    let back = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (2 * 24 * 60 * 60);
    Timestamp::from_secs(now.saturating_sub(back))
}

/// A signed event. Unlike nostr's builder, this does not verify the fresh signature again (31 µs
/// here, more than a quarter of a wrap). BIP-340 recommends that check against fault attacks; the
/// fresh auxiliary randomness in every nonce (`Keys::sign_schnorr`) already defeats the
/// differential ones, and the rest (a hardware fault while this server signs) is a risk taken
/// knowingly, see `docs/CRYPTO.md`. The receiver verifies both signatures of every wrap.
fn signed(keys: &Keys, kind: Kind, tags: Vec<Tag>, created_at: Timestamp, content: String) -> Event {
    let tags = Tags::from_list(tags);
    let id = EventId::compute(&keys.public_key(), &created_at, &kind, &tags, &content);
    let sig = keys.sign_schnorr(id.as_bytes());
    Event::new(id, keys.public_key(), created_at, kind, tags, content, sig)
}

/// Wraps `message` (protocol JSON) from `sender` to `receiver`, created at `now` (Unix seconds).
pub fn wrap(
    sender: &SecretIdentity,
    receiver: &PublicIdentity,
    message: &str,
    now: u64,
) -> Result<String, GiftWrapError> {
    wrap_with(&SealKeys::new(), sender, receiver, message, now)
}

/// [`wrap`], with the seal's conversation key from (and into) `keys`.
pub fn wrap_with(
    keys: &SealKeys,
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
    let rumor_json = rumor.try_as_json().map_err(|_| GiftWrapError::Wrap)?;
    if rumor_json.len() > MAX_RUMOR_BYTES {
        return Err(GiftWrapError::TooLarge);
    }
    let sealed =
        nip44::encrypt(&keys.get(sender, receiver)?, rumor_json.as_bytes()).map_err(|_| GiftWrapError::Wrap)?;
    let seal = signed(sender.keys(), Kind::Seal, Vec::new(), tweaked(now), sealed);
    let ephemeral = SecretIdentity::generate();
    let outer_key = conversation_key(&ephemeral, receiver).map_err(|_| GiftWrapError::Wrap)?;
    let wrapped = nip44::encrypt(&outer_key, seal.as_json().as_bytes()).map_err(|_| GiftWrapError::Wrap)?;
    let wrap =
        signed(ephemeral.keys(), Kind::GiftWrap, vec![Tag::public_key(*receiver.nostr())], tweaked(now), wrapped);
    wrap.try_as_json().map_err(|_| GiftWrapError::Wrap)
}

/// Unwraps a gift wrap addressed to `receiver`, checking everything listed in the module docs.
pub fn unwrap(receiver: &SecretIdentity, wrap: &[u8], now: u64) -> Result<Unwrapped, GiftWrapError> {
    unwrap_with(&SealKeys::new(), receiver, wrap, now)
}

/// [`unwrap`], with the seal's conversation key from (and into) `keys`. A key is derived (and
/// kept) only for a seal whose signature verified.
pub fn unwrap_with(
    keys: &SealKeys,
    receiver: &SecretIdentity,
    wrap: &[u8],
    now: u64,
) -> Result<Unwrapped, GiftWrapError> {
    if wrap.len() > MAX_WRAP_BYTES {
        return Err(GiftWrapError::TooLarge);
    }
    let outer = Event::from_json(wrap).map_err(|_| GiftWrapError::Malformed)?;
    if outer.kind != Kind::GiftWrap {
        return Err(GiftWrapError::NotAGiftWrap);
    }
    // Addressed to us is the cheaper check, so wraps for others cost no signature check.
    let me = receiver.keys().public_key();
    if !outer.tags.public_keys().any(|pk| pk == me) {
        return Err(GiftWrapError::NotForUs);
    }
    outer.verify().map_err(|_| GiftWrapError::BadWrapSignature)?;
    let wrapper = PublicIdentity::verified_signer(outer.pubkey);
    let ck = conversation_key(receiver, &wrapper).map_err(|_| GiftWrapError::Decrypt)?;
    let seal_json = nip44::decrypt(&ck, &outer.content).map_err(|_| GiftWrapError::Decrypt)?;
    let seal = Event::from_json(seal_json.as_slice()).map_err(|_| GiftWrapError::BadSeal)?;
    if seal.kind != Kind::Seal || !seal.tags.is_empty() {
        return Err(GiftWrapError::BadSeal);
    }
    seal.verify().map_err(|_| GiftWrapError::BadSealSignature)?;
    let sealer = PublicIdentity::verified_signer(seal.pubkey);
    let rumor_json =
        nip44::decrypt(&keys.get(receiver, &sealer)?, &seal.content).map_err(|_| GiftWrapError::Decrypt)?;
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

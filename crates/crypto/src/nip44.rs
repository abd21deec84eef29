//! NIP-44 v2 encryption, held to the spec's limits (nostr 0.45 also accepts longer plaintexts,
//! which strict peers refuse), with the spec's checks on payloads before decryption.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use nostr::nips::nip44::v2::{self, ConversationKey};
use nostr::prelude::*;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{PublicIdentity, SecretIdentity};

/// Longest plaintext NIP-44 v2 encrypts.
pub const MAX_PLAINTEXT: usize = 65_535;

/// Why NIP-44 refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Nip44Error {
    /// Plaintext empty or over 65 535 bytes.
    #[error("plaintext length {0} outside 1..=65535")]
    PlaintextLength(usize),
    /// Payload not of the right size, not base64, or an unknown version.
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
    /// The key pair gives no conversation key (invalid point or scalar).
    #[error("invalid key for NIP-44")]
    InvalidKey,
    /// Authentication or padding failed (tampered, or not for this key pair).
    #[error("payload does not decrypt")]
    Decrypt,
}

/// The shared conversation key of a secret key and a peer's public key.
pub fn conversation_key(sk: &SecretIdentity, pk: &PublicIdentity) -> Result<ConversationKey, Nip44Error> {
    ConversationKey::derive(sk.keys().secret_key(), pk.nostr()).map_err(|_| Nip44Error::InvalidKey)
}

/// The conversation key from raw parts (hex secret, hex public key), for test vectors.
pub fn conversation_key_from_hex(sk_hex: &str, pk_hex: &str) -> Result<ConversationKey, Nip44Error> {
    let sk = SecretKey::from_hex(sk_hex).map_err(|_| Nip44Error::InvalidKey)?;
    let pk = PublicKey::from_hex(pk_hex).map_err(|_| Nip44Error::InvalidKey)?;
    ConversationKey::derive(&sk, &pk).map_err(|_| Nip44Error::InvalidKey)
}

/// Encrypts with a random nonce; base64 payload.
pub fn encrypt(ck: &ConversationKey, plaintext: &[u8]) -> Result<String, Nip44Error> {
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    encrypt_with_nonce(ck, plaintext, &nonce)
}

/// Encrypts with a given nonce (test vectors only: a nonce must never repeat under one key).
pub fn encrypt_with_nonce(ck: &ConversationKey, plaintext: &[u8], nonce: &[u8; 32]) -> Result<String, Nip44Error> {
    if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
        return Err(Nip44Error::PlaintextLength(plaintext.len()));
    }
    let bytes = v2::encrypt_to_bytes_with_nonce(ck, plaintext, *nonce).map_err(|_| Nip44Error::Decrypt)?;
    Ok(STANDARD.encode(bytes))
}

/// Decrypts a base64 payload after the spec's checks on its shape.
pub fn decrypt(ck: &ConversationKey, payload: &str) -> Result<Zeroizing<Vec<u8>>, Nip44Error> {
    if payload.starts_with('#') {
        return Err(Nip44Error::Malformed("unknown encryption version"));
    }
    if !(132..=87_472).contains(&payload.len()) {
        return Err(Nip44Error::Malformed("invalid payload length"));
    }
    let raw = STANDARD.decode(payload).map_err(|_| Nip44Error::Malformed("invalid base64"))?;
    if !(99..=65_603).contains(&raw.len()) {
        return Err(Nip44Error::Malformed("invalid data length"));
    }
    if raw.first() != Some(&2) {
        return Err(Nip44Error::Malformed("unknown encryption version"));
    }
    v2::decrypt_to_bytes(ck, &raw).map(Zeroizing::new).map_err(|_| Nip44Error::Decrypt)
}

/// The padded length of a plaintext of `len` bytes (NIP-44 `calc_padded_len`).
pub fn padded_len(len: usize) -> usize {
    if len <= 32 {
        return 32;
    }
    let next_power = len.saturating_sub(1).checked_ilog2().map_or(1, |l| 1usize << l.saturating_add(1));
    let chunk = if next_power <= 256 { 32 } else { next_power / 8 };
    chunk.saturating_mul(len.saturating_sub(1).checked_div(chunk).unwrap_or(0).saturating_add(1))
}

/// The message keys NIP-44 derives from a conversation key and a nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageKeys {
    /// ChaCha20 key.
    pub chacha_key: [u8; 32],
    /// ChaCha20 nonce.
    pub chacha_nonce: [u8; 12],
    /// HMAC-SHA256 key.
    pub hmac_key: [u8; 32],
}

/// Derives the [`MessageKeys`] of a conversation key and a nonce (HKDF-Expand, 76 bytes).
pub fn message_keys(ck: &ConversationKey, nonce: &[u8; 32]) -> Result<MessageKeys, Nip44Error> {
    let hk = Hkdf::<Sha256>::from_prk(ck.as_bytes()).map_err(|_| Nip44Error::InvalidKey)?;
    let mut okm = Zeroizing::new([0u8; 76]);
    hk.expand(nonce, okm.as_mut()).map_err(|_| Nip44Error::InvalidKey)?;
    let (mut key, mut n, mut hmac) = ([0u8; 32], [0u8; 12], [0u8; 32]);
    key.copy_from_slice(okm.get(..32).ok_or(Nip44Error::InvalidKey)?);
    n.copy_from_slice(okm.get(32..44).ok_or(Nip44Error::InvalidKey)?);
    hmac.copy_from_slice(okm.get(44..76).ok_or(Nip44Error::InvalidKey)?);
    Ok(MessageKeys { chacha_key: key, chacha_nonce: n, hmac_key: hmac })
}

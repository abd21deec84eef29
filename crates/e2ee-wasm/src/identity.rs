//! The browser's identity operations in pure Rust (k256: no C code, so it builds for wasm32 with
//! the stock toolchain alone): the x-only public key of a secret key, the guid, Nostr events
//! signed with BIP-340 Schnorr (NIP-01: the id is the SHA-256 of `[0,pubkey,created_at,kind,tags,
//! content]`), and NIP-44 v2 encryption. The page passes randomness in (`crypto.getRandomValues`);
//! this module has none of its own. Checked against the NIP-44 vectors, `callvault-crypto` (rust
//! nostr) and nostr-tools.

// Every index and sum below is over lengths checked just before (payloads of at most 65 603
// bytes, buffers of fixed sizes).
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use k256::elliptic_curve::sec1::FromEncodedPoint;
use k256::schnorr::SigningKey;
use k256::{AffinePoint, EncodedPoint, FieldBytes, NonZeroScalar};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Why an identity operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a valid secret key (zero, or not below the curve order).
    #[error("invalid secret key")]
    SecretKey,
    /// Not the x coordinate of a curve point.
    #[error("invalid public key")]
    PublicKey,
    /// Signing failed (a nonce of zero: astronomically unlikely).
    #[error("signing failed")]
    Signing,
    /// Plaintext empty or over 65 535 bytes.
    #[error("plaintext length outside 1..=65535")]
    PlaintextLength,
    /// Not a NIP-44 v2 payload of a possible size.
    #[error("malformed payload")]
    Malformed,
    /// The MAC or the padding does not hold.
    #[error("payload does not decrypt")]
    Decrypt,
}

/// The x-only public key (32 bytes) of `secret`.
pub fn public_key(secret: &[u8; 32]) -> Result<[u8; 32], IdentityError> {
    let key = SigningKey::from_bytes(secret).map_err(|_| IdentityError::SecretKey)?;
    Ok(key.verifying_key().to_bytes().into())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    callvault_protocol::ids::lower_hex(bytes)
}

/// A Nostr event signed by `secret`, as JSON: `id` per NIP-01, `sig` per BIP-340 with `aux`
/// (32 fresh random bytes) as auxiliary randomness.
pub fn sign_event(
    secret: &[u8; 32],
    created_at: u64,
    kind: u16,
    tags: &[Vec<String>],
    content: &str,
    aux: &[u8; 32],
) -> Result<serde_json::Value, IdentityError> {
    let key = SigningKey::from_bytes(secret).map_err(|_| IdentityError::SecretKey)?;
    let pubkey = hex(&key.verifying_key().to_bytes());
    let serialized = serde_json::json!([0, pubkey, created_at, kind, tags, content]).to_string();
    let id: [u8; 32] = Sha256::digest(serialized.as_bytes()).into();
    let sig = key.sign_raw(&id, aux).map_err(|_| IdentityError::Signing)?;
    Ok(serde_json::json!({
        "id": hex(&id),
        "pubkey": pubkey,
        "created_at": created_at,
        "kind": kind,
        "tags": tags,
        "content": content,
        "sig": hex(&sig.to_bytes()),
    }))
}

/// The even-y curve point with x coordinate `x` (BIP-340's lift_x).
fn lift_x(x: &[u8; 32]) -> Result<AffinePoint, IdentityError> {
    let mut compressed = [0u8; 33];
    compressed[0] = 0x02;
    compressed[1..].copy_from_slice(x);
    let encoded = EncodedPoint::from_bytes(compressed).map_err(|_| IdentityError::PublicKey)?;
    Option::from(AffinePoint::from_encoded_point(&encoded)).ok_or(IdentityError::PublicKey)
}

/// NIP-44 v2's conversation key of `secret` and the peer's x-only key: HKDF-extract with salt
/// `nip44-v2` of the shared point's x coordinate.
pub fn conversation_key(secret: &[u8; 32], peer: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, IdentityError> {
    let scalar: Option<NonZeroScalar> = NonZeroScalar::from_repr(*FieldBytes::from_slice(secret)).into();
    let scalar = scalar.ok_or(IdentityError::SecretKey)?;
    let point = lift_x(peer)?;
    let shared = k256::ecdh::diffie_hellman(scalar, point);
    let (prk, _) = Hkdf::<Sha256>::extract(Some(b"nip44-v2"), shared.raw_secret_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&prk);
    Ok(out)
}

/// The per-message keys: ChaCha20 key, ChaCha20 nonce, HMAC key.
fn message_keys(ck: &[u8; 32], nonce: &[u8; 32]) -> Result<Zeroizing<[u8; 76]>, IdentityError> {
    let hk = Hkdf::<Sha256>::from_prk(ck).map_err(|_| IdentityError::Malformed)?;
    let mut okm = Zeroizing::new([0u8; 76]);
    hk.expand(nonce, okm.as_mut()).map_err(|_| IdentityError::Malformed)?;
    Ok(okm)
}

/// NIP-44's padded length of an unpadded length 1..=65535.
fn padded_len(len: usize) -> usize {
    if len <= 32 {
        return 32;
    }
    let next_power = len.saturating_sub(1).checked_ilog2().map_or(1usize, |b| 1usize << b.saturating_add(1));
    let chunk = if next_power <= 256 { 32 } else { next_power / 8 };
    chunk.saturating_mul(len.saturating_sub(1) / chunk).saturating_add(chunk)
}

fn mac(hmac_key: &[u8], nonce: &[u8; 32], ciphertext: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(hmac_key).unwrap_or_else(|_| unreachable_hmac());
    m.update(nonce);
    m.update(ciphertext);
    m
}

/// HMAC takes keys of any length; this is never reached.
#[allow(clippy::panic)]
fn unreachable_hmac() -> Hmac<Sha256> {
    panic!("HMAC-SHA256 refused a key")
}

/// NIP-44 v2 encryption of `plaintext` under the conversation key `ck` with `nonce` (32 fresh
/// random bytes): base64 of `0x02 || nonce || ciphertext || mac`.
pub fn encrypt(ck: &[u8; 32], nonce: &[u8; 32], plaintext: &str) -> Result<String, IdentityError> {
    let bytes = plaintext.as_bytes();
    let len = u16::try_from(bytes.len()).ok().filter(|l| *l >= 1).ok_or(IdentityError::PlaintextLength)?;
    let keys = message_keys(ck, nonce)?;
    let (chacha_key, rest) = keys.split_at(32);
    let (chacha_nonce, hmac_key) = rest.split_at(12);
    let mut padded = Zeroizing::new(vec![0u8; 2usize.saturating_add(padded_len(bytes.len()))]);
    padded[..2].copy_from_slice(&len.to_be_bytes());
    padded[2..2 + bytes.len()].copy_from_slice(bytes);
    let mut cipher = ChaCha20::new(chacha_key.into(), chacha_nonce.into());
    cipher.apply_keystream(&mut padded);
    let tag = mac(hmac_key, nonce, &padded).finalize().into_bytes();
    let mut out = Vec::with_capacity(1 + 32 + padded.len() + 32);
    out.push(2);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&padded);
    out.extend_from_slice(&tag);
    Ok(STANDARD.encode(out))
}

/// NIP-44 v2 decryption, with the spec's checks before any decryption.
pub fn decrypt(ck: &[u8; 32], payload: &str) -> Result<String, IdentityError> {
    if payload.len() < 132 || payload.len() > 87_472 || payload.starts_with('#') {
        return Err(IdentityError::Malformed);
    }
    let data = STANDARD.decode(payload).map_err(|_| IdentityError::Malformed)?;
    if data.len() < 99 || data.len() > 65_603 || data.first() != Some(&2) {
        return Err(IdentityError::Malformed);
    }
    let nonce: [u8; 32] = data[1..33].try_into().map_err(|_| IdentityError::Malformed)?;
    let (ciphertext, tag) = data[33..].split_at(data.len() - 33 - 32);
    let keys = message_keys(ck, &nonce)?;
    let (chacha_key, rest) = keys.split_at(32);
    let (chacha_nonce, hmac_key) = rest.split_at(12);
    mac(hmac_key, &nonce, ciphertext).verify_slice(tag).map_err(|_| IdentityError::Decrypt)?;
    let mut padded = Zeroizing::new(ciphertext.to_vec());
    let mut cipher = ChaCha20::new(chacha_key.into(), chacha_nonce.into());
    cipher.apply_keystream(&mut padded);
    let len = usize::from(u16::from_be_bytes([padded[0], padded[1]]));
    if len == 0 || padded.len() != 2 + padded_len(len) {
        return Err(IdentityError::Decrypt);
    }
    let text = padded.get(2..2 + len).ok_or(IdentityError::Decrypt)?;
    String::from_utf8(text.to_vec()).map_err(|_| IdentityError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_follows_the_spec() {
        for (len, padded) in [(1, 32), (32, 32), (33, 64), (37, 64), (64, 64), (65, 96), (100, 128), (320, 320)] {
            assert_eq!(padded_len(len), padded, "{len}");
        }
        assert_eq!(padded_len(383), 384);
        assert_eq!(padded_len(65_535), 65_536);
    }
}

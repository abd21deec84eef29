//! SFrame (RFC 9605) on encoded media frames, with cipher suite AES_128_GCM_SHA256_128.
//!
//! A [`FrameEncryptor`] encrypts one sender's frames under one key id at a time. A
//! [`FrameDecryptor`] holds the keys of the senders it receives from; when a new key arrives
//! ([`FrameDecryptor::add_key`]) the older ones keep decrypting for a grace period, so frames
//! already in flight under the previous key are not dropped, and are then forgotten. Time is passed
//! in (sans-IO): any monotonic clock, as a `Duration` since an arbitrary start.

use std::collections::HashMap;
use std::time::Duration;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sframe::CipherSuite;
use sframe::header::SframeHeader;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The cipher suite callvault uses.
pub const SUITE: CipherSuite = CipherSuite::AesGcm128Sha256;
/// How long a replaced key still decrypts.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);
/// Most keys a decryptor holds; beyond it the oldest retiring key goes first.
pub const MAX_KEYS: usize = 16;
/// Largest encrypted frame accepted.
pub const MAX_FRAME: usize = 1024 * 1024;
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 12;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not an SFrame (header does not parse) or too large.
    #[error("malformed frame")]
    Malformed,
    /// No key for the frame's key id (unknown sender, retired or not yet received).
    #[error("no key for key id {key_id}")]
    UnknownKeyId {
        /// The key id in the frame's header.
        key_id: u64,
    },
    /// Authentication failed: tampered, or a wrong key under that id.
    #[error("frame does not authenticate")]
    Authentication,
    /// Deriving a key failed.
    #[error("key derivation failed")]
    KeyDerivation,
    /// The sender's counter is exhausted: rotate the key.
    #[error("frame counter exhausted")]
    CounterExhausted,
}

/// One SFrame key: the AEAD keyed once (the `sframe` crate re-keys AES for every frame, which
/// costs ~150 ns per frame; see docs/BENCHMARKS.md) and the salt, derived per RFC 9605 §4.4.2:
/// `sframe_secret = HKDF-Extract("", base_key)`, then `HKDF-Expand` with
/// `"SFrame 1.0 Secret key " ‖ KID ‖ cipher suite` (16 bytes) and
/// `"SFrame 1.0 Secret salt " ‖ KID ‖ cipher suite` (12 bytes), KID as u64 and the suite as u16,
/// big-endian. The frame format (header) is the `sframe` crate's; tests check both directions
/// against that crate and the RFC vectors.
struct FrameKey {
    aead: Aes128Gcm,
    salt: [u8; NONCE_LEN],
}

impl FrameKey {
    fn derive(base_key: &[u8], key_id: u64) -> Result<Self, FrameError> {
        let hk = Hkdf::<Sha256>::new(Some(b""), base_key);
        let suite = (SUITE as u16).to_be_bytes();
        let label = |prefix: &[u8]| [prefix, &key_id.to_be_bytes(), &suite].concat();
        let mut key = Zeroizing::new([0u8; 16]);
        let mut salt = [0u8; NONCE_LEN];
        hk.expand(&label(b"SFrame 1.0 Secret key "), key.as_mut()).map_err(|_| FrameError::KeyDerivation)?;
        hk.expand(&label(b"SFrame 1.0 Secret salt "), &mut salt).map_err(|_| FrameError::KeyDerivation)?;
        let aead = Aes128Gcm::new_from_slice(key.as_ref()).map_err(|_| FrameError::KeyDerivation)?;
        Ok(Self { aead, salt })
    }

    /// The nonce of frame `counter`: the salt XOR the counter, right-aligned.
    fn nonce(&self, counter: u64) -> Nonce<aes_gcm::aes::cipher::consts::U12> {
        let mut n = self.salt;
        for (b, c) in n.iter_mut().skip(NONCE_LEN - 8).zip(counter.to_be_bytes()) {
            *b ^= c;
        }
        Nonce::from(n)
    }
}

/// Encrypts one sender's frames.
pub struct FrameEncryptor {
    key: FrameKey,
    key_id: u64,
    counter: u64,
}

impl std::fmt::Debug for FrameEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameEncryptor(key_id {})", self.key_id)
    }
}

impl FrameEncryptor {
    /// An encryptor for `key_id` from `base_key`.
    pub fn new(base_key: &[u8], key_id: u64) -> Result<Self, FrameError> {
        Ok(Self { key: FrameKey::derive(base_key, key_id)?, key_id, counter: 0 })
    }

    /// An encryptor whose frame counter starts at `counter` (test vectors; a key must never reuse
    /// a counter, so only a fresh key may start anywhere but 0).
    pub fn with_counter(base_key: &[u8], key_id: u64, counter: u64) -> Result<Self, FrameError> {
        let mut e = Self::new(base_key, key_id)?;
        e.counter = counter;
        Ok(e)
    }

    /// Switches to a new key (and key id); the counter restarts.
    pub fn rotate(&mut self, base_key: &[u8], key_id: u64) -> Result<(), FrameError> {
        *self = Self::new(base_key, key_id)?;
        Ok(())
    }

    /// The current key id.
    pub fn key_id(&self) -> u64 {
        self.key_id
    }

    /// Encrypts one encoded frame: SFrame header, ciphertext and tag.
    pub fn encrypt(&mut self, frame: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(frame.len().saturating_add(32));
        self.encrypt_into(frame, &mut out)?;
        Ok(out)
    }

    /// Encrypts one frame into `out` (replacing its contents): the media path reuses one buffer
    /// per sender.
    pub fn encrypt_into(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.seal(frame, &[], out)
    }

    /// Encrypts one frame, authenticating (not encrypting) `metadata` with it.
    pub fn encrypt_with_metadata(&mut self, frame: &[u8], metadata: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(frame.len().saturating_add(32));
        self.seal(frame, metadata, &mut out)?;
        Ok(out)
    }

    fn seal(&mut self, frame: &[u8], metadata: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let counter = self.counter;
        self.counter = counter.checked_add(1).ok_or(FrameError::CounterExhausted)?;
        let header = SframeHeader::new(self.key_id, counter);
        let hlen = header.len();
        out.clear();
        out.resize(hlen, 0);
        header.serialize(out.as_mut_slice()).map_err(|_| FrameError::Malformed)?;
        out.extend_from_slice(frame);
        let (head, body) = out.split_at_mut(hlen);
        let nonce = self.key.nonce(counter);
        let tag = if metadata.is_empty() {
            self.key.aead.encrypt_inout_detached(&nonce, head, body.into())
        } else {
            self.key.aead.encrypt_inout_detached(&nonce, &[&*head, metadata].concat(), body.into())
        }
        .map_err(|_| FrameError::Malformed)?;
        out.extend_from_slice(&tag);
        Ok(())
    }
}

struct HeldKey {
    key: FrameKey,
    added: Duration,
    retire_at: Option<Duration>,
}

/// Decrypts frames from any sender whose key it holds.
pub struct FrameDecryptor {
    keys: HashMap<u64, HeldKey>,
    grace: Duration,
    /// The earliest retirement deadline, so frames do not scan the keys when none is due.
    next_retirement: Option<Duration>,
}

impl std::fmt::Debug for FrameDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        write!(f, "FrameDecryptor(key ids {ids:?})")
    }
}

impl Default for FrameDecryptor {
    fn default() -> Self {
        Self::new(DEFAULT_GRACE)
    }
}

impl FrameDecryptor {
    /// A decryptor whose replaced keys keep working for `grace`.
    pub fn new(grace: Duration) -> Self {
        Self { keys: HashMap::new(), grace, next_retirement: None }
    }

    /// Adds the key for `key_id`. Keys that shared its sender (`same_sender`) begin to retire:
    /// they decrypt until `now + grace`.
    pub fn add_key(
        &mut self,
        now: Duration,
        base_key: &[u8],
        key_id: u64,
        same_sender: impl Fn(u64) -> bool,
    ) -> Result<(), FrameError> {
        let key = FrameKey::derive(base_key, key_id)?;
        let retire_at = now.saturating_add(self.grace);
        for (id, held) in &mut self.keys {
            if *id != key_id && same_sender(*id) && held.retire_at.is_none() {
                held.retire_at = Some(retire_at);
            }
        }
        self.keys.insert(key_id, HeldKey { key, added: now, retire_at: None });
        self.next_retirement = self.keys.values().filter_map(|h| h.retire_at).min();
        while self.keys.len() > MAX_KEYS {
            let oldest = self.keys.iter().min_by_key(|(_, h)| (h.retire_at.is_none(), h.added)).map(|(id, _)| *id);
            match oldest {
                Some(id) => self.keys.remove(&id),
                None => break,
            };
        }
        Ok(())
    }

    /// Forgets a key now (a member left, a call ended).
    pub fn remove_key(&mut self, key_id: u64) {
        self.keys.remove(&key_id);
    }

    /// The key ids held, sorted.
    pub fn key_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.keys.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Decrypts one frame at `now`.
    pub fn decrypt(&mut self, now: Duration, frame: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(frame.len());
        self.decrypt_into(now, frame, &mut out)?;
        Ok(out)
    }

    /// Decrypts one frame into `out` (replacing its contents).
    pub fn decrypt_into(&mut self, now: Duration, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.open(now, frame, &[], out)
    }

    fn open(&mut self, now: Duration, frame: &[u8], metadata: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.retire(now);
        if frame.len() > MAX_FRAME {
            return Err(FrameError::Malformed);
        }
        let header = SframeHeader::deserialize(frame).map_err(|_| FrameError::Malformed)?;
        let hlen = header.len();
        let body_end = frame.len().checked_sub(TAG_LEN).filter(|&e| e >= hlen).ok_or(FrameError::Malformed)?;
        let key_id = header.key_id();
        let held = self.keys.get(&key_id).ok_or(FrameError::UnknownKeyId { key_id })?;
        let (head, rest) = frame.split_at(hlen);
        let (body, tag) = rest.split_at(body_end.saturating_sub(hlen));
        let tag = Tag::<aes_gcm::aes::cipher::consts::U16>::try_from(tag).map_err(|_| FrameError::Malformed)?;
        out.clear();
        out.extend_from_slice(body);
        let nonce = held.key.nonce(header.counter());
        let result = if metadata.is_empty() {
            held.key.aead.decrypt_inout_detached(&nonce, head, out.as_mut_slice().into(), &tag)
        } else {
            held.key.aead.decrypt_inout_detached(&nonce, &[head, metadata].concat(), out.as_mut_slice().into(), &tag)
        };
        if result.is_err() {
            out.clear();
            return Err(FrameError::Authentication);
        }
        Ok(())
    }

    fn retire(&mut self, now: Duration) {
        if self.next_retirement.is_some_and(|t| now >= t) {
            self.keys.retain(|_, h| h.retire_at.is_none_or(|t| now < t));
            self.next_retirement = self.keys.values().filter_map(|h| h.retire_at).min();
        }
    }

    /// Decrypts one frame whose sender authenticated `metadata` with it.
    pub fn decrypt_with_metadata(
        &mut self,
        now: Duration,
        frame: &[u8],
        metadata: &[u8],
    ) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(frame.len());
        self.open(now, frame, metadata, &mut out)?;
        Ok(out)
    }
}

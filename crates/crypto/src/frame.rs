//! SFrame (RFC 9605) on encoded media frames, with cipher suite AES_128_GCM_SHA256_128.
//!
//! A [`FrameEncryptor`] encrypts one sender's frames under one key id at a time. A
//! [`FrameDecryptor`] holds the keys of the senders it receives from; when a new key arrives
//! ([`FrameDecryptor::add_key`]) the older ones keep decrypting for a grace period, so frames
//! already in flight under the previous key are not dropped, and are then forgotten. Time is passed
//! in (sans-IO): any monotonic clock, as a `Duration` since an arbitrary start.

use std::collections::HashMap;
use std::time::Duration;

use sframe::CipherSuite;
use sframe::frame::{EncryptedFrame, EncryptedFrameView, MediaFrame, MediaFrameView, MonotonicCounter};
use sframe::key::{DecryptionKey, EncryptionKey};

/// The cipher suite callvault uses.
pub const SUITE: CipherSuite = CipherSuite::AesGcm128Sha256;
/// How long a replaced key still decrypts.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);
/// Most keys a decryptor holds; beyond it the oldest retiring key goes first.
pub const MAX_KEYS: usize = 16;
/// Largest encrypted frame accepted.
pub const MAX_FRAME: usize = 1024 * 1024;

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

/// Encrypts one sender's frames.
pub struct FrameEncryptor {
    key: EncryptionKey,
    key_id: u64,
    counter: MonotonicCounter,
}

impl std::fmt::Debug for FrameEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameEncryptor(key_id {})", self.key_id)
    }
}

impl FrameEncryptor {
    /// An encryptor for `key_id` from `base_key`.
    pub fn new(base_key: &[u8], key_id: u64) -> Result<Self, FrameError> {
        Ok(Self {
            key: EncryptionKey::derive_from(SUITE, key_id, base_key).map_err(|_| FrameError::KeyDerivation)?,
            key_id,
            counter: MonotonicCounter::default(),
        })
    }

    /// An encryptor whose frame counter starts at `counter` (test vectors; a key must never reuse
    /// a counter, so only a fresh key may start anywhere but 0).
    pub fn with_counter(base_key: &[u8], key_id: u64, counter: u64) -> Result<Self, FrameError> {
        let mut e = Self::new(base_key, key_id)?;
        e.counter = MonotonicCounter::with_start_value(counter, u64::MAX);
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

    /// Encrypts one frame into `out` (replacing its contents), with no copy in between: the media
    /// path reuses one buffer per sender.
    pub fn encrypt_into(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let media = MediaFrameView::try_new(&mut self.counter, frame).map_err(|_| FrameError::CounterExhausted)?;
        media.encrypt_into(&self.key, out).map_err(|_| FrameError::KeyDerivation)?;
        Ok(())
    }

    /// Encrypts one frame, authenticating (not encrypting) `metadata` with it.
    pub fn encrypt_with_metadata(&mut self, frame: &[u8], metadata: &[u8]) -> Result<Vec<u8>, FrameError> {
        let media = MediaFrame::try_with_meta_data(&mut self.counter, frame, metadata)
            .map_err(|_| FrameError::CounterExhausted)?;
        let encrypted = media.encrypt(&self.key).map_err(|_| FrameError::KeyDerivation)?;
        Ok(encrypted.sframe_cipher_text().to_vec())
    }
}

struct HeldKey {
    key: DecryptionKey,
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
        let key = DecryptionKey::derive_from(SUITE, key_id, base_key).map_err(|_| FrameError::KeyDerivation)?;
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

    /// Decrypts one frame into `out` (replacing its contents), with no copy in between.
    pub fn decrypt_into(&mut self, now: Duration, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.retire(now);
        if frame.len() > MAX_FRAME {
            return Err(FrameError::Malformed);
        }
        let encrypted = EncryptedFrameView::try_new(frame).map_err(|_| FrameError::Malformed)?;
        let key_id = encrypted.header().key_id();
        let held = self.keys.get(&key_id).ok_or(FrameError::UnknownKeyId { key_id })?;
        encrypted.decrypt_into(&held.key, out).map_err(|_| FrameError::Authentication)?;
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
        self.keys.retain(|_, h| h.retire_at.is_none_or(|t| now < t));
        if frame.len() > MAX_FRAME {
            return Err(FrameError::Malformed);
        }
        let encrypted = EncryptedFrame::try_with_meta_data(frame, metadata).map_err(|_| FrameError::Malformed)?;
        let key_id = encrypted.header().key_id();
        let held = self.keys.get(&key_id).ok_or(FrameError::UnknownKeyId { key_id })?;
        let media = encrypted.decrypt(&held.key).map_err(|_| FrameError::Authentication)?;
        Ok(media.payload().to_vec())
    }
}

//! A secret key at rest, encrypted with a passphrase: argon2id derives a key from the passphrase,
//! XChaCha20-Poly1305 seals the secret, and a checksum over the whole file tells a damaged file
//! from a wrong passphrase.
//!
//! Layout (version 1), all integers big-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 5 | magic `CVKEY` |
//! | 1 | version = 1 |
//! | 1 | what: 1 user identity, 2 vault key |
//! | 4 + 4 + 4 | argon2id memory (KiB), iterations, lanes |
//! | 16 | salt |
//! | 24 | nonce |
//! | 48 | ciphertext of the 32-byte secret and its 16-byte tag (associated data: every byte above) |
//! | 16 | first 16 bytes of SHA-256 over every byte above |

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const MAGIC: &[u8; 5] = b"CVKEY";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 5 + 1 + 1 + 12 + 16 + 24;
const CIPHERTEXT_LEN: usize = 32 + 16;
const CHECKSUM_LEN: usize = 16;
/// Size of a version-1 key file.
pub const KEY_FILE_LEN: usize = HEADER_LEN + CIPHERTEXT_LEN + CHECKSUM_LEN;

/// What a key file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A user's identity key.
    User = 1,
    /// A vault's key.
    Vault = 2,
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub lanes: u32,
}

impl KdfParams {
    /// 64 MiB, 3 iterations, 1 lane: about a quarter of a second here.
    pub const RECOMMENDED: Self = Self { memory_kib: 64 * 1024, iterations: 3, lanes: 1 };
    /// Largest accepted when reading a file (a hostile file must not make us allocate 4 GiB).
    pub const MAX: Self = Self { memory_kib: 1024 * 1024, iterations: 16, lanes: 8 };

    fn argon2(self) -> Result<Argon2<'static>, KeyFileError> {
        if self.memory_kib > Self::MAX.memory_kib
            || self.iterations > Self::MAX.iterations
            || self.lanes > Self::MAX.lanes
        {
            return Err(KeyFileError::UnreasonableParams);
        }
        let params = Params::new(self.memory_kib, self.iterations, self.lanes, Some(32))
            .map_err(|_| KeyFileError::UnreasonableParams)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Why a key file cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Not a callvault key file (wrong magic or length).
    #[error("not a callvault key file")]
    NotAKeyFile,
    /// A version this build does not read.
    #[error("unsupported key file version {0}")]
    UnsupportedVersion(u8),
    /// The file was changed or damaged (checksum mismatch).
    #[error("the key file is damaged or was tampered with")]
    Tampered,
    /// The passphrase does not open the file.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The file holds another kind of key than asked for.
    #[error("the file holds a {found:?} key, not a {expected:?} key")]
    WrongKind {
        /// What was asked for.
        expected: KeyKind,
        /// What the file holds.
        found: KeyKind,
    },
    /// KDF parameters out of range.
    #[error("key derivation parameters out of range")]
    UnreasonableParams,
    /// The decrypted bytes are not a valid secret key.
    #[error("the file does not hold a valid key")]
    InvalidKey,
}

fn derive(passphrase: &str, salt: &[u8], params: KdfParams) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let mut key = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|_| KeyFileError::UnreasonableParams)?;
    Ok(key)
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let d = Sha256::digest(bytes);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(d.get(..CHECKSUM_LEN).unwrap_or(&[0u8; CHECKSUM_LEN]));
    out
}

/// Encrypts `key` under `passphrase`.
#[cfg(feature = "identity")]
pub fn seal_key(
    key: &crate::SecretIdentity,
    kind: KeyKind,
    passphrase: &str,
    params: KdfParams,
) -> Result<Vec<u8>, KeyFileError> {
    use rand_core::{OsRng, RngCore};
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    seal_secret(&key.secret_bytes(), kind, passphrase, params, &salt, &nonce)
}

/// Encrypts 32 secret bytes under `passphrase` with the given salt and nonce (fresh random
/// bytes each time: the browser's module has no random source of its own and is handed them).
pub fn seal_secret(
    secret: &[u8; 32],
    kind: KeyKind,
    passphrase: &str,
    params: KdfParams,
    salt: &[u8; 16],
    nonce: &[u8; 24],
) -> Result<Vec<u8>, KeyFileError> {
    let mut out = Vec::with_capacity(KEY_FILE_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    for v in [params.memory_kib, params.iterations, params.lanes] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(salt);
    out.extend_from_slice(nonce);
    let wrapping = derive(passphrase, salt, params)?;
    let cipher = XChaCha20Poly1305::new(wrapping.as_ref().into());
    let ct = cipher
        .encrypt(XNonce::from_slice(nonce), Payload { msg: secret.as_slice(), aad: &out })
        .map_err(|_| KeyFileError::InvalidKey)?;
    out.extend_from_slice(&ct);
    let sum = checksum(&out);
    out.extend_from_slice(&sum);
    Ok(out)
}

/// Decrypts a key file written by [`seal_key`].
#[cfg(feature = "identity")]
pub fn open_key(file: &[u8], expected: KeyKind, passphrase: &str) -> Result<crate::SecretIdentity, KeyFileError> {
    let bytes = open_secret(file, expected, passphrase)?;
    crate::SecretIdentity::from_secret_bytes(&bytes).map_err(|_| KeyFileError::InvalidKey)
}

/// Decrypts a key file's 32 secret bytes (whether they are a valid key is the caller's check).
pub fn open_secret(file: &[u8], expected: KeyKind, passphrase: &str) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    if file.len() <= MAGIC.len() || file.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err(KeyFileError::NotAKeyFile);
    }
    let version = file.get(MAGIC.len()).copied().unwrap_or_default();
    if version != VERSION {
        return Err(KeyFileError::UnsupportedVersion(version));
    }
    if file.len() != KEY_FILE_LEN {
        return Err(KeyFileError::NotAKeyFile);
    }
    let (body, sum) = file.split_at(KEY_FILE_LEN - CHECKSUM_LEN);
    if checksum(body) != sum {
        return Err(KeyFileError::Tampered);
    }
    let (header, ct) = body.split_at(HEADER_LEN);
    let found = match header.get(6) {
        Some(1) => KeyKind::User,
        Some(2) => KeyKind::Vault,
        _ => return Err(KeyFileError::Tampered),
    };
    if found != expected {
        return Err(KeyFileError::WrongKind { expected, found });
    }
    let u32_at = |i: usize| -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(header.get(i..i.saturating_add(4)).unwrap_or(&[0; 4]));
        u32::from_be_bytes(b)
    };
    let params = KdfParams { memory_kib: u32_at(7), iterations: u32_at(11), lanes: u32_at(15) };
    let salt = header.get(19..35).ok_or(KeyFileError::NotAKeyFile)?;
    let nonce = header.get(35..59).ok_or(KeyFileError::NotAKeyFile)?;
    let wrapping = derive(passphrase, salt, params)?;
    let cipher = XChaCha20Poly1305::new(wrapping.as_ref().into());
    let secret = Zeroizing::new(
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: header })
            .map_err(|_| KeyFileError::WrongPassphrase)?,
    );
    let bytes: [u8; 32] = secret.as_slice().try_into().map_err(|_| KeyFileError::InvalidKey)?;
    Ok(Zeroizing::new(bytes))
}

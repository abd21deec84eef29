//! Identifiers, each a newtype that can only hold a valid value.
//!
//! A [`Guid`] names a user. It is derived from the user's identity public key (an x-only secp256k1
//! key, as Nostr uses), so it is self-certifying: no server can mint a guid for a key it does not
//! hold. The format is the lowercase hex of the first 20 bytes of
//! `SHA-256("callvault-guid-v1" || public_key)`: 40 characters of `[0-9a-f]`, which can never contain
//! a NATS token separator or wildcard, so a guid is always exactly one subject token.
//!
//! [`CallId`], [`MessageId`] and [`KeyId`] are lowercase hyphenated UUIDs.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string has the wrong number of characters.
    #[error("expected {expected} characters, found {found}")]
    Length {
        /// Required length.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// A character outside the allowed alphabet (also catches `.`, `*`, `>` and spaces).
    #[error("character {found:?} at position {position} is not allowed")]
    Character {
        /// Offending character.
        found: char,
        /// Its index in characters.
        position: usize,
    },
}

const GUID_LEN: usize = 40;
const GUID_DOMAIN: &[u8] = b"callvault-guid-v1";
const UUID_LEN: usize = 36;
const UUID_HYPHENS: [usize; 4] = [8, 13, 18, 23];

fn check_guid(s: &str) -> Result<(), IdError> {
    check_chars(s, GUID_LEN, |_, c| matches!(c, '0'..='9' | 'a'..='f'))
}

fn check_uuid(s: &str) -> Result<(), IdError> {
    check_chars(
        s,
        UUID_LEN,
        |i, c| {
            if UUID_HYPHENS.contains(&i) { c == '-' } else { matches!(c, '0'..='9' | 'a'..='f') }
        },
    )
}

fn check_chars(s: &str, len: usize, allowed: impl Fn(usize, char) -> bool) -> Result<(), IdError> {
    // Every allowed character is ASCII, so a valid id has `len` bytes; the char-wise pass below
    // runs only to describe a failure.
    if s.len() == len && s.bytes().enumerate().all(|(i, b)| allowed(i, char::from(b))) {
        return Ok(());
    }
    if let Some((position, found)) = s.chars().enumerate().find(|&(i, c)| !allowed(i, c)) {
        return Err(IdError::Character { found, position });
    }
    Err(IdError::Length { expected: len, found: s.chars().count() })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the lowercase hex of `bytes` (without `core::fmt`, which is slow under a WASM
/// interpreter, where handlers make ids).
fn push_hex(out: &mut String, bytes: &[u8]) {
    let digit = |n: u8| char::from(HEX.get(usize::from(n & 0x0f)).copied().unwrap_or(b'0'));
    for b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(*b));
    }
}

/// Lowercase hex of `bytes` (ids, nonces, digests).
pub fn lower_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    push_hex(&mut out, bytes);
    out
}

/// The bytes of validated lowercase hex (`[0-9a-f]` only; hyphens skipped).
fn hex_bytes<const N: usize>(s: &str) -> [u8; N] {
    let nibble = |c: u8| if c.is_ascii_digit() { c.wrapping_sub(b'0') } else { c.wrapping_sub(b'a').wrapping_add(10) };
    let mut out = [0u8; N];
    let mut digits = s.bytes().filter(|&c| c != b'-').map(nibble);
    for o in &mut out {
        let (hi, lo) = (digits.next().unwrap_or(0), digits.next().unwrap_or(0));
        *o = (hi << 4) | (lo & 0x0f);
    }
    out
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                $check(s)?;
                Ok(Self(s.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A user's id, derived from the identity public key (see the module docs).
    ///
    /// `Debug` prints only a short prefix, so a guid does not end up whole in logs by accident.
    Guid,
    check_guid
);

impl Guid {
    /// Derives the guid of an x-only secp256k1 public key.
    pub fn from_public_key(x_only: &[u8; 32]) -> Self {
        let digest = Sha256::new().chain_update(GUID_DOMAIN).chain_update(x_only).finalize();
        Self(lower_hex(digest.get(..GUID_LEN / 2).unwrap_or_default()))
    }

    /// The 20 bytes the guid spells.
    pub fn to_bytes(&self) -> [u8; 20] {
        hex_bytes(&self.0)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({})", crate::redact::Redacted(self))
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        string_id!($(#[$doc])* $name, check_uuid);

        impl $name {
            /// Builds a version-4-shaped UUID from 16 bytes, e.g. from a random source.
            pub fn from_bytes(mut b: [u8; 16]) -> Self {
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                let mut s = String::with_capacity(UUID_LEN);
                for (i, group) in [&b[0..4], &b[4..6], &b[6..8], &b[8..10], &b[10..16]].into_iter().enumerate() {
                    if i > 0 {
                        s.push('-');
                    }
                    push_hex(&mut s, group);
                }
                Self(s)
            }

            /// The 16 bytes the UUID spells.
            pub fn to_bytes(&self) -> [u8; 16] {
                hex_bytes(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

uuid_id!(
    /// Identifies one call in both participants' vaults (the `calls` bucket key).
    CallId
);
uuid_id!(
    /// Identifies one message; receivers drop a message_id they have already processed.
    MessageId
);
impl MessageId {
    /// A message id derived from what caused it (a family module has no randomness, and handling
    /// the same event again must make the same ids): SHA-256 of `domain`, `purpose`, the vault's
    /// user, the cause's bytes and `n`, shaped as a UUID.
    pub fn derived(domain: &[u8], purpose: u8, local: &Guid, of: &[u8], n: u64) -> Self {
        let digest = Sha256::new()
            .chain_update(domain)
            .chain_update([purpose])
            .chain_update(local.to_bytes())
            .chain_update(of)
            .chain_update(n.to_be_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        for (b, d) in bytes.iter_mut().zip(digest.iter()) {
            *b = *d;
        }
        Self::from_bytes(bytes)
    }
}

uuid_id!(
    /// Identifies an E2EE public key offered for a call.
    KeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_derived_from_the_public_key() {
        let a = Guid::from_public_key(&[7; 32]);
        let b = Guid::from_public_key(&[8; 32]);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 40);
        assert_eq!(Guid::parse(a.as_str()), Ok(a.clone()));
        // Fixed vector: sha256("callvault-guid-v1" || [7; 32]), first 20 bytes.
        assert_eq!(a, Guid::from_public_key(&[7; 32]));
    }

    #[test]
    fn guids_that_could_inject_subject_tokens_are_refused() {
        let good = "0123456789abcdef0123456789abcdef01234567";
        assert!(Guid::parse(good).is_ok());
        for bad in [
            "",
            "0123456789abcdef0123456789abcdef0123456.",
            "0123456789abcdef0123456789abcdef0123456*",
            "0123456789abcdef0123456789abcdef0123456>",
            "0123456789abcdef0123456789abcdef0123456 ",
            "0123456789ABCDEF0123456789abcdef01234567",
            "0123456789abcdef0123456789abcdef012345678",
            "a.b",
        ] {
            assert!(Guid::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn uuids_are_canonical_lowercase() {
        let id = CallId::from_bytes([0xab; 16]);
        assert_eq!(id.as_str(), "abababab-abab-4bab-abab-abababababab");
        assert!(CallId::parse(id.as_str()).is_ok());
        assert!(CallId::parse("ABABABAB-ABAB-4BAB-ABAB-ABABABABABAB").is_err());
        assert!(CallId::parse("abababababab-4bab-abab-abababababab").is_err());
        assert!(MessageId::parse("abababab-abab-4bab-abab-abababababa").is_err());
    }

    #[test]
    fn ids_give_back_their_bytes() {
        for seed in [0u8, 0x5a, 0xff] {
            let bytes: [u8; 16] =
                std::array::from_fn(|i| seed.wrapping_add(u8::try_from(i).unwrap_or(0).wrapping_mul(37)));
            let id = MessageId::from_bytes(bytes);
            let mut versioned = bytes;
            versioned[6] = (versioned[6] & 0x0f) | 0x40;
            versioned[8] = (versioned[8] & 0x3f) | 0x80;
            assert_eq!(id.to_bytes(), versioned);
            assert_eq!(MessageId::parse(id.as_str()), Ok(id));
        }
        let g = Guid::from_public_key(&[9; 32]);
        assert_eq!(lower_hex(&g.to_bytes()), g.as_str());
    }

    #[test]
    fn id_errors_name_the_character_or_the_length() {
        assert_eq!(
            Guid::parse("0123456789abcdef0123456789abcdef0123456é"),
            Err(IdError::Character { found: 'é', position: 39 })
        );
        assert_eq!(CallId::parse("abc"), Err(IdError::Length { expected: 36, found: 3 }));
    }

    #[test]
    fn guid_debug_does_not_print_the_whole_guid() {
        let g = Guid::from_public_key(&[1; 32]);
        let dbg = format!("{g:?}");
        assert!(!dbg.contains(g.as_str()), "{dbg}");
    }
}

//! The messaging module, v1: 1:1 messages between connections, sealed app to app.
//!
//! | direction | subject | types |
//! | --- | --- | --- |
//! | app -> vault | `OwnerSpace.{guid}.forVault.message.<kind>` | `send`, `read`, `delete`, `history`, `retention` |
//! | vault -> vault | `MessageSpace.{guid}.message.<kind>`, gift-wrapped | `deliver`, `delivered`, `read`, `deleted` |
//! | vault -> app | `OwnerSpace.{guid}.forApp.message.<kind>` | `sent`, `received`, `delivered`, `read`, `deleted`, `history`, `retention`, `error` |
//!
//! A conversation is named by the peer's guid (`conversation`): on each side, the other user. A
//! message's body is a [`SealedBody`]: NIP-44 v2 from the sender's identity key to the peer's,
//! which the sender's other devices open as well (the NIP-44 conversation key is the same from
//! both ends), so neither vault can read it. The sending vault numbers its messages per
//! conversation (`seq`, from 1) and stamps `sent_at`; both name the message's item key
//! (`<sent_at ms, 13 digits>-<o|i>-<seq>`, `o` for one's own), which orders a conversation.
//! `deliver`, `delivered`, `read` and `deleted` are delivered at least once (the kernel's outbox),
//! and a repeat is a duplicate by its `seq`.

mod messages;
mod record;

pub use messages::*;
pub use record::{ConversationState, MAX_SEQ_GAP, MessageRecord, RECENT, RecentId, RecentSend, SeqSet};

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fields::{FieldError, check_len, is_padded_base64, schema_integer};

/// Zero-sized `type` tags: each serializes as its wire name and refuses any other value.
pub mod tags {
    wire_tags! {
        /// `"message.send"`
        Send = "message.send",
        /// `"message.sent"`
        Sent = "message.sent",
        /// `"message.deliver"`
        Deliver = "message.deliver",
        /// `"message.received"`
        Received = "message.received",
        /// `"message.delivered"`
        Delivered = "message.delivered",
        /// `"message.read"`
        Read = "message.read",
        /// `"message.delete"`
        Delete = "message.delete",
        /// `"message.deleted"`
        Deleted = "message.deleted",
        /// `"message.history"`
        History = "message.history",
        /// `"message.retention"`
        Retention = "message.retention",
        /// `"message.error"`
        Error = "message.error",
    }
}

/// The largest text a message carries: 16 384 bytes of UTF-8. Sealed, it is at most
/// [`SealedBody::MAX_CHARS`] characters, so a `message.deliver` carrying it fits one gift wrap
/// and one app frame. A larger text is refused by the app before sealing, and a larger body by
/// the vault, with `too_large`.
pub const MAX_TEXT_BYTES: usize = 16_384;

/// The longest a message's retention may be, in days: the `messages` bucket's TTL (90 days).
pub const MAX_RETENTION_DAYS: u16 = 90;

/// The most messages one `message.history` page holds.
pub const MAX_PAGE: u32 = 50;

/// A message's body, sealed app to app (standard base64 of a NIP-44 v2 payload); opaque to
/// vaults. `Debug` prints only its length.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SealedBody(String);

impl SealedBody {
    /// Fewest characters (a NIP-44 payload of the smallest padded plaintext).
    pub const MIN_CHARS: usize = 4;
    /// Most characters: a sealed [`MAX_TEXT_BYTES`] text (its envelope pads to 24 576 bytes; with
    /// NIP-44's 67 bytes of version, nonce, length and MAC, 24 643 bytes in base64).
    pub const MAX_CHARS: usize = 32_860;

    /// Validates and wraps.
    pub fn new(s: impl Into<String>) -> Result<Self, FieldError> {
        let s = s.into();
        if !is_padded_base64(&s) {
            check_len(&s, Self::MIN_CHARS, Self::MAX_CHARS)?;
            return Err(FieldError::Pattern { pattern: "standard padded base64" });
        }
        // Base64 is ASCII: its length in characters is its length in bytes (one pass, not two).
        if s.len() < Self::MIN_CHARS {
            Err(FieldError::TooShort { min: Self::MIN_CHARS })
        } else if s.len() > Self::MAX_CHARS {
            Err(FieldError::TooLong { max: Self::MAX_CHARS })
        } else {
            Ok(Self(s))
        }
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SealedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedBody({} chars)", self.0.len())
    }
}

impl Serialize for SealedBody {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SealedBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A message's number in its sender's conversation, from 1 (at most 2^53 - 1, exact in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Seq(u64);

impl Seq {
    /// The largest: 2^53 - 1.
    pub const MAX: u64 = (1 << 53) - 1;

    /// Validates.
    pub fn new(n: u64) -> Result<Self, FieldError> {
        if (1..=Self::MAX).contains(&n) { Ok(Self(n)) } else { Err(FieldError::Range { min: 1, max: Self::MAX }) }
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        schema_integer(d, 1, Self::MAX).map(Self)
    }
}

/// How many days a conversation's messages are kept, 1 to [`MAX_RETENTION_DAYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RetentionDays(u16);

impl RetentionDays {
    /// Validates.
    pub fn new(days: u16) -> Result<Self, FieldError> {
        if (1..=MAX_RETENTION_DAYS).contains(&days) {
            Ok(Self(days))
        } else {
            Err(FieldError::Range { min: 1, max: u64::from(MAX_RETENTION_DAYS) })
        }
    }

    /// The days.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl<'de> Deserialize<'de> for RetentionDays {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = schema_integer(d, 1, u64::from(MAX_RETENTION_DAYS))?;
        Self::new(u16::try_from(n).unwrap_or(u16::MAX)).map_err(serde::de::Error::custom)
    }
}

/// How many messages a history page may hold, 1 to [`MAX_PAGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PageLimit(u32);

impl PageLimit {
    /// The limit.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for PageLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = schema_integer(d, 1, u64::from(MAX_PAGE))?;
        Ok(Self(u32::try_from(n).unwrap_or(MAX_PAGE)))
    }
}

/// Whose a message is, in its item key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// One's own (`o`).
    Own,
    /// The peer's (`i`).
    Peer,
}

/// A message's key within its conversation: `<sent_at ms, 13 digits>-<o|i>-<seq>`. Keys sort
/// in the conversation's order.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey(String);

impl ItemKey {
    /// The key of message `seq` sent at `sent_at_ms` (ms since the Unix epoch, before the year
    /// 2286), by `side`.
    pub fn of(sent_at_ms: u64, side: Side, seq: Seq) -> Result<Self, FieldError> {
        if sent_at_ms > 9_999_999_999_999 {
            return Err(FieldError::Range { min: 0, max: 9_999_999_999_999 });
        }
        let s = match side {
            Side::Own => 'o',
            Side::Peer => 'i',
        };
        Ok(Self(format!("{sent_at_ms:013}-{s}-{}", seq.get())))
    }

    /// Validates `^[0-9]{13}-[io]-[1-9][0-9]{0,15}$`.
    pub fn new(s: impl Into<String>) -> Result<Self, FieldError> {
        let s = s.into();
        Self::split(&s).ok_or(FieldError::Pattern { pattern: "^[0-9]{13}-[io]-[1-9][0-9]{0,15}$" })?;
        Ok(Self(s))
    }

    fn split(s: &str) -> Option<(u64, Side, u64)> {
        let mut parts = s.splitn(3, '-');
        let (ms, side, seq) = (parts.next()?, parts.next()?, parts.next()?);
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if ms.len() != 13 || !digits(ms) || !digits(seq) || seq.len() > 16 || seq.starts_with('0') {
            return None;
        }
        let side = match side {
            "o" => Side::Own,
            "i" => Side::Peer,
            _ => return None,
        };
        Some((ms.parse().ok()?, side, seq.parse().ok()?))
    }

    /// When the message was sent, ms since the Unix epoch.
    pub fn sent_at_ms(&self) -> u64 {
        Self::split(&self.0).map_or(0, |(ms, _, _)| ms)
    }

    /// Whose it is.
    pub fn side(&self) -> Side {
        Self::split(&self.0).map_or(Side::Own, |(_, side, _)| side)
    }

    /// Its number in its sender's conversation.
    pub fn seq(&self) -> u64 {
        Self::split(&self.0).map_or(0, |(_, _, seq)| seq)
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemKey({})", self.0)
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ItemKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ItemKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

wire_enum!(
    /// Where a message is, as its conversation's state shows it.
    MessageStatus {
        /// Own: stored by one's vault, on its way.
        Sent = "sent",
        /// Own: the peer's vault stored it.
        Delivered = "delivered",
        /// Own: the peer's app showed it. The peer's: one of one's apps showed it.
        Read = "read",
        /// The peer's: stored by one's vault, not shown yet.
        Received = "received",
    }
);

wire_enum!(
    /// Who read a conversation's messages, in `message.read`.
    Reader {
        /// The peer read one's messages.
        Peer = "peer",
        /// One of one's own apps showed the peer's messages.
        Own = "own",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_keys_order_and_parse() {
        let seq = |n| Seq::new(n).unwrap();
        let a = ItemKey::of(1_764_000_000_000, Side::Own, seq(9)).unwrap();
        let b = ItemKey::of(1_764_000_000_001, Side::Peer, seq(10)).unwrap();
        assert!(a < b);
        assert_eq!(a.as_str(), "1764000000000-o-9");
        assert_eq!((b.sent_at_ms(), b.side(), b.seq()), (1_764_000_000_001, Side::Peer, 10));
        assert_eq!(ItemKey::new(a.as_str()).unwrap(), a);
        for bad in [
            "",
            "1764000000000-o-0",
            "1764000000000-x-1",
            "176400000000-o-1",
            "1764000000000-o-01",
            "1764000000000-o-1-2",
            "1764000000000-o-12345678901234567",
        ] {
            assert!(ItemKey::new(bad).is_err(), "{bad}");
        }
        assert!(Seq::new(0).is_err());
        assert!(serde_json::from_str::<Seq>("3.0").is_ok());
        assert!(serde_json::from_str::<Seq>("0").is_err());
        assert!(serde_json::from_str::<RetentionDays>("91").is_err());
        assert!(SealedBody::new("A".repeat(SealedBody::MAX_CHARS + 4)).is_err());
    }
}

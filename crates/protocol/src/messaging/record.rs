//! What the message family stores: one [`MessageRecord`] per message (`messages` bucket, key
//! `<conversation>.<item>`) and one [`ConversationState`] per conversation (the kernel's entity
//! state, `handler-state` key `message.<conversation>`).

use serde::{Deserialize, Serialize};

use super::{RetentionDays, SealedBody, Seq};
use crate::fields::{Direction, Extensions, at_most, present, uint};

/// The largest seq (2^53 - 1, exact in JSON).
const SEQ: u64 = (1 << 53) - 1;
/// The largest time in ms a record key can hold (13 digits).
const MS: u64 = 9_999_999_999_999;
use crate::{MessageId, Timestamp};

/// One message as one vault keeps it: sealed, so the vault cannot read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRecord {
    /// The message_id its sender's app gave it.
    pub message_id: MessageId,
    /// Own or the peer's.
    pub direction: Direction,
    /// Its number in its sender's conversation.
    pub seq: Seq,
    /// When its sender's vault took it.
    pub sent_at: Timestamp,
    /// The text, sealed app to app.
    pub body: SealedBody,
    /// Extension point for additive v1 fields.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub ext: Option<Extensions>,
}

impl crate::registry::Schema for MessageRecord {
    const ID: &'static str = "messaging/v1/message-record";
}

/// The most numbers a [`SeqSet`] keeps above its contiguous run: a peer's messages may arrive out
/// of order by at most this many (the sender's outbox holds at most 10 000 unacknowledged).
pub const MAX_SEQ_GAP: u64 = 10_000;

/// A set of message numbers: all up to `through`, and those in `above`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqSet {
    /// Every number from 1 to this is in the set.
    #[serde(deserialize_with = "uint::<_, SEQ>")]
    pub through: u64,
    /// Numbers past `through + 1` in the set, ascending (at most [`MAX_SEQ_GAP`]).
    #[serde(default, deserialize_with = "seqs", skip_serializing_if = "Vec::is_empty")]
    pub above: Vec<u64>,
}

fn seqs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    let v: Vec<super::Seq> = at_most::<_, _, 10_000>(d)?;
    Ok(v.into_iter().map(super::Seq::get).collect())
}

impl SeqSet {
    /// Whether `n` is in the set.
    pub fn contains(&self, n: u64) -> bool {
        n <= self.through || self.above.binary_search(&n).is_ok()
    }

    /// Whether `n` may be added (not past the gap bound).
    pub fn within_reach(&self, n: u64) -> bool {
        n <= self.through.saturating_add(MAX_SEQ_GAP)
    }

    /// Adds `n`; false if it was in the set already or is out of reach.
    pub fn insert(&mut self, n: u64) -> bool {
        if n == 0 || self.contains(n) || !self.within_reach(n) {
            return false;
        }
        if let Err(at) = self.above.binary_search(&n) {
            self.above.insert(at, n);
        }
        while self.above.first() == Some(&self.through.saturating_add(1)) {
            self.above.remove(0);
            self.through = self.through.saturating_add(1);
        }
        true
    }
}

/// One conversation as its vault's message family keeps it: numbering, receipts, settings. No
/// text: that is in the sealed records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationState {
    /// The last number given to one's own message.
    #[serde(deserialize_with = "uint::<_, SEQ>")]
    pub last_seq: u64,
    /// When one's last message was taken, ms since the Unix epoch (`sent_at` only grows).
    #[serde(deserialize_with = "uint::<_, MS>")]
    pub last_sent_ms: u64,
    /// The peer's messages stored (or deleted for both before they came).
    #[serde(deserialize_with = "crate::fields::object")]
    pub received: SeqSet,
    /// One's messages the peer's vault stored.
    #[serde(deserialize_with = "crate::fields::object")]
    pub delivered: SeqSet,
    /// One's messages the peer read, up to this number.
    #[serde(deserialize_with = "uint::<_, SEQ>")]
    pub read_by_peer: u64,
    /// The peer's messages one's apps showed, up to this number.
    #[serde(deserialize_with = "uint::<_, SEQ>")]
    pub read_by_me: u64,
    /// One's last messages, newest last, at most [`RECENT`]: a repeat of one (an app sending
    /// again after a lost answer) is a duplicate, answered as the first was.
    #[serde(default, deserialize_with = "at_most::<_, _, RECENT>", skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<RecentSend>,
    /// Keep messages this many days (else the bucket's 90).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<RetentionDays>,
    /// When the oldest kept message was sent, ms since the Unix epoch (for retention's timer).
    #[serde(default, deserialize_with = "oldest", skip_serializing_if = "Option::is_none")]
    pub oldest_ms: Option<u64>,
}

/// One of one's recent messages, to answer a repeat: stored as `[id, seq, sent_ms]`, `id` a
/// [`RecentId`] of its message_id (state version 2; version 1 stored `{message_id, seq,
/// sent_ms}`, which is still read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentSend {
    /// Which message_id it was.
    pub id: RecentId,
    /// The number it was given.
    pub seq: super::Seq,
    /// When it was taken, ms since the Unix epoch.
    pub sent_ms: u64,
}

/// What a conversation keeps of a message_id to know a repeat of it: 53 bits of its SHA-256
/// (an integer exact in JSON; two of one's 16 recent ids alike by chance: about 2^-46).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentId(u64);

impl RecentId {
    /// The largest: 2^53 - 1.
    pub const MAX: u64 = (1 << 53) - 1;

    /// Of a message_id.
    pub fn of(id: &MessageId) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new().chain_update(b"cvrecent1").chain_update(id.to_bytes()).finalize();
        let mut first = [0u8; 8];
        for (b, d) in first.iter_mut().zip(digest.iter()) {
            *b = *d;
        }
        Self(u64::from_be_bytes(first) & Self::MAX)
    }

    /// The stored number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl Serialize for RecentSend {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.id.0, &self.seq, self.sent_ms).serialize(s)
    }
}

/// Version 1's form of a recent send.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecentSendV1 {
    message_id: MessageId,
    seq: super::Seq,
    #[serde(deserialize_with = "uint::<_, MS>")]
    sent_ms: u64,
}

impl<'de> Deserialize<'de> for RecentSend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RecentSend;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[id, seq, sent_ms]")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<RecentSend, A::Error> {
                use serde::de::Error;
                let id: u64 = a.next_element()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let seq: super::Seq = a.next_element()?.ok_or_else(|| A::Error::invalid_length(1, &self))?;
                let sent_ms: u64 = a.next_element()?.ok_or_else(|| A::Error::invalid_length(2, &self))?;
                if a.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(4, &self));
                }
                if id > RecentId::MAX || sent_ms > MS {
                    return Err(A::Error::custom("a recent send's id or time is out of range"));
                }
                Ok(RecentSend { id: RecentId(id), seq, sent_ms })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<RecentSend, A::Error> {
                let v1 = RecentSendV1::deserialize(serde::de::value::MapAccessDeserializer::new(a))?;
                Ok(RecentSend { id: RecentId::of(&v1.message_id), seq: v1.seq, sent_ms: v1.sent_ms })
            }
        }
        d.deserialize_any(V)
    }
}

/// How many of one's recent message_ids a conversation keeps to drop repeats.
pub const RECENT: usize = 16;

fn oldest<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    uint::<_, MS>(d).map(Some)
}

impl crate::registry::Schema for ConversationState {
    const ID: &'static str = "messaging/v1/conversation-state";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recent_send_is_stored_short_and_version_1_still_reads() {
        let id = MessageId::parse("0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3").unwrap();
        let mut state = ConversationState::default();
        state.recent.push(RecentSend { id: RecentId::of(&id), seq: Seq::new(7).unwrap(), sent_ms: 1_800_000_000_000 });
        let text = serde_json::to_string(&state).unwrap();
        let stored = format!("[{},7,1800000000000]", RecentId::of(&id).get());
        assert!(text.contains(&stored), "{text}");
        assert!(RecentId::of(&id).get() <= RecentId::MAX);
        assert_ne!(RecentId::of(&id), RecentId::of(&MessageId::from_bytes([0; 16])));
        let back: ConversationState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
        // Version 1's object form reads as the same recent send.
        let v1 = text.replace(
            &stored,
            r#"{"message_id":"0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3","seq":7,"sent_ms":1800000000000}"#,
        );
        assert_eq!(serde_json::from_str::<ConversationState>(&v1).unwrap(), state);
        // Out of range, too short, too long, or an unknown field: refused.
        for bad in [
            format!("[{},7,1800000000000]", RecentId::MAX + 1),
            format!("[{},7,10000000000000]", RecentId::of(&id).get()),
            format!("[{},7]", RecentId::of(&id).get()),
            format!("[{},7,1,2]", RecentId::of(&id).get()),
            r#"{"message_id":"0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3","seq":7,"sent_ms":1,"x":1}"#.to_owned(),
        ] {
            assert!(serde_json::from_str::<ConversationState>(&text.replace(&stored, &bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_seq_set_closes_its_gaps() {
        let mut s = SeqSet::default();
        assert!(s.insert(2));
        assert!(s.insert(4));
        assert!(!s.insert(2));
        assert_eq!((s.through, s.above.clone()), (0, vec![2, 4]));
        assert!(s.insert(1));
        assert_eq!((s.through, s.above.clone()), (2, vec![4]));
        assert!(s.insert(3));
        assert_eq!((s.through, s.above.clone()), (4, vec![]));
        assert!(!s.insert(4 + MAX_SEQ_GAP + 1), "past the gap bound");
        assert!(s.insert(4 + MAX_SEQ_GAP));
        assert!(!s.insert(0));
    }
}

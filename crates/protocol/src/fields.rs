//! Field types shared by the calling schemas (`common.json#/$defs`): enums, bounded strings,
//! the extension point, and the peer profile. Each mirrors its schema definition exactly.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

wire_enum!(
    /// Audio-only or video call.
    CallType { /** Voice only. */ Audio = "audio", /** Voice and video. */ Video = "video" }
);
wire_enum!(
    /// Which side of the call a vault is on.
    Direction { /** The peer called us. */ Incoming = "incoming", /** We called the peer. */ Outgoing = "outgoing" }
);
wire_enum!(
    /// `call-state.json`: the status of a [`crate::calling::CallRecord`].
    CallStatus {
        /// Outgoing call stored and sent; the peer's vault has not confirmed ringing yet.
        Initiating = "initiating",
        /// The callee's app is ringing (both sides use this status).
        Ringing = "ringing",
        /// Answered; media may flow.
        Active = "active",
        /// Was answered, then hung up. Only this status carries a duration.
        Ended = "ended",
        /// Never answered: timed out or cancelled by the caller.
        Missed = "missed",
        /// Refused by the callee: declined, busy, or superseded by glare.
        Rejected = "rejected",
    }
);

impl CallStatus {
    /// Ended, missed and rejected never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Ended | Self::Missed | Self::Rejected)
    }
}

wire_enum!(
    /// Why a call reached its terminal state.
    EndReason {
        /// The caller hung up or cancelled.
        Caller = "caller",
        /// The callee hung up.
        Callee = "callee",
        /// Nobody answered within the ring timeout.
        Timeout = "timeout",
        /// A failure ended the call.
        Error = "error",
        /// The callee declined.
        Rejected = "rejected",
        /// The callee was in another call.
        Busy = "busy",
        /// Both called each other at once and the other call survived.
        Glare = "glare",
    }
);
wire_enum!(
    /// The reason carried by `call.end` between vaults (the seed's `CallEndedSignal.reason`).
    HangupReason {
        /// Sent by the caller's vault.
        Caller = "caller",
        /// Sent by the callee's vault.
        Callee = "callee",
        /// The sender's ring timeout fired.
        Timeout = "timeout",
        /// The sender failed.
        Error = "error",
    }
);

impl From<HangupReason> for EndReason {
    fn from(r: HangupReason) -> Self {
        match r {
            HangupReason::Caller => Self::Caller,
            HangupReason::Callee => Self::Callee,
            HangupReason::Timeout => Self::Timeout,
            HangupReason::Error => Self::Error,
        }
    }
}

wire_enum!(
    /// Why a callee refused a call.
    RejectReason {
        /// The user declined.
        Declined = "declined",
        /// The user is in another call.
        Busy = "busy",
        /// Both called each other at once; the call with the lower call_id survives.
        Glare = "glare",
    }
);

impl From<RejectReason> for EndReason {
    fn from(r: RejectReason) -> Self {
        match r {
            RejectReason::Declined => Self::Rejected,
            RejectReason::Busy => Self::Busy,
            RejectReason::Glare => Self::Glare,
        }
    }
}

wire_enum!(
    /// What a sealed `call.signal` payload carries (the vault sees only this, never the payload).
    SignalType {
        /// SDP offer.
        Offer = "offer",
        /// SDP answer.
        Answer = "answer",
        /// An ICE candidate.
        Ice = "ice",
        /// E2EE key-exchange material.
        KeyExchange = "key_exchange",
    }
);
wire_enum!(
    /// `call.ended` notification status: answered then over, or never answered.
    EndedStatus { /** Was answered. */ Ended = "ended", /** Never answered. */ Missed = "missed" }
);
wire_enum!(
    /// Machine-readable reason in a `call.error` notification.
    ErrorCode {
        /// The request did not parse.
        InvalidMessage = "invalid_message",
        /// The peer is not in the connections bucket.
        NotConnected = "not_connected",
        /// No call with that call_id.
        UnknownCall = "unknown_call",
        /// The call is not in a state that allows the request.
        InvalidState = "invalid_state",
        /// A call with that call_id already exists.
        DuplicateCall = "duplicate_call",
        /// Another call is active; end it first.
        AlreadyInCall = "already_in_call",
        /// An unanswered call to the same peer is already in progress.
        CallInProgress = "call_in_progress",
        /// The peer's call to us survives glare; accept it instead.
        Glare = "glare",
        /// The peer is busy.
        Busy = "busy",
        /// The message is too old (or too far in the future) to act on.
        Stale = "stale",
        /// Too many signals arrived before the call was accepted.
        SignalBufferFull = "signal_buffer_full",
        /// A user cannot call themself.
        SelfCall = "self_call",
        /// The vault failed.
        Internal = "internal",
        /// Larger than the protocol allows (a message body past the largest text).
        TooLarge = "too_large",
    }
);

/// Why a bounded field value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Fewer characters than the minimum.
    #[error("shorter than {min} characters")]
    TooShort {
        /// Minimum length in characters.
        min: usize,
    },
    /// More characters than the maximum.
    #[error("longer than {max} characters")]
    TooLong {
        /// Maximum length in characters.
        max: usize,
    },
    /// Characters or shape the schema's pattern refuses.
    #[error("does not match the pattern {pattern}")]
    Pattern {
        /// The schema pattern, for the error message.
        pattern: &'static str,
    },
    /// A number outside the schema's range, or not an integer.
    #[error("not an integer between {min} and {max}")]
    Range {
        /// Minimum.
        min: u64,
        /// Maximum.
        max: u64,
    },
    /// Too many properties in an object.
    #[error("more than {max} properties")]
    TooManyProperties {
        /// Maximum.
        max: usize,
    },
}

pub(crate) fn check_len(s: &str, min: usize, max: usize) -> Result<(), FieldError> {
    let n = s.chars().count();
    if n < min {
        Err(FieldError::TooShort { min })
    } else if n > max {
        Err(FieldError::TooLong { max })
    } else {
        Ok(())
    }
}

macro_rules! bounded_str {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $pattern:expr, $ok:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Minimum length in characters.
            pub const MIN_CHARS: usize = $min;
            /// Maximum length in characters.
            pub const MAX_CHARS: usize = $max;

            /// Validates and wraps.
            pub fn new(s: impl Into<String>) -> Result<Self, FieldError> {
                let s = s.into();
                check_len(&s, $min, $max)?;
                let ok: fn(&str) -> bool = $ok;
                if !ok(&s) {
                    return Err(FieldError::Pattern { pattern: $pattern });
                }
                Ok(Self(s))
            }

            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// `^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$`
pub(crate) fn is_padded_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let alpha = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    let body_len = b.len().saturating_sub(4);
    let (body, last) = b.split_at(body_len);
    body.iter().all(alpha)
        && match last {
            [a, b2, b'=', b'='] => alpha(a) && alpha(b2),
            [a, b2, c, b'='] => alpha(a) && alpha(b2) && alpha(c),
            other => other.iter().all(alpha),
        }
}

bounded_str!(
    /// Standard base64 of an ECDH public key offered for a call.
    PublicKey,
    4,
    256,
    "standard padded base64",
    is_padded_base64
);
bounded_str!(
    /// A payload sealed app-to-app; opaque to vaults.
    ///
    /// `Debug` prints only its length.
    SignalPayload,
    1,
    65_536,
    "^[A-Za-z0-9+/=_-]+$",
    |s| s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-'))
);
bounded_str!(
    /// A human-readable name: no Unicode control (Cc) or format (Cf) characters, no line or
    /// paragraph separators, and not blank. So a name cannot move a terminal's cursor (C0/C1
    /// controls such as U+009B), reverse the text around it (bidi overrides such as U+202E), hide
    /// characters (zero-width U+200B, U+2060, U+FEFF) or show as nothing. Three kinds of format
    /// characters stay, because real names and emoji need them: the zero-width non-joiner and
    /// joiner (U+200C, U+200D: Persian and Indic spelling, emoji sequences) and the tag characters
    /// (U+E0020–U+E007F: the flags of England, Scotland and Wales).
    DisplayName,
    1,
    100,
    "no control or format characters, not blank",
    |s| !s.chars().any(is_control_or_format) && s.chars().any(|c| !is_ecma_whitespace(c))
);

/// Unicode general categories Cc and Cf (Unicode 16.0) but U+200C, U+200D and the tag characters
/// U+E0020–U+E007F, and the separators Zl and Zp: what a display name may not hold. The schema's
/// `display_name` pattern lists the same ranges.
pub fn is_control_or_format(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'
            | '\u{200e}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
    )
}

impl DisplayName {
    /// A name read back from storage, written under the looser rule of an earlier callvault:
    /// characters the rule now refuses are dropped, and a name left blank or empty becomes
    /// "unnamed". Never fails, so an old account or connection still loads.
    pub fn from_stored(stored: &str) -> Self {
        let kept: String = stored.chars().filter(|c| !is_control_or_format(*c)).take(Self::MAX_CHARS).collect();
        Self::new(kept).unwrap_or_else(|_| Self("unnamed".to_owned()))
    }
}

/// Deserializes a stored display name with [`DisplayName::from_stored`] (for records the server
/// wrote itself; messages from outside are held to the strict rule).
pub fn stored_display_name<'de, D: Deserializer<'de>>(d: D) -> Result<DisplayName, D::Error> {
    Ok(DisplayName::from_stored(&String::deserialize(d)?))
}
bounded_str!(
    /// An `https://` URL of an avatar image.
    AvatarUrl,
    9,
    2048,
    "^https://[^\\s]+$",
    |s| s.starts_with("https://") && s.len() > 8 && !s.chars().any(is_ecma_whitespace)
);
bounded_str!(
    /// An invite token as shared: `cvinv1_` and base64url (what `callvault_crypto::invite`
    /// makes; checking its signature is the vault's work).
    InviteText,
    8,
    16_384,
    "^cvinv1_[A-Za-z0-9_-]+$",
    |s| s.strip_prefix("cvinv1_").is_some_and(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))
);
bounded_str!(
    /// An invite's one-time nonce: 16 bytes in hex.
    InviteNonce,
    32,
    32,
    "^[0-9a-fA-F]{32}$",
    |s| s.bytes().all(|c| c.is_ascii_hexdigit())
);
bounded_str!(
    /// An x-only secp256k1 public key in lowercase hex.
    KeyHex,
    64,
    64,
    "^[0-9a-f]{64}$",
    |s| s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
);
bounded_str!(
    /// A delegation of a vault key, as its Nostr event's JSON.
    DelegationText,
    2,
    8192,
    "any text",
    |_| true
);
bounded_str!(
    /// Where a peer's vault is reached: a bus URL, or `local`.
    Reach,
    1,
    512,
    "any text",
    |_| true
);
bounded_str!(
    /// Human-readable text of an error notification.
    ErrorText,
    1,
    512,
    "any text",
    |_| true
);

/// ECMAScript `\s`: the JSON Schema pattern dialect's whitespace class.
fn is_ecma_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | ' '
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{feff}'
    )
}

impl ErrorText {
    /// Any text, cut to the maximum length; empty text becomes `"error"`.
    pub fn truncated(s: &str) -> Self {
        let t: String = s.chars().take(Self::MAX_CHARS).collect();
        if t.is_empty() { Self("error".to_owned()) } else { Self(t) }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.0)
    }
}
impl fmt::Debug for SignalPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalPayload({} chars)", self.0.len())
    }
}
impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisplayName({:?})", self.0)
    }
}
impl fmt::Debug for AvatarUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AvatarUrl({:?})", self.0)
    }
}
impl fmt::Debug for InviteText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteText({} chars)", self.0.len())
    }
}
impl fmt::Debug for InviteNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteNonce(..)")
    }
}
impl fmt::Debug for KeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHex({}..)", self.0.get(..8).unwrap_or_default())
    }
}
impl fmt::Debug for DelegationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DelegationText({} chars)", self.0.len())
    }
}
impl fmt::Debug for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reach({:?})", self.0)
    }
}
impl fmt::Debug for ErrorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A call duration in whole seconds, 0 to one year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DurationSeconds(u32);

impl DurationSeconds {
    /// The schema's maximum: one year.
    pub const MAX: u32 = 31_536_000;

    /// Validates a number of seconds.
    pub fn new(secs: u64) -> Result<Self, FieldError> {
        u32::try_from(secs)
            .ok()
            .filter(|s| *s <= Self::MAX)
            .map(Self)
            .ok_or(FieldError::Range { min: 0, max: u64::from(Self::MAX) })
    }

    /// Clamps to the schema's range.
    pub fn saturating(secs: u64) -> Self {
        Self(u32::try_from(secs).unwrap_or(Self::MAX).min(Self::MAX))
    }

    /// The number of seconds.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for DurationSeconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // JSON Schema's "integer" includes numbers such as 5.0; mirror that.
        let secs = schema_integer(d, 0, u64::from(Self::MAX))?;
        Self::new(secs).map_err(serde::de::Error::custom)
    }
}

/// The extension point (`ext`): a JSON object of at most 32 properties whose keys receivers
/// that do not know them ignore. Additive v1 fields travel here first.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Extensions(serde_json::Map<String, serde_json::Value>);

impl Extensions {
    /// Maximum number of properties.
    pub const MAX_PROPERTIES: usize = 32;

    /// Validates and wraps.
    pub fn new(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, FieldError> {
        if map.len() > Self::MAX_PROPERTIES {
            return Err(FieldError::TooManyProperties { max: Self::MAX_PROPERTIES });
        }
        Ok(Self(map))
    }

    /// The properties.
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.get(key)
    }
}

impl<'de> Deserialize<'de> for Extensions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(serde_json::Map::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// How the callee's vault shows the caller (from its `connections` bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerProfile {
    /// Name to show.
    pub display_name: DisplayName,
    /// Optional avatar.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<AvatarUrl>,
}

/// Deserializes a struct only from a JSON object. serde's derive also accepts an array of the
/// field values in order, which the schemas refuse; this closes that door while keeping the field
/// path of nested errors.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    struct ObjectVisitor<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }

    d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
}

/// Deserializes a JSON Schema `integer` within `min..=max`. JSON Schema's "integer" includes
/// numbers such as 5.0; this mirrors that.
pub fn schema_integer<'de, D: Deserializer<'de>>(d: D, min: u64, max: u64) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    let range = || serde::de::Error::custom(FieldError::Range { min, max });
    let v = match n.as_u64() {
        Some(u) => u,
        None => match n.as_f64() {
            // `max` is at most 2^53 in every schema, so the f64 comparison is exact.
            #[allow(clippy::cast_precision_loss)]
            Some(f) if f.fract() == 0.0 && f >= 0.0 && f <= max as f64 => {
                format!("{f:.0}").parse::<u64>().map_err(|_| range())?
            }
            _ => return Err(range()),
        },
    };
    if v < min || v > max {
        return Err(range());
    }
    Ok(v)
}

/// Deserializes a JSON Schema `integer` from 0 to `MAX` (a `deserialize_with` for `u64` fields).
pub fn uint<'de, D: Deserializer<'de>, const MAX: u64>(d: D) -> Result<u64, D::Error> {
    schema_integer(d, 0, MAX)
}

/// Deserializes an array of at most `MAX` items (a schema's `maxItems`).
pub fn at_most<'de, D: Deserializer<'de>, T: Deserialize<'de>, const MAX: usize>(d: D) -> Result<Vec<T>, D::Error> {
    let v = Vec::<T>::deserialize(d)?;
    if v.len() > MAX {
        return Err(serde::de::Error::custom(format_args!("more than {MAX} items")));
    }
    Ok(v)
}

/// Deserializes an optional field that, when present, must hold a value: JSON `null` is refused,
/// as the schemas (which never allow `null`) refuse it. Use with `#[serde(default)]`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_mirrors_the_pattern() {
        for ok in ["AAAA", "AAA=", "AA==", "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="] {
            assert!(is_padded_base64(ok), "{ok}");
        }
        for bad in ["AAA", "A===", "AA=A", "=AAA", "AA-_", "AAAA AAA="] {
            assert!(!is_padded_base64(bad), "{bad}");
        }
    }

    #[test]
    fn durations_are_bounded() {
        assert!(DurationSeconds::new(31_536_000).is_ok());
        assert!(DurationSeconds::new(31_536_001).is_err());
        assert_eq!(DurationSeconds::saturating(u64::MAX).get(), DurationSeconds::MAX);
        let d: DurationSeconds = serde_json::from_str("5.0").unwrap();
        assert_eq!(d.get(), 5);
        assert!(serde_json::from_str::<DurationSeconds>("5.5").is_err());
        assert!(serde_json::from_str::<DurationSeconds>("-1").is_err());
    }

    #[test]
    fn display_names_refuse_control_characters() {
        assert!(DisplayName::new("Ada Lovelace").is_ok());
        assert!(DisplayName::new("Ada\u{7}").is_err());
        assert!(DisplayName::new("").is_err());
        assert!(DisplayName::new("é".repeat(100)).is_ok());
        assert!(DisplayName::new("é".repeat(101)).is_err());
    }
}

//! [`Timestamp`]: an RFC 3339 instant, the only time type on the wire.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why a string is not an RFC 3339 timestamp as the schemas define it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Longer than 40 characters.
    #[error("longer than 40 characters")]
    TooLong,
    /// Not of the shape `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`.
    #[error("not of the form YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)")]
    Shape,
    /// The shape is right but a component is out of range (month 13, hour 25, ...).
    #[error("not a valid RFC 3339 date-time")]
    Range,
}

/// An instant, kept in UTC. Arithmetic saturates instead of panicking.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The Unix epoch.
    pub const UNIX_EPOCH: Self = Self(OffsetDateTime::UNIX_EPOCH);

    /// Parses an RFC 3339 date-time with the schema's shape rules.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        if s.chars().count() > 40 {
            return Err(TimestampError::TooLong);
        }
        if !has_rfc3339_shape(s) {
            return Err(TimestampError::Shape);
        }
        OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| Self(t.to_offset(time::UtcOffset::UTC)))
            .map_err(|_| TimestampError::Range)
    }

    /// The instant `millis` milliseconds after the Unix epoch (saturating at the representable range).
    pub fn from_unix_millis(millis: i64) -> Self {
        let nanos = i128::from(millis).saturating_mul(1_000_000);
        OffsetDateTime::from_unix_timestamp_nanos(nanos).map(Self).unwrap_or(Self::UNIX_EPOCH)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        let ms = self.0.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// `self + d`, or the largest representable instant.
    pub fn saturating_add(self, d: Duration) -> Self {
        time::Duration::try_from(d)
            .ok()
            .and_then(|d| self.0.checked_add(d))
            .map_or(Self(time::PrimitiveDateTime::MAX.assume_utc()), Self)
    }

    /// `self - d`, or the smallest representable instant.
    pub fn saturating_sub(self, d: Duration) -> Self {
        time::Duration::try_from(d)
            .ok()
            .and_then(|d| self.0.checked_sub(d))
            .map_or(Self(time::PrimitiveDateTime::MIN.assume_utc()), Self)
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later (a clock that went back).
    pub fn saturating_since(self, earlier: Self) -> Duration {
        let nanos = self.0.unix_timestamp_nanos().saturating_sub(earlier.0.unix_timestamp_nanos());
        u64::try_from(nanos).map_or(Duration::ZERO, Duration::from_nanos)
    }

    /// Whole seconds from `earlier` to `self`, zero if negative.
    pub fn whole_seconds_since(self, earlier: Self) -> u64 {
        self.saturating_since(earlier).as_secs()
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self(t.to_offset(time::UtcOffset::UTC))
    }
}

/// `YYYY-MM-DDTHH:MM:SS(.d{1,9})?(Z|[+-]HH:MM)`, mirroring the schema's `pattern`.
fn has_rfc3339_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        let frac = b.get(i.saturating_add(1)..).unwrap_or_default().iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&frac) {
            return false;
        }
        i = i.saturating_add(1).saturating_add(frac);
    }
    match b.get(i..) {
        Some(b"Z") => true,
        Some([sign, h1, h2, b':', m1, m2]) => {
            matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// The RFC 3339 text of a [`Timestamp`], on the stack: `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with the
/// fraction's trailing zeros dropped, exactly as the `time` crate writes it. Written by hand
/// because handlers print timestamps under a WASM interpreter, where `core::fmt` and `time`'s
/// formatter cost far more than these few stores.
struct Rfc3339Text {
    buf: [u8; 30],
    len: usize,
}

impl Rfc3339Text {
    /// `None` for years RFC 3339 cannot write (outside 0000..=9999).
    fn of(t: &OffsetDateTime) -> Option<Self> {
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let mut out = Self { buf: [0; 30], len: 0 };
        out.digits(year, 4);
        out.push(b'-');
        out.digits(u32::from(u8::from(t.month())), 2);
        out.push(b'-');
        out.digits(u32::from(t.day()), 2);
        out.push(b'T');
        out.digits(u32::from(t.hour()), 2);
        out.push(b':');
        out.digits(u32::from(t.minute()), 2);
        out.push(b':');
        out.digits(u32::from(t.second()), 2);
        let mut nanos = t.nanosecond();
        if nanos != 0 {
            out.push(b'.');
            let mut width = 9u32;
            while nanos.is_multiple_of(10) {
                nanos /= 10;
                width = width.saturating_sub(1);
            }
            out.digits(nanos, width);
        }
        out.push(b'Z');
        Some(out)
    }

    /// `n` in `width` decimal digits, zero-padded.
    fn digits(&mut self, n: u32, width: u32) {
        for i in (0..width).rev() {
            let d = n.checked_div(10u32.saturating_pow(i)).unwrap_or(0) % 10;
            self.push(b'0'.saturating_add(u8::try_from(d).unwrap_or(0)));
        }
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len = self.len.saturating_add(1);
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Rfc3339Text::of(&self.0) {
            Some(t) => f.write_str(t.as_str()),
            None => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match Rfc3339Text::of(&self.0) {
            Some(t) => s.serialize_str(t.as_str()),
            None => Err(serde::ser::Error::custom("year outside 0000..=9999")),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The hand-written RFC 3339 text is the `time` crate's, byte for byte, over the whole
        /// range it can write (and both refuse the years outside it).
        #[test]
        fn writes_what_the_time_crate_writes(nanos in -300_000_000_000_000_000_000i128..253_402_300_800_000_000_000i128,
                                              coarse in 0u8..4) {
            // Also instants on whole seconds and milliseconds, which real timestamps mostly are.
            let nanos = match coarse { 0 => nanos.wrapping_sub(nanos % 1_000_000_000), 1 => nanos.wrapping_sub(nanos % 1_000_000), _ => nanos };
            let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            let ours = Rfc3339Text::of(&t).map(|x| x.as_str().to_owned());
            proptest::prop_assert_eq!(ours, t.format(&Rfc3339).ok());
        }
    }

    #[test]
    fn edge_instants_print_as_the_time_crate_prints_them() {
        for nanos in
            [0i128, 1, 10, 100_000_000, 999_999_999, -1, 253_402_300_799_999_999_999, -62_167_219_200_000_000_000]
        {
            let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            assert_eq!(Rfc3339Text::of(&t).map(|x| x.as_str().to_owned()), t.format(&Rfc3339).ok(), "{nanos}");
        }
    }

    #[test]
    fn parses_and_normalises_to_utc() {
        let t = Timestamp::parse("2026-11-22T10:00:00.5+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-22T08:00:00.5Z");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn refuses_bad_shapes_and_ranges() {
        for bad in [
            "2026-11-22 10:00:00Z",
            "2026-11-22T10:00:00",
            "2026-11-22t10:00:00z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00.1234567890Z",
            "not a date",
        ] {
            assert_eq!(Timestamp::parse(bad), Err(TimestampError::Shape), "{bad}");
        }
        assert_eq!(Timestamp::parse("2026-13-22T10:00:00Z"), Err(TimestampError::Range));
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_unix_millis(1_000);
        assert_eq!(t.saturating_add(Duration::from_secs(2)).unix_millis(), 3_000);
        assert_eq!(Timestamp::UNIX_EPOCH.saturating_since(t), Duration::ZERO);
        assert_eq!(t.whole_seconds_since(Timestamp::UNIX_EPOCH), 1);
        let far = t.saturating_add(Duration::MAX);
        assert!(far > t);
        assert!(t.saturating_sub(Duration::MAX) < t);
    }
}

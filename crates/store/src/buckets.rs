//! Bucket configurations: the seed's buckets, validation, and naming on a shared server.

use std::time::Duration;

use crate::KvError;

/// How a bucket behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketConfig {
    /// Bucket name: `[a-zA-Z0-9_-]+`.
    pub name: String,
    /// Revisions kept per key, 1 to 64.
    pub history: u8,
    /// Largest value, in bytes.
    pub max_value_size: usize,
    /// How long a value lives after it was written; `None`: forever.
    pub ttl: Option<Duration>,
}

const KB: usize = 1024;
const MB: usize = 1024 * 1024;
const DAY: u64 = 24 * 60 * 60;

/// The vault's buckets, exactly as the seed provisions them: (name, history, max value, TTL).
pub const SEED_BUCKETS: &[(&str, u8, usize, Option<Duration>)] = &[
    ("handlers", 1, 10 * MB, None),
    ("handler-state", 5, MB, None),
    ("connections", 3, 64 * KB, None),
    ("calls", 1, 64 * KB, Some(Duration::from_secs(30 * DAY))),
    ("messages", 1, MB, Some(Duration::from_secs(90 * DAY))),
    ("profile", 3, 64 * KB, None),
    ("sessions", 1, 4 * KB, Some(Duration::from_secs(7 * DAY))),
];

impl BucketConfig {
    /// A configuration, validated.
    pub fn new(name: &str, history: u8, max_value_size: usize, ttl: Option<Duration>) -> Result<Self, KvError> {
        let c = Self { name: name.to_owned(), history, max_value_size, ttl };
        c.validate()?;
        Ok(c)
    }

    /// The seed's configuration of bucket `name` (`calls`, `connections`, ...).
    pub fn seed(name: &str) -> Option<Self> {
        SEED_BUCKETS.iter().find(|(n, ..)| *n == name).map(|&(n, history, max_value_size, ttl)| Self {
            name: n.to_owned(),
            history,
            max_value_size,
            ttl,
        })
    }

    /// Every seed bucket, named for one vault.
    pub fn seed_all(naming: &BucketNaming) -> Vec<Self> {
        SEED_BUCKETS
            .iter()
            .map(|&(n, history, max_value_size, ttl)| Self { name: naming.name(n), history, max_value_size, ttl })
            .collect()
    }

    /// Checks name, history and size.
    pub fn validate(&self) -> Result<(), KvError> {
        if self.name.is_empty()
            || self.name.len() > 200
            || !self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(KvError::InvalidConfig(format!("bucket name {:?} is not [a-zA-Z0-9_-]+", self.name)));
        }
        if !(1..=64).contains(&self.history) {
            return Err(KvError::InvalidConfig("history must be 1 to 64".into()));
        }
        if self.max_value_size == 0 || self.max_value_size > 64 * MB {
            return Err(KvError::InvalidConfig("max_value_size must be 1 byte to 64 MiB".into()));
        }
        if self.ttl.is_some_and(|t| t < Duration::from_secs(1)) {
            return Err(KvError::InvalidConfig("ttl must be at least 1 s".into()));
        }
        Ok(())
    }
}

/// How bucket names are formed.
///
/// A vault with its own local server (or its own embedded store) uses the seed's names as they
/// are (`calls`). Vaults that share one server prefix them with the owner's guid, as the seed's
/// comment `{user_guid}_calls` spells it, so that permissions can be granted per vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketNaming {
    /// `calls`.
    Local,
    /// `{guid}_calls`.
    Shared {
        /// The owner's guid (40 hex characters).
        guid: String,
    },
}

impl BucketNaming {
    /// The name of bucket `base` under this naming.
    pub fn name(&self, base: &str) -> String {
        match self {
            Self::Local => base.to_owned(),
            Self::Shared { guid } => format!("{guid}_{base}"),
        }
    }
}

/// Checks a key as JetStream does: `[-/_=.a-zA-Z0-9]+`, not starting or ending with `.`.
pub fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::InvalidKey("empty"));
    }
    if key.len() > 1024 {
        return Err(KvError::InvalidKey("longer than 1024 bytes"));
    }
    if key.starts_with('.') || key.ends_with('.') {
        return Err(KvError::InvalidKey("starts or ends with '.'"));
    }
    if key.split('.').any(str::is_empty) {
        return Err(KvError::InvalidKey("empty token"));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'=' | b'.')) {
        return Err(KvError::InvalidKey("characters outside [-/_=.a-zA-Z0-9]"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_buckets_are_as_the_seed_says() {
        let calls = BucketConfig::seed("calls").unwrap();
        assert_eq!((calls.history, calls.max_value_size, calls.ttl), (1, 65_536, Some(Duration::from_secs(2_592_000))));
        let handlers = BucketConfig::seed("handlers").unwrap();
        assert_eq!((handlers.history, handlers.max_value_size, handlers.ttl), (1, 10_485_760, None));
        assert_eq!(BucketConfig::seed("sessions").unwrap().max_value_size, 4096);
        assert_eq!(SEED_BUCKETS.len(), 7);
        for b in BucketConfig::seed_all(&BucketNaming::Local) {
            b.validate().unwrap();
        }
        let g = "0123456789abcdef0123456789abcdef01234567".to_owned();
        let shared = BucketConfig::seed_all(&BucketNaming::Shared { guid: g.clone() });
        assert!(shared.iter().all(|b| b.name.starts_with(&format!("{g}_")) && b.validate().is_ok()));
    }

    #[test]
    fn keys_follow_jetstream_rules() {
        for ok in ["a", "call.1", "6f9619ff-8b86-4d01-b42d-00cf4fc964ff", "a/b=c_d"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "a b", "a*", "a>", "é"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(BucketConfig::new("a.b", 1, 10, None).is_err());
        assert!(BucketConfig::new("ok", 0, 10, None).is_err());
        assert!(BucketConfig::new("ok", 65, 10, None).is_err());
        assert!(BucketConfig::new("ok", 1, 0, None).is_err());
        assert!(BucketConfig::new("ok", 1, 10, Some(Duration::from_millis(10))).is_err());
        assert!(BucketConfig::new("ok", 64, 10, Some(Duration::from_secs(1))).is_ok());
    }
}

//! Storage: per-vault key-value buckets with history, compare-and-set, TTL and watch.
//!
//! [`Kv`] is one bucket; [`Store`] opens buckets. Two backends behave alike, checked by one
//! conformance suite (`conformance`, run by `tests/`):
//!
//! - [`EmbeddedStore`] (redb, one file per data directory): the default, no server needed;
//! - [`NatsStore`] (NATS JetStream KV): a vault's own local nats-server, as the seed draws it, or a
//!   shared one where bucket names carry the guid ([`BucketNaming`]).
//!
//! Semantics (JetStream's, which the embedded backend copies): revisions are a per-bucket sequence;
//! `create` fails on a live key but succeeds on a deleted one; `update` succeeds only when the key's
//! latest revision (a delete counts) is the one given; `delete` writes a tombstone that counts
//! towards history; `get` and `keys` hide deleted and expired keys; `watch` sees changes made after
//! it starts, in revision order; a value expires `ttl` after it was written, silently (no event).
//!
//! See `docs/STORAGE.md`.
#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;

mod buckets;
mod embedded;
mod nats;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use buckets::{BucketConfig, BucketNaming, SEED_BUCKETS, check_key};
pub use embedded::{EmbeddedKv, EmbeddedStore};
pub use nats::{NatsKv, NatsStore};

/// What a write did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A value was written.
    Put,
    /// The key was deleted (a tombstone).
    Delete,
}

/// One revision of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value (empty for a delete).
    pub value: Bytes,
    /// Position in the bucket's sequence.
    pub revision: u64,
    /// Put or delete.
    pub operation: Operation,
    /// When it was written.
    pub created: SystemTime,
}

/// What a store operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is not valid (`[-/_=.a-zA-Z0-9]+`, not starting or ending with `.`).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// `create` on a key that holds a value.
    #[error("key already exists")]
    AlreadyExists,
    /// `update` with a revision that is not the key's latest.
    #[error("wrong revision: expected {expected}, the key is at {current:?}")]
    WrongRevision {
        /// The revision the caller expected.
        expected: u64,
        /// The key's latest revision (`None`: the key has none).
        current: Option<u64>,
    },
    /// The value is larger than the bucket allows.
    #[error("value of {len} bytes exceeds the bucket's maximum of {max}")]
    ValueTooLarge {
        /// Size given.
        len: usize,
        /// The bucket's limit.
        max: usize,
    },
    /// The bucket configuration is not valid.
    #[error("invalid bucket configuration: {0}")]
    InvalidConfig(String),
    /// A watcher fell behind and missed changes.
    #[error("watch fell behind and missed {0} changes")]
    WatchLagged(u64),
    /// Stored bytes that do not decode (disk corruption).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The backend failed (I/O, connection, server).
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Changes to a bucket, in revision order.
pub struct Watch {
    inner: Pin<Box<dyn Stream<Item = Result<Entry, KvError>> + Send>>,
}

impl Watch {
    pub(crate) fn new(inner: impl Stream<Item = Result<Entry, KvError>> + Send + 'static) -> Self {
        Self { inner: Box::pin(inner) }
    }

    /// The next change.
    pub async fn next(&mut self) -> Option<Result<Entry, KvError>> {
        futures_util::StreamExt::next(&mut self.inner).await
    }

    /// The next change within `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Result<Entry, KvError>> {
        tokio::time::timeout(timeout, self.next()).await.ok().flatten()
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

/// One bucket.
pub trait Kv: Send + Sync + 'static {
    /// The bucket's configuration.
    fn config(&self) -> &BucketConfig;

    /// The latest live value of `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Entry>, KvError>> + Send;

    /// Writes `value`; returns the new revision.
    fn put(&self, key: &str, value: Bytes) -> impl Future<Output = Result<u64, KvError>> + Send;

    /// Writes `value` only if `key` holds no live value.
    fn create(&self, key: &str, value: Bytes) -> impl Future<Output = Result<u64, KvError>> + Send;

    /// Writes `value` only if `revision` is the key's latest (compare-and-set).
    fn update(&self, key: &str, value: Bytes, revision: u64) -> impl Future<Output = Result<u64, KvError>> + Send;

    /// Deletes `key` (a tombstone that counts towards history).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), KvError>> + Send;

    /// Keys holding live values, sorted.
    fn keys(&self) -> impl Future<Output = Result<Vec<String>, KvError>> + Send;

    /// Keys under `prefix` (the keys `prefix.>`), sorted: every one holding a live value, and on
    /// JetStream also those whose latest revision is a delete, which `get` shows as gone. It costs
    /// what the prefix holds, not the whole bucket (a conversation's messages, not every one).
    fn keys_under(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, KvError>> + Send;

    /// The revisions of `key` still kept, oldest first, tombstones included.
    fn history(&self, key: &str) -> impl Future<Output = Result<Vec<Entry>, KvError>> + Send;

    /// Changes to keys matching `pattern` (`*` one token, `>` the rest) from now on.
    fn watch(&self, pattern: &str) -> impl Future<Output = Result<Watch, KvError>> + Send;
}

/// Opens buckets.
pub trait Store: Send + Sync + 'static {
    /// The bucket type.
    type Kv: Kv + Clone;

    /// Opens `config.name`, creating it if needed (the configuration is updated to `config`).
    fn bucket(&self, config: &BucketConfig) -> impl Future<Output = Result<Self::Kv, KvError>> + Send;
}

pub(crate) fn check_value(len: usize, config: &BucketConfig) -> Result<(), KvError> {
    if len > config.max_value_size { Err(KvError::ValueTooLarge { len, max: config.max_value_size }) } else { Ok(()) }
}

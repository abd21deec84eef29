//! [`NatsStore`]: buckets in NATS JetStream KV.
//!
//! Limits are checked here before anything is sent, so an oversized value gets the same typed
//! error as on the embedded backend (the server's own check counts headers too and reports it as
//! a generic publish failure). The stream's message limit is set with headroom for those headers.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use callvault_bus::subject::check_pattern;
use futures_util::{StreamExt, TryStreamExt};

use crate::{BucketConfig, Entry, Kv, KvError, Operation, Store, Watch, check_key, check_value};

/// Room for JetStream's headers on top of the bucket's value limit.
const HEADER_HEADROOM: usize = 1024;

fn backend(e: impl std::fmt::Display) -> KvError {
    KvError::Backend(e.to_string())
}

/// Buckets on a NATS server. Clones share the connection.
#[derive(Clone, Debug)]
pub struct NatsStore {
    js: jetstream::Context,
}

impl NatsStore {
    /// A store over an existing NATS connection.
    pub fn new(client: async_nats::Client) -> Self {
        Self { js: jetstream::new(client) }
    }

    /// Deletes a bucket and everything in it.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), KvError> {
        self.js.delete_key_value(name).await.map(|_| ()).map_err(backend)
    }
}

impl Store for NatsStore {
    type Kv = NatsKv;

    async fn bucket(&self, config: &BucketConfig) -> Result<NatsKv, KvError> {
        config.validate()?;
        let max_msg = config.max_value_size.saturating_add(HEADER_HEADROOM);
        let store = self
            .js
            .create_or_update_key_value(kv::Config {
                bucket: config.name.clone(),
                history: i64::from(config.history),
                max_value_size: i32::try_from(max_msg).unwrap_or(i32::MAX),
                max_age: config.ttl.unwrap_or(Duration::ZERO),
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        Ok(NatsKv { store, config: config.clone() })
    }
}

/// One bucket of a [`NatsStore`].
#[derive(Clone, Debug)]
pub struct NatsKv {
    store: kv::Store,
    config: BucketConfig,
}

fn entry(e: kv::Entry) -> Entry {
    Entry {
        operation: match e.operation {
            kv::Operation::Put => Operation::Put,
            kv::Operation::Delete | kv::Operation::Purge => Operation::Delete,
        },
        created: SystemTime::from(e.created),
        key: e.key,
        value: e.value,
        revision: e.revision,
    }
}

impl NatsKv {
    async fn latest_revision(&self, key: &str) -> Option<u64> {
        self.store.entry(key.to_owned()).await.ok().flatten().map(|e| e.revision)
    }
}

impl Kv for NatsKv {
    fn config(&self) -> &BucketConfig {
        &self.config
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        check_key(key)?;
        let e = self.store.entry(key.to_owned()).await.map_err(backend)?;
        Ok(e.filter(|e| e.operation == kv::Operation::Put).map(entry))
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        check_key(key)?;
        check_value(value.len(), &self.config)?;
        self.store.put(key, value).await.map_err(backend)
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        check_key(key)?;
        check_value(value.len(), &self.config)?;
        self.store.create(key, value).await.map_err(|e| match e.kind() {
            kv::CreateErrorKind::AlreadyExists => KvError::AlreadyExists,
            _ => backend(e),
        })
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, KvError> {
        check_key(key)?;
        check_value(value.len(), &self.config)?;
        match self.store.update(key, value, revision).await {
            Ok(r) => Ok(r),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(KvError::WrongRevision { expected: revision, current: self.latest_revision(key).await })
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        check_key(key)?;
        self.store.delete(key).await.map_err(backend)
    }

    async fn keys(&self) -> Result<Vec<String>, KvError> {
        let mut keys: Vec<String> = self.store.keys().await.map_err(backend)?.try_collect().await.map_err(backend)?;
        keys.sort();
        Ok(keys)
    }

    async fn keys_under(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        check_key(prefix)?;
        // The stream's subjects under the prefix (one request, no consumer); a key whose latest
        // message is a delete is listed too, and `get` shows it gone.
        let filter = format!("{}{prefix}.>", self.store.prefix);
        let mut info = self.store.stream.info_with_subjects(&filter).await.map_err(backend)?;
        let mut keys = Vec::new();
        while let Some(subject) = info.try_next().await.map_err(backend)? {
            if let Some(key) = subject.0.strip_prefix(self.store.prefix.as_str()) {
                keys.push(key.to_owned());
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn history(&self, key: &str) -> Result<Vec<Entry>, KvError> {
        check_key(key)?;
        if self.store.entry(key.to_owned()).await.map_err(backend)?.is_none() {
            return Ok(Vec::new());
        }
        let h = self.store.history(key).await.map_err(backend)?;
        h.map(|r| r.map(entry).map_err(backend)).try_collect().await
    }

    async fn watch(&self, pattern: &str) -> Result<Watch, KvError> {
        check_pattern(pattern).map_err(|_| KvError::InvalidKey("invalid watch pattern"))?;
        let w = self.store.watch(pattern).await.map_err(backend)?;
        Ok(Watch::new(w.map(|r| r.map(entry).map_err(backend))))
    }
}

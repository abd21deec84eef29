//! [`EmbeddedStore`]: buckets in one redb file, with JetStream KV's semantics.
//!
//! Layout: table `buckets` (name -> configuration), table `seq` (bucket -> last revision), and one
//! table `kv/<bucket>` per bucket mapping each key to its kept revisions (oldest first). Every
//! write is committed with fsync before the call returns, so an acknowledged write survives a
//! crash. Writes that arrive while a commit is under way are committed together in the next one
//! (group commit): one fsync for all of them, each still checked and answered on its own.
//! Expired values are hidden at once and removed from disk when their key is next written or by
//! the sweeper (every minute, and [`EmbeddedStore::sweep_expired`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use callvault_bus::subject::{check_pattern, matches};
use futures_util::StreamExt;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::broadcast;

use crate::{BucketConfig, Entry, Kv, KvError, Operation, Store, Watch, check_key, check_value};

const BUCKETS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("buckets");
const SEQ: TableDefinition<'static, &str, u64> = TableDefinition::new("seq");
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The longest the expiry sweeper sleeps (it wakes earlier when a value expires sooner).
const SWEEP_AT_LEAST_EVERY: Duration = Duration::from_secs(3600);
const WATCH_QUEUE: usize = 256;

fn backend(e: impl std::fmt::Display) -> KvError {
    KvError::Backend(e.to_string())
}

/// A store in one redb file. Clones share it.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    watchers: Mutex<HashMap<String, broadcast::Sender<Entry>>>,
    /// Writes waiting for the next commit (group commit, see [`EmbeddedKv::write_async`]).
    batch: Mutex<Batch>,
}

/// Writes queued for one commit, and whether a committer is at work.
#[derive(Default)]
struct Batch {
    pending: Vec<PendingWrite>,
    committing: bool,
}

/// One write waiting to be committed, and where its result goes.
struct PendingWrite {
    /// The bucket's table and configuration (no handle on the store itself, so a queued write
    /// never keeps the store open).
    table: Arc<str>,
    config: BucketConfig,
    key: String,
    operation: Operation,
    value: Bytes,
    expect: Expect,
    reply: tokio::sync::oneshot::Sender<Result<Entry, KvError>>,
}

impl PendingWrite {
    /// Applies the write inside `txn`; an unmet expectation or an unreadable record changes
    /// nothing (only a backend failure can leave the transaction half done, and then it is not
    /// committed).
    fn apply(&self, txn: &redb::WriteTransaction) -> Result<Entry, KvError> {
        let (key, expect) = (self.key.as_str(), self.expect);
        let mut t = txn.open_table(TableDefinition::<&str, &[u8]>::new(&self.table)).map_err(backend)?;
        let mut seq = txn.open_table(SEQ).map_err(backend)?;
        let mut hist = match t.get(key).map_err(backend)? {
            Some(v) => codec::decode_history(v.value())?,
            None => Vec::new(),
        };
        let now = SystemTime::now();
        prune(&mut hist, &self.config, now);
        let latest = hist.last();
        match expect {
            Expect::Anything => {}
            Expect::NoLiveValue if latest.is_some_and(|e| e.operation == Operation::Put) => {
                return Err(KvError::AlreadyExists);
            }
            Expect::NoLiveValue => {}
            Expect::Revision(r) => {
                let current = latest.map(|e| e.revision);
                if current.unwrap_or(0) != r {
                    return Err(KvError::WrongRevision { expected: r, current });
                }
            }
        }
        let last = seq.get(self.config.name.as_str()).map_err(backend)?.map_or(0, |g| g.value());
        let revision = last.checked_add(1).ok_or_else(|| KvError::Backend("revision overflow".into()))?;
        seq.insert(self.config.name.as_str(), revision).map_err(backend)?;
        let stored = Stored { revision, operation: self.operation, created: now, value: self.value.clone() };
        hist.push(stored.clone());
        let keep = usize::from(self.config.history);
        if hist.len() > keep {
            hist.drain(..hist.len().saturating_sub(keep));
        }
        t.insert(key, codec::encode_history(&hist).as_slice()).map_err(backend)?;
        Ok(stored.entry(key))
    }
}

/// Most writes one commit takes (the rest wait for the next one).
const MAX_BATCH: usize = 256;
/// Most value bytes one commit takes (a single larger write still goes alone).
const MAX_BATCH_BYTES: usize = 1024 * 1024;

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

/// The page cache of the embedded store (redb's default is 1 GiB).
const CACHE_BYTES: usize = 64 * 1024 * 1024;

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`, creating parent directories. Inside a tokio
    /// runtime, starts the expiry sweeper, which stops when the last clone is dropped.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, KvError> {
        if let Some(parent) = path.as_ref().parent() {
            std::fs::create_dir_all(parent).map_err(backend)?;
        }
        private_file(path.as_ref()).map_err(backend)?;
        // redb's default page cache is 1 GiB; a vault server keeps small values, so less does.
        let db = redb::Builder::new().set_cache_size(CACHE_BYTES).create(path.as_ref()).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(BUCKETS).map_err(backend)?;
        txn.open_table(SEQ).map_err(backend)?;
        txn.commit().map_err(backend)?;
        let store = Self {
            inner: Arc::new(Inner { db, watchers: Mutex::new(HashMap::new()), batch: Mutex::new(Batch::default()) }),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweeper(Arc::downgrade(&store.inner)));
        }
        Ok(store)
    }

    /// Removes expired values of every bucket from disk; returns how many revisions went.
    pub fn sweep_expired(&self) -> Result<usize, KvError> {
        sweep(&self.inner).map(|(n, _)| n)
    }
}

/// Makes sure the store file exists readable and writable by its owner only (0600), whatever
/// the umask: it holds accounts, connections and call history.
fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // Created empty if missing (redb initialises an empty file), then 0600 either way.
        let _ = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Sweeps expired values off disk: after [`SWEEP_EVERY`], then when the earliest value left
/// expires, but at least [`SWEEP_EVERY`] and at most [`SWEEP_AT_LEAST_EVERY`] apart. (Reads never
/// see an expired value; the sweep only gives the disk space back, so an idle store wakes rarely.)
async fn sweeper(store: Weak<Inner>) {
    let mut wait = SWEEP_EVERY;
    loop {
        tokio::time::sleep(wait).await;
        let Some(inner) = store.upgrade() else { return };
        wait = SWEEP_AT_LEAST_EVERY;
        match tokio::task::spawn_blocking(move || sweep(&inner)).await {
            Ok(Ok((n, next))) => {
                if n > 0 {
                    tracing::debug!(removed = n, "expired values swept");
                }
                if let Some(next) = next {
                    let until = next.duration_since(SystemTime::now()).unwrap_or_default();
                    wait = until.clamp(SWEEP_EVERY, SWEEP_AT_LEAST_EVERY);
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "expiry sweep failed"),
            Err(_) => {}
        }
    }
}

/// Removes expired revisions; returns how many went and when the earliest one left expires.
/// Buckets are read first; a write transaction is opened only for a bucket with something to
/// remove, and checks again inside it.
fn sweep(inner: &Inner) -> Result<(usize, Option<SystemTime>), KvError> {
    let configs: Vec<BucketConfig> = {
        let r = inner.db.begin_read().map_err(backend)?;
        let t = r.open_table(BUCKETS).map_err(backend)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(backend)? {
            let (_, v) = row.map_err(backend)?;
            out.push(codec::decode_config(v.value())?);
        }
        out
    };
    let now = SystemTime::now();
    let mut removed = 0usize;
    let mut next: Option<SystemTime> = None;
    for config in configs.into_iter().filter(|c| c.ttl.is_some()) {
        let name = table_name(&config.name);
        let def = TableDefinition::<&str, &[u8]>::new(&name);
        let mut expired_keys = Vec::new();
        {
            let r = inner.db.begin_read().map_err(backend)?;
            let t = match r.open_table(def) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(backend(e)),
            };
            for row in t.iter().map_err(backend)? {
                let (k, v) = row.map_err(backend)?;
                let hist = codec::decode_history(v.value())?;
                let mut kept = hist.clone();
                prune(&mut kept, &config, now);
                if kept.len() != hist.len() {
                    expired_keys.push(k.value().to_owned());
                }
                let ends = kept.iter().filter_map(|e| config.ttl.and_then(|ttl| e.created.checked_add(ttl)));
                next = ends.chain(next).min();
            }
        }
        if expired_keys.is_empty() {
            continue;
        }
        let txn = inner.db.begin_write().map_err(backend)?;
        {
            let mut t = txn.open_table(def).map_err(backend)?;
            for k in expired_keys {
                let Some(v) = t.get(k.as_str()).map_err(backend)?.map(|v| v.value().to_vec()) else { continue };
                let mut hist = codec::decode_history(&v)?;
                let before = hist.len();
                prune(&mut hist, &config, now);
                if hist.len() == before {
                    continue;
                }
                removed = removed.saturating_add(before.saturating_sub(hist.len()));
                if hist.is_empty() {
                    t.remove(k.as_str()).map_err(backend)?;
                } else {
                    t.insert(k.as_str(), codec::encode_history(&hist).as_slice()).map_err(backend)?;
                }
            }
        }
        txn.commit().map_err(backend)?;
    }
    Ok((removed, next))
}

fn table_name(bucket: &str) -> String {
    format!("kv/{bucket}")
}

/// Drops revisions older than the TTL (each expires `ttl` after it was written, as in JetStream).
fn prune(hist: &mut Vec<Stored>, config: &BucketConfig, now: SystemTime) {
    if let Some(ttl) = config.ttl {
        hist.retain(|e| e.created.checked_add(ttl).is_some_and(|end| end > now));
    }
}

/// One kept revision as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    revision: u64,
    operation: Operation,
    created: SystemTime,
    value: Bytes,
}

impl Stored {
    fn entry(&self, key: &str) -> Entry {
        Entry {
            key: key.to_owned(),
            value: self.value.clone(),
            revision: self.revision,
            operation: self.operation,
            created: self.created,
        }
    }
}

impl Store for EmbeddedStore {
    type Kv = EmbeddedKv;

    async fn bucket(&self, config: &BucketConfig) -> Result<EmbeddedKv, KvError> {
        config.validate()?;
        let inner = self.inner.clone();
        let c = config.clone();
        tokio::task::spawn_blocking(move || {
            let txn = inner.db.begin_write().map_err(backend)?;
            {
                let mut b = txn.open_table(BUCKETS).map_err(backend)?;
                b.insert(c.name.as_str(), codec::encode_config(&c).as_slice()).map_err(backend)?;
                let name = table_name(&c.name);
                txn.open_table(TableDefinition::<&str, &[u8]>::new(&name)).map_err(backend)?;
            }
            txn.commit().map_err(backend)
        })
        .await
        .map_err(backend)??;
        Ok(EmbeddedKv {
            inner: self.inner.clone(),
            table: Arc::from(table_name(&config.name)),
            config: config.clone(),
            name: Arc::from(config.name.as_str()),
        })
    }
}

/// One bucket of an [`EmbeddedStore`].
#[derive(Clone)]
pub struct EmbeddedKv {
    inner: Arc<Inner>,
    table: Arc<str>,
    config: BucketConfig,
    /// The bucket's name: its change channel in `Inner::watchers` exists once someone watched.
    name: Arc<str>,
}

impl std::fmt::Debug for EmbeddedKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedKv").field("bucket", &self.config.name).finish()
    }
}

/// What a write requires of the key's latest revision.
#[derive(Clone, Copy)]
enum Expect {
    Anything,
    NoLiveValue,
    Revision(u64),
}

impl EmbeddedKv {
    /// The bucket's change channel, made on first use.
    fn store_watcher(&self) -> broadcast::Sender<Entry> {
        let mut w = self.inner.watchers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        w.entry(self.name.to_string()).or_insert_with(|| broadcast::channel(WATCH_QUEUE).0).clone()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EmbeddedKv) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me)).await.map_err(backend)?
    }

    fn history_now(&self, key: &str) -> Result<Vec<Stored>, KvError> {
        let r = self.inner.db.begin_read().map_err(backend)?;
        let t = r.open_table(TableDefinition::<&str, &[u8]>::new(&self.table)).map_err(backend)?;
        let mut hist = match t.get(key).map_err(backend)? {
            Some(v) => codec::decode_history(v.value())?,
            None => Vec::new(),
        };
        prune(&mut hist, &self.config, SystemTime::now());
        Ok(hist)
    }

    /// Queues a write for the next commit and waits for its result. The first writer to find no
    /// commit under way starts one on the blocking pool; that commit takes everything queued by
    /// then, and goes on with what queued meanwhile until the queue is empty.
    async fn write_async(&self, key: &str, operation: Operation, value: Bytes, expect: Expect) -> Result<u64, KvError> {
        check_key(key)?;
        check_value(value.len(), &self.config)?;
        let (reply, result) = tokio::sync::oneshot::channel();
        let pending = PendingWrite {
            table: self.table.clone(),
            config: self.config.clone(),
            key: key.to_owned(),
            operation,
            value,
            expect,
            reply,
        };
        let start = {
            let mut batch = self.inner.batch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            batch.pending.push(pending);
            !std::mem::replace(&mut batch.committing, true)
        };
        if start {
            let inner = self.inner.clone();
            drop(tokio::task::spawn_blocking(move || commit_batches(&inner)));
        }
        result.await.map_err(|_| KvError::Backend("the commit was abandoned".into()))?.map(|e| e.revision)
    }
}

/// Commits queued writes, a batch at a time, until none are left.
fn commit_batches(inner: &Inner) {
    // Should a commit panic (a redb bug), the writes queued behind it are answered with an error
    // and the next write starts a committer again, instead of every later write waiting forever.
    // (The writes of the failed batch see their reply channel dropped: "abandoned".)
    struct Unstuck<'a>(&'a Inner);
    impl Drop for Unstuck<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut batch = self.0.batch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                batch.committing = false;
                for w in batch.pending.drain(..) {
                    let _ = w.reply.send(Err(KvError::Backend("an earlier commit failed".into())));
                }
            }
        }
    }
    let _unstuck = Unstuck(inner);
    loop {
        let writes: Vec<PendingWrite> = {
            let mut batch = inner.batch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if batch.pending.is_empty() {
                batch.committing = false;
                return;
            }
            // Up to MAX_BATCH writes and MAX_BATCH_BYTES of values (at least one write): a burst
            // of large values (a handler module is half a megabyte) must not make one huge
            // transaction that holds all of them in memory at once.
            let mut bytes = 0usize;
            let n = batch
                .pending
                .iter()
                .take(MAX_BATCH)
                .take_while(|w| {
                    let first = bytes == 0;
                    bytes = bytes.saturating_add(w.value.len().max(1));
                    first || bytes <= MAX_BATCH_BYTES
                })
                .count();
            batch.pending.drain(..n).collect()
        };
        commit_one(inner, writes);
    }
}

/// One transaction for `writes`, in order (a later write sees the earlier ones). A write whose
/// expectation fails is answered with its error and the others go on; if the transaction itself
/// fails, every write in it gets that error and none is stored.
fn commit_one(inner: &Inner, writes: Vec<PendingWrite>) {
    let txn = match inner.db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            let err = backend(e);
            for w in writes {
                let _ = w.reply.send(Err(err.clone()));
            }
            return;
        }
    };
    let mut results = Vec::with_capacity(writes.len());
    let mut failed = None;
    for w in &writes {
        match w.apply(&txn) {
            Err(e @ KvError::Backend(_)) => {
                failed = Some(e);
                break;
            }
            r => results.push(r),
        }
    }
    let outcome = match failed {
        Some(e) => Err(e),
        None => txn.commit().map_err(backend),
    };
    if let Err(e) = outcome {
        for w in writes {
            let _ = w.reply.send(Err(e.clone()));
        }
        return;
    }
    for (w, r) in writes.into_iter().zip(results) {
        if let Ok(entry) = &r {
            // Nobody watching is fine (and then no channel exists: an idle bucket costs no queue).
            let watchers = inner.watchers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(tx) = watchers.get(w.config.name.as_str()) {
                let _ = tx.send(entry.clone());
            }
        }
        let _ = w.reply.send(r);
    }
}

impl Kv for EmbeddedKv {
    fn config(&self) -> &BucketConfig {
        &self.config
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>, KvError> {
        check_key(key)?;
        // Reads run inline: a redb read transaction never waits for the writer (MVCC) and is
        // served from the store's cache, a few microseconds, far less than handing the read to a
        // blocking thread and back. Writes (fsync) go to the blocking pool.
        let hist = self.history_now(key)?;
        Ok(hist.last().filter(|e| e.operation == Operation::Put).map(|e| e.entry(key)))
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        self.write_async(key, Operation::Put, value, Expect::Anything).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        self.write_async(key, Operation::Put, value, Expect::NoLiveValue).await
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, KvError> {
        self.write_async(key, Operation::Put, value, Expect::Revision(revision)).await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.write_async(key, Operation::Delete, Bytes::new(), Expect::Anything).await.map(|_| ())
    }

    async fn keys(&self) -> Result<Vec<String>, KvError> {
        self.blocking(|kv| {
            let r = kv.inner.db.begin_read().map_err(backend)?;
            let t = r.open_table(TableDefinition::<&str, &[u8]>::new(&kv.table)).map_err(backend)?;
            let now = SystemTime::now();
            let mut keys = Vec::new();
            for row in t.iter().map_err(backend)? {
                let (k, v) = row.map_err(backend)?;
                let mut hist = codec::decode_history(v.value())?;
                prune(&mut hist, &kv.config, now);
                if hist.last().is_some_and(|e| e.operation == Operation::Put) {
                    keys.push(k.value().to_owned());
                }
            }
            Ok(keys)
        })
        .await
    }

    async fn keys_under(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        check_key(prefix)?;
        let start = format!("{prefix}.");
        // A read transaction, inline as `get`: a range of the prefix's keys only.
        let r = self.inner.db.begin_read().map_err(backend)?;
        let t = r.open_table(TableDefinition::<&str, &[u8]>::new(&self.table)).map_err(backend)?;
        let now = SystemTime::now();
        let mut keys = Vec::new();
        for row in t.range(start.as_str()..).map_err(backend)? {
            let (k, v) = row.map_err(backend)?;
            if !k.value().starts_with(&start) {
                break;
            }
            let mut hist = codec::decode_history(v.value())?;
            prune(&mut hist, &self.config, now);
            if hist.last().is_some_and(|e| e.operation == Operation::Put) {
                keys.push(k.value().to_owned());
            }
        }
        Ok(keys)
    }

    async fn history(&self, key: &str) -> Result<Vec<Entry>, KvError> {
        check_key(key)?;
        Ok(self.history_now(key)?.iter().map(|e| e.entry(key)).collect())
    }

    async fn watch(&self, pattern: &str) -> Result<Watch, KvError> {
        check_pattern(pattern).map_err(|_| KvError::InvalidKey("invalid watch pattern"))?;
        let pattern = pattern.to_owned();
        let rx = tokio_stream_shim(self.store_watcher().subscribe());
        Ok(Watch::new(rx.filter_map(move |item| {
            let keep = match &item {
                Ok(e) => matches(&pattern, &e.key),
                Err(_) => true,
            };
            std::future::ready(keep.then_some(item))
        })))
    }
}

/// A broadcast receiver as a stream; a lagging receiver yields `WatchLagged` and goes on.
fn tokio_stream_shim(rx: broadcast::Receiver<Entry>) -> impl futures_util::Stream<Item = Result<Entry, KvError>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(e) => Some((Ok(e), rx)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some((Err(KvError::WatchLagged(n)), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

/// Byte layouts of stored values, versioned, decoded with bounds checks.
mod codec {
    use super::*;

    const HISTORY_V1: u8 = 1;
    const CONFIG_V1: u8 = 1;

    fn millis(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn encode_history(hist: &[Stored]) -> Vec<u8> {
        let mut out = vec![HISTORY_V1];
        out.extend_from_slice(&u32::try_from(hist.len()).unwrap_or(u32::MAX).to_be_bytes());
        for e in hist {
            out.extend_from_slice(&e.revision.to_be_bytes());
            out.push(match e.operation {
                Operation::Put => 0,
                Operation::Delete => 1,
            });
            out.extend_from_slice(&millis(e.created).to_be_bytes());
            out.extend_from_slice(&u32::try_from(e.value.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(&e.value);
        }
        out
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], KvError> {
            if self.0.len() < n {
                return Err(KvError::Corrupt("truncated record".into()));
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        fn u8(&mut self) -> Result<u8, KvError> {
            Ok(self.take(1)?.first().copied().unwrap_or_default())
        }
        fn u32(&mut self) -> Result<u32, KvError> {
            let b = self.take(4)?;
            Ok(u32::from_be_bytes(b.try_into().map_err(|_| KvError::Corrupt("u32".into()))?))
        }
        fn u64(&mut self) -> Result<u64, KvError> {
            let b = self.take(8)?;
            Ok(u64::from_be_bytes(b.try_into().map_err(|_| KvError::Corrupt("u64".into()))?))
        }
    }

    pub(super) fn decode_history(bytes: &[u8]) -> Result<Vec<Stored>, KvError> {
        let mut r = Reader(bytes);
        if r.u8()? != HISTORY_V1 {
            return Err(KvError::Corrupt("unknown history version".into()));
        }
        let n = r.u32()?;
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(64));
        for _ in 0..n {
            let revision = r.u64()?;
            let operation = match r.u8()? {
                0 => Operation::Put,
                1 => Operation::Delete,
                _ => return Err(KvError::Corrupt("unknown operation".into())),
            };
            let created = UNIX_EPOCH.checked_add(Duration::from_millis(r.u64()?)).unwrap_or(UNIX_EPOCH);
            let len = usize::try_from(r.u32()?).map_err(|_| KvError::Corrupt("length".into()))?;
            let value = Bytes::copy_from_slice(r.take(len)?);
            out.push(Stored { revision, operation, created, value });
        }
        if !r.0.is_empty() {
            return Err(KvError::Corrupt("trailing bytes".into()));
        }
        Ok(out)
    }

    pub(super) fn encode_config(c: &BucketConfig) -> Vec<u8> {
        let mut out = vec![CONFIG_V1, c.history];
        out.extend_from_slice(&u64::try_from(c.max_value_size).unwrap_or(u64::MAX).to_be_bytes());
        out.extend_from_slice(&c.ttl.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)).to_be_bytes());
        out.extend_from_slice(c.name.as_bytes());
        out
    }

    pub(super) fn decode_config(bytes: &[u8]) -> Result<BucketConfig, KvError> {
        let mut r = Reader(bytes);
        if r.u8()? != CONFIG_V1 {
            return Err(KvError::Corrupt("unknown config version".into()));
        }
        let history = r.u8()?;
        let max_value_size = usize::try_from(r.u64()?).map_err(|_| KvError::Corrupt("size".into()))?;
        let ttl = match r.u64()? {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        let name = String::from_utf8(r.0.to_vec()).map_err(|_| KvError::Corrupt("bucket name".into()))?;
        Ok(BucketConfig { name, history, max_value_size, ttl })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn history_round_trips_and_corruption_is_detected() {
            let h = vec![
                Stored {
                    revision: 7,
                    operation: Operation::Put,
                    created: UNIX_EPOCH + Duration::from_millis(5),
                    value: Bytes::from_static(b"abc"),
                },
                Stored { revision: 9, operation: Operation::Delete, created: UNIX_EPOCH, value: Bytes::new() },
            ];
            let bytes = encode_history(&h);
            assert_eq!(decode_history(&bytes).unwrap(), h);
            for cut in 0..bytes.len() {
                assert!(decode_history(&bytes[..cut]).is_err(), "truncated at {cut}");
            }
            let mut extra = bytes.clone();
            extra.push(0);
            assert!(decode_history(&extra).is_err());
        }

        #[test]
        fn config_round_trips() {
            let c = BucketConfig::seed("calls").unwrap();
            assert_eq!(decode_config(&encode_config(&c)).unwrap(), c);
        }
    }
}

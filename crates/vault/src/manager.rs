//! The vault manager: one user's vault on a bus and a store, running handler families.
//!
//! It provisions the seed's buckets, loads the families (the built-in ones and any installed in
//! its `handlers` bucket, each a module with a manifest), subscribes to
//! `OwnerSpace.{guid}.forVault.>` (the app's requests) and `MessageSpace.{guid}.>` (gift wraps
//! from peer vaults), and routes every event to one family, one handler and one entity:
//!
//! 1. the subject names the family and the kind, the kind the handler (by the manifest), and the
//!    message's entity field (`call_id`) the entity;
//! 2. the handler gets that entity's state and the members of the indexes its manifest names
//!    (`active`, `with.{peer}`), never every entity, and runs in a fresh WASM instance;
//! 3. its outputs are performed in order: store (the entity's state, its index entry with tags
//!    and timer, its records, all at once), seal as a gift wrap to the peer's vault key and
//!    publish to its `MessageSpace`, notify the app, count.
//!
//! Events of one entity run in the order they arrived; events of different entities run
//! concurrently (at most [`VaultOptions::concurrency`] at once), except that a *wide* handler
//! (one given indexes) runs alone among its family's events, so what it read of other entities
//! stays true while it runs.
//!
//! Timers are per entity, kept in the store with the entity's index entry and in memory; the vault
//! sleeps until the earliest and runs nothing while none is due. After a restart, timers that
//! passed while it was down fire at once.
//!
//! A gift wrap is accepted only when it unwraps for this vault's key, is fresh, and passes the
//! family's peer policy (for `connections`: sealed by the vault key of the active connection its
//! `from_guid` names); anything else is dropped, counted and logged without guids.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_crypto::{VaultKey, giftwrap};
use callvault_kernel::{
    EntityKey, EntityState, Event, HandlerId, HandlerSpec, Index, Input, Json, Manifest, Meta, Outcome, OutputItem,
    Page, PageRecord, PageSpec, PeerPolicy, Tag, VerifiedToken, WireMessage,
};
use callvault_protocol::calling::CallRecord;
use callvault_protocol::family::{FamilySubject, Pattern, Space};
use callvault_protocol::fields::{ErrorCode, ErrorText};
use callvault_protocol::profile::ProfileRecord;
use callvault_protocol::ratelog::RateLimitedLog;
use callvault_protocol::redact::Scrubbed;
use callvault_protocol::subject::{PeerKind, RequestKind};
use callvault_protocol::{Guid, MAX_MESSAGE_BYTES, MessageId, Timestamp};
use callvault_store::{BucketConfig, BucketNaming, Kv, KvError, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OwnedSemaphorePermit, RwLock, Semaphore, oneshot};

use crate::admin::{self, AdminError, AdminRequest};
use crate::connections::{self, Connection, ConnectionState};
use crate::invite::{self, InviteError, InviteToken};
use crate::modules;
use crate::runtime::{HandlerError, HandlerLimits, HandlerRuntime};
pub use crate::stats::VaultStats;
use crate::writer::{self, Write, Writer};

/// The bucket whose record under a connection's guid shows that connection (the profile
/// family keeps a connection's shared profile there).
const PROFILE_BUCKET: &str = "profile";

/// How a connection shows itself, from its profile record.
type Shown = Option<(callvault_protocol::fields::DisplayName, Option<callvault_protocol::fields::AvatarUrl>)>;

/// Log lines about refused or dropped messages: at most this many a second, for all vaults of
/// the process (a flood must not become a flood of log lines).
static REFUSALS: RateLimitedLog = RateLimitedLog::per_second(10);

/// How a vault behaves.
#[derive(Debug, Clone)]
pub struct VaultOptions {
    /// Ring timeout (seed: 60 s), given to the `call` family in its settings (`ring_timeout_secs`).
    pub ring_timeout: Duration,
    /// How long after a timer's handler failed (or left its deadline standing) the timer fires
    /// again.
    pub sweep_every: Duration,
    /// Bucket names: own store (`Local`) or a shared server (`Shared`).
    pub naming: BucketNaming,
    /// Handler budgets.
    pub limits: HandlerLimits,
    /// Events handled at once (of different entities).
    pub concurrency: usize,
    /// Events received and not yet handled; past it the vault stops reading the bus until one is
    /// done (the bus then buffers, and drops past its own bound).
    pub max_queued: usize,
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(60),
            sweep_every: Duration::from_secs(30),
            naming: BucketNaming::Local,
            limits: HandlerLimits::default(),
            concurrency: 8,
            max_queued: 256,
        }
    }
}

/// Why a vault could not start or handle an event.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A bucket failed.
    #[error("store: {0}")]
    Store(#[from] KvError),
    /// The bus failed.
    #[error("bus: {0}")]
    Bus(#[from] callvault_bus::BusError),
    /// A handler failed.
    #[error("handler: {0}")]
    Handler(#[from] HandlerError),
    /// Handler modules could not be installed.
    #[error("modules: {0}")]
    Modules(#[from] modules::ModulesError),
    /// A connection entry is unusable.
    #[error("connections: {0}")]
    Connection(#[from] connections::ConnectionError),
    /// An invite was refused.
    #[error("invite: {0}")]
    Invite(#[from] InviteError),
    /// The family holds as many live entities as its manifest allows.
    #[error("the {family} family holds its most live entities ({max})")]
    EntityBound {
        /// Which family.
        family: String,
        /// Its bound.
        max: usize,
    },
    /// A handler asked for an output it has no right to.
    #[error("output refused: {0}")]
    Output(&'static str),
}

/// Why an admin request got no normal answer.
enum AdminFailure {
    /// Refused: the app is told why.
    Refused(ErrorCode, String),
    /// The vault failed.
    Vault(VaultError),
}

impl From<AdminError> for AdminFailure {
    fn from(e: AdminError) -> Self {
        Self::Refused(ErrorCode::InvalidMessage, e.to_string())
    }
}

/// The vault's buckets.
#[derive(Debug, Clone)]
pub struct Buckets<K> {
    /// `calls`: records, key `call_id`.
    pub calls: K,
    /// `handler-state`: entities' state (`<family>.<entity>`) and index entries
    /// (`index.<family>.<entity>`).
    pub state: K,
    /// `connections`: key = peer guid.
    pub connections: K,
    /// `handlers`: modules.
    pub handlers: K,
    /// Every seed bucket by its seed name, for families' records.
    pub by_name: BTreeMap<String, K>,
}

/// One family running in this vault.
struct Family {
    manifest: Manifest,
    /// The tags `/metrics` shows as gauges: those its handlers are given or count, without
    /// `{peer}` (the call family: `active`, `live`).
    gauges: Vec<Tag>,
    /// Its live entities' tags and timers.
    index: std::sync::Mutex<Index>,
    /// Wide handlers write-lock it; the others read-lock it.
    wide: RwLock<()>,
    /// Its entities' states and peers as last handled (the vault is the only writer of its
    /// `handler-state`): every live one's, and a settled one's until its write is done, so an
    /// event reads the store only for a settled entity it names. Bounded by the family's live
    /// bound and the vault's queue.
    states: std::sync::Mutex<HashMap<EntityKey, Cached>>,
}

/// An entity's state in memory: whether it is live, and how many of its writes are under way.
/// `None`: forgotten, its delete under way.
struct Cached {
    state: Option<EntityState>,
    peer: Option<Guid>,
    live: bool,
    pending: u32,
}

/// What an event made: its outcome, what announces it once its writes (if any) are done.
struct Staged {
    outcome: Outcome,
    announce: Vec<OutputItem>,
    connection: Option<Connection>,
    /// A message sent at least once, and its sender: acknowledged once handled.
    ack_of: Option<(WireMessage, Guid)>,
    /// The sender as its checked token shows it, for a message from a vault a token introduced
    /// (its acknowledgement is sealed to it).
    introducer: Option<Connection>,
    notified: bool,
    app: Option<Option<MessageId>>,
    entity: EntityKey,
    /// Its entity is what the message's entity field names (so an error may name it).
    entity_named: bool,
    t: Timestamp,
    written: Option<writer::Written>,
    /// The entities it stored (their writes are among `written`).
    stored: Vec<EntityKey>,
    profiles_written: Vec<Guid>,
}

/// One stored entity of an event: its writes and what memory keeps.
struct StagedEntity<K> {
    entity: EntityKey,
    cached: (EntityState, Option<Guid>),
    live: bool,
    meta: Meta,
    writes: Vec<Write<K>>,
    profiles: Vec<Guid>,
}

impl Family {
    fn new(manifest: Manifest) -> Self {
        let mut gauges: Vec<Tag> = manifest
            .handlers
            .iter()
            .flat_map(|h| h.context.iter().filter_map(|t| Tag::parse(t).ok()).chain(h.counts.iter().cloned()))
            .collect();
        gauges.sort();
        gauges.dedup();
        Self {
            manifest,
            gauges,
            index: std::sync::Mutex::new(Index::new()),
            wide: RwLock::new(()),
            states: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn name(&self) -> &str {
        self.manifest.family.as_str()
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<EntityKey, Cached>> {
        self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The writes of `stored` are done (or failed): what is settled need not stay in memory.
    fn written(&self, stored: &[EntityKey]) {
        let mut states = self.states();
        for e in stored {
            if let Some(c) = states.get_mut(e) {
                c.pending = c.pending.saturating_sub(1);
                if c.pending == 0 && !c.live {
                    states.remove(e);
                }
            }
        }
    }
}

/// An entity's state as stored: the kernel's envelope around the module's document.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    /// The state version the module wrote.
    v: u32,
    /// The peer it is with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer: Option<Guid>,
    /// The module's document.
    state: Json,
}

/// An entity's index entry as stored (only while it is live).
#[derive(Debug, Serialize, Deserialize)]
struct IndexEntry {
    #[serde(flatten)]
    meta: Meta,
    /// The state version of the entity's state.
    v: u32,
}

/// The store key of an entity's state.
fn state_key(family: &str, entity: &EntityKey) -> String {
    format!("{family}.{entity}")
}

/// The store key of an entity's index entry.
fn index_key(family: &str, entity: &EntityKey) -> String {
    format!("index.{family}.{entity}")
}

/// The key marking the kernel's layout of `handler-state` (absent: an older callvault's).
const LAYOUT_KEY: &str = "kernel.layout";
const LAYOUT: &[u8] = b"2";

/// A lane's last place: its sequence number, and the signal its event sends when done.
type Tail = (u64, oneshot::Receiver<()>);

/// The per-entity order of events: each event waits for the one before it on its entity.
#[derive(Default)]
struct Lanes {
    tails: std::sync::Mutex<HashMap<(String, String), Tail>>,
    next: AtomicU64,
}

/// A place in an entity's lane: wait for the event before, then run, then let the next one go.
struct Turn {
    lanes: Arc<Lanes>,
    key: (String, String),
    seq: u64,
    before: Option<oneshot::Receiver<()>>,
    done: Option<oneshot::Sender<()>>,
}

impl Lanes {
    /// Takes the next place in `lane`'s queue (in call order: the caller's order is the lane's).
    fn enter(self: &Arc<Self>, family: &str, lane: &str) -> Turn {
        let (tx, rx) = oneshot::channel();
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let key = (family.to_owned(), lane.to_owned());
        let mut tails = self.tails.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = tails.insert(key.clone(), (seq, rx)).map(|(_, r)| r);
        Turn { lanes: self.clone(), key, seq, before, done: Some(tx) }
    }
}

/// The kind of the kernel's acknowledgements, in every family (`MessageSpace.{guid}.<family>.ack`).
const ACK: &str = "ack";
/// How long a vault gathers the acknowledgements it owes one peer before sending them in one
/// gift wrap (a retry waits [`OUTBOX_FIRST_WAIT`], so this only spares wraps).
const ACK_GATHER: Duration = Duration::from_millis(200);
/// The most messages one acknowledgement names (`message_ids`, kernel schema 1.1.0).
const ACK_MAX_IDS: usize = 64;

/// Acknowledgements owed to one peer in one family, gathered until `due`.
struct OwedAcks {
    ids: Vec<String>,
    /// The peer's vault, as it was when the first of them was handled (it may be a vault a token
    /// introduced, which the connections bucket does not hold).
    to: Connection,
    due: Timestamp,
    /// A task waits to send them at `due`.
    scheduled: bool,
}

/// The lane of a family's wide events (`*` is no entity key).
const WIDE_LANE: &str = "*";

/// The turns of one job: its entity's lane, and for a wide handler its family's wide lane, so
/// wide events (a peer's calls one after another) keep their order too.
struct Turns(Vec<Turn>);

/// A job's turns to run its handler and to announce what it did.
struct JobTurns {
    compute: Turns,
    announce: Turns,
}

impl JobTurns {
    /// No turns (an event run while the vault takes a family on, before it serves).
    fn none() -> Self {
        Self { compute: Turns(Vec::new()), announce: Turns(Vec::new()) }
    }
}

impl Turns {
    fn enter(lanes: &Arc<Lanes>, job: &Job) -> Self {
        let mut t = vec![lanes.enter(job.family.name(), job.entity.as_str())];
        if job.spec.is_wide() {
            t.push(lanes.enter(job.family.name(), WIDE_LANE));
        }
        Self(t)
    }

    async fn wait(&mut self) {
        for t in &mut self.0 {
            t.wait().await;
        }
    }
}

impl Turn {
    async fn wait(&mut self) {
        if let Some(before) = self.before.take() {
            // A dropped predecessor (its task ended early) lets this one go too.
            let _ = before.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
        let mut tails = self.lanes.tails.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if tails.get(&self.key).is_some_and(|(seq, _)| *seq == self.seq) {
            tails.remove(&self.key);
        }
    }
}

/// A gift wrap that unwrapped and passed the peer policy.
struct Opened {
    content: String,
    json: serde_json::Value,
    from: Guid,
    /// The sender's connection (none for a vault a token introduces).
    connection: Option<Connection>,
    /// The tokens checked in it.
    tokens: BTreeMap<String, VerifiedToken>,
}

/// A message a family sends at least once: kept until the peer's vault acknowledges it, and sent
/// again with capped backoff meanwhile (`outbox.<family>.<peer>.<message_id>` in `handler-state`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutboxEntry {
    family: String,
    to: Guid,
    kind: String,
    json: Json,
    created: Timestamp,
    #[serde(skip)]
    attempt: u32,
    #[serde(skip)]
    next_at: Option<Timestamp>,
}

/// The first retry of an unacknowledged message comes after this; each next one after twice the
/// wait before, up to [`OUTBOX_MAX_WAIT`].
const OUTBOX_FIRST_WAIT: Duration = Duration::from_secs(1);
const OUTBOX_MAX_WAIT: Duration = Duration::from_secs(60);
/// A message not acknowledged within this is given up (counted).
const OUTBOX_GIVE_UP: Duration = Duration::from_secs(24 * 60 * 60);
/// The most messages a vault keeps unacknowledged; past it the oldest is given up.
const OUTBOX_MAX: usize = 10_000;

fn outbox_key(family: &str, to: &Guid, message_id: &str) -> String {
    format!("outbox.{family}.{to}.{message_id}")
}

/// The wait before retry `attempt` (0: the first).
fn outbox_wait(attempt: u32) -> Duration {
    OUTBOX_FIRST_WAIT.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX)).min(OUTBOX_MAX_WAIT)
}

/// An event routed to a family, a handler and an entity, not yet run.
struct Job {
    family: Arc<Family>,
    spec: HandlerSpec,
    entity: EntityKey,
    event: Event,
    /// The peer the message names (for a peer message: its checked sender).
    peer: Option<Guid>,
    /// The sender's connection, for a peer message (already read to check the seal).
    connection: Option<Connection>,
    /// For an app request: the message it answers, so a refusal gets an answer.
    app: Option<Option<MessageId>>,
    /// The tokens the kernel checked in the message.
    tokens: BTreeMap<String, VerifiedToken>,
}

impl Job {
    /// An event of the vault's own (a timer, a restore): no peer, no app to answer.
    fn internal(family: &Arc<Family>, spec: &HandlerSpec, entity: EntityKey, event: Event) -> Self {
        Self {
            family: family.clone(),
            spec: spec.clone(),
            entity,
            event,
            peer: None,
            connection: None,
            app: None,
            tokens: BTreeMap::new(),
        }
    }
}

/// Why a token in a message was refused.
#[derive(Debug)]
struct TokenRefused(ErrorCode, String);

/// What an invite token says, checked at `now` (Unix seconds).
fn check_token(raw: Option<&str>, now: u64) -> Result<VerifiedToken, TokenRefused> {
    raw.ok_or(InviteError::Malformed)
        .and_then(InviteToken::parse)
        .and_then(|t| invite::checked(&t, now))
        .map_err(|e| TokenRefused(ErrorCode::InvalidMessage, e.to_string()))
}

/// A stored JSON document as it is, if it is JSON text.
fn stored_json(bytes: &[u8]) -> Option<Json> {
    let text = std::str::from_utf8(bytes).ok()?;
    serde_json::value::RawValue::from_string(text.to_owned()).ok().map(Json)
}

/// One user's vault.
pub struct Vault<B: Bus + Clone, K: Kv + Clone> {
    guid: Guid,
    key: Arc<VaultKey>,
    bus: B,
    buckets: Buckets<K>,
    runtime: Arc<HandlerRuntime>,
    options: VaultOptions,
    stats: Arc<VaultStats>,
    families: std::sync::RwLock<BTreeMap<String, Arc<Family>>>,
    lanes: Arc<Lanes>,
    running: Semaphore,
    queued: Arc<Semaphore>,
    /// Signalled when a timer is set, so the loop sleeps until the earliest.
    timers_changed: Notify,
    /// Families installed while running, from the module watch.
    installed: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Manifest>>>,
    installed_tx: tokio::sync::mpsc::Sender<Manifest>,
    /// Set once the subscriptions are live and passed timers are dispatched.
    serving: tokio::sync::watch::Sender<bool>,
    /// Seal-layer conversation keys with peer vaults (one ECDH per peer, not per message).
    seal_keys: giftwrap::SealKeys,
    /// The settings every family's handlers get (`ring_timeout_secs`), made once.
    /// Each family's settings from the vault's options, by family name.
    family_config: BTreeMap<String, Json>,
    /// Connections' profiles as last read from the `profile` bucket (see `shown_as`).
    profiles: std::sync::Mutex<HashMap<Guid, Shown>>,
    /// Messages sent at least once and not yet acknowledged, by outbox key.
    outbox: std::sync::Mutex<BTreeMap<String, OutboxEntry>>,
    /// Acknowledgements not yet sent, by family and peer.
    owed_acks: std::sync::Mutex<BTreeMap<(String, Guid), OwedAcks>>,
    /// Every event's writes, in order.
    writer: Writer<K>,
    /// The write epoch the vault's memory was last read at (see [`Vault::recover`]).
    recovered: AtomicU64,
    recovery: tokio::sync::Mutex<()>,
    /// The announce turns: an entity's events are announced in the order they ran.
    announcing: Arc<Lanes>,
}

fn now() -> Timestamp {
    let ms =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(ms)
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// 16 bytes from a process-wide counter and the clock: unique ids for the vault's own error
/// notifications (not secrets).
fn rand_bytes() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[8..].copy_from_slice(&t.to_be_bytes());
    b
}

/// Unix seconds of a timestamp (gift wraps and invites count in seconds).
fn secs(t: Timestamp) -> u64 {
    u64::try_from(t.unix_millis() / 1000).unwrap_or(0)
}

fn unix_secs() -> u64 {
    secs(now())
}

/// An app request's JSON (`null` when it is too large or not JSON: the handlers refuse it).
fn request_json(payload: &[u8]) -> serde_json::Value {
    (payload.len() <= MAX_MESSAGE_BYTES)
        .then(|| serde_json::from_slice(payload).ok())
        .flatten()
        .unwrap_or(serde_json::Value::Null)
}

/// Sleeps until `at`, or forever when there is nothing to wake for.
async fn sleep_until(at: Option<Timestamp>) {
    match at {
        Some(t) => tokio::time::sleep(t.saturating_since(now())).await,
        None => std::future::pending().await,
    }
}

/// A received message for a handler; one over the size limit goes as `null` (refused unread).
fn wire(kind: &str, payload: &[u8]) -> WireMessage {
    WireMessage::from_bytes(kind, if payload.len() <= MAX_MESSAGE_BYTES { payload } else { b"null" })
}

fn str_field<'a>(json: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    json.get(field).and_then(|v| v.as_str())
}

fn guid_field(json: &serde_json::Value, fields: &[String]) -> Option<Guid> {
    fields.iter().find_map(|f| str_field(json, f).and_then(|s| Guid::parse(s).ok()))
}

/// A read or write lock on a family, as its handler needs.
enum FamilyGuard<'a> {
    Narrow(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'a, ()>),
    Wide(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'a, ()>),
}

impl<B: Bus + Clone, K: Kv + Clone> Vault<B, K> {
    /// Provisions the seed's buckets in `store`, installs the built-in handlers where missing,
    /// loads every family, migrates state an older callvault stored, and loads the indexes.
    pub async fn open<S: Store<Kv = K>>(
        store: &S,
        bus: B,
        guid: Guid,
        key: VaultKey,
        options: VaultOptions,
    ) -> Result<Self, VaultError> {
        let mut by_name = BTreeMap::new();
        for (base, ..) in callvault_store::SEED_BUCKETS {
            let config = BucketConfig::seed(base).ok_or_else(|| KvError::InvalidConfig((*base).to_owned()))?;
            let config = BucketConfig { name: options.naming.name(base), ..config };
            by_name.insert((*base).to_owned(), store.bucket(&config).await?);
        }
        let bucket = |base: &str| -> Result<K, VaultError> {
            by_name.get(base).cloned().ok_or_else(|| VaultError::Store(KvError::InvalidConfig(base.to_owned())))
        };
        let buckets = Buckets {
            calls: bucket("calls")?,
            state: bucket("handler-state")?,
            connections: bucket("connections")?,
            handlers: bucket("handlers")?,
            by_name: by_name.clone(),
        };
        modules::install_builtins(&buckets.handlers).await?;
        let runtime = Arc::new(HandlerRuntime::new(options.limits));
        let manifests = modules::load_all(&buckets.handlers, &runtime).await?;
        let (installed_tx, installed_rx) = tokio::sync::mpsc::channel(16);
        let vault = Self {
            guid,
            key: Arc::new(key),
            bus,
            buckets,
            runtime,
            stats: Arc::new(VaultStats::default()),
            families: std::sync::RwLock::new(BTreeMap::new()),
            lanes: Arc::new(Lanes::default()),
            running: Semaphore::new(options.concurrency.max(1)),
            queued: Arc::new(Semaphore::new(options.max_queued.max(1))),
            timers_changed: Notify::new(),
            installed: std::sync::Mutex::new(Some(installed_rx)),
            installed_tx,
            serving: tokio::sync::watch::channel(false).0,
            seal_keys: giftwrap::SealKeys::new(),
            family_config: Json::of(&serde_json::json!({"ring_timeout_secs": options.ring_timeout.as_secs()}))
                .ok()
                .map(|c| ("call".to_owned(), c))
                .into_iter()
                .collect(),
            options,
            outbox: std::sync::Mutex::new(BTreeMap::new()),
            owed_acks: std::sync::Mutex::new(BTreeMap::new()),
            writer: Writer::start(),
            recovered: AtomicU64::new(0),
            recovery: tokio::sync::Mutex::new(()),
            announcing: Arc::new(Lanes::default()),
            profiles: std::sync::Mutex::new(HashMap::new()),
        };
        // One listing of the state bucket for every family; state an older callvault stored is
        // restored for every family before the layout is marked as the kernel's.
        let keys = vault.buckets.state.keys().await?;
        let legacy = vault.buckets.state.get(LAYOUT_KEY).await?.is_none();
        // Messages not acknowledged before the restart go out again soon.
        let outbox = vault.read_outbox(&keys).await?;
        *vault.outbox() = outbox;
        for m in manifests {
            vault.add_family(m, &keys, legacy).await?;
        }
        if legacy {
            vault.buckets.state.put(LAYOUT_KEY, Bytes::from_static(LAYOUT)).await?;
        }
        Ok(vault)
    }

    /// Takes a family on: loads its index from `keys` (the state bucket's), and restores live
    /// entities stored under an older state version and, when `legacy`, what an older callvault
    /// stored for it.
    async fn add_family(&self, manifest: Manifest, keys: &[String], legacy: bool) -> Result<(), VaultError> {
        let name = manifest.family.as_str().to_owned();
        let family = Arc::new(Family::new(manifest));
        let (index, mut restore) = self.read_index(&family, keys).await?;
        *family.index() = index;
        if legacy {
            // An older callvault stored each entity's document alone, under `<family>.<entity>`.
            let own = format!("{name}.");
            for key in keys {
                if let Some(entity) = key.strip_prefix(&own).and_then(|e| EntityKey::parse(e).ok())
                    && !restore.contains(&entity)
                {
                    restore.push(entity);
                }
            }
        }
        let family_ref = family.clone();
        // A newer version of an installed family replaces the older one (its index read again
        // from the store, where every stored entity's entry is).
        self.families.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name.clone(), family);
        if let Some(spec) = family_ref.manifest.for_restore().cloned() {
            for entity in restore {
                let job = Job::internal(&family_ref, &spec, entity, Event::Restore);
                if let Err(e) = self.execute(job, JobTurns::none()).await {
                    tracing::warn!(error = %Scrubbed(&e), "stored state could not be restored");
                }
            }
        }
        self.update_gauges(&family_ref);
        self.timers_changed.notify_one();
        Ok(())
    }

    fn family(&self, name: &str) -> Option<Arc<Family>> {
        self.families.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).cloned()
    }

    /// The families this vault runs.
    pub fn families(&self) -> Vec<Manifest> {
        self.all_families().iter().map(|f| f.manifest.clone()).collect()
    }

    /// How many live entities (with a tag or a timer) a family holds.
    pub fn live_entities(&self, family: &str) -> usize {
        self.family(family).map_or(0, |f| f.index().live())
    }

    /// The user's guid.
    pub fn guid(&self) -> &Guid {
        &self.guid
    }

    /// The vault's buckets.
    pub fn buckets(&self) -> &Buckets<K> {
        &self.buckets
    }

    /// Counters of what was dropped and refused.
    pub fn stats(&self) -> Arc<VaultStats> {
        self.stats.clone()
    }

    /// The handler runtime (its modules follow the `handlers` bucket while [`Vault::run`] runs).
    pub fn runtime(&self) -> Arc<HandlerRuntime> {
        self.runtime.clone()
    }

    /// Serves until the subscriptions end: requests, peer messages, timers, module updates.
    pub async fn run(self: Arc<Self>) -> Result<(), VaultError> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until the subscriptions end or `stop` completes. Events already received are
    /// finished (stored, sent, notified) before it returns.
    pub async fn run_until(self: Arc<Self>, stop: impl Future<Output = ()> + Send) -> Result<(), VaultError> {
        // Every request of the user's apps, known or not: each gets an answer.
        let mut requests = self.bus.subscribe(Pattern::for_vault_all(&self.guid).as_str()).await?;
        let mut peers = self.bus.subscribe(&format!("MessageSpace.{}.>", self.guid)).await?;
        self.bus.flush().await?;
        let installed = self.installed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let mut installed = match installed {
            Some(rx) => rx,
            None => tokio::sync::mpsc::channel(1).1,
        };
        // Stops with this task, however it ends (an abort included), and releases the bucket.
        let _reload = AbortOnDrop(tokio::spawn(modules::watch_and_reload_families(
            self.buckets.handlers.clone(),
            self.runtime.clone(),
            Some(self.installed_tx.clone()),
        )));
        self.serving.send_replace(true);
        let mut stop = std::pin::pin!(stop);
        loop {
            self.fire_due_timers().await;
            let wake = self.next_timer();
            tokio::select! {
                biased;
                () = &mut stop => break,
                m = requests.next() => match m {
                    Some(m) => self.clone().on_own_request(&m.subject, &m.payload).await,
                    None => break,
                },
                m = peers.next() => match m {
                    Some(m) => self.clone().on_peer_message(&m.subject, &m.payload).await,
                    None => break,
                },
                Some(m) = installed.recv() => {
                    // A family installed while running existed under no older callvault.
                    let added = match self.buckets.state.keys().await {
                        Ok(keys) => self.add_family(m, &keys, false).await,
                        Err(e) => Err(e.into()),
                    };
                    if let Err(e) = added {
                        tracing::warn!(error = %Scrubbed(&e), "an installed family could not be taken on");
                    }
                }
                () = self.timers_changed.notified() => {}
                () = sleep_until(wake) => {
                    self.stats.timer_wakeups.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Finish what was received, and acknowledge it.
        let all = u32::try_from(self.options.max_queued.max(1)).unwrap_or(u32::MAX);
        let _drained = self.queued.acquire_many(all).await;
        self.send_owed_acks(None).await;
        Ok(())
    }

    /// Waits until [`Vault::run_until`] listens on every subject.
    pub async fn wait_serving(&self) {
        let mut rx = self.serving.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, OutboxEntry>> {
        self.outbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Messages sent and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.outbox().len()
    }

    fn all_families(&self) -> Vec<Arc<Family>> {
        self.families.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }

    fn next_timer(&self) -> Option<Timestamp> {
        let entities = self.all_families().iter().filter_map(|f| f.index().next_timer()).min();
        let outbox = self.outbox().values().filter_map(|e| e.next_at).min();
        entities.into_iter().chain(outbox).min()
    }

    /// Dispatches every timer that is due, and sends again the messages whose retry is due.
    async fn fire_due_timers(self: &Arc<Self>) {
        let t = now();
        self.retry_outbox(t).await;
        for family in self.all_families() {
            let Some(spec) = family.manifest.for_timer().cloned() else { continue };
            let due = family.index().take_due(t);
            for entity in due {
                self.dispatch(Job::internal(&family, &spec, entity, Event::Timer)).await;
            }
        }
    }

    /// Queues a job behind its entity's earlier events and runs it on a task of its own.
    async fn dispatch(self: &Arc<Self>, job: Job) {
        let Ok(permit) = self.queued.clone().acquire_owned().await else { return };
        let vault = self.clone();
        // The lanes are entered here, in arrival order; the task waits its turns.
        let turns = self.enter(&job);
        tokio::spawn(async move {
            if let Err(e) = vault.execute(job, turns).await {
                tracing::warn!(error = %Scrubbed(&e), "event failed");
            }
            drop::<OwnedSemaphorePermit>(permit);
            vault.schedule_acks();
        });
    }

    /// Sends again every unacknowledged message whose retry is due; gives up those too old.
    async fn retry_outbox(&self, t: Timestamp) {
        let due: Vec<(String, OutboxEntry)> = {
            let mut outbox = self.outbox();
            let mut due = Vec::new();
            for (key, e) in outbox.iter_mut().filter(|(_, e)| e.next_at.is_some_and(|at| at <= t)) {
                e.next_at = Some(t.saturating_add(outbox_wait(e.attempt)));
                e.attempt = e.attempt.saturating_add(1);
                due.push((key.clone(), e.clone()));
            }
            due
        };
        for (key, e) in due {
            if t.saturating_since(e.created) > OUTBOX_GIVE_UP {
                self.stats.outbox_given_up.fetch_add(1, Ordering::Relaxed);
                self.forget_outbox(vec![key]);
                continue;
            }
            self.stats.outbox_retries.fetch_add(1, Ordering::Relaxed);
            if let Err(err) = self.seal_and_send(&e.family, &e.to, &e.kind, e.json.get(), t, None).await {
                tracing::warn!(error = %Scrubbed(&err), "an unacknowledged message could not be sent again");
            }
        }
    }

    /// Forgets outbox entries, their deletes at once. Nothing waits for the store's deletes: an
    /// entry a crash leaves behind is only sent again (the peer takes the repeat as a duplicate
    /// and acknowledges it again).
    fn forget_outbox(&self, keys: Vec<String>) {
        let keys: Vec<String> = {
            let mut outbox = self.outbox();
            keys.into_iter().filter(|k| outbox.remove(k).is_some()).collect()
        };
        if keys.is_empty() {
            return;
        }
        self.timers_changed.notify_one();
        // Through the writer, in the next round with the events' writes (no commit of their
        // own). Nothing waits for them: an entry whose delete fails is only sent again (after a
        // restart, or when the vault reads its memory again), and acknowledged again.
        let writes =
            keys.into_iter().map(|key| Write { bucket: self.buckets.state.clone(), key, value: None }).collect();
        drop(self.writer.submit(self.writer.epoch(), writes));
    }

    /// The outbox entry of a message the family sends at least once: its key, the entry, and
    /// what is stored.
    fn outbox_entry(
        &self,
        family: &str,
        to: &Guid,
        message: &WireMessage,
        t: Timestamp,
    ) -> Result<(String, OutboxEntry, Bytes), VaultError> {
        let Some(message_id) = message.value().get("message_id").and_then(|v| v.as_str()).map(str::to_owned) else {
            return Err(VaultError::Output("a message to send at least once names no message_id"));
        };
        if MessageId::parse(&message_id).is_err() {
            return Err(VaultError::Output("a message to send at least once names no valid message_id"));
        }
        let key = outbox_key(family, to, &message_id);
        let entry = OutboxEntry {
            family: family.to_owned(),
            to: to.clone(),
            kind: message.kind.clone(),
            json: Json(message.json.clone()),
            created: t,
            attempt: 1,
            next_at: Some(t.saturating_add(outbox_wait(0))),
        };
        let bytes = serde_json::to_vec(&entry).map_err(|_| VaultError::Output("outbox entry"))?;
        Ok((key, entry, Bytes::from(bytes)))
    }

    /// Keeps messages the family sends at least once (their entries are being written) until
    /// the peer acknowledges them; past [`OUTBOX_MAX`] the oldest are given up.
    fn keep_in_outbox(&self, kept: Vec<(String, OutboxEntry)>) {
        if kept.is_empty() {
            return;
        }
        let oldest: Vec<String> = {
            let mut outbox = self.outbox();
            outbox.extend(kept);
            let over = outbox.len().saturating_sub(OUTBOX_MAX);
            let mut by_age: Vec<(&String, Timestamp)> = Vec::new();
            if over > 0 {
                by_age = outbox.iter().map(|(k, e)| (k, e.created)).collect();
                by_age.sort_by_key(|(_, c)| *c);
            }
            by_age.into_iter().take(over).map(|(k, _)| k.clone()).collect()
        };
        if !oldest.is_empty() {
            self.stats.outbox_given_up.fetch_add(u64::try_from(oldest.len()).unwrap_or(u64::MAX), Ordering::Relaxed);
            self.forget_outbox(oldest);
        }
    }

    /// Seals `json` to the vault of `to` (its connection: `known` when the caller has it) and
    /// publishes it on `MessageSpace.{to}.<family>.<kind>`. A peer that is no connection gets
    /// nothing (logged).
    async fn seal_and_send(
        &self,
        family: &str,
        to: &Guid,
        kind: &str,
        json: &str,
        t: Timestamp,
        known: Option<&Connection>,
    ) -> Result<(), VaultError> {
        let vault_key = match known.filter(|c| &c.guid == to) {
            Some(c) => c.vault_key()?,
            None => match connections::get(&self.buckets.connections, to).await? {
                Some(c) => c.vault_key()?,
                None => {
                    if let Some(suppressed) = REFUSALS.allow() {
                        tracing::info!(suppressed, "message for a peer that is no connection not sent");
                    }
                    return Ok(());
                }
            },
        };
        let family = callvault_protocol::family::FamilyName::parse(family)
            .map_err(|_| VaultError::Output("a family name that is not a token"))?;
        let kind = callvault_protocol::family::Kind::parse(kind)
            .map_err(|_| VaultError::Output("a message kind that is not a token"))?;
        let subject = FamilySubject::message_space(to, &family, &kind);
        match giftwrap::wrap_with(&self.seal_keys, &self.key, &vault_key, json, secs(t)) {
            Ok(wrap) => self.bus.publish(&subject.to_string(), Bytes::from(wrap)).await?,
            Err(e) => tracing::warn!(error = %Scrubbed(&e), "could not seal a message"),
        }
        Ok(())
    }

    /// A peer's acknowledgement of messages this vault sent at least once: they are forgotten.
    async fn handle_ack(&self, family: &str, wrap: &[u8]) -> Result<(), VaultError> {
        let Some(opened) = self.open_wrap(wrap).await? else { return Ok(()) };
        let listed = opened.json.get("message_ids").and_then(|v| v.as_array());
        let ids = listed.into_iter().flatten().take(ACK_MAX_IDS).filter_map(|v| v.as_str());
        let ids = str_field(&opened.json, "message_id").into_iter().chain(ids);
        // Only the vault a message went to can acknowledge it: the key names that peer.
        let keys: Vec<String> =
            ids.filter(|s| MessageId::parse(s).is_ok()).map(|id| outbox_key(family, &opened.from, id)).collect();
        self.forget_outbox(keys);
        Ok(())
    }

    fn owed(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, Guid), OwedAcks>> {
        self.owed_acks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Owes the peer an acknowledgement of a message it sent at least once (the handler has run
    /// on it). Acknowledgements to one peer are gathered for [`ACK_GATHER`] (or until
    /// [`ACK_MAX_IDS`]) and sent in one wrap.
    async fn acknowledge(&self, family: &Family, peer: &Connection, message: &WireMessage, t: Timestamp) {
        let Some(id) = message.value().get("message_id").and_then(|v| v.as_str()).map(str::to_owned) else { return };
        let key = (family.name().to_owned(), peer.guid.clone());
        let full = {
            let mut owed = self.owed();
            let entry = owed.entry(key.clone()).or_insert_with(|| OwedAcks {
                ids: Vec::new(),
                to: peer.clone(),
                due: t.saturating_add(ACK_GATHER),
                scheduled: false,
            });
            if !entry.ids.contains(&id) {
                entry.ids.push(id);
            }
            let full = entry.ids.len() >= ACK_MAX_IDS;
            full.then(|| owed.remove(&key)).flatten()
        };
        if let Some(acks) = full {
            self.send_acks(family.name(), &peer.guid, acks.ids, t, Some(peer)).await;
        }
    }

    /// Lets a task send the acknowledgements gathered since the last one was scheduled, when they
    /// are due (a task, not the vault's timer: what finishes traffic wakes nothing afterwards).
    /// Those owed by an event run outside [`Vault::run_until`] go with the next scheduled ones,
    /// or when the vault stops.
    fn schedule_acks(self: &Arc<Self>) {
        let due = {
            let mut owed = self.owed();
            owed.values_mut()
                .filter(|a| !a.scheduled)
                .map(|a| {
                    a.scheduled = true;
                    a.due
                })
                .min()
        };
        if let Some(due) = due {
            let vault = self.clone();
            tokio::spawn(async move {
                sleep_until(Some(due)).await;
                vault.send_owed_acks(Some(now())).await;
            });
        }
    }

    /// Sends the acknowledgements due at `t` (all of them: `None`).
    async fn send_owed_acks(&self, t: Option<Timestamp>) {
        let due: Vec<((String, Guid), OwedAcks)> = {
            let mut owed = self.owed();
            let keys: Vec<(String, Guid)> =
                owed.iter().filter(|(_, a)| t.is_none_or(|t| a.due <= t)).map(|(k, _)| k.clone()).collect();
            keys.into_iter().filter_map(|k| owed.remove(&k).map(|a| (k, a))).collect()
        };
        let t = t.unwrap_or_else(now);
        for ((family, peer), acks) in due {
            self.send_acks(&family, &peer, acks.ids, t, Some(&acks.to)).await;
        }
    }

    async fn send_acks(&self, family: &str, peer: &Guid, ids: Vec<String>, t: Timestamp, known: Option<&Connection>) {
        let Some(first) = ids.first() else { return };
        let ack = serde_json::json!({
            "type": format!("{family}.ack"), "message_id": first, "message_ids": ids, "from_guid": self.guid,
        });
        if let Err(e) = self.seal_and_send(family, peer, ACK, &ack.to_string(), t, known).await {
            tracing::warn!(error = %Scrubbed(&e), "an acknowledgement could not be sent");
        }
    }

    /// One request of the user's apps (`OwnerSpace.{guid}.forVault.<area>.<verb>`): a family's
    /// go to its handlers, connections and history to [`Vault::handle_admin`]; anything else is
    /// answered `invalid_message` on `forApp.<area>.error`.
    async fn on_own_request(self: Arc<Self>, subj: &str, payload: &[u8]) {
        let prefix = format!("OwnerSpace.{}.forVault.", self.guid);
        let Some(path) = subj.strip_prefix(&prefix) else { return };
        let area = path.split('.').next().unwrap_or_default();
        let parsed = FamilySubject::parse(subj).ok().filter(|s| s.space == Space::ForVault && s.guid == self.guid);
        let result = match (area, parsed) {
            ("history", _) => self.handle_admin(path, payload).await,
            (_, Some(s)) if self.family(s.family.as_str()).is_some() => {
                let job = self.app_job(s.family.as_str(), s.kind.as_str(), payload).await;
                if let Ok(Some(job)) = job {
                    self.dispatch(job).await;
                    Ok(())
                } else {
                    job.map(|_| ())
                }
            }
            (area, _) => self.answer_unknown(area, payload).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %Scrubbed(&e), "request failed");
        }
    }

    /// One gift wrap from a peer vault (`MessageSpace.{guid}.<family>.<kind>`).
    async fn on_peer_message(self: Arc<Self>, subj: &str, payload: &[u8]) {
        let Some(s) = FamilySubject::parse(subj).ok().filter(|s| s.space == Space::MessageSpace && s.guid == self.guid)
        else {
            return;
        };
        if s.kind.as_str() == ACK && self.family(s.family.as_str()).is_some() {
            if let Err(e) = self.handle_ack(s.family.as_str(), payload).await {
                tracing::warn!(error = %Scrubbed(&e), "acknowledgement failed");
            }
            return;
        }
        match self.peer_job(s.family.as_str(), s.kind.as_str(), payload).await {
            Ok(Some(job)) => self.dispatch(job).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %Scrubbed(&e), "message failed"),
        }
    }

    /// Answers a request of a type no handler takes.
    async fn answer_unknown(&self, area: &str, payload: &[u8]) -> Result<(), VaultError> {
        self.stats.admin_refused.fetch_add(1, Ordering::Relaxed);
        let json = request_json(payload);
        let in_reply_to = str_field(&json, "message_id").and_then(|s| MessageId::parse(s).ok());
        if let Some(family) = self.family(area) {
            let entity = str_field(&json, &family.manifest.entity_field).and_then(|s| EntityKey::parse(s).ok());
            return self
                .family_error(&family, ErrorCode::InvalidMessage, "unknown request type", in_reply_to, entity.as_ref())
                .await;
        }
        let body = serde_json::json!({"code": ErrorCode::InvalidMessage, "message": "unknown request type"});
        self.publish_answer(&format!("{area}.error"), body, in_reply_to).await
    }

    /// Tells the app its request to `family` was refused: `forApp.<family>.error`, naming the
    /// entity (a call's `call.error`).
    async fn family_error(
        &self,
        family: &Family,
        code: ErrorCode,
        text: &str,
        in_reply_to: Option<MessageId>,
        entity: Option<&EntityKey>,
    ) -> Result<(), VaultError> {
        let nil = MessageId::from_bytes([0; 16]);
        let mut body = serde_json::json!({
            "type": format!("{}.error", family.name()),
            "message_id": MessageId::from_bytes(rand_bytes()),
            "timestamp": now(),
            "in_reply_to": in_reply_to.unwrap_or(nil),
            "code": code,
            "message": ErrorText::truncated(text),
        });
        if let (Some(obj), Some(e)) = (body.as_object_mut(), entity) {
            obj.insert(family.manifest.entity_field.clone(), e.as_str().into());
        }
        let kind = callvault_protocol::family::Kind::parse("error").map_err(|_| VaultError::Output("error kind"))?;
        let subject = FamilySubject::for_app(&self.guid, &family.manifest.family, &kind);
        self.bus.publish(&subject.to_string(), Bytes::from(body.to_string())).await?;
        Ok(())
    }

    /// Routes an app request to its family's handler and entity; `None` when it was answered
    /// already (no handler takes it, or it names no entity).
    async fn app_job(&self, family_name: &str, kind: &str, payload: &[u8]) -> Result<Option<Job>, VaultError> {
        let Some(family) = self.family(family_name) else {
            self.answer_unknown(family_name, payload).await?;
            return Ok(None);
        };
        let Some(spec) = family.manifest.for_app(kind).cloned() else {
            self.answer_unknown(family_name, payload).await?;
            return Ok(None);
        };
        let json = request_json(payload);
        let in_reply_to = str_field(&json, "message_id").and_then(|s| MessageId::parse(s).ok());
        let tokens = match self.check_tokens(&spec, &json) {
            Ok(t) => t,
            Err(TokenRefused(code, text)) => {
                // Refused by the kernel, before any handler: handled all the same.
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                self.stats.handled.fetch_add(1, Ordering::Relaxed);
                self.family_error(&family, code, &text, in_reply_to, None).await?;
                return Ok(None);
            }
        };
        let template = spec.entity_template(&family.manifest);
        let Some(entity) = callvault_kernel::render(&template, Some(&json), &tokens) else {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            self.stats.handled.fetch_add(1, Ordering::Relaxed);
            let text = format!("the request names no valid {}", family.manifest.entity_field);
            self.family_error(&family, ErrorCode::InvalidMessage, &text, in_reply_to, None).await?;
            return Ok(None);
        };
        let peer = guid_field(&json, &family.manifest.peer_fields);
        let event = Event::App(wire(kind, payload));
        Ok(Some(Job { family, spec, entity, event, peer, connection: None, app: Some(in_reply_to), tokens }))
    }

    /// Unwraps a peer vault's message and routes it; `None` when it was dropped (and counted).
    async fn peer_job(&self, family_name: &str, kind: &str, wrap: &[u8]) -> Result<Option<Job>, VaultError> {
        let family = self.family(family_name);
        let Some((family, spec)) = family.and_then(|f| f.manifest.for_peer(kind).cloned().map(|s| (f, s))) else {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = REFUSALS.allow() {
                tracing::info!(suppressed, "message of a kind no family takes dropped");
            }
            return Ok(None);
        };
        let opened = match spec.peer_policy(&family.manifest) {
            PeerPolicy::Connections => self.open_wrap(wrap).await?,
            PeerPolicy::Introduced => self.open_introduced(&family, &spec, wrap).await?,
        };
        let Some(opened) = opened else { return Ok(None) };
        let Opened { content, json, from, connection: mut conn, mut tokens } = opened;
        if let Some(c) = conn.as_mut() {
            self.shown_as(c).await;
        }
        if tokens.len() != spec.tokens.len() {
            match self.check_tokens(&spec, &json) {
                Ok(t) => tokens = t,
                Err(_) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    self.stats.handled.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = REFUSALS.allow() {
                        tracing::info!(suppressed, "message with a token that does not hold dropped");
                    }
                    return Ok(None);
                }
            }
        }
        let template = spec.entity_template(&family.manifest);
        let Some(entity) = callvault_kernel::render(&template, Some(&json), &tokens) else {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            self.stats.handled.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = REFUSALS.allow() {
                tracing::info!(suppressed, "message naming no valid entity dropped");
            }
            return Ok(None);
        };
        let event = Event::Peer(wire(kind, content.as_bytes()));
        Ok(Some(Job { family, spec, entity, event, peer: Some(from), connection: conn, app: None, tokens }))
    }

    /// The tokens `spec` has the kernel check in `json`, at the time now; a token that must be
    /// the user's own names this user and this vault's key.
    fn check_tokens(
        &self,
        spec: &HandlerSpec,
        json: &serde_json::Value,
    ) -> Result<BTreeMap<String, VerifiedToken>, TokenRefused> {
        let mut out = BTreeMap::new();
        for t in &spec.tokens {
            let v = check_token(str_field(json, &t.field), unix_secs())?;
            if t.own && (v.guid != self.guid || v.vault_key.as_str() != self.key.public().to_hex()) {
                return Err(TokenRefused(
                    ErrorCode::InvalidMessage,
                    format!("`{}` is not this user's invite", t.field),
                ));
            }
            out.insert(t.field.clone(), v);
        }
        Ok(out)
    }

    /// Unwraps a gift wrap for this vault: its content, as JSON, and the `from_guid` it names;
    /// `None` when it does not unwrap or is stale (counted).
    fn unwrap(&self, wrap: &[u8]) -> Option<(giftwrap::Unwrapped, serde_json::Value, Option<Guid>)> {
        let unwrapped = match giftwrap::unwrap_with(&self.seal_keys, &self.key, wrap, unix_secs()) {
            Ok(u) => u,
            Err(e) => {
                self.stats.bad_wraps.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = REFUSALS.allow() {
                    tracing::info!(suppressed, reason = %Scrubbed(&e), "gift wrap dropped");
                }
                return None;
            }
        };
        let json: serde_json::Value = serde_json::from_str(&unwrapped.content).unwrap_or(serde_json::Value::Null);
        let from = str_field(&json, "from_guid").and_then(|s| Guid::parse(s).ok());
        Some((unwrapped, json, from))
    }

    /// Unwraps a gift wrap from a vault that is no connection yet, introduced by the token the
    /// handler's first token field holds: sealed by the vault key it names, from the guid it
    /// names. `None` when it was dropped (and counted).
    ///
    /// Anyone can make a token, so before the token is checked (two signatures) the message must
    /// name entities of the handler's `also` that this vault holds (an acceptance: a pending
    /// invite, whose nonce only those the user gave the invite know): strangers cost an unwrap.
    async fn open_introduced(
        &self,
        family: &Family,
        spec: &HandlerSpec,
        wrap: &[u8],
    ) -> Result<Option<Opened>, VaultError> {
        let field = spec.tokens.first().map_or("token", |t| t.field.as_str());
        let Some((unwrapped, json, from)) = self.unwrap(wrap) else { return Ok(None) };
        for t in &spec.also {
            let known = match callvault_kernel::render(t, Some(&json), &BTreeMap::new()) {
                Some(k) => self.read_entity(family, &k).await?.is_some(),
                None => false,
            };
            if !known {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = REFUSALS.allow() {
                    tracing::info!(
                        suppressed,
                        "message from a vault no token introduces, naming nothing held, dropped"
                    );
                }
                return Ok(None);
            }
        }
        let token = str_field(&json, field).map(|t| check_token(Some(t), unix_secs()));
        match (from, token) {
            (Some(from), Some(Ok(t))) if t.guid == from && t.vault_key.as_str() == unwrapped.sender.to_hex() => {
                let tokens = BTreeMap::from([(field.to_owned(), t)]);
                Ok(Some(Opened { content: unwrapped.content, json, from, connection: None, tokens }))
            }
            _ => {
                self.stats.unknown_senders.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = REFUSALS.allow() {
                    tracing::info!(suppressed, "gift wrap from a vault no token introduces dropped");
                }
                Ok(None)
            }
        }
    }

    /// Unwraps a gift wrap and applies the `connections` peer policy (sealed by the vault key of
    /// the active connection its `from_guid` names); `None` when it was dropped (and counted).
    async fn open_wrap(&self, wrap: &[u8]) -> Result<Option<Opened>, VaultError> {
        let Some((unwrapped, json, from)) = self.unwrap(wrap) else { return Ok(None) };
        let conn = match from.as_ref() {
            Some(g) => connections::get(&self.buckets.connections, g).await?,
            None => None,
        };
        let sealed_by_connection = conn
            .as_ref()
            .filter(|c| c.state == ConnectionState::Active)
            .and_then(|c| c.vault_key().ok())
            .is_some_and(|vk| vk == unwrapped.sender);
        match (from, conn) {
            (Some(from), Some(connection)) if sealed_by_connection => Ok(Some(Opened {
                content: unwrapped.content,
                json,
                from,
                connection: Some(connection),
                tokens: BTreeMap::new(),
            })),
            _ => {
                self.stats.unknown_senders.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = REFUSALS.allow() {
                    tracing::info!(suppressed, "gift wrap from a vault that is not an active connection dropped");
                }
                Ok(None)
            }
        }
    }

    /// Runs a job in its entity's lane, here (not on a task of its own).
    async fn run_in_turn(&self, job: Job) -> Result<Outcome, VaultError> {
        let turns = self.enter(&job);
        self.execute(job, turns).await
    }

    /// Takes a job's places in its lanes: to run, and to announce.
    fn enter(&self, job: &Job) -> JobTurns {
        JobTurns { compute: Turns::enter(&self.lanes, job), announce: Turns::enter(&self.announcing, job) }
    }

    /// Handles one app request (what arrives on `forVault.call.<kind>`), in its call's order.
    pub async fn handle_request(&self, kind: RequestKind, payload: &[u8]) -> Result<Outcome, VaultError> {
        self.handle_app("call", kind.token(), payload).await
    }

    /// Handles one app request to `family` (what arrives on `forVault.<family>.<kind>`).
    pub async fn handle_app(&self, family: &str, kind: &str, payload: &[u8]) -> Result<Outcome, VaultError> {
        match self.app_job(family, kind, payload).await? {
            Some(job) => self.run_in_turn(job).await,
            None => Ok(Outcome::Refused { code: ErrorCode::InvalidMessage, reason: "not routed".into() }),
        }
    }

    /// Handles one gift wrap from a peer vault (what arrives on `MessageSpace.{guid}.call.<kind>`).
    pub async fn handle_peer(&self, kind: PeerKind, wrap: &[u8]) -> Result<Outcome, VaultError> {
        self.handle_peer_message("call", kind.token(), wrap).await
    }

    /// Handles one gift wrap to `family` (`MessageSpace.{guid}.<family>.<kind>`).
    pub async fn handle_peer_message(&self, family: &str, kind: &str, wrap: &[u8]) -> Result<Outcome, VaultError> {
        match self.peer_job(family, kind, wrap).await? {
            Some(job) => self.run_in_turn(job).await,
            None => Ok(Outcome::Ignored),
        }
    }

    /// An entity's stored state and peer (an older callvault's bare document as version 0).
    async fn read_entity(
        &self,
        family: &Family,
        entity: &EntityKey,
    ) -> Result<Option<(EntityState, Option<Guid>)>, VaultError> {
        if let Some(hit) = family.states().get(entity).map(|c| c.state.clone().map(|s| (s, c.peer.clone()))) {
            return Ok(hit);
        }
        let Some(e) = self.buckets.state.get(&state_key(family.name(), entity)).await? else { return Ok(None) };
        if let Ok(env) = serde_json::from_slice::<Envelope>(&e.value) {
            return Ok(Some((EntityState { key: entity.clone(), version: env.v, state: env.state }, env.peer)));
        }
        match stored_json(&e.value) {
            Some(state) => Ok(Some((EntityState { key: entity.clone(), version: 0, state }, None))),
            None => {
                tracing::warn!(family = family.name(), "unreadable entity state skipped");
                Ok(None)
            }
        }
    }

    /// The page of `entity`'s item records `spec` asks for: after the event's cursor, in key
    /// order, up to the spec's count and bytes (and the event's smaller limit).
    async fn read_page(&self, spec: &PageSpec, entity: &EntityKey, event: &Event) -> Result<Page, VaultError> {
        let Some(bucket) = self.buckets.by_name.get(&spec.bucket) else { return Ok(Page::default()) };
        let json = match event {
            Event::App(w) | Event::Peer(w) => Some(w.value()),
            Event::Timer | Event::Restore => None,
        };
        let field = |name: &Option<String>| name.as_ref().zip(json.as_ref()).and_then(|(f, j)| j.get(f).cloned());
        let cursor = field(&spec.cursor_field).and_then(|v| v.as_str().map(str::to_owned));
        let limit = field(&spec.limit_field)
            .and_then(|v| v.as_u64())
            .map_or(spec.limit, |l| u32::try_from(l).unwrap_or(u32::MAX).clamp(1, spec.limit));
        let prefix = format!("{entity}.");
        let mut keys = bucket.keys_under(entity.as_str()).await?;
        if spec.newest_first {
            keys.reverse();
        }
        let after = |k: &String| match &cursor {
            None => true,
            Some(c) => {
                let item = k.strip_prefix(&prefix).unwrap_or(k);
                if spec.newest_first { item < c.as_str() } else { item > c.as_str() }
            }
        };
        let mut page = Page::default();
        let mut bytes = 0usize;
        let max_bytes = usize::try_from(spec.max_bytes).unwrap_or(usize::MAX);
        for key in keys.iter().filter(|k| after(k)) {
            if page.records.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
                page.more = true;
                break;
            }
            let Some(e) = bucket.get(key).await? else { continue };
            let Some(item) = key.strip_prefix(&prefix).and_then(|i| EntityKey::parse(i).ok()) else { continue };
            let Some(value) = stored_json(&e.value) else { continue };
            if !page.records.is_empty() && bytes.saturating_add(e.value.len()) > max_bytes {
                page.more = true;
                break;
            }
            bytes = bytes.saturating_add(e.value.len());
            page.records.push(PageRecord { item, value });
        }
        Ok(page)
    }

    async fn active_connection(&self, peer: Option<&Guid>) -> Result<Option<Connection>, VaultError> {
        let Some(g) = peer else { return Ok(None) };
        let Some(mut c) = connections::get(&self.buckets.connections, g)
            .await?
            .filter(|c| c.state == ConnectionState::Active && c.vault_key().is_ok())
        else {
            return Ok(None);
        };
        self.shown_as(&mut c).await;
        Ok(Some(c))
    }

    /// A connection's profile as the peer last shared it (the `profile` bucket, key = the
    /// peer's guid, written by the profile family), over the name its invite carried.
    /// Kept in memory as read (one entry per connection at most), forgotten when the vault
    /// writes that record, so a peer's message costs no store read for it.
    async fn shown_as(&self, c: &mut Connection) {
        let cached = self.profiles().get(&c.guid).cloned();
        let shown = match cached {
            Some(s) => s,
            None => {
                let Some(bucket) = self.buckets.by_name.get(PROFILE_BUCKET) else { return };
                let Ok(read) = bucket.get(c.guid.as_str()).await else { return };
                let shown = read.and_then(|e| {
                    <ProfileRecord as callvault_protocol::registry::Schema>::from_json(&e.value)
                        .ok()
                        .map(|p| (p.display_name, p.avatar_url))
                });
                self.profiles().insert(c.guid.clone(), shown.clone());
                shown
            }
        };
        if let Some((name, avatar)) = shown {
            c.display_name = name;
            c.avatar_url = avatar;
        }
    }

    fn profiles(&self) -> std::sync::MutexGuard<'_, HashMap<Guid, Shown>> {
        self.profiles.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The user's active connections, as they show themselves.
    async fn active_connections(&self) -> Result<Vec<callvault_kernel::ConnectionInfo>, VaultError> {
        let mut list = Vec::new();
        for key in self.buckets.connections.keys().await? {
            let Ok(guid) = Guid::parse(&key) else { continue };
            if let Some(c) = self.active_connection(Some(&guid)).await? {
                list.push(c.info());
            }
        }
        Ok(list)
    }

    /// Every connection, revoked ones too, as they show themselves, with their keys.
    async fn every_connection(&self) -> Result<Vec<callvault_kernel::ConnectionInfo>, VaultError> {
        let mut list = Vec::new();
        for key in self.buckets.connections.keys().await? {
            let Ok(guid) = Guid::parse(&key) else { continue };
            let mut c = match connections::get(&self.buckets.connections, &guid).await {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(connections::ConnectionError::Corrupt) => {
                    tracing::warn!("an unreadable connection entry skipped");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.shown_as(&mut c).await;
            let mut info = c.info();
            info.user_key = callvault_protocol::fields::KeyHex::new(c.user_key.clone()).ok();
            info.revoked = c.state == ConnectionState::Revoked;
            list.push(info);
        }
        Ok(list)
    }

    fn update_gauges(&self, family: &Family) {
        let ix = family.index();
        for t in &family.gauges {
            let n = i64::try_from(ix.count(t)).unwrap_or(i64::MAX);
            self.stats.set_gauge(format!("{}.{t}", family.name()), n);
        }
    }

    /// Runs one job: loads its context, runs the handler, checks and performs its outputs.
    /// Runs a job: its handler in its entity's compute turn (its stores kept in memory and
    /// handed to the writer), then, once they are written, its sends and notifications in its
    /// announce turn. The entity's next event runs as soon as this one's compute turn is over.
    async fn execute(&self, job: Job, turns: JobTurns) -> Result<Outcome, VaultError> {
        let JobTurns { mut compute, mut announce } = turns;
        compute.wait().await;
        let family = job.family.clone();
        let staged = {
            let _family = if job.spec.is_wide() {
                FamilyGuard::Wide(family.wide.write().await)
            } else {
                FamilyGuard::Narrow(family.wide.read().await)
            };
            let (_running, epoch) = self.start_compute().await?;
            self.stage(&family, job, now(), epoch).await?
        };
        drop(compute);
        let written = match staged.written {
            Some(w) => w.await.unwrap_or_else(|_| Err(writer::closed())),
            None => Ok(()),
        };
        family.written(&staged.stored);
        if let Err(e) = written {
            self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
            return Err(e.into());
        }
        // After the write: a read racing it cannot leave the old profile cached.
        for g in &staged.profiles_written {
            self.profiles().remove(g);
        }
        announce.wait().await;
        let t = staged.t;
        for item in staged.announce {
            self.perform(&family, item, t, staged.connection.as_ref()).await?;
        }
        if let Some((message, sender)) = &staged.ack_of {
            // A vault a token introduced is acknowledged at the vault key its token names (the
            // key that sealed the message), whether or not the handler took it.
            let peer = staged.connection.as_ref().or(staged.introducer.as_ref());
            if let Some(peer) = peer.filter(|p| &p.guid == sender) {
                self.acknowledge(&family, peer, message, t).await;
            }
        }
        // Counted once its outputs are done: whoever reads the counter finds what it stored.
        self.stats.handled.fetch_add(1, Ordering::Relaxed);
        if let (Outcome::Refused { code, reason }, false, Some(in_reply_to)) =
            (&staged.outcome, staged.notified, staged.app)
        {
            // A request too broken for the handler to answer still gets an answer.
            let entity = staged.entity_named.then_some(&staged.entity);
            let text = if reason.is_empty() { "the request was refused" } else { reason.as_str() };
            self.family_error(&family, *code, text, in_reply_to, entity).await?;
        }
        Ok(staged.outcome)
    }

    /// A place to run a handler: a permit of the vault's concurrency, and the write epoch the
    /// vault's memory is good for (read again from the store first, if a write failed).
    async fn start_compute(&self) -> Result<(tokio::sync::SemaphorePermit<'_>, u64), VaultError> {
        loop {
            self.recover().await?;
            let permit = self.running.acquire().await.map_err(|_| VaultError::Output("vault closing"))?;
            let epoch = self.writer.epoch();
            if self.recovered.load(Ordering::Acquire) == epoch {
                return Ok((permit, epoch));
            }
        }
    }

    /// After a failed write: with no handler running, reads the vault's memory (entity states,
    /// indexes, the outbox) again from the store, so nothing handled next builds on what was
    /// never written.
    async fn recover(&self) -> Result<(), VaultError> {
        if self.recovered.load(Ordering::Acquire) == self.writer.epoch() {
            return Ok(());
        }
        let _one = self.recovery.lock().await;
        let epoch = self.writer.epoch();
        if self.recovered.load(Ordering::Acquire) == epoch {
            return Ok(());
        }
        let all = u32::try_from(self.options.concurrency.max(1)).unwrap_or(u32::MAX);
        let _idle = self.running.acquire_many(all).await.map_err(|_| VaultError::Output("vault closing"))?;
        let keys = self.buckets.state.keys().await?;
        for family in self.all_families() {
            let (index, _) = self.read_index(&family, &keys).await?;
            family.states().clear();
            *family.index() = index;
            self.update_gauges(&family);
        }
        let outbox = self.read_outbox(&keys).await?;
        *self.outbox() = outbox;
        self.recovered.store(epoch, Ordering::Release);
        self.timers_changed.notify_one();
        tracing::warn!("a write failed: the vault read its memory again from its store");
        Ok(())
    }

    /// A family's index as stored (its live entities' entries among `keys`), and the entities
    /// an older version of the family stored.
    async fn read_index(&self, family: &Family, keys: &[String]) -> Result<(Index, Vec<EntityKey>), VaultError> {
        let mut index = Index::new();
        let mut older = Vec::new();
        let prefix = format!("index.{}.", family.name());
        for key in keys {
            let Some(entity) = key.strip_prefix(&prefix).and_then(|e| EntityKey::parse(e).ok()) else { continue };
            let Some(e) = self.buckets.state.get(key).await? else { continue };
            match serde_json::from_slice::<IndexEntry>(&e.value) {
                Ok(entry) => {
                    if entry.v < family.manifest.state_version {
                        older.push(entity.clone());
                    }
                    index.set(&entity, entry.meta);
                }
                Err(_) => tracing::warn!(family = family.name(), "unreadable index entry skipped"),
            }
        }
        Ok((index, older))
    }

    /// The outbox as stored (among `keys`), every entry due at once.
    async fn read_outbox(&self, keys: &[String]) -> Result<BTreeMap<String, OutboxEntry>, VaultError> {
        let mut outbox = BTreeMap::new();
        for key in keys.iter().filter(|k| k.starts_with("outbox.")) {
            if let Some(e) = self.buckets.state.get(key).await?
                && let Ok(mut entry) = serde_json::from_slice::<OutboxEntry>(&e.value)
            {
                entry.next_at = Some(now());
                outbox.insert(key.clone(), entry);
            }
        }
        Ok(outbox)
    }

    /// Runs the handler and takes its outputs: what it stores goes into memory and to the
    /// writer (all of it in one batch: one commit), what announces waits for that.
    async fn stage(&self, family: &Family, job: Job, t: Timestamp, epoch: u64) -> Result<Staged, VaultError> {
        let fname = family.name();
        let retry_at = t.saturating_add(self.options.sweep_every);
        let is_timer = matches!(job.event, Event::Timer);
        let give_up = |family: &Family| {
            if is_timer {
                family.index().fired(&job.entity, retry_at);
            }
        };
        let named = match self.read_entity(family, &job.entity).await {
            Ok(n) => n,
            Err(e) => {
                give_up(family);
                return Err(e);
            }
        };
        let stored_peer = named.as_ref().and_then(|(_, p)| p.clone());
        let peer =
            job.peer.clone().or_else(|| family.index().get(&job.entity).and_then(|m| m.peer.clone())).or(stored_peer);
        let connection = match job.connection {
            Some(c) => Some(c),
            None => self.active_connection(peer.as_ref()).await?,
        };
        let (context, counts) = {
            let ix = family.index();
            let mut keys: Vec<EntityKey> = Vec::new();
            for tag in job.spec.context_tags(peer.as_ref()) {
                for k in ix.members(&tag) {
                    if *k != job.entity && !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
            let counts: BTreeMap<Tag, u64> =
                job.spec.counts.iter().map(|t| (t.clone(), u64::try_from(ix.count(t)).unwrap_or(u64::MAX))).collect();
            (keys, counts)
        };
        let mut context = context;
        // Parsed only for a handler given other entities (most events need no second parse).
        let message = match &job.event {
            Event::App(w) | Event::Peer(w) if !job.spec.also.is_empty() => Some(w.value()),
            _ => None,
        };
        for t in &job.spec.also {
            match callvault_kernel::render(t, message.as_ref(), &job.tokens) {
                Some(k) if k != job.entity && !context.contains(&k) => context.push(k),
                Some(_) => {}
                None => {
                    give_up(family);
                    return Err(VaultError::Output("the event names no entity its handler is also given"));
                }
            }
        }
        let mut states: Vec<EntityState> = named.into_iter().map(|(s, _)| s).collect();
        let loaded = futures_util::future::join_all(context.iter().map(|k| self.read_entity(family, k))).await;
        for l in loaded {
            if let Some((s, _)) = l? {
                states.push(s);
            }
        }
        let all_connections = if job.spec.connections {
            self.active_connections().await?
        } else if job.spec.all_connections {
            self.every_connection().await?
        } else {
            Vec::new()
        };
        if job.spec.record.is_some() || job.spec.page.is_some() {
            // Records are read from the store: the entity's earlier writes land first.
            self.writer.submit(epoch, Vec::new()).await.unwrap_or_else(|_| Err(writer::closed()))?;
        }
        let record = match job.spec.record.as_ref().and_then(|b| self.buckets.by_name.get(b)) {
            Some(bucket) => bucket.get(job.entity.as_str()).await?.and_then(|e| stored_json(&e.value)),
            None => None,
        };
        let page = match &job.spec.page {
            Some(spec) => Some(self.read_page(spec, &job.entity, &job.event).await?),
            None => None,
        };
        // A peer's message its family sends at least once is acknowledged once handled.
        let ack_of = match (&job.event, &job.peer) {
            (Event::Peer(w), Some(sender)) if family.manifest.reliable.iter().any(|k| k.as_str() == w.kind) => {
                Some((w.clone(), sender.clone()))
            }
            _ => None,
        };
        let introducer = match (job.spec.peer_policy(&family.manifest), job.spec.tokens.first(), &ack_of) {
            (PeerPolicy::Introduced, Some(spec), Some(_)) => job.tokens.get(&spec.field).map(Connection::from_token),
            _ => None,
        };
        let mut allowed: Vec<EntityKey> = context;
        allowed.push(job.entity.clone());
        let input = Input {
            handler: job.spec.name.as_str().to_owned(),
            local: self.guid.clone(),
            now: t,
            config: self.family_config.get(fname).cloned(),
            event: job.event,
            entity: job.entity.clone(),
            states,
            counts,
            connection: connection.as_ref().map(Connection::info),
            page,
            connections: all_connections,
            tokens: job.tokens,
            record,
        };
        let id = HandlerId::new(fname, job.spec.name.as_str());
        let started = std::time::Instant::now();
        let invoked = self.runtime.invoke_measured(&id, &input);
        self.stats.handler_latency.observe(started.elapsed());
        let (output, usage) = match invoked {
            Ok(o) => o,
            Err(e) => {
                self.stats.handler_failures.fetch_add(1, Ordering::Relaxed);
                give_up(family);
                return Err(e.into());
            }
        };
        self.stats.last_input_bytes.store(u64::try_from(usage.input_bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.stats.last_fuel.store(usage.fuel, Ordering::Relaxed);
        match &output.outcome {
            Outcome::Refused { code, .. } => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = REFUSALS.allow() {
                    tracing::info!(suppressed, handler = %id, code = %code, "event refused");
                }
            }
            Outcome::Duplicate => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if let Err(e) = self.check_outputs(family, &output.outputs, &allowed) {
            give_up(family);
            if let (VaultError::EntityBound { .. }, Some(in_reply_to)) = (&e, &job.app) {
                let text = "this vault holds as many of these as it may";
                let entity = job.spec.entity.is_none().then_some(&job.entity);
                self.family_error(family, ErrorCode::Busy, text, in_reply_to.clone(), entity).await?;
            }
            return Err(e);
        }
        let notified = output.outputs.iter().any(|o| matches!(o, OutputItem::Notify(_)));
        let entity_named = job.spec.entity.is_none();
        // Every write of the event goes in one batch: the entities it stores and the messages
        // it sends at least once. What announces them waits for the batch.
        let timer_of = is_timer.then_some(&job.entity);
        let mut writes = Vec::new();
        let mut entities = Vec::new();
        let mut kept = Vec::new();
        let mut announce = Vec::new();
        let mut profiles_written = Vec::new();
        for item in output.outputs {
            match item {
                OutputItem::Store { entity, state, tags, peer, timer, records } => {
                    let s = self.stage_entity(family, entity, state, tags, peer, timer, records, t, timer_of)?;
                    writes.extend(s.writes);
                    profiles_written.extend(s.profiles);
                    entities.push((s.entity, Some(s.cached), s.live, s.meta));
                }
                OutputItem::Forget { entity } => {
                    let state_bucket = &self.buckets.state;
                    writes.push(Write { bucket: state_bucket.clone(), key: state_key(fname, &entity), value: None });
                    if family.index().get(&entity).is_some() {
                        writes.push(Write {
                            bucket: state_bucket.clone(),
                            key: index_key(fname, &entity),
                            value: None,
                        });
                    }
                    entities.push((entity, None, false, Meta::default()));
                }
                OutputItem::Send { to, message } => {
                    if family.manifest.reliable.iter().any(|k| k.as_str() == message.kind) {
                        let (key, entry, bytes) = self.outbox_entry(family.name(), &to, &message, t)?;
                        writes.push(Write { bucket: self.buckets.state.clone(), key: key.clone(), value: Some(bytes) });
                        kept.push((key, entry));
                    }
                    announce.push(OutputItem::Send { to, message });
                }
                other => announce.push(other),
            }
        }
        // Into memory and to the writer together, unless a write failed since this event began
        // (then what it read may never have been written).
        let mut stored = Vec::new();
        let mut timers_moved = !kept.is_empty();
        let written = {
            let mut states = family.states();
            if self.writer.epoch() != epoch {
                drop(states);
                give_up(family);
                return Err(VaultError::Store(KvError::Backend("a write failed while the event ran".into())));
            }
            let mut ix = family.index();
            for (entity, cached, live, meta) in entities {
                // Kept while it is live, and until its write is done (the store has it then);
                // a forgotten one as forgotten until its delete is done.
                let pending = states.get(&entity).map_or(0, |c| c.pending).saturating_add(1);
                let (state, peer) = cached.map_or((None, None), |(s, p)| (Some(s), p));
                states.insert(entity.clone(), Cached { state, peer, live, pending });
                let timer_set = meta.timer.is_some();
                let prior = ix.set(&entity, meta);
                timers_moved |= timer_set || prior.is_some_and(|p| p.timer.is_some());
                stored.push(entity);
            }
            drop(ix);
            let written = (!writes.is_empty()).then(|| self.writer.submit(epoch, writes));
            drop(states);
            written
        };
        self.keep_in_outbox(kept);
        self.update_gauges(family);
        if timers_moved {
            // The earliest timer may have moved: the loop sleeps until the new one.
            self.timers_changed.notify_one();
        }
        if is_timer && family.index().fired(&job.entity, retry_at) {
            // The timer's handler stored nothing: its deadline stands; try again later.
            self.stats.deadlines_left_standing.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Staged {
            outcome: output.outcome,
            announce,
            connection,
            ack_of,
            introducer,
            notified,
            app: job.app,
            entity: job.entity,
            entity_named,
            t,
            written,
            stored,
            profiles_written,
        })
    }

    /// Checks that a handler asks only for what it may: entities it was given, records in its
    /// buckets, kinds its manifest names, and no more live entities than its bound.
    fn check_outputs(&self, family: &Family, outputs: &[OutputItem], allowed: &[EntityKey]) -> Result<(), VaultError> {
        let m = &family.manifest;
        let refuse = |why: &'static str| {
            self.stats.outputs_refused.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = REFUSALS.allow() {
                tracing::warn!(suppressed, family = m.family.as_str(), why, "handler output refused");
            }
            Err(VaultError::Output(why))
        };
        let ix = family.index();
        let mut live = i64::try_from(ix.live()).unwrap_or(i64::MAX);
        let mut forgotten = std::collections::BTreeSet::new();
        for o in outputs {
            match o {
                OutputItem::Store { entity, tags, timer, records, .. } => {
                    if !allowed.contains(entity) {
                        return refuse("stored an entity it was not given");
                    }
                    if records.iter().any(|r| {
                        &r.key != entity
                            || !m.records.contains(&r.bucket)
                            || !self.buckets.by_name.contains_key(&r.bucket)
                            || r.value.as_ref().is_some_and(|v| {
                                self.buckets
                                    .by_name
                                    .get(&r.bucket)
                                    .is_none_or(|b| v.get().len() > b.config().max_value_size)
                            })
                    }) {
                        return refuse("a record for a bucket or key it may not write");
                    }
                    if records.iter().any(|r| {
                        r.bucket == connections::BUCKET
                            && !r.value.as_ref().is_none_or(|v| connections::holds(r.key.as_str(), v.get().as_bytes()))
                    }) {
                        return refuse("a connection whose delegation does not hold");
                    }
                    let was = ix.get(entity).is_some();
                    let will = !tags.is_empty() || timer.is_some();
                    live = live.saturating_add(i64::from(will)).saturating_sub(i64::from(was));
                }
                OutputItem::Forget { entity } => {
                    if !allowed.contains(entity) {
                        return refuse("forgot an entity it was not given");
                    }
                    if forgotten.insert(entity) {
                        live = live.saturating_sub(i64::from(ix.get(entity).is_some()));
                    }
                }
                OutputItem::Send { message, .. } => {
                    if !m.sends.iter().any(|k| k.as_str() == message.kind) {
                        return refuse("a message kind its manifest does not send");
                    }
                }
                OutputItem::Notify(n) => {
                    if !m.notifies.iter().any(|k| k.as_str() == n.kind) {
                        return refuse("a notification kind its manifest does not name");
                    }
                }
                OutputItem::Count { .. } => {}
            }
        }
        if live > i64::try_from(m.max_live).unwrap_or(i64::MAX) {
            self.stats.entity_bound.fetch_add(1, Ordering::Relaxed);
            return Err(VaultError::EntityBound { family: m.family.to_string(), max: m.max_live });
        }
        Ok(())
    }

    /// What storing an entity writes (its state, index entry and records), and what memory
    /// keeps of it: its state and index entry.
    #[allow(clippy::too_many_arguments)]
    fn stage_entity(
        &self,
        family: &Family,
        entity: EntityKey,
        state: Json,
        tags: Vec<Tag>,
        peer: Option<Guid>,
        timer: Option<Timestamp>,
        records: Vec<callvault_kernel::Record>,
        t: Timestamp,
        timer_of: Option<&EntityKey>,
    ) -> Result<StagedEntity<K>, VaultError> {
        let fname = family.name();
        let mut timer = timer;
        if timer_of == Some(&entity) && timer.is_some_and(|at| at <= t) {
            // A timer's handler that leaves its passed deadline is tried again later.
            self.stats.deadlines_left_standing.fetch_add(1, Ordering::Relaxed);
            timer = Some(t.saturating_add(self.options.sweep_every));
        }
        let meta = Meta { tags, peer: peer.clone(), timer };
        let live = meta.is_live();
        let before = family.index().get(&entity).cloned();
        let was_live = before.is_some();
        let version = family.manifest.state_version;
        let envelope = Envelope { v: version, peer: peer.clone(), state };
        let env = serde_json::to_vec(&envelope).map_err(|_| VaultError::Output("state"))?;
        let cached = (EntityState { key: entity.clone(), version, state: envelope.state }, peer);
        let (skey, ikey) = (state_key(fname, &entity), index_key(fname, &entity));
        let state_bucket = &self.buckets.state;
        let mut writes = vec![Write { bucket: state_bucket.clone(), key: skey, value: Some(Bytes::from(env)) }];
        if live && before.as_ref() == Some(&meta) {
            // Unchanged (a signal on an active call): nothing to write.
        } else if live {
            let entry = IndexEntry { meta: meta.clone(), v: version };
            let entry = serde_json::to_vec(&entry).map_err(|_| VaultError::Output("index entry"))?;
            writes.push(Write { bucket: state_bucket.clone(), key: ikey, value: Some(Bytes::from(entry)) });
        } else if was_live {
            writes.push(Write { bucket: state_bucket.clone(), key: ikey, value: None });
        }
        let profiles = records
            .iter()
            .filter(|r| r.bucket == PROFILE_BUCKET)
            .filter_map(|r| Guid::parse(r.key.as_str()).ok())
            .collect();
        for r in &records {
            let Some(bucket) = self.buckets.by_name.get(&r.bucket) else { continue };
            let value = r.value.as_ref().map(|v| Bytes::copy_from_slice(v.get().as_bytes()));
            writes.push(Write { bucket: bucket.clone(), key: r.store_key(), value });
        }
        Ok(StagedEntity { entity, cached, live, meta, writes, profiles })
    }

    /// Performs one output that announces (send, notify) or counts.
    async fn perform(
        &self,
        family: &Family,
        item: OutputItem,
        t: Timestamp,
        known: Option<&Connection>,
    ) -> Result<(), VaultError> {
        let fname = family.name();
        match item {
            OutputItem::Store { .. } | OutputItem::Forget { .. } => {}
            OutputItem::Send { to, message } => {
                self.seal_and_send(fname, &to, &message.kind, message.json(), t, known).await?;
            }
            OutputItem::Notify(n) => {
                let kind = callvault_protocol::family::Kind::parse(&n.kind)
                    .map_err(|_| VaultError::Output("a notification kind that is not a token"))?;
                let subject = FamilySubject::for_app(&self.guid, &family.manifest.family, &kind);
                self.bus.publish(&subject.to_string(), Bytes::copy_from_slice(n.json().as_bytes())).await?;
            }
            OutputItem::Count { name, delta } => self.stats.count(format!("{fname}.{name}"), delta),
        }
        Ok(())
    }

    /// Publishes an answer to the app on `forApp.<subject_tail>`, with its type, a fresh message
    /// id, the time, and `in_reply_to`.
    async fn publish_answer(
        &self,
        subject_tail: &str,
        mut body: serde_json::Value,
        in_reply_to: Option<MessageId>,
    ) -> Result<(), VaultError> {
        if let Some(obj) = body.as_object_mut() {
            obj.insert("type".into(), subject_tail.into());
            obj.insert("message_id".into(), MessageId::from_bytes(rand_bytes()).to_string().into());
            obj.insert("timestamp".into(), now().to_string().into());
            if let Some(id) = in_reply_to {
                obj.insert("in_reply_to".into(), id.to_string().into());
            }
        }
        let subject = format!("OwnerSpace.{}.forApp.{subject_tail}", self.guid);
        self.bus.publish(&subject, Bytes::from(body.to_string())).await?;
        Ok(())
    }

    /// Handles one of the user's own requests about connections and history (see [`admin`]) and
    /// publishes the answer to the app.
    pub async fn handle_admin(&self, verb_path: &str, payload: &[u8]) -> Result<(), VaultError> {
        let json = request_json(payload);
        let in_reply_to = json.get("message_id").and_then(|v| v.as_str()).and_then(|s| MessageId::parse(s).ok());
        let area = admin::area_of(verb_path);
        let answer = match AdminRequest::parse(verb_path, &json) {
            Ok(request) => self.admin_answer(request).await,
            Err(e) => Err(e.into()),
        };
        let (subject_tail, body) = match answer {
            Ok((reply, body)) => (reply, body),
            Err(AdminFailure::Refused(code, message)) => {
                self.stats.admin_refused.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = REFUSALS.allow() {
                    tracing::info!(suppressed, request = verb_path.chars().take(40).collect::<String>(), code = %code, "admin request refused");
                }
                let body = serde_json::json!({"code": code, "message": ErrorText::truncated(&message)});
                (format!("{area}.error"), body)
            }
            Err(AdminFailure::Vault(e)) => return Err(e),
        };
        self.publish_answer(&subject_tail, body, in_reply_to).await
    }

    async fn admin_answer(&self, request: AdminRequest) -> Result<(String, serde_json::Value), AdminFailure> {
        match request {
            AdminRequest::History { limit } => {
                let mut records = Vec::new();
                for key in self.buckets.calls.keys().await.map_err(|e| AdminFailure::Vault(e.into()))? {
                    let entry = self.buckets.calls.get(&key).await.map_err(|e| AdminFailure::Vault(e.into()))?;
                    if let Some(r) = entry.and_then(|e| serde_json::from_slice::<CallRecord>(&e.value).ok()) {
                        records.push(r);
                    }
                }
                let calls = admin::newest_first(records, limit);
                Ok(("history.list".into(), serde_json::json!({"calls": calls})))
            }
        }
    }
}

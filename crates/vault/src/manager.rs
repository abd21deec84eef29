//! The vault manager: one user's vault on a bus and a store.
//!
//! It provisions the seed's buckets, installs and loads the handler modules, subscribes to
//! `OwnerSpace.{guid}.forVault.call.*` (the app's requests) and `MessageSpace.{guid}.call.*` (gift
//! wraps from peer vaults), and handles one event at a time:
//!
//! 1. load the context: the peer's connection (only `Active` ones count), the call the event names,
//!    every unanswered or active call (from `handler-state`);
//! 2. run the handler (WASM, under limits);
//! 3. perform its outputs in order: store (`calls` record + `handler-state` state), seal as a gift
//!    wrap to the peer's vault key and publish to its `MessageSpace`, notify the app, reschedule.
//!
//! A gift wrap is accepted only when it unwraps for this vault's key, is fresh, and was sealed by
//! the vault key of the connection named by the message's `from_guid`; anything else is dropped,
//! counted and logged without guids. The timeout handler runs at the instant the handlers name as
//! the vault's next deadline (every handler run ends by naming it, or naming none), and only then:
//! a vault with nothing due runs no handler and sets no timer until the next message. After a
//! restart one sweep acts on whatever the stored calls say (ringing calls time out, active calls
//! can still be ended).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_call::Call;
use callvault_call::abi::{Event, HandlerInput, HandlerName, Outcome, OutputItem, WireMessage};
use callvault_crypto::{VaultKey, giftwrap};
use callvault_protocol::calling::{CallErrorNotification, CallRecord, tags};
use callvault_protocol::fields::{CallStatus, ErrorCode, ErrorText};
use callvault_protocol::ratelog::RateLimitedLog;
use callvault_protocol::redact::Scrubbed;
use callvault_protocol::subject::{self, PeerKind, RequestKind, Subject};
use callvault_protocol::{CallId, Guid, MAX_MESSAGE_BYTES, MessageId, Timestamp};
use callvault_store::{BucketConfig, BucketNaming, Kv, KvError, Store};
use tokio::sync::Mutex;

use crate::admin::{self, AdminError, AdminRequest, ConnectionSummary};
use crate::connections::{self, Connection, ConnectionState};
use crate::invite::{self, InviteAccepted, InviteError, InviteToken, PendingInvite, Verify};
use crate::modules;
use crate::runtime::{HandlerError, HandlerLimits, HandlerRuntime};
pub use crate::stats::VaultStats;

/// Log lines about refused or dropped messages: at most this many a second, for all vaults of
/// the process (a flood must not become a flood of log lines).
static REFUSALS: RateLimitedLog = RateLimitedLog::per_second(10);

/// How a vault behaves.
#[derive(Debug, Clone)]
pub struct VaultOptions {
    /// Ring timeout (seed: 60 s).
    pub ring_timeout: Duration,
    /// How long after a failed timeout sweep it is tried again (the seed's 30 s sweep period).
    /// Sweeps otherwise run only when a deadline is due.
    pub sweep_every: Duration,
    /// Bucket names: own store (`Local`) or a shared server (`Shared`).
    pub naming: BucketNaming,
    /// Handler budgets.
    pub limits: HandlerLimits,
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(60),
            sweep_every: Duration::from_secs(30),
            naming: BucketNaming::Local,
            limits: HandlerLimits::default(),
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
    /// `handler-state`: call machine state, key `call.<call_id>`.
    pub state: K,
    /// `connections`: key = peer guid.
    pub connections: K,
    /// `handlers`: modules.
    pub handlers: K,
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
    next_wake: Mutex<Option<Timestamp>>,
    one_at_a_time: Mutex<()>,
    /// Calls not yet settled, as last stored (loaded at open, replaced after every store), so an
    /// event finds the calls it may touch without listing or reading the bucket. The vault is the
    /// only writer of its `handler-state` bucket, so this is what the bucket holds.
    unsettled: Mutex<std::collections::BTreeMap<CallId, Call>>,
    /// Set once the subscriptions are live and the recovery sweep ran.
    serving: tokio::sync::watch::Sender<bool>,
    /// Seal-layer conversation keys with peer vaults (one ECDH per peer, not per message).
    seal_keys: giftwrap::SealKeys,
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

/// Sleeps `d`, or forever when there is nothing to wake for.
async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// A received message for a handler; one over the size limit goes as `null` (refused unread).
fn wire(kind: &str, payload: &[u8]) -> WireMessage {
    WireMessage::from_bytes(kind, if payload.len() <= MAX_MESSAGE_BYTES { payload } else { b"null" })
}

fn state_key(id: &CallId) -> String {
    format!("call.{id}")
}

impl<B: Bus + Clone, K: Kv + Clone> Vault<B, K> {
    /// Provisions the seed's buckets in `store`, installs the built-in handlers where missing, and
    /// loads them.
    pub async fn open<S: Store<Kv = K>>(
        store: &S,
        bus: B,
        guid: Guid,
        key: VaultKey,
        options: VaultOptions,
    ) -> Result<Self, VaultError> {
        let mut opened = Vec::new();
        for config in BucketConfig::seed_all(&options.naming) {
            opened.push(store.bucket(&config).await?);
        }
        let bucket = |base: &str| -> Result<K, VaultError> {
            let name = options.naming.name(base);
            let found = opened.iter().find(|k| k.config().name == name).cloned();
            found.ok_or(VaultError::Store(KvError::InvalidConfig(name)))
        };
        let buckets = Buckets {
            calls: bucket("calls")?,
            state: bucket("handler-state")?,
            connections: bucket("connections")?,
            handlers: bucket("handlers")?,
        };
        modules::install_builtins(&buckets.handlers).await?;
        let runtime = Arc::new(HandlerRuntime::new(options.limits));
        modules::load_all(&buckets.handlers, &runtime).await?;
        let mut unsettled = std::collections::BTreeMap::new();
        let stats = Arc::new(VaultStats::default());
        for key in buckets.state.keys().await? {
            if let Some(call) =
                buckets.state.get(&key).await?.and_then(|e| serde_json::from_slice::<Call>(&e.value).ok())
                && !call.record().status.is_terminal()
            {
                if call.record().status == CallStatus::Active {
                    stats.active_calls.fetch_add(1, Ordering::Relaxed);
                }
                unsettled.insert(call.id().clone(), call);
            }
        }
        Ok(Self {
            guid,
            key: Arc::new(key),
            bus,
            buckets,
            runtime,
            options,
            stats,
            next_wake: Mutex::new(None),
            one_at_a_time: Mutex::new(()),
            unsettled: Mutex::new(unsettled),
            serving: tokio::sync::watch::channel(false).0,
            seal_keys: giftwrap::SealKeys::new(),
        })
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

    /// Serves until the subscriptions end: requests, peer messages, sweeps, module updates.
    pub async fn run(self: Arc<Self>) -> Result<(), VaultError> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until the subscriptions end or `stop` completes. `stop` is looked at only between
    /// events: an event being handled is finished (stored, sent, notified) first.
    pub async fn run_until(self: Arc<Self>, stop: impl Future<Output = ()> + Send) -> Result<(), VaultError> {
        // Every request of the user's apps, known or not: each gets an answer.
        let mut requests = self.bus.subscribe(&format!("OwnerSpace.{}.forVault.>", self.guid)).await?;
        let mut peers = self.bus.subscribe(&subject::message_space_calls(&self.guid)).await?;
        let mut invites = self.bus.subscribe(&format!("MessageSpace.{}.connection.accept", self.guid)).await?;
        self.bus.flush().await?;
        // Stops with this task, however it ends (an abort included), and releases the bucket.
        let _reload =
            AbortOnDrop(tokio::spawn(modules::watch_and_reload(self.buckets.handlers.clone(), self.runtime.clone())));
        // Recover: act on stored calls at once (missed deadlines fire now).
        self.sweep().await;
        self.serving.send_replace(true);
        let mut stop = std::pin::pin!(stop);
        loop {
            let wake = self.sleep_for().await;
            tokio::select! {
                biased;
                () = &mut stop => break,
                m = requests.next() => match m {
                    Some(m) => self.on_own_request(&m.subject, &m.payload).await,
                    None => break,
                },
                m = peers.next() => match m {
                    Some(m) => self.on_peer_message(&m.subject, &m.payload).await,
                    None => break,
                },
                m = invites.next() => match m {
                    Some(m) => {
                        if let Err(e) = self.handle_invite_accepted(&m.payload).await
                            && let Some(suppressed) = REFUSALS.allow()
                        {
                            tracing::info!(suppressed, error = %Scrubbed(&e), "invite acceptance refused");
                        }
                    }
                    None => break,
                },
                () = sleep_or_never(wake) => {
                    self.stats.timer_wakeups.fetch_add(1, Ordering::Relaxed);
                    self.sweep().await;
                }
            }
        }
        Ok(())
    }

    /// Waits until [`Vault::run_until`] listens on every subject.
    pub async fn wait_serving(&self) {
        let mut rx = self.serving.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// One request of the user's apps (`OwnerSpace.{guid}.forVault.<area>.<verb>`): calls go to
    /// the call handlers, connections and history to [`Vault::handle_admin`]; anything else is
    /// answered `invalid_message` on `forApp.<area>.error`.
    async fn on_own_request(&self, subj: &str, payload: &[u8]) {
        let prefix = format!("OwnerSpace.{}.forVault.", self.guid);
        let Some(path) = subj.strip_prefix(&prefix) else { return };
        let area = path.split('.').next().unwrap_or_default();
        let result = match (area, Subject::parse(subj)) {
            (_, Ok(Subject::ForVault { kind, .. })) => self.handle_request(kind, payload).await.map(|_| ()),
            ("connection" | "history", _) => self.handle_admin(path, payload).await,
            (area, _) => self.answer_unknown(area, payload).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %Scrubbed(&e), "request failed");
        }
    }

    /// Answers a request of a type no handler takes.
    async fn answer_unknown(&self, area: &str, payload: &[u8]) -> Result<(), VaultError> {
        self.stats.admin_refused.fetch_add(1, Ordering::Relaxed);
        let json = request_json(payload);
        let in_reply_to = json.get("message_id").and_then(|v| v.as_str()).and_then(|s| MessageId::parse(s).ok());
        if area == "call" {
            let call_id = json.get("call_id").and_then(|v| v.as_str()).and_then(|s| CallId::parse(s).ok());
            return self.notify_error(ErrorCode::InvalidMessage, "unknown request type", in_reply_to, call_id).await;
        }
        let body = serde_json::json!({"code": ErrorCode::InvalidMessage, "message": "unknown request type"});
        self.publish_answer(&format!("{area}.error"), body, in_reply_to).await
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
        let refused = |e: VaultError| match e {
            VaultError::Invite(i) => AdminFailure::Refused(ErrorCode::InvalidMessage, i.to_string()),
            other => AdminFailure::Vault(other),
        };
        match request {
            AdminRequest::Invite { token } => {
                let token = InviteToken::parse(&token).map_err(|e| refused(e.into()))?;
                self.record_invite(&token).await.map_err(refused)?;
                Ok(("connection.invited".into(), serde_json::json!({})))
            }
            AdminRequest::Connect { token, mine } => {
                let theirs = InviteToken::parse(&token).map_err(|e| refused(e.into()))?;
                let mine = InviteToken::parse(&mine).map_err(|e| refused(e.into()))?;
                let own = mine.verify(unix_secs()).map_err(|e| refused(e.into()))?;
                if own.connection.guid != self.guid || own.vault_key != self.key.public() {
                    return Err(AdminFailure::Refused(
                        ErrorCode::InvalidMessage,
                        "`mine` is not this user's invite".into(),
                    ));
                }
                let inviter = theirs.verify(unix_secs()).map_err(|e| refused(e.into()))?;
                if inviter.connection.guid == self.guid {
                    return Err(AdminFailure::Refused(ErrorCode::SelfCall, "an invite of one's own".into()));
                }
                let peer = self.accept_invite(&theirs, &mine).await.map_err(refused)?;
                let name = connections::get(&self.buckets.connections, &peer)
                    .await
                    .map_err(|e| AdminFailure::Vault(e.into()))?
                    .map(|c| c.display_name.as_str().to_owned())
                    .unwrap_or_default();
                Ok(("connection.connected".into(), serde_json::json!({"peer_guid": peer, "display_name": name})))
            }
            AdminRequest::ListConnections => {
                let mut list = Vec::new();
                let keys = self.buckets.connections.keys().await.map_err(|e| AdminFailure::Vault(e.into()))?;
                for key in keys.iter().filter(|k| Guid::parse(k).is_ok()) {
                    let Ok(guid) = Guid::parse(key) else { continue };
                    if let Some(c) = connections::get(&self.buckets.connections, &guid)
                        .await
                        .map_err(|e| AdminFailure::Vault(e.into()))?
                    {
                        list.push(ConnectionSummary {
                            guid: c.guid,
                            user_key: c.user_key,
                            display_name: c.display_name,
                            state: c.state,
                        });
                    }
                }
                Ok(("connection.list".into(), serde_json::json!({"connections": list})))
            }
            AdminRequest::Revoke { peer } => {
                let found = connections::revoke(&self.buckets.connections, &peer)
                    .await
                    .map_err(|e| AdminFailure::Vault(e.into()))?;
                if !found {
                    return Err(AdminFailure::Refused(ErrorCode::NotConnected, "no such connection".into()));
                }
                Ok(("connection.revoked".into(), serde_json::json!({"peer_guid": peer})))
            }
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

    /// How long until the next deadline; none when nothing is due.
    async fn sleep_for(&self) -> Option<Duration> {
        let next = *self.next_wake.lock().await;
        next.map(|t| t.saturating_since(now()))
    }

    /// One gift wrap from a peer vault (`MessageSpace.{guid}.call.<kind>`).
    async fn on_peer_message(&self, subj: &str, payload: &[u8]) {
        let Ok(Subject::MessageSpace { kind, .. }) = Subject::parse(subj) else { return };
        if let Err(e) = self.handle_peer(kind, payload).await {
            tracing::warn!(error = %Scrubbed(&e), "message failed");
        }
    }

    /// Handles one app request (what arrives on `forVault.call.<kind>`).
    pub async fn handle_request(&self, kind: RequestKind, payload: &[u8]) -> Result<Outcome, VaultError> {
        let _one = self.one_at_a_time.lock().await;
        let json = request_json(payload);
        let named = json.get("call_id").and_then(|v| v.as_str()).and_then(|s| CallId::parse(s).ok());
        let calls = self.load_calls(named.as_ref()).await?;
        let peer = match json.get("peer_guid").and_then(|v| v.as_str()).and_then(|s| Guid::parse(s).ok()) {
            Some(g) => Some(g),
            None => named.as_ref().and_then(|id| calls.iter().find(|c| c.id() == id)).map(|c| c.peer().clone()),
        };
        let connection = self.active_connection(peer.as_ref()).await?;
        let in_reply_to = json.get("message_id").and_then(|v| v.as_str()).and_then(|s| MessageId::parse(s).ok());
        let event = Event::App(wire(kind.token(), payload));
        let (outcome, notified) = self.run_handler(HandlerName::for_request(kind), event, connection, calls).await?;
        if let (Outcome::Refused { code, .. }, false) = (&outcome, notified) {
            // A request too broken for the handler to answer still gets an answer.
            self.notify_error(*code, "the request was refused", in_reply_to, named).await?;
        }
        Ok(outcome)
    }

    async fn notify_error(
        &self,
        code: ErrorCode,
        text: &str,
        in_reply_to: Option<MessageId>,
        call_id: Option<CallId>,
    ) -> Result<(), VaultError> {
        let nil = MessageId::from_bytes([0; 16]);
        let n = CallErrorNotification {
            kind: tags::Error,
            message_id: MessageId::from_bytes(rand_bytes()),
            timestamp: now(),
            in_reply_to: in_reply_to.unwrap_or(nil),
            code,
            message: ErrorText::truncated(text),
            call_id,
            ext: None,
        };
        let json = serde_json::to_vec(&n).unwrap_or_default();
        self.bus.publish(&format!("OwnerSpace.{}.forApp.call.error", self.guid), Bytes::from(json)).await?;
        Ok(())
    }

    /// Handles one gift wrap from a peer vault (what arrives on `MessageSpace.{guid}.call.<kind>`).
    pub async fn handle_peer(&self, kind: PeerKind, wrap: &[u8]) -> Result<Outcome, VaultError> {
        let _one = self.one_at_a_time.lock().await;
        let unwrapped = match giftwrap::unwrap_with(&self.seal_keys, &self.key, wrap, unix_secs()) {
            Ok(u) => u,
            Err(e) => {
                self.stats.bad_wraps.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = REFUSALS.allow() {
                    tracing::info!(suppressed, reason = %Scrubbed(&e), "gift wrap dropped");
                }
                return Ok(Outcome::Ignored);
            }
        };
        let json: serde_json::Value = serde_json::from_str(&unwrapped.content).unwrap_or(serde_json::Value::Null);
        let from = json.get("from_guid").and_then(|v| v.as_str()).and_then(|s| Guid::parse(s).ok());
        let conn = match from.as_ref() {
            Some(g) => connections::get(&self.buckets.connections, g).await?,
            None => None,
        };
        let sealed_by_connection = conn
            .as_ref()
            .filter(|c| c.state == ConnectionState::Active)
            .and_then(|c| c.vault_key().ok())
            .is_some_and(|vk| vk == unwrapped.sender);
        if !sealed_by_connection {
            self.stats.unknown_senders.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = REFUSALS.allow() {
                tracing::info!(suppressed, "gift wrap from a vault that is not an active connection dropped");
            }
            return Ok(Outcome::Ignored);
        }
        let named = json.get("call_id").and_then(|v| v.as_str()).and_then(|s| CallId::parse(s).ok());
        let calls = self.load_calls(named.as_ref()).await?;
        let event = Event::Peer(wire(kind.token(), unwrapped.content.as_bytes()));
        Ok(self.run_handler(HandlerName::for_peer(kind), event, conn, calls).await?.0)
    }

    /// Records an invite this vault's user made, so that its acceptance is taken (once, before
    /// it expires).
    pub async fn record_invite(&self, token: &InviteToken) -> Result<(), VaultError> {
        let v = token.verify(unix_secs())?;
        if v.connection.guid != self.guid || v.vault_key != self.key.public() {
            return Err(InviteError::BadSignature.into());
        }
        let pending = serde_json::to_vec(&PendingInvite { expires_at: v.expires_at }).unwrap_or_default();
        self.buckets.connections.create(&invite::pending_key(&v.nonce), Bytes::from(pending)).await?;
        Ok(())
    }

    /// Accepts someone's invite: stores the inviter as a connection and sends `mine` (this user's
    /// own token) to the inviter's vault, sealed to the vault key the invite names.
    pub async fn accept_invite(&self, theirs: &InviteToken, mine: &InviteToken) -> Result<Guid, VaultError> {
        let t = unix_secs();
        let v = theirs.verify(t)?;
        connections::put(&self.buckets.connections, &v.connection).await?;
        let msg = InviteAccepted {
            kind: "connection.accept".into(),
            nonce: v.nonce,
            token: mine.as_str().to_owned(),
            from_guid: self.guid.clone(),
        };
        let json = serde_json::to_string(&msg).map_err(|_| InviteError::Malformed)?;
        let wrap = giftwrap::wrap_with(&self.seal_keys, &self.key, &v.vault_key, &json, t)
            .map_err(|_| InviteError::Signing)?;
        self.bus.publish(&format!("MessageSpace.{}.connection.accept", v.connection.guid), Bytes::from(wrap)).await?;
        Ok(v.connection.guid)
    }

    /// Takes an invitee's acceptance of one of this vault's pending invites.
    pub async fn handle_invite_accepted(&self, wrap: &[u8]) -> Result<Guid, VaultError> {
        let _one = self.one_at_a_time.lock().await;
        let t = unix_secs();
        let unwrapped = match giftwrap::unwrap_with(&self.seal_keys, &self.key, wrap, t) {
            Ok(u) => u,
            Err(e) => {
                self.stats.bad_wraps.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = REFUSALS.allow() {
                    tracing::info!(suppressed, reason = %Scrubbed(&e), "invite acceptance dropped");
                }
                return Err(InviteError::Malformed.into());
            }
        };
        let msg: InviteAccepted = serde_json::from_str(&unwrapped.content).map_err(|_| InviteError::Malformed)?;
        let key = invite::pending_key(&msg.nonce);
        let pending: PendingInvite = match self.buckets.connections.get(&key).await? {
            Some(e) => serde_json::from_slice(&e.value).map_err(|_| InviteError::Malformed)?,
            None => return Err(InviteError::NotPending.into()),
        };
        if t > pending.expires_at {
            return Err(InviteError::Expired.into());
        }
        let theirs = InviteToken::parse(&msg.token)?.verify(t)?;
        if theirs.connection.guid != msg.from_guid || theirs.vault_key != unwrapped.sender {
            self.stats.unknown_senders.fetch_add(1, Ordering::Relaxed);
            return Err(InviteError::BadSignature.into());
        }
        // Once: the nonce is gone before the connection is stored.
        self.buckets.connections.delete(&key).await?;
        connections::put(&self.buckets.connections, &theirs.connection).await?;
        let note = serde_json::json!({"type": "connection.accepted", "peer_guid": theirs.connection.guid.to_string(), "display_name": theirs.connection.display_name.as_str()});
        self.bus
            .publish(&format!("OwnerSpace.{}.forApp.connection.accepted", self.guid), Bytes::from(note.to_string()))
            .await?;
        Ok(theirs.connection.guid)
    }

    /// Runs the timeout handler over the stored calls now.
    pub async fn sweep(&self) {
        let _one = self.one_at_a_time.lock().await;
        let t = now();
        let result = async {
            let calls = self.load_calls(None).await?;
            self.run_handler(HandlerName::Timeout, Event::Tick, None, calls).await.map(|(o, _)| o)
        }
        .await;
        let mut wake = self.next_wake.lock().await;
        match result {
            // A deadline the sweep that just ran at `t` left standing (a handler that does not
            // move it) is tried again later, never at once.
            Ok(_) => {
                if let Some(at) = wake.filter(|at| *at <= t) {
                    self.stats.deadlines_left_standing.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%at, "the timeout handler left a passed deadline; retrying later");
                    *wake = Some(t.saturating_add(self.options.sweep_every));
                }
            }
            Err(e) => {
                tracing::warn!(error = %Scrubbed(&e), "timeout sweep failed");
                *wake = Some(t.saturating_add(self.options.sweep_every));
            }
        }
    }

    async fn active_connection(&self, peer: Option<&Guid>) -> Result<Option<Connection>, VaultError> {
        let Some(g) = peer else { return Ok(None) };
        Ok(connections::get(&self.buckets.connections, g)
            .await?
            .filter(|c| c.state == ConnectionState::Active && c.vault_key().is_ok()))
    }

    /// The named call and every call not yet settled.
    async fn load_calls(&self, named: Option<&CallId>) -> Result<Vec<Call>, VaultError> {
        let mut out: Vec<Call> = self.unsettled.lock().await.values().cloned().collect();
        // A settled (or unknown) call the event names is read from the bucket. (Order does not
        // matter: the switchboard keys what it restores by call id.)
        if let Some(id) = named.filter(|id| !out.iter().any(|c| c.id() == *id))
            && let Some(e) = self.buckets.state.get(&state_key(id)).await?
        {
            match serde_json::from_slice::<Call>(&e.value) {
                Ok(call) => out.push(call),
                Err(_) => tracing::warn!("unreadable call state skipped"),
            }
        }
        Ok(out)
    }

    /// Runs a handler and performs its outputs; returns its outcome and whether it notified the app.
    /// `connection` is the event's peer as just read (active), which outputs to that peer reuse.
    async fn run_handler(
        &self,
        name: HandlerName,
        event: Event,
        connection: Option<Connection>,
        calls: Vec<Call>,
    ) -> Result<(Outcome, bool), VaultError> {
        let t = now();
        let mut prior: std::collections::BTreeMap<CallId, CallStatus> =
            calls.iter().map(|c| (c.id().clone(), c.record().status)).collect();
        let input = HandlerInput {
            handler: name,
            local: self.guid.clone(),
            now: t,
            ring_timeout_secs: self.options.ring_timeout.as_secs(),
            event,
            connection: connection.as_ref().map(Connection::info),
            calls,
        };
        let started = std::time::Instant::now();
        let invoked = self.runtime.invoke(name, &input);
        self.stats.handler_latency.observe(started.elapsed());
        let output = match invoked {
            Ok(o) => o,
            Err(e) => {
                self.stats.handler_failures.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
        };
        match &output.outcome {
            Outcome::Refused { code, .. } => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = REFUSALS.allow() {
                    tracing::info!(suppressed, handler = name.as_str(), code = %code, "event refused");
                }
            }
            Outcome::Duplicate => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        // The run named the vault's next deadline, or none: that replaces the one held. A refusal
        // naming none (a module that refuses before it looks at the calls, as an installed or an
        // older one may) keeps the one held while calls are unsettled.
        let named =
            output.outputs.iter().rev().find_map(|o| if let OutputItem::WakeAt(at) = o { Some(*at) } else { None });
        let mut wake = self.next_wake.lock().await;
        match (&output.outcome, named) {
            (_, Some(at)) => *wake = Some(at),
            (Outcome::Refused { .. }, None) if !self.unsettled.lock().await.is_empty() => {}
            (_, None) => *wake = None,
        }
        drop(wake);
        let notified = output.outputs.iter().any(|o| matches!(o, OutputItem::Notify(_)));
        for item in output.outputs {
            self.perform(item, t, &mut prior, connection.as_ref()).await?;
        }
        // Counted once its outputs are done: whoever reads the counter finds what it stored.
        self.stats.handled.fetch_add(1, Ordering::Relaxed);
        Ok((output.outcome, notified))
    }

    async fn perform(
        &self,
        item: OutputItem,
        t: Timestamp,
        prior: &mut std::collections::BTreeMap<CallId, CallStatus>,
        known: Option<&Connection>,
    ) -> Result<(), VaultError> {
        match item {
            OutputItem::Store(call) => {
                let record = serde_json::to_vec(call.record()).unwrap_or_default();
                let state = serde_json::to_vec(&*call).unwrap_or_default();
                // Both at once: the embedded store commits them together (one fsync), JetStream
                // takes them in one round trip.
                let key = state_key(call.id());
                tokio::try_join!(
                    self.buckets.calls.put(call.id().as_str(), Bytes::from(record)),
                    self.buckets.state.put(&key, Bytes::from(state)),
                )?;
                let status = call.record().status;
                self.stats.transition(call.record().direction, prior.insert(call.id().clone(), status), status);
                let mut unsettled = self.unsettled.lock().await;
                if status.is_terminal() {
                    unsettled.remove(call.id());
                } else {
                    unsettled.insert(call.id().clone(), *call);
                }
            }
            OutputItem::Send { to, message } => {
                let vault_key = match known.filter(|c| c.guid == to) {
                    Some(c) => c.vault_key()?,
                    None => match connections::get(&self.buckets.connections, &to).await? {
                        Some(c) => c.vault_key()?,
                        None => {
                            if let Some(suppressed) = REFUSALS.allow() {
                                tracing::info!(suppressed, "message for a peer that is no connection not sent");
                            }
                            return Ok(());
                        }
                    },
                };
                match giftwrap::wrap_with(&self.seal_keys, &self.key, &vault_key, message.json(), secs(t)) {
                    Ok(wrap) => {
                        self.bus.publish(&format!("MessageSpace.{to}.call.{}", message.kind), Bytes::from(wrap)).await?
                    }
                    Err(e) => tracing::warn!(error = %Scrubbed(&e), "could not seal a message"),
                }
            }
            OutputItem::Notify(n) => {
                let subject = format!("OwnerSpace.{}.forApp.call.{}", self.guid, n.kind);
                self.bus.publish(&subject, Bytes::copy_from_slice(n.json().as_bytes())).await?;
            }
            // Taken from the outputs as a whole in `run_handler`.
            OutputItem::WakeAt(_) => {}
        }
        Ok(())
    }
}

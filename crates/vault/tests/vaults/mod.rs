//! Two users' vaults on a backend (embedded or NATS), their apps, and helpers to drive calls.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

pub mod filled;

use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use callvault_bus::{Bus, MemoryBus, NatsBus, NatsOptions, Subscription};
use callvault_crypto::{Delegation, SecretIdentity};
use callvault_protocol::Guid;
use callvault_protocol::fields::DisplayName;
use callvault_store::{BucketNaming, EmbeddedStore, Kv, NatsStore, Store};
use callvault_testkit::NatsServer;
use callvault_vault::connections::{self, Connection};
use callvault_vault::manager::{Vault, VaultOptions};
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct User<B: Bus + Clone, K: Kv + Clone> {
    pub guid: Guid,
    pub vault: Arc<Vault<B, K>>,
    pub delegation: Delegation,
    pub app: Subscription,
    /// The app's view of the message family: `forApp.message.*`.
    pub notes: Subscription,
    pub task: tokio::task::JoinHandle<Result<(), callvault_vault::manager::VaultError>>,
    pub identity: Arc<SecretIdentity>,
    pub vault_key_nsec: String,
}

/// Where vaults live: their bus connection, their store, and the apps' (gateway's) bus.
pub trait Backend {
    type Bus: Bus + Clone;
    type Store: Store;
    async fn bus(&self) -> Self::Bus;
    async fn store(&self, guid: &Guid) -> (Self::Store, BucketNaming);
}

pub struct Embedded {
    pub bus: MemoryBus,
    pub dir: tempfile::TempDir,
}

impl Backend for Embedded {
    type Bus = MemoryBus;
    type Store = EmbeddedStore;
    async fn bus(&self) -> MemoryBus {
        self.bus.clone()
    }
    async fn store(&self, guid: &Guid) -> (EmbeddedStore, BucketNaming) {
        // After a restart the previous vault's tasks may still be releasing the file.
        let path = self.dir.path().join(format!("{guid}.redb"));
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match EmbeddedStore::open(&path) {
                Ok(s) => return (s, BucketNaming::Local),
                Err(e) => assert!(tokio::time::Instant::now() < deadline, "cannot reopen the store: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub struct Nats {
    pub server: NatsServer,
}

impl Backend for Nats {
    type Bus = NatsBus;
    type Store = NatsStore;
    async fn bus(&self) -> NatsBus {
        NatsBus::connect(NatsOptions { url: self.server.url(), ..NatsOptions::default() }).await.unwrap()
    }
    async fn store(&self, guid: &Guid) -> (NatsStore, BucketNaming) {
        (NatsStore::new(self.bus().await.client().clone()), BucketNaming::Shared { guid: guid.to_string() })
    }
}

pub fn embedded() -> Embedded {
    Embedded { bus: MemoryBus::new(), dir: tempfile::tempdir().unwrap() }
}

pub fn nats() -> Nats {
    Nats { server: NatsServer::start() }
}

pub async fn user<W: Backend>(w: &W, app_bus: &W::Bus, options: VaultOptions) -> User<W::Bus, <W::Store as Store>::Kv> {
    let identity = Arc::new(SecretIdentity::generate());
    let vault_key = SecretIdentity::generate();
    let delegation = Delegation::sign(&identity, &vault_key.public(), 1_790_000_000).unwrap();
    start(w, app_bus, options, identity, vault_key, delegation).await
}

/// Opens and runs the vault of `identity` on its store (again, after a restart).
pub async fn start<W: Backend>(
    w: &W,
    app_bus: &W::Bus,
    options: VaultOptions,
    identity: Arc<SecretIdentity>,
    vault_key: SecretIdentity,
    delegation: Delegation,
) -> User<W::Bus, <W::Store as Store>::Kv> {
    let guid = identity.public().guid();
    let vault_key_nsec = vault_key.to_nsec().to_string();
    let (store, naming) = w.store(&guid).await;
    let options = VaultOptions { naming, ..options };
    let vault = Arc::new(Vault::open(&store, w.bus().await, guid.clone(), vault_key, options).await.unwrap());
    let app = app_bus.subscribe(&format!("OwnerSpace.{guid}.forApp.call.*")).await.unwrap();
    let notes = app_bus.subscribe(&format!("OwnerSpace.{guid}.forApp.message.*")).await.unwrap();
    app_bus.flush().await.unwrap();
    let running = vault.clone();
    let task = tokio::spawn(async move { running.run().await });
    // The vault subscribes when it starts; wait until a probe request reaches it.
    let probe = json!({"type": "call.end", "message_id": id(999_999), "call_id": id(999_999), "timestamp": now()});
    let mut app_probe = app_bus.subscribe(&format!("OwnerSpace.{guid}.forApp.call.error")).await.unwrap();
    app_bus.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        app_bus.publish(&format!("OwnerSpace.{guid}.forVault.call.end"), Bytes::from(probe.to_string())).await.unwrap();
        if app_probe.next_within(Duration::from_millis(200)).await.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the vault never started serving");
    }
    let mut u = User { guid, vault, delegation, app, notes, task, identity, vault_key_nsec };
    while u.app.next_within(Duration::from_millis(50)).await.is_some() {} // drain the probes' errors
    u
}

pub async fn connect<B: Bus + Clone, K: Kv + Clone>(a: &User<B, K>, b: &User<B, K>) {
    for (me, peer, name) in [(a, b, "Bob"), (b, a, "Alice")] {
        let c = Connection::from_delegation(&peer.delegation, DisplayName::new(name).unwrap(), "local").unwrap();
        connections::put(&me.vault.buckets().connections, &c).await.unwrap();
    }
}

/// Waits (up to [`WAIT`]) until `f` holds; panics saying `what` otherwise.
/// Waits until the vault runs version `version` of the test family `probe`.
pub async fn probe_version<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>, version: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !u.vault.families().iter().any(|f| f.family.as_str() == "probe" && f.state_version == version) {
        assert!(tokio::time::Instant::now() < deadline, "the vault never took on probe version {version}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next message on `sub` whose subject ends with `.{suffix}` (others are skipped), as JSON.
pub async fn next_of(sub: &mut Subscription, suffix: &str) -> Value {
    loop {
        let m = sub.next_within(WAIT).await.unwrap_or_else(|| panic!("no {suffix}"));
        if m.subject.ends_with(&format!(".{suffix}")) {
            return serde_json::from_slice(&m.payload).unwrap();
        }
    }
}

pub fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

pub fn now() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    callvault_protocol::Timestamp::from_unix_millis(i64::try_from(ms).unwrap()).to_string()
}

pub async fn request<B: Bus + Clone, K: Kv + Clone>(bus: &B, u: &User<B, K>, kind: &str, body: Value) {
    bus.publish(&format!("OwnerSpace.{}.forVault.call.{kind}", u.guid), Bytes::from(body.to_string())).await.unwrap();
}

/// The next notification of `kind` the user's app receives (others are skipped).
pub async fn expect<B: Bus + Clone, K: Kv + Clone>(u: &mut User<B, K>, kind: &str) -> Value {
    loop {
        let m = u.app.next_within(WAIT).await.unwrap_or_else(|| panic!("no {kind} notification"));
        if m.subject.ends_with(&format!(".{kind}")) {
            return serde_json::from_slice(&m.payload).unwrap();
        }
    }
}

pub async fn record<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>, call: &str) -> Value {
    let e = u.vault.buckets().calls.get(call).await.unwrap().expect("a record");
    serde_json::from_slice(&e.value).unwrap()
}

/// Waits until `u`'s record of `call` has `status`.
pub async fn status_becomes<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>, call: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(e) = u.vault.buckets().calls.get(call).await.unwrap() {
            let r: Value = serde_json::from_slice(&e.value).unwrap();
            if r["status"] == status {
                return r;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "{call} never became {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn initiate(call: &str, peer: &Guid, n: u32) -> Value {
    json!({"type": "call.initiate", "message_id": id(n), "call_id": call, "timestamp": now(), "peer_guid": peer.to_string(), "call_type": "audio"})
}

pub fn simple(kind: &str, call: &str, n: u32) -> Value {
    json!({"type": format!("call.{kind}"), "message_id": id(n), "call_id": call, "timestamp": now()})
}

pub async fn answered<B: Bus + Clone, K: Kv + Clone>(
    bus: &B,
    a: &mut User<B, K>,
    b: &mut User<B, K>,
    call: &str,
    n: u32,
) {
    request(bus, a, "initiate", initiate(call, &b.guid, n)).await;
    expect(b, "incoming").await;
    let mut accept = simple("accept", call, n + 1);
    accept["public_key"] = json!("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=");
    accept["key_id"] = json!(id(n + 2));
    request(bus, b, "accept", accept).await;
    expect(a, "accepted").await;
    status_becomes(a, call, "active").await;
    status_becomes(b, call, "active").await;
}

/// Kills a vault's task without any shutdown and starts it again on the same store.
/// What it takes to start a stopped user's vault again.
pub struct Stopped {
    pub identity: Arc<SecretIdentity>,
    pub key: SecretIdentity,
    pub delegation: Delegation,
}

/// Stops `u`'s vault (its task ends, its store is released).
pub async fn stop_vault<B: Bus + Clone, K: Kv + Clone>(u: User<B, K>) -> Stopped {
    let User { task, vault, identity, vault_key_nsec, delegation, app, notes, .. } = u;
    task.abort();
    let _ = task.await;
    drop((vault, app, notes));
    Stopped { identity, key: SecretIdentity::parse(&vault_key_nsec).unwrap(), delegation }
}

pub async fn restart_vault<W: Backend>(
    w: &W,
    bus: &W::Bus,
    u: User<W::Bus, <W::Store as Store>::Kv>,
    options: VaultOptions,
) -> User<W::Bus, <W::Store as Store>::Kv> {
    let Stopped { identity, key, delegation } = stop_vault(u).await;
    start(w, bus, options, identity, key, delegation).await
}

//! Call setup: from `call.initiate` published on A's `forVault` to `call.incoming` on B's
//! `forApp`, through both vaults (WASM handlers, gift wraps, stores); p50/p99 one at a time, and
//! sustained setups per second with 8 caller/callee pairs in parallel; on the embedded default (one
//! store file for all vaults, as `callvault serve` runs), on a store file per vault, and on NATS.
//! `cargo bench -p callvault-vault --bench call_setup`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callvault_bus::{Bus, MemoryBus, NatsBus, NatsOptions, Subscription};
use callvault_crypto::{Delegation, SecretIdentity};
use callvault_protocol::fields::DisplayName;
use callvault_protocol::{Guid, Timestamp};
use callvault_store::{BucketNaming, EmbeddedStore, NatsStore, Store};
use callvault_testkit::NatsServer;
use callvault_vault::connections::{self, Connection};
use callvault_vault::manager::{Vault, VaultOptions};

struct Party {
    guid: Guid,
    delegation: Delegation,
    app: Subscription,
}

async fn party<B: Bus + Clone, S: Store>(
    bus: &B,
    app_bus: &B,
    store: S,
    naming: BucketNaming,
    guid: Guid,
    key: SecretIdentity,
    delegation: Delegation,
) -> (Party, Arc<Vault<B, S::Kv>>) {
    let vault = Arc::new(
        Vault::open(&store, bus.clone(), guid.clone(), key, VaultOptions { naming, ..VaultOptions::default() })
            .await
            .unwrap(),
    );
    let app = app_bus.subscribe(&format!("OwnerSpace.{guid}.forApp.call.*")).await.unwrap();
    app_bus.flush().await.unwrap();
    tokio::spawn(vault.clone().run());
    (Party { guid, delegation, app }, vault)
}

fn ids() -> (SecretIdentity, Guid, Delegation) {
    let user = SecretIdentity::generate();
    let key = SecretIdentity::generate();
    let d = Delegation::sign(&user, &key.public(), 1_790_000_000).unwrap();
    (key, user.public().guid(), d)
}

fn now() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    Timestamp::from_unix_millis(i64::try_from(ms).unwrap()).to_string()
}

fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// One setup: initiate, wait for B's incoming, then cancel and wait for B's ended (so the pair is
/// free again). Returns the initiate -> incoming latency.
async fn setup<B: Bus>(app_bus: &B, a: &Guid, b: &mut Party, n: u64) -> Duration {
    let call = uuid(n);
    let init = serde_json::json!({"type": "call.initiate", "message_id": uuid(n + 1), "call_id": call, "timestamp": now(), "peer_guid": b.guid.to_string(), "call_type": "audio"});
    let t = Instant::now();
    app_bus.publish(&format!("OwnerSpace.{a}.forVault.call.initiate"), Bytes::from(init.to_string())).await.unwrap();
    loop {
        let m = b.app.next_within(Duration::from_secs(10)).await.expect("incoming");
        if m.subject.ends_with(".incoming") {
            break;
        }
    }
    let latency = t.elapsed();
    let end = serde_json::json!({"type": "call.end", "message_id": uuid(n + 2), "call_id": call, "timestamp": now()});
    app_bus.publish(&format!("OwnerSpace.{a}.forVault.call.end"), Bytes::from(end.to_string())).await.unwrap();
    loop {
        let m = b.app.next_within(Duration::from_secs(10)).await.expect("ended");
        if m.subject.ends_with(".ended") {
            break;
        }
    }
    latency
}

async fn run<B: Bus + Clone, S: Store>(
    name: &str,
    bus_for: impl Fn() -> B,
    store_for: impl Fn(&Guid) -> (S, BucketNaming),
    app_bus: &B,
) {
    // Pairs of users, connected.
    let mut pairs = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..pairs_n() {
        let (ka, ga, da) = ids();
        let (kb, gb, db) = ids();
        let (sa, na) = store_for(&ga);
        let (sb, nb) = store_for(&gb);
        let (a, va) = party(&bus_for(), app_bus, sa, na, ga, ka, da).await;
        let (b, vb) = party(&bus_for(), app_bus, sb, nb, gb, kb, db).await;
        for (me, peer) in [(&va, &b), (&vb, &a)] {
            let c = Connection::from_delegation(&peer.delegation, DisplayName::new("Peer").unwrap(), "local").unwrap();
            connections::put(&me.buckets().connections, &c).await.unwrap();
        }
        keep.push((va, vb));
        pairs.push((a, b));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Latency, one setup at a time.
    let (a0, b0) = &mut pairs[0];
    for i in 0..20 {
        setup(app_bus, &a0.guid, b0, 10_000 + i * 10).await;
    }
    let mut samples: Vec<Duration> = Vec::new();
    for i in 0..300 {
        samples.push(setup(app_bus, &a0.guid, b0, 100_000 + i * 10).await);
    }
    samples.sort();
    let (p50, p99) = (samples[samples.len() / 2], samples[samples.len() * 99 / 100]);
    // Throughput: every pair at once.
    let per_pair = (1200 / pairs_n()).max(1) as u64;
    let cpu = cpu_seconds();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (k, (a, mut b)) in pairs.into_iter().enumerate() {
        let app_bus = app_bus.clone();
        let a = a.guid;
        tasks.push(tokio::spawn(async move {
            for i in 0..per_pair {
                setup(&app_bus, &a, &mut b, 1_000_000 * (k as u64 + 1) + i * 10).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let setups = per_pair * pairs_n() as u64;
    let wall = t.elapsed().as_secs_f64();
    println!(
        "{name:<9} setup latency p50 {p50:>9.2?}  p99 {p99:>9.2?}   sustained {:>6.0} setups/s ({} pairs; each setup also cancels the call; {:.2} cores busy)",
        setups as f64 / wall,
        pairs_n(),
        (cpu_seconds() - cpu) / wall
    );
    drop(keep);
}

/// Caller/callee pairs (`CALLVAULT_BENCH_PAIRS`, default 8).
fn pairs_n() -> usize {
    std::env::var("CALLVAULT_BENCH_PAIRS").ok().and_then(|v| v.parse().ok()).unwrap_or(8)
}

/// CPU time of this process so far (user + system), from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    f.iter().sum::<f64>() / 100.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `CALLVAULT_BENCH_ONLY=embedded` (or `files`, `nats`) runs one setup, e.g. under a profiler.
    let only = std::env::var("CALLVAULT_BENCH_ONLY").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(dir.path().join("callvault.redb")).unwrap();
    let mem = MemoryBus::new();
    if wanted("embedded") {
        run(
            "embedded",
            || mem.clone(),
            // As `callvault serve` runs it: one store file for every vault, buckets named per user.
            |g| (embedded.clone(), BucketNaming::Shared { guid: g.to_string() }),
            &mem,
        )
        .await;
    }
    if wanted("files") {
        // A redb file per vault, as a vault running alone would have: commits of different vaults
        // do not queue behind one writer.
        run(
            "files",
            || mem.clone(),
            |g| (EmbeddedStore::open(dir.path().join(format!("{g}.redb"))).unwrap(), BucketNaming::Local),
            &mem,
        )
        .await;
    }
    if !wanted("nats") {
        return;
    }

    let server = NatsServer::start();
    let connect =
        || async { NatsBus::connect(NatsOptions { url: server.url(), ..NatsOptions::default() }).await.unwrap() };
    let app_bus = connect().await;
    let mut buses = Vec::new();
    for _ in 0..2 * pairs_n() {
        buses.push(connect().await);
    }
    let next = std::sync::Mutex::new(buses.into_iter());
    let store_client = connect().await;
    run(
        "nats",
        || next.lock().unwrap().next().unwrap(),
        |g| (NatsStore::new(store_client.client().clone()), BucketNaming::Shared { guid: g.to_string() }),
        &app_bus,
    )
    .await;
}

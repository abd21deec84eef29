//! Call setups through the gateway: a `callvault serve` process (release build), N app
//! connections over WebSocket from this process (N/2 caller/callee pairs), on embedded defaults
//! and on NATS. Reports setup latency (from the caller sending `call.initiate` to the callee's app
//! receiving `call.incoming`) p50/p99, sustained setup cycles per second with every pair calling at
//! once (each cycle: initiate, incoming, reject, rejected), and the server's memory per idle
//! connected app (its RSS with N apps connected minus with none, divided by N).
//!
//! `cargo bench -p callvault --bench gateway_setups` (`-- 100` to run only N = 100).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    missing_docs
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault_client::Client;
use callvault_crypto::SecretIdentity;
use callvault_protocol::CallId;
use callvault_protocol::fields::CallType;
use callvault_testkit::{NatsServer, ServeProcess};

const BIN: &str = env!("CARGO_BIN_EXE_callvault");
const CYCLES_PER_PAIR: usize = 6;

struct Serve {
    process: ServeProcess,
    url: String,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(nats: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<&str> = nats.map(|url| vec!["--nats", url]).unwrap_or_default();
        // Benchmark clients connect many at once: lift the per-connection limits out of the way.
        let env = [
            ("CALLVAULT_LOG", "warn"),
            ("CALLVAULT_LIMITS_MESSAGES_PER_SECOND", "100000"),
            ("CALLVAULT_LIMITS_BURST", "100000"),
            // Every bench app connects from 127.0.0.1: lift the per-source caps meant for floods.
            ("CALLVAULT_LIMITS_MAX_CONNECTIONS_PER_SOURCE", "100000"),
            ("CALLVAULT_LIMITS_MAX_UNAUTHENTICATED", "100000"),
            ("CALLVAULT_LIMITS_MAX_UNAUTHENTICATED_PER_SOURCE", "100000"),
            ("CALLVAULT_LIMITS_LOGIN_BURST", "100000"),
            ("CALLVAULT_LIMITS_LOGINS_PER_SECOND", "100000"),
        ];
        let process = ServeProcess::start(Path::new(BIN), dir.path(), &args, &env);
        Self { url: process.url(), process, _dir: dir }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn connect_all(url: &str, ids: &[Arc<SecretIdentity>]) -> Vec<Client> {
    let mut out = Vec::with_capacity(ids.len());
    // A few at a time: registration makes a vault (buckets, handler module).
    for chunk in ids.chunks(25) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|id| {
                let (url, id) = (url.to_owned(), id.clone());
                tokio::spawn(async move { Client::connect(&url, id, "bench").await.unwrap() })
            })
            .collect();
        for t in tasks {
            out.push(t.await.unwrap());
        }
    }
    out
}

/// One caller/callee pair: `cycles` setups; returns the setup latencies.
async fn pair(mut caller: Client, mut callee: Client, cycles: usize) -> (Vec<Duration>, Client, Client) {
    let peer = callee.guid().clone();
    let mut lat = Vec::with_capacity(cycles);
    for _ in 0..cycles {
        let t = Instant::now();
        let id: CallId = caller.call(&peer, CallType::Audio).await.unwrap();
        let e = callee.wait_incoming(Duration::from_secs(30)).await.unwrap();
        lat.push(t.elapsed());
        assert_eq!(e.call_id(), Some(id.as_str()));
        callee.reject(&id).await.unwrap();
        let settled = caller.wait_call_settled(&id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(settled.kind, "call.rejected");
    }
    (lat, caller, callee)
}

async fn run(backend: &str, nats: Option<&str>, n: usize) {
    let serve = Serve::start(nats);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids: Vec<Arc<SecretIdentity>> = (0..n).map(|_| Arc::new(SecretIdentity::generate())).collect();
    // Register everyone, then disconnect: the baseline holds the vaults but no connections.
    let t = Instant::now();
    for c in connect_all(&serve.url, &ids).await {
        c.close().await;
    }
    let register_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = serve.rss_kib();
    let mut clients = connect_all(&serve.url, &ids).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected = serve.rss_kib();
    let per_conn = (connected.saturating_sub(base)) as f64 / n as f64;

    // Pair them up: invite and accept.
    let mut pairs = Vec::new();
    while clients.len() >= 2 {
        let mut callee = clients.pop().unwrap();
        let mut caller = clients.pop().unwrap();
        let token = caller.invite(600).await.unwrap();
        callee.accept_invite(token.as_str()).await.unwrap();
        caller.wait_for(Duration::from_secs(30), "acceptance", |e| e.kind == "connection.accepted").await.unwrap();
        pairs.push((caller, callee));
    }

    // Latency one at a time (first 50 pairs, 2 setups each), then every pair at once.
    let mut solo = Vec::new();
    let mut back = Vec::new();
    for (caller, callee) in pairs.drain(..) {
        if solo.len() < 100 {
            let (lat, a, b) = pair(caller, callee, 2).await;
            solo.extend(lat);
            back.push((a, b));
        } else {
            back.push((caller, callee));
        }
    }
    solo.sort();
    let t = Instant::now();
    let tasks: Vec<_> = back.into_iter().map(|(a, b)| tokio::spawn(pair(a, b, CYCLES_PER_PAIR))).collect();
    let mut loaded = Vec::new();
    for task in tasks {
        loaded.extend(task.await.unwrap().0);
    }
    let elapsed = t.elapsed().as_secs_f64();
    loaded.sort();
    println!(
        "{backend:<8} N={n:<5} idle: {per_conn:>6.1} KiB/app (RSS {base} -> {connected} KiB; register {register_s:.1} s) | \
         one at a time: p50 {:.2} ms p99 {:.2} ms | all {} pairs: {:.0} setups/s, p50 {:.2} ms p99 {:.2} ms",
        pct(&solo, 0.5),
        pct(&solo, 0.99),
        n / 2,
        loaded.len() as f64 / elapsed,
        pct(&loaded, 0.5),
        pct(&loaded, 0.99),
    );
}

fn main() {
    let only: Option<usize> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    let sizes: Vec<usize> = only.map_or_else(|| vec![100, 1_000], |n| vec![n]);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for &n in &sizes {
            run("embedded", None, n).await;
            let nats = NatsServer::start();
            run("nats", Some(&nats.url()), n).await;
        }
    });
}

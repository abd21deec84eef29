//! KV latency and throughput per backend: `cargo bench -p callvault-store --bench kv`.
//!
//! Sequential operations from one task (latency p50/p99 and ops/s), plus 8 concurrent writers
//! (aggregate puts/s). Results go in docs/BENCHMARKS.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    missing_docs
)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use callvault_store::{BucketConfig, EmbeddedStore, Kv, NatsStore, Store};
use callvault_testkit::NatsServer;

const N: usize = 2000;

fn report(backend: &str, op: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{backend:<10} {op:<14} n={:<5} p50={:>9.1?} p99={:>9.1?} ops/s={:>9.0}",
        samples.len(),
        p(0.50),
        p(0.99),
        samples.len() as f64 / total.as_secs_f64()
    );
}

async fn timed<F: std::future::Future>(f: F) -> (F::Output, Duration) {
    let t = Instant::now();
    let out = f.await;
    (out, t.elapsed())
}

async fn bench<S: Store>(backend: &str, store: &S) {
    let kv = store.bucket(&BucketConfig::new("bench", 1, 64 * 1024, None).unwrap()).await.unwrap();
    let value = Bytes::from(vec![b'x'; 512]); // a call record is a few hundred bytes
    let mut put = Vec::with_capacity(N);
    for i in 0..N {
        put.push(timed(kv.put(&format!("k{i}"), value.clone())).await.1);
    }
    report(backend, "put 512 B", put);
    let mut get = Vec::with_capacity(N);
    for i in 0..N {
        let (v, d) = timed(kv.get(&format!("k{i}"))).await;
        assert!(v.unwrap().is_some());
        get.push(d);
    }
    report(backend, "get", get);
    let mut cas = Vec::with_capacity(N);
    let mut rev = kv.put("cas", value.clone()).await.unwrap();
    for _ in 0..N {
        let (r, d) = timed(kv.update("cas", value.clone(), rev)).await;
        rev = r.unwrap();
        cas.push(d);
    }
    report(backend, "update (CAS)", cas);
    let writers = 8;
    let per = N / writers;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let kv = kv.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                kv.put(&format!("c{w}-{i}"), value.clone()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "{backend:<10} {:<14} n={:<5} ops/s={:>9.0}",
        "put x8 tasks",
        writers * per,
        (writers * per) as f64 / t.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    println!("callvault-store kv bench ({} ops per measurement)", N);
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(dir.path().join("bench.redb")).unwrap();
    bench("embedded", &embedded).await;
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    bench("jetstream", &NatsStore::new(client)).await;
}

//! Bus publish -> deliver latency and throughput per backend: `cargo bench -p callvault-bus --bench bus`.

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
use callvault_bus::{Bus, MemoryBus, NatsBus, NatsOptions};
use callvault_testkit::NatsServer;

const LATENCY_N: usize = 5000;
const THROUGHPUT_N: usize = 100_000;

fn pct(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)]
}

async fn bench<B: Bus>(name: &str, publisher: &B, subscriber: &B) {
    // Latency: one message in flight at a time, 512 B (a sealed call message).
    let mut sub = subscriber.subscribe("bench.lat").await.unwrap();
    subscriber.flush().await.unwrap();
    let payload = Bytes::from(vec![b'x'; 512]);
    let mut samples = Vec::with_capacity(LATENCY_N);
    for _ in 0..LATENCY_N {
        let t = Instant::now();
        publisher.publish("bench.lat", payload.clone()).await.unwrap();
        sub.next().await.unwrap();
        samples.push(t.elapsed());
    }
    let (p50, p99) = (pct(&mut samples, 0.5), pct(&mut samples, 0.99));
    println!("{name:<10} publish->deliver 512 B  n={LATENCY_N}  p50={p50:>8.1?}  p99={p99:>8.1?}");

    // Throughput: a stream of 512 B messages, counted at the subscriber.
    let mut sub = subscriber.subscribe("bench.tput").await.unwrap();
    subscriber.flush().await.unwrap();
    // Windows of 10 000 in flight: below the in-process subscriber queue, so nothing is dropped.
    let window = 10_000;
    let t = Instant::now();
    for _ in 0..THROUGHPUT_N / window {
        for _ in 0..window {
            publisher.publish("bench.tput", payload.clone()).await.unwrap();
        }
        publisher.flush().await.unwrap();
        for _ in 0..window {
            sub.next().await.unwrap();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!("{name:<10} throughput 512 B      n={THROUGHPUT_N}  msgs/s={:>9.0}", THROUGHPUT_N as f64 / secs);
}

#[tokio::main]
async fn main() {
    let mem = MemoryBus::new();
    bench("in-process", &mem, &mem).await;
    let server = NatsServer::start();
    let connect = || NatsBus::connect(NatsOptions { url: server.url(), ..NatsOptions::default() });
    let (p, s) = (connect().await.unwrap(), connect().await.unwrap());
    bench("nats", &p, &s).await;
}

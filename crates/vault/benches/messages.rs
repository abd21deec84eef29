//! Messages between two vaults (the `message` family): send -> the peer's app p50/p99, one at a
//! time; then delivered-and-acknowledged messages per second with a window of messages in
//! flight, from `message.send` on A's `forVault` until A's app has every `message.delivered` and
//! both outboxes are empty. Bodies are sealed beforehand (the app's work, not the vaults'). On
//! the embedded store (a file per vault, the tests' backend) and on NATS (JetStream KV).
//! `cargo bench -p callvault-vault --bench messages` (`-- --smoke`: a few messages, for CI).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    missing_docs
)]

#[path = "../tests/vaults/mod.rs"]
mod vaults;

use std::time::{Duration, Instant};

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_crypto::seal::seal_message;
use callvault_protocol::MessageId;
use callvault_vault::manager::VaultOptions;
use serde_json::json;
use vaults::*;

struct Sizes {
    latency: usize,
    throughput: usize,
    window: usize,
}

async fn run<W: Backend>(name: &str, w: W, sizes: &Sizes) {
    let bus = w.bus().await;
    let (mut a, mut b) = (user(&w, &bus, VaultOptions::default()).await, user(&w, &bus, VaultOptions::default()).await);
    connect(&a, &b).await;
    let total = sizes.latency + sizes.throughput;
    let requests: Vec<(String, Bytes)> = (0..total)
        .map(|i| {
            let n = 1_000_000 + u32::try_from(i).unwrap();
            let mid = MessageId::parse(&id(n)).unwrap();
            let text = format!("message {i}: a short line of text, as people write them");
            let body = seal_message(&a.identity, &b.identity.public(), &mid, &text).unwrap();
            let req = json!({"type": "message.send", "message_id": id(n), "timestamp": now(),
                "conversation": b.guid.to_string(), "body": body.as_str()});
            (id(n), Bytes::from(req.to_string()))
        })
        .collect();
    let subject = format!("OwnerSpace.{}.forVault.message.send", a.guid);

    // Latency: one at a time, to the peer's app.
    let mut samples = Vec::new();
    for (mid, req) in &requests[..sizes.latency] {
        let t = Instant::now();
        bus.publish(&subject, req.clone()).await.unwrap();
        loop {
            let m = b.notes.next_within(Duration::from_secs(10)).await.expect("message.received");
            if m.subject.ends_with(".received")
                && serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["sent_message_id"] == mid.as_str()
            {
                break;
            }
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let (p50, p99) = (samples[samples.len() / 2], samples[samples.len() * 99 / 100]);
    while a.vault.unacknowledged() > 0 || b.vault.unacknowledged() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while a.notes.next_within(Duration::from_millis(50)).await.is_some() {}
    while b.notes.next_within(Duration::from_millis(50)).await.is_some() {}

    // Throughput: `window` in flight; done when A's app has every delivery receipt and both
    // outboxes are empty (every deliver and every receipt acknowledged).
    let batch = &requests[sizes.latency..];
    let t = Instant::now();
    let (mut published, mut delivered) = (0usize, 0usize);
    // B's app reads its notifications as they come (a NATS client that does not would be
    // dropped as a slow consumer), until told to stop.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let drain = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                m = b.notes.next_within(Duration::from_secs(30)) => if m.is_none() { break },
            }
        }
        b
    });
    while delivered < batch.len() {
        while published < batch.len() && published - delivered < sizes.window {
            bus.publish(&subject, batch[published].1.clone()).await.unwrap();
            published += 1;
        }
        let m = a.notes.next_within(Duration::from_secs(20)).await.expect("message.delivered");
        delivered += usize::from(m.subject.ends_with(".delivered"));
    }
    while a.vault.unacknowledged() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let wall = t.elapsed().as_secs_f64();
    let _ = stop.send(());
    let b = drain.await.unwrap();
    while b.vault.unacknowledged() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let wall_all = t.elapsed().as_secs_f64();
    if std::env::var("CALLVAULT_BENCH_DEBUG").is_ok() {
        for (who, v) in [("a", &a.vault), ("b", &b.vault)] {
            let st = v.stats();
            let n = st.handler_latency.counts().iter().sum::<u64>();
            println!(
                "{who}: {n} handler runs, mean {:.3} ms, last fuel {}, last input {} B",
                st.handler_latency.sum_secs() * 1000.0 / n as f64,
                st.last_fuel.load(std::sync::atomic::Ordering::Relaxed),
                st.last_input_bytes.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    }
    println!(
        "{name:<9} send -> peer app p50 {p50:>8.2?}  p99 {p99:>8.2?}   {:>6.0} messages/s delivered and acknowledged ({} messages, {} in flight; {:.0}/s with the receipts' acks too)",
        batch.len() as f64 / wall,
        batch.len(),
        sizes.window,
        batch.len() as f64 / wall_all,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let sizes = if smoke {
        Sizes { latency: 10, throughput: 50, window: 10 }
    } else {
        Sizes { latency: 300, throughput: 3_000, window: 64 }
    };
    let only = std::env::var("CALLVAULT_BENCH_ONLY").ok();
    if only.as_deref().is_none_or(|o| o == "embedded") {
        run("embedded", embedded(), &sizes).await;
    }
    if only.as_deref().is_none_or(|o| o == "nats") {
        run("nats", nats(), &sizes).await;
    }
}

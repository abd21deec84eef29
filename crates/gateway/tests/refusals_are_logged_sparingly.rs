//! A flood of refused frames is answered frame by frame, but the log holds at most ten lines a
//! second about refusals, each saying how many were held back since the one before (issue 12,
//! point 3: on the earlier `main` every refusal was a log line, 194 000 lines in seconds). Its own
//! test binary: it installs the process's log subscriber before anything logs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callvault_client::Client;
use callvault_crypto::SecretIdentity;
use callvault_gateway::GatewayConfig;
use callvault_protocol::app::{Limits, ServerFrame};
use common::recv;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// Log lines the tests' subscriber wrote, shared by the tests of this file.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let c = Captured::default();
        let writer = c.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        c
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_answered_each_and_logged_sparingly() {
    let logs = capture_logs();
    let config = GatewayConfig {
        // The session may send all its bad frames: refusals, not the rate, are looked at.
        limits: Limits { messages_per_second: 100_000, burst: 100_000, ..GatewayConfig::default().limits },
        ..GatewayConfig::default()
    };
    let s = common::start(config).await;
    let id = Arc::new(SecretIdentity::generate());
    Client::connect(&s.url(), id.clone(), "Alice").await.unwrap().close().await;
    let mut mine = s.ws().await;
    common::authenticate(&mut mine, &id).await;

    // The session sends 2 000 bad frames gets 2 000 answers, but the log holds at most ten
    // lines a second about them, and says how many it held back.
    let before = String::from_utf8_lossy(&logs.0.lock().unwrap()).matches("app frame refused").count();
    let started = Instant::now();
    for _ in 0..2_000 {
        mine.send(Message::Text("{}".into())).await.unwrap();
    }
    let mut answers = 0;
    while answers < 2_000 {
        match recv(&mut mine).await {
            Some(ServerFrame::Error { .. }) => answers += 1,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let lines = text.matches("app frame refused").count() - before;
    let bound = (10.0 * (elapsed.ceil() + 1.0)) as usize;
    assert!(lines <= bound, "{lines} log lines about refusals in {elapsed:.1} s (at most {bound})");
    // The next line written, a second later, says how many were held back.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    mine.send(Message::Text("{}".into())).await.unwrap();
    assert!(matches!(recv(&mut mine).await, Some(ServerFrame::Error { .. })));
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let held_back: u64 = text
        .lines()
        .filter(|l| l.contains("app frame refused"))
        .filter_map(|l| l.split("suppressed=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(held_back + lines as u64 >= 2_000, "{held_back} held back and {lines} written of 2 000");
}

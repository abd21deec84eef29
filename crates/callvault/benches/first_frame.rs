//! Accept -> first decoded video frame in the browser client: a `callvault serve` process (test
//! hooks on), two headless Chromium pages with fake cameras (`web/tests/browser.mjs`, scenario
//! `first-frame`) connected by invite; Alice calls Bob with video N times in a row, Bob accepts
//! after it has rung 1 s (`CV_RING_MS`),
//! and each page reports when its first far-end video frame was decoded (the browser's clock,
//! shared by both pages). Prints each call and the median and worst of the later side; first on
//! the embedded defaults (no TURN server), then with a TURN server (coturn) configured, as a
//! deployment has, so that relay candidates are gathered too.
//!
//! `cargo bench -p callvault --bench first_frame` (`-- 10` for ten calls each; default 8);
//! `CALLVAULT_BENCH_BIN=<a callvault binary>` runs that build instead, to compare two.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    missing_docs
)]

use std::path::Path;
use std::process::Command;

use callvault_testkit::ServeProcess;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_callvault");

fn main() {
    let calls: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(8);
    run("embedded defaults, no TURN server", calls, &[]);
    let secret = "bench-relay-secret-0123456789";
    let coturn = callvault_testkit::Coturn::start(&[secret]);
    let url = format!("turn:127.0.0.1:{}?transport=udp", coturn.port());
    run(
        "a TURN server configured (coturn)",
        calls,
        &[("CALLVAULT_TURN_TURN_URLS", url.as_str()), ("CALLVAULT_TURN_SECRETS", secret)],
    );
}

fn run(what: &str, calls: usize, env: &[(&str, &str)]) {
    println!("{what}:");
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![("CALLVAULT_TEST_HOOKS", "1"), ("CALLVAULT_LOG", "warn")];
    all.extend_from_slice(env);
    let bin = std::env::var("CALLVAULT_BENCH_BIN").unwrap_or_else(|_| BIN.to_owned());
    let serve = ServeProcess::start(Path::new(&bin), dir.path(), &[], &all);
    let repo = callvault_testkit::manifest_dir(env!("CARGO_MANIFEST_DIR")).join("../..");
    let artifacts = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .current_dir(repo.join("web"))
        .arg("tests/browser.mjs")
        .args([serve.base().as_str(), "first-frame"])
        .arg(artifacts.path())
        .env("CV_CALLS", calls.to_string())
        .output()
        .expect("node (Node.js) drives Chromium");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("no JSON from the browser ({e}): {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(v.get("error").is_none(), "the browser run failed: {v:#}");
    for which in ["first", "again"] {
        let l = &v["load"][which];
        println!(
            "  page load ({which}): ready in {} ms, {} files, {} bytes transferred ({} bytes of bodies)",
            l["ready_ms"], l["files"], l["transfer_bytes"], l["body_bytes"]
        );
    }
    let mut later = Vec::new();
    for (i, c) in v["calls"].as_array().unwrap().iter().enumerate() {
        let (callee, caller) = (c["callee_ms"].as_u64().unwrap(), c["caller_ms"].as_u64().unwrap());
        println!("  call {i}: callee {callee} ms, caller {caller} ms after accept");
        println!("    callee steps (ms after accept): {}", c["callee_steps"]);
        println!("    caller steps (ms after accept): {}", c["caller_steps"]);
        later.push(callee.max(caller));
    }
    later.sort_unstable();
    println!(
        "  accept -> first decoded video frame on both sides ({} calls): median {} ms, worst {} ms",
        later.len(),
        later[later.len() / 2],
        later[later.len() - 1]
    );
}

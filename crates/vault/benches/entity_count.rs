//! One call's events against the vault's size: an `initiate` (a wide handler: given the active
//! call, the calls with the peer and the live count) and an `end` (narrow), in vaults holding 10,
//! 1 000 and 10 000 stored calls and a tenth as many unsettled ones (embedded store). Latency
//! through the vault (`handle_request`: context, WASM run, store, seal, notify), input bytes and
//! fuel. Flat is the goal. `cargo bench -p callvault-vault --bench entity_count`.

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

use callvault_protocol::subject::RequestKind;
use callvault_vault::manager::VaultOptions;
use vaults::filled::*;
use vaults::*;

const CYCLES: u32 = 200;

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let small = std::env::args().any(|a| a == "--smoke");
    let sizes: &[u32] = if small { &[10, 100] } else { &[10, 1_000, 10_000] };
    println!("| stored calls | unsettled | initiate p50 | end p50 | initiate input / fuel | end input / fuel |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for &stored in sizes {
        let w = embedded();
        let bus = w.bus().await;
        let u = user(&w, &bus, VaultOptions::default()).await;
        let filler = silent_peer(&u).await;
        fill_with_calls(&u, &filler, stored, stored / 10).await;
        let (mut initiates, mut ends) = (Vec::new(), Vec::new());
        let mut costs = [(0, 0); 2];
        let cycles = if small { 10 } else { CYCLES };
        for n in 0..cycles {
            // A fresh peer each time: the calls with one peer stay few, as in life.
            let peer = silent_peer(&u).await;
            let call = id(3_000_000 + n);
            let req = initiate(&call, &peer.guid, 3_000_000 + n).to_string();
            let t = Instant::now();
            u.vault.handle_request(RequestKind::Initiate, req.as_bytes()).await.unwrap();
            initiates.push(t.elapsed());
            costs[0] = cost(&u);
            let req = simple("end", &call, 3_500_000 + n).to_string();
            let t = Instant::now();
            u.vault.handle_request(RequestKind::End, req.as_bytes()).await.unwrap();
            ends.push(t.elapsed());
            costs[1] = cost(&u);
        }
        println!(
            "| {stored} | {} | {:.2?} | {:.2?} | {} B / {} | {} B / {} |",
            stored / 10 + cycles,
            p50(initiates),
            p50(ends),
            costs[0].0,
            costs[0].1,
            costs[1].0,
            costs[1].1
        );
    }
}

//! The vault kernel (issue 13, points 2-4): an event's handler gets its own entity and its
//! family's small indexes, never every entity, so its input and fuel do not depend on how many
//! calls the vault holds (10 000 stored, 1 000 unsettled, no cap hit); timers are per entity and
//! fire on time across a restart; events of different calls run concurrently, and events of one
//! call in order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_precision_loss
)]

mod vaults;

use std::sync::atomic::Ordering;
use std::time::Duration;

use callvault_call::abi::HandlerName;
use callvault_vault::manager::VaultOptions;
use serde_json::json;
use vaults::filled::*;
use vaults::*;

async fn costs_do_not_grow<W: Backend>(w: W, stored: u32, unsettled: u32) {
    let bus = w.bus().await;
    let options = VaultOptions::default();
    // A vault holding nothing.
    let small = user(&w, &bus, options.clone()).await;
    // wasmi compiles a module's functions when they first run, and charges fuel for it: one call
    // first, so both measurements run compiled code.
    let warm_up = silent_peer(&small).await;
    costs_of_a_call(&small, &warm_up, 5).await;
    let small_peer = silent_peer(&small).await;
    let before = costs_of_a_call(&small, &small_peer, 10).await;

    // A vault holding `stored` settled calls and `unsettled` ringing out to as many peers.
    let big = user(&w, &bus, options).await;
    let big_peer = silent_peer(&big).await;
    fill_with_calls(&big, &big_peer, stored, unsettled).await;
    assert_eq!(big.vault.live_entities("call"), unsettled as usize);
    let after = costs_of_a_call(&big, &big_peer, 20).await;

    for (i, ((in_before, fuel_before), (in_after, fuel_after))) in before.iter().zip(after.iter()).enumerate() {
        // The same call in both: only the numbers in it differ (the live count, timestamps).
        assert!(in_after.abs_diff(*in_before) <= 64, "event {i}: input {in_before} -> {in_after} bytes");
        let ratio = *fuel_after as f64 / *fuel_before as f64;
        assert!((0.95..=1.05).contains(&ratio), "event {i}: fuel {fuel_before} -> {fuel_after}");
    }
    assert_eq!(big.vault.stats().entity_bound.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_events_cost_the_same_in_a_vault_of_10_000_calls() {
    costs_do_not_grow(embedded(), 10_000, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_events_cost_the_same_in_a_vault_of_10_000_calls() {
    costs_do_not_grow(nats(), 10_000, 1_000).await;
}

/// A call rings at the callee; its vault stops before the ring timeout and starts again still
/// before it: the call rings on, and is missed at its deadline (not at the restart, not never).
async fn timers_survive_a_restart<W: Backend>(w: W) {
    let bus = w.bus().await;
    let ring = Duration::from_secs(3);
    let options = VaultOptions { ring_timeout: ring, ..VaultOptions::default() };
    let (a, b) = (user(&w, &bus, options.clone()).await, user(&w, &bus, options.clone()).await);
    connect(&a, &b).await;
    let call = id(500);
    let placed = tokio::time::Instant::now();
    request(&bus, &a, "initiate", initiate(&call, &b.guid, 500)).await;
    status_becomes(&b, &call, "ringing").await;
    let b = restart_vault(&w, &bus, b, options).await;
    assert!(placed.elapsed() < ring, "the restart took the whole ring timeout");
    assert_eq!(record(&b, &call).await["status"], "ringing", "a timer fired at the restart");
    let r = status_becomes(&b, &call, "missed").await;
    assert!(placed.elapsed() >= ring - Duration::from_millis(100), "missed before the deadline: {r}");
    assert!(placed.elapsed() < ring + Duration::from_secs(2), "missed late");
    status_becomes(&a, &call, "missed").await;
}

#[tokio::test]
async fn embedded_timers_fire_on_time_across_a_restart() {
    timers_survive_a_restart(embedded()).await;
}

#[tokio::test]
async fn nats_timers_fire_on_time_across_a_restart() {
    timers_survive_a_restart(nats()).await;
}

/// A module whose `end` handler spins until its fuel runs out.
fn spinning_end() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (func (export "cv_input") (param i32) (result i32) (i32.const 0))
             (func (export "cv_output") (result i32) (i32.const 0))
             (func (export "cv_handle_end") (param i32) (result i32)
               (local $i i32) (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)) (i32.const 0)))"#,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_for_one_call_does_not_delay_another_and_one_calls_events_keep_their_order() {
    let w = embedded();
    let bus = w.bus().await;
    let options = VaultOptions {
        limits: callvault_vault::runtime::HandlerLimits { fuel: 2_000_000_000, ..Default::default() },
        ..VaultOptions::default()
    };
    let (mut a, b) = (user(&w, &bus, options.clone()).await, user(&w, &bus, options.clone()).await);
    let mut c = user(&w, &bus, options).await;
    connect(&a, &b).await;
    connect(&a, &c).await;
    // Two calls ring at Alice, from Bob and from Carol.
    let (slow, quick) = (id(600), id(601));
    request(&bus, &b, "initiate", initiate(&slow, &a.guid, 600)).await;
    request(&bus, &c, "initiate", initiate(&quick, &a.guid, 601)).await;
    status_becomes(&a, &slow, "ringing").await;
    status_becomes(&a, &quick, "ringing").await;
    while a.app.next_within(Duration::from_millis(200)).await.is_some() {}

    // Alice's `end` now spins for a long time; her `reject` is the built-in one.
    a.vault.runtime().install(HandlerName::End, &spinning_end()).unwrap();
    let failures = || a.vault.stats().handler_failures.load(Ordering::Relaxed);
    assert_eq!(failures(), 0);
    request(&bus, &a, "end", simple("end", &slow, 602)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    request(&bus, &a, "reject", simple("reject", &quick, 603)).await;
    status_becomes(&a, &quick, "rejected").await;
    assert_eq!(failures(), 0, "the other call's reject waited for the slow handler");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while failures() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the slow handler never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(record(&a, &slow).await["status"], "ringing", "the spinning end changed nothing");

    // One call's events in order: a call with Carol answered, then 30 signals, which Carol's app
    // gets in the order Alice's app sent them.
    a.vault.runtime().install(HandlerName::End, callvault_vault::runtime::BUILTIN_MODULE).unwrap();
    let call = id(700);
    answered(&bus, &mut a, &mut c, &call, 700).await;
    for n in 0..30u32 {
        let mut s = simple("signal", &call, 800 + n);
        s["signal_type"] = json!("ice");
        s["payload"] = json!(format!("c2lnbmFs{n:04}"));
        request(&bus, &a, "signal", s).await;
    }
    for n in 0..30u32 {
        let m = expect(&mut c, "signal").await;
        assert_eq!(m["payload"], format!("c2lnbmFs{n:04}"), "signal {n} out of order");
    }
}

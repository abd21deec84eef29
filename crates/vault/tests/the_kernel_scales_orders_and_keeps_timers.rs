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

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_call::abi::{self, HandlerName, Outcome, OutputItem};
use callvault_crypto::{Delegation, SecretIdentity};
use callvault_kernel::{EntityKey, Event, Input, WireMessage};
use callvault_protocol::Timestamp;
use callvault_protocol::fields::DisplayName;
use callvault_protocol::subject::RequestKind;
use callvault_store::Kv;
use callvault_vault::connections::{self, Connection};
use callvault_vault::manager::VaultOptions;
use serde_json::json;
use vaults::*;

/// Input bytes and fuel of the vault's last handler run.
fn cost<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>) -> (u64, u64) {
    let s = u.vault.stats();
    (s.last_input_bytes.load(Ordering::Relaxed), s.last_fuel.load(Ordering::Relaxed))
}

/// A connection of `u` whose vault does not answer (so nothing else runs in `u`'s vault).
async fn silent_peer<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>) -> Connection {
    let identity = SecretIdentity::generate();
    let vault_key = SecretIdentity::generate();
    let d = Delegation::sign(&identity, &vault_key.public(), 1_790_000_000).unwrap();
    let c = Connection::from_delegation(&d, DisplayName::new("Peer").unwrap(), "local").unwrap();
    connections::put(&u.vault.buckets().connections, &c).await.unwrap();
    c
}

/// An initiate (a wide handler: the active call, the calls with the peer, the live count) and an
/// end (a narrow one) of a fresh call from `u` to `peer`: their costs.
async fn costs_of_a_call<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>, peer: &Connection, n: u32) -> [(u64, u64); 2] {
    let call = id(n);
    let o = u.vault.handle_request(RequestKind::Initiate, initiate(&call, &peer.guid, n).to_string().as_bytes()).await;
    assert_eq!(o.unwrap(), Outcome::Applied);
    let initiate = cost(u);
    let o = u.vault.handle_request(RequestKind::End, simple("end", &call, n + 1).to_string().as_bytes()).await;
    assert_eq!(o.unwrap(), Outcome::Applied);
    [initiate, cost(u)]
}

/// A settled call of `local` with `peer` as the call family stores it (initiated, then declined),
/// made by the family's own code.
fn settled_call(local: &callvault_protocol::Guid, peer: &Connection, call: &str) -> (String, String) {
    let t = Timestamp::from_unix_millis(1_790_000_000_000);
    let info = peer.info();
    let input = |handler: HandlerName, event: Event, states| Input {
        handler: handler.as_str().into(),
        local: local.clone(),
        now: t,
        config: abi::config_json(60),
        event,
        entity: EntityKey::parse(call).unwrap(),
        states,
        counts: Default::default(),
        connection: Some(info.clone()),
    };
    let req = json!({"type": "call.initiate", "message_id": id(1), "call_id": call, "timestamp": t.to_string(), "peer_guid": peer.guid.to_string(), "call_type": "audio"});
    let out = abi::run(&input(HandlerName::Initiate, Event::App(WireMessage::from_value("initiate", &req)), vec![]));
    let state = |out: &abi::Output| {
        out.outputs
            .iter()
            .find_map(|o| match o {
                OutputItem::Store { state, records, .. } => {
                    Some((state.get().to_owned(), records[0].value.get().to_owned()))
                }
                _ => None,
            })
            .unwrap()
    };
    let (s1, _) = state(&out);
    let reject = json!({"type": "call.reject", "message_id": id(2), "call_id": call, "timestamp": t.to_string(), "from_guid": peer.guid.to_string(), "reason": "declined"});
    let states = vec![callvault_kernel::EntityState {
        key: EntityKey::parse(call).unwrap(),
        version: abi::STATE_VERSION,
        state: callvault_kernel::Json(serde_json::value::RawValue::from_string(s1).unwrap()),
    }];
    let out = abi::run(&input(HandlerName::Reject, Event::Peer(WireMessage::from_value("reject", &reject)), states));
    let (state, record) = state(&out);
    assert!(record.contains("\"rejected\""), "{record}");
    (state, record)
}

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
    let (template, record) = settled_call(&big.guid, &big_peer, &id(0));
    let writes = (1..=stored).map(|n| {
        let call = id(1_000_000 + n);
        let state = template.replace(&id(0), &call);
        let envelope = format!(r#"{{"v":1,"peer":"{}","state":{state}}}"#, big_peer.guid);
        let record = record.replace(&id(0), &call);
        let b = big.vault.buckets();
        async move {
            b.state.put(&format!("call.{call}"), Bytes::from(envelope)).await.unwrap();
            b.calls.put(&call, Bytes::from(record)).await.unwrap();
        }
    });
    let mut writes: Vec<_> = writes.map(Box::pin).collect();
    while !writes.is_empty() {
        let rest = writes.split_off(writes.len().min(256));
        futures_util::future::join_all(std::mem::replace(&mut writes, rest)).await;
    }
    assert_eq!(big.vault.buckets().calls.keys().await.unwrap().len(), stored as usize);
    for n in 0..unsettled {
        let c = silent_peer(&big).await;
        let call = id(2_000_000 + n);
        let req = initiate(&call, &c.guid, 2_000_000 + n).to_string();
        let o = big.vault.handle_request(RequestKind::Initiate, req.as_bytes());
        assert_eq!(o.await.unwrap(), Outcome::Applied, "call {n} was refused: no cap may be hit");
    }
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

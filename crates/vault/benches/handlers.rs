//! The cost of one handler invocation in wasmi (fresh instance, fuel metering, JSON in and out),
//! next to the same handler run natively: `cargo bench -p callvault-vault --bench handlers`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use callvault_call::abi::{self, ConnectionInfo, Event, HandlerInput, HandlerName, WireMessage};
use callvault_protocol::fields::{DisplayName, PeerProfile};
use callvault_protocol::{Guid, Timestamp};
use callvault_vault::runtime::{HandlerLimits, HandlerRuntime};

fn input() -> HandlerInput {
    let now = Timestamp::from_unix_millis(1_790_000_000_000);
    let peer = Guid::from_public_key(&[2; 32]);
    HandlerInput {
        handler: HandlerName::Initiate.as_str().into(),
        local: Guid::from_public_key(&[1; 32]),
        now,
        config: abi::config_json(60),
        entity: callvault_kernel::EntityKey::parse("00000000-0000-4000-8000-0000000000aa").unwrap(),
        states: Vec::new(),
        counts: Default::default(),
        event: Event::App(WireMessage::from_value(
            "initiate",
            &serde_json::json!({
                "type": "call.initiate", "message_id": "00000000-0000-4000-8000-000000000001",
                "call_id": "00000000-0000-4000-8000-0000000000aa", "timestamp": now.to_string(),
                "peer_guid": peer.to_string(), "call_type": "audio"
            }),
        )),
        connection: Some(ConnectionInfo {
            guid: peer,
            profile: PeerProfile { display_name: DisplayName::new("Bob").unwrap(), avatar_url: None },
            user_key: None,
            revoked: false,
        }),
        page: None,
        connections: Vec::new(),
        tokens: Default::default(),
        record: None,
    }
}

fn measure(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..50 {
        f();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    (samples[n / 2], samples[n * 99 / 100])
}

fn main() {
    let rt = HandlerRuntime::with_builtins(HandlerLimits::default()).unwrap();
    let input = input();
    let (wp50, wp99) = measure(2000, || {
        black_box(rt.invoke(HandlerName::Initiate, &input).unwrap());
    });
    let (np50, np99) = measure(2000, || {
        black_box(abi::run(&input));
    });
    println!("initiate handler in wasmi   p50 {wp50:>9.1?}  p99 {wp99:>9.1?}");
    println!("initiate handler native     p50 {np50:>9.1?}  p99 {np99:>9.1?}");
    println!("wasmi / native at p50: {:.1}x", wp50.as_secs_f64() / np50.as_secs_f64());
}

//! Every message delivered twice (or replayed later) has no second effect, and a `call.incoming`
//! replayed long after is refused as stale.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]

mod common;

use callvault_call::{CallError, Disposition};
use callvault_protocol::MessageId;
use callvault_protocol::calling::{CallIncomingSignal, PeerMessage, tags};
use callvault_protocol::fields::{CallStatus, CallType, SignalType};
use common::*;

#[test]
fn replaying_every_message_of_a_call_changes_nothing() {
    let mut p = Pair::new();
    let id = call_id(1);
    p.connect(&id);
    for (side, t) in [(Side::A, SignalType::KeyExchange), (Side::B, SignalType::KeyExchange)] {
        let r = p.signal(&id, t);
        p.app(side, r).unwrap();
        p.settle();
    }
    p.advance(secs(10));
    let r = p.end(&id);
    p.app(Side::A, r).unwrap();
    p.settle();

    let (a_before, b_before) = (p.a.bucket.clone(), p.b.bucket.clone());
    let (a_app, b_app) = (p.a.app.len(), p.b.app.len());
    let replay = p.sent.clone();
    assert!(replay.len() >= 6, "the call exchanged {} messages", replay.len());
    for (to, m) in replay {
        let r = p.deliver(to, m.clone());
        assert!(matches!(r, Ok(Disposition::Duplicate | Disposition::Ignored)), "{m:?} -> {r:?}");
    }
    assert_eq!(p.a.bucket, a_before);
    assert_eq!(p.b.bucket, b_before);
    assert_eq!((p.a.app.len(), p.b.app.len()), (a_app, b_app), "no app heard anything new");
    assert!(p.wire.is_empty(), "no vault sent anything in reply");
}

#[test]
fn a_duplicate_within_the_call_is_reported_as_duplicate() {
    let mut p = Pair::new();
    let id = call_id(2);
    let r = p.initiate(Side::A, &id);
    p.app(Side::A, r.clone()).unwrap();
    // The app's own request, twice: no second call, no error.
    assert_eq!(p.app(Side::A, r), Ok(Disposition::Duplicate));
    let (to, incoming) = p.wire.pop_front().unwrap();
    assert_eq!(p.deliver(to, incoming.clone()), Ok(Disposition::Applied));
    assert_eq!(p.deliver(to, incoming), Ok(Disposition::Duplicate));
    let (to, ringing) = p.wire.pop_front().unwrap();
    assert_eq!(p.deliver(to, ringing.clone()), Ok(Disposition::Applied));
    assert_eq!(p.deliver(to, ringing), Ok(Disposition::Duplicate));
    assert_eq!(p.a.kinds(), ["call.initiated", "call.ringing"]);
    assert_eq!(p.b.kinds(), ["call.incoming"]);
    assert!(p.wire.is_empty());
}

#[test]
fn an_old_incoming_is_refused_as_stale_and_a_future_one_too() {
    let mut p = Pair::new();
    let make = |p: &Pair, n: u8, at| {
        PeerMessage::Incoming(CallIncomingSignal {
            kind: tags::Incoming,
            message_id: MessageId::from_bytes([n; 16]),
            timestamp: at,
            call_id: call_id(n),
            from_guid: p.guid(Side::A),
            call_type: CallType::Audio,
            ext: None,
        })
    };
    let old = make(&p, 3, p.now.saturating_sub(secs(91)));
    assert_eq!(p.deliver(Side::B, old), Err(CallError::Stale { call_id: call_id(3) }));
    let future = make(&p, 4, p.now.saturating_add(secs(31)));
    assert_eq!(p.deliver(Side::B, future), Err(CallError::Stale { call_id: call_id(4) }));
    let fine = make(&p, 5, p.now.saturating_sub(secs(89)));
    assert_eq!(p.deliver(Side::B, fine), Ok(Disposition::Applied));
    assert!(p.b.bucket.keys().eq([call_id(5)].iter()), "stale calls left no record");
    assert_eq!(p.b.status(&call_id(5)), CallStatus::Ringing);
}

#[test]
fn the_replay_window_is_bounded_and_state_still_blocks_old_messages() {
    let mut p = Pair::with_config(callvault_call::CallConfig { replay_window: 4, ..Default::default() });
    let id = call_id(6);
    p.connect(&id);
    for _ in 0..10 {
        let r = p.signal(&id, SignalType::Ice);
        p.app(Side::B, r).unwrap();
        p.settle();
    }
    let call = p.a.sb.call(&id).unwrap().clone();
    let json = serde_json_size(&call);
    assert!(json < 4_096, "a call's state stays small ({json} bytes)");
    // The accept fell out of the window, but a replay of it is still ignored by state.
    let accept = p.sent.iter().find(|(_, m)| matches!(m, PeerMessage::Accept(_))).cloned().unwrap();
    assert_eq!(p.deliver(accept.0, accept.1), Ok(Disposition::Ignored));
}

fn serde_json_size(call: &callvault_call::Call) -> usize {
    serde_json::to_vec(call).unwrap().len()
}

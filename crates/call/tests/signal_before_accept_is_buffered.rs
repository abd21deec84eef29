//! Signals from the peer that overtake its accept are held and handed to the app right after
//! `call.accepted`; signals from the app before the call is active are refused.

mod common;

use callvault_call::{CallConfig, CallError, Disposition, Event};
use callvault_protocol::calling::{AppNotification, PeerMessage};
use callvault_protocol::fields::{CallStatus, ErrorCode, SignalType};
use common::*;

#[test]
fn a_key_exchange_that_overtakes_the_accept_reaches_the_app_after_it() {
    let mut p = Pair::new();
    let id = call_id(1);
    p.ring(&id);
    let r = p.accept(&id);
    p.app(Side::B, r).unwrap();
    let r = p.signal(&id, SignalType::KeyExchange);
    p.app(Side::B, r).unwrap();
    // Wire holds [accept, signal]: deliver the signal first.
    let (to, accept) = p.wire.pop_front().unwrap();
    assert!(matches!(accept, PeerMessage::Accept(_)));
    assert_eq!(p.deliver_next(), Some(Ok(Disposition::Applied)));
    assert_eq!(p.a.sb.call(&id).unwrap().buffered_signals(), 1);
    assert_eq!(p.a.kinds(), ["call.initiated", "call.ringing"], "nothing reaches the app yet");
    p.deliver(to, accept).unwrap();
    assert_eq!(p.a.kinds(), ["call.initiated", "call.ringing", "call.accepted", "call.signal"]);
    assert_eq!(p.a.sb.call(&id).unwrap().buffered_signals(), 0);
    assert_eq!(p.a.status(&id), CallStatus::Active);
}

#[test]
fn the_buffer_is_bounded() {
    let mut p = Pair::with_config(CallConfig { signal_buffer: 2, ..CallConfig::default() });
    let id = call_id(2);
    p.ring(&id);
    let r = p.accept(&id);
    p.app(Side::B, r).unwrap();
    for _ in 0..3 {
        let r = p.signal(&id, SignalType::Ice);
        p.app(Side::B, r).unwrap();
    }
    let (to, accept) = p.wire.pop_front().unwrap();
    assert_eq!(p.deliver_next(), Some(Ok(Disposition::Applied)));
    assert_eq!(p.deliver_next(), Some(Ok(Disposition::Applied)));
    assert_eq!(p.deliver_next(), Some(Err(CallError::SignalBufferFull { call_id: id.clone() })));
    p.deliver(to, accept).unwrap();
    let signals = p.a.app.iter().filter(|n| matches!(n, AppNotification::Signal(_))).count();
    assert_eq!(signals, 2);
}

#[test]
fn the_app_cannot_signal_before_the_call_is_active() {
    let mut p = Pair::new();
    let id = call_id(3);
    p.ring(&id);
    let r = p.signal(&id, SignalType::Offer);
    assert_eq!(
        p.app(Side::A, r),
        Err(CallError::InvalidTransition { call_id: id.clone(), status: CallStatus::Ringing, event: Event::AppSignal })
    );
    let AppNotification::Error(e) = p.a.last() else { panic!("no error notification") };
    assert_eq!(e.code, ErrorCode::InvalidState);
    assert!(p.wire.is_empty(), "nothing was forwarded");
}

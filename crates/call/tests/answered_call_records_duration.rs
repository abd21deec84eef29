//! A call that is answered, carries signals both ways and is hung up ends `ended` on both sides,
//! with a duration, the right end_reason and key_exchange_complete.

mod common;

use callvault_call::Disposition;
use callvault_protocol::calling::AppNotification;
use callvault_protocol::fields::{CallStatus, Direction, EndReason, SignalType};
use common::*;

#[test]
fn callee_hangs_up_after_42_seconds() {
    let mut p = Pair::new();
    let id = call_id(1);
    p.ring(&id);
    assert_eq!(p.a.status(&id), CallStatus::Ringing);
    assert_eq!(p.b.status(&id), CallStatus::Ringing);
    assert_eq!(p.a.record(&id).direction, Direction::Outgoing);
    assert_eq!(p.b.record(&id).direction, Direction::Incoming);
    assert_eq!(p.a.kinds(), ["call.initiated", "call.ringing"]);
    assert_eq!(p.b.kinds(), ["call.incoming"]);

    let r = p.accept(&id);
    p.app(Side::B, r).unwrap();
    p.settle();
    assert_eq!(p.a.status(&id), CallStatus::Active);
    assert_eq!(p.b.status(&id), CallStatus::Active);
    // The caller's app gets the callee's key; the callee's own confirmation has none.
    let AppNotification::Accepted(to_a) = p.a.last() else { panic!("{:?}", p.a.last()) };
    assert!(to_a.public_key.is_some() && to_a.key_id.is_some());
    let AppNotification::Accepted(to_b) = p.b.last() else { panic!("{:?}", p.b.last()) };
    assert!(to_b.public_key.is_none() && to_b.key_id.is_none());

    for (side, t) in [
        (Side::A, SignalType::KeyExchange),
        (Side::B, SignalType::KeyExchange),
        (Side::A, SignalType::Offer),
        (Side::B, SignalType::Answer),
        (Side::A, SignalType::Ice),
    ] {
        let r = p.signal(&id, t);
        assert_eq!(p.app(side, r), Ok(Disposition::Applied));
        p.settle();
        let AppNotification::Signal(s) = p.party(side.other()).last() else { panic!("no signal") };
        assert_eq!(s.signal_type, t);
    }
    assert!(p.a.record(&id).key_exchange_complete);
    assert!(p.b.record(&id).key_exchange_complete);

    p.advance(secs(42));
    let r = p.end(&id);
    p.app(Side::B, r).unwrap();
    p.settle();
    for side in [Side::A, Side::B] {
        let rec = p.party(side).record(&id);
        assert_eq!(rec.status, CallStatus::Ended, "{side:?}");
        assert_eq!(rec.end_reason, Some(EndReason::Callee), "{side:?}");
        assert_eq!(rec.duration_seconds.map(|d| d.get()), Some(42), "{side:?}");
        assert!(rec.answered_at.is_some() && rec.ended_at.is_some());
        let AppNotification::Ended(n) = p.party(side).last() else { panic!("{side:?}: no ended") };
        assert_eq!(n.duration_seconds.map(|d| d.get()), Some(42));
    }
    assert!(p.wire.is_empty());
}

#[test]
fn caller_hangs_up_and_the_reason_says_so() {
    let mut p = Pair::new();
    let id = call_id(2);
    p.connect(&id);
    p.advance(secs(7));
    let r = p.end(&id);
    p.app(Side::A, r).unwrap();
    p.settle();
    for side in [Side::A, Side::B] {
        let rec = p.party(side).record(&id);
        assert_eq!((rec.status, rec.end_reason), (CallStatus::Ended, Some(EndReason::Caller)));
        assert_eq!(rec.duration_seconds.map(|d| d.get()), Some(7));
    }
    // Neither side has a deadline left.
    assert_eq!(p.a.sb.next_deadline(), None);
    assert_eq!(p.b.sb.next_deadline(), None);
}

#[test]
fn a_declined_call_is_rejected_on_both_sides() {
    let mut p = Pair::new();
    let id = call_id(3);
    p.ring(&id);
    let r = p.reject(&id, None);
    p.app(Side::B, r).unwrap();
    p.settle();
    for side in [Side::A, Side::B] {
        let rec = p.party(side).record(&id);
        assert_eq!((rec.status, rec.end_reason), (CallStatus::Rejected, Some(EndReason::Rejected)));
        assert_eq!(rec.duration_seconds, None);
    }
    assert_eq!(p.a.kinds().last(), Some(&"call.rejected"));
}

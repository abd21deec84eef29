//! A caller who hangs up before an answer leaves a missed call on both sides, never an ended call
//! with a duration, including when the cancel crosses the callee's accept on the wire.

mod common;

use callvault_call::Disposition;
use callvault_protocol::calling::{AppNotification, PeerMessage};
use callvault_protocol::fields::{CallStatus, EndReason, EndedStatus};
use common::*;

#[test]
fn cancel_while_ringing_is_missed_for_both() {
    let mut p = Pair::new();
    let id = call_id(1);
    p.ring(&id);
    p.advance(secs(5));
    let r = p.end(&id);
    assert_eq!(p.app(Side::A, r), Ok(Disposition::Applied));
    assert!(
        matches!(p.a.last(), AppNotification::Ended(n) if n.status == EndedStatus::Missed && n.reason == EndReason::Caller)
    );
    p.settle();
    for side in [Side::A, Side::B] {
        let rec = p.party(side).record(&id);
        assert_eq!((rec.status, rec.end_reason), (CallStatus::Missed, Some(EndReason::Caller)), "{side:?}");
        assert_eq!(rec.duration_seconds, None);
    }
    assert!(matches!(p.b.last(), AppNotification::Ended(n) if n.status == EndedStatus::Missed));
    // The caller's app was told once, not again when the callee's verdict arrived.
    assert_eq!(p.a.app.iter().filter(|n| matches!(n, AppNotification::Ended(_))).count(), 1);
    // A second hang-up is a no-op, not an error.
    let r = p.end(&id);
    assert!(p.app(Side::A, r).is_err(), "ending a finished call is refused");
}

#[test]
fn cancel_crossing_an_accept_ends_the_call_on_both_sides_alike() {
    let mut p = Pair::new();
    let id = call_id(2);
    p.ring(&id);
    // Both act before either hears of the other.
    let cancel = p.end(&id);
    p.app(Side::A, cancel).unwrap();
    let accept = p.accept(&id);
    p.app(Side::B, accept).unwrap();
    assert_eq!(p.a.status(&id), CallStatus::Ringing);
    assert_eq!(p.b.status(&id), CallStatus::Active);
    p.settle();
    let a = p.a.record(&id);
    let b = p.b.record(&id);
    assert_eq!(a.status, b.status, "records agree");
    assert_eq!(a.status, CallStatus::Ended);
    assert_eq!(a.duration_seconds.map(|d| d.get()), Some(0));
}

#[test]
fn callee_answering_and_hanging_up_before_the_accept_arrives_still_agrees() {
    let mut p = Pair::new();
    let id = call_id(3);
    p.ring(&id);
    let accept = p.accept(&id);
    p.app(Side::B, accept).unwrap();
    p.advance(secs(3));
    let end = p.end(&id);
    p.app(Side::B, end).unwrap();
    // Deliver the end before the accept (reordered).
    let msgs: Vec<_> = p.wire.drain(..).collect();
    for (to, m) in msgs.into_iter().rev() {
        p.deliver(to, m).unwrap();
    }
    p.settle();
    assert_eq!(p.a.status(&id), CallStatus::Ended);
    assert_eq!(p.b.status(&id), CallStatus::Ended);
    assert_eq!(p.a.record(&id).duration_seconds.map(|d| d.get()), Some(3));
    assert!(p.a.record(&id).answered_at.is_some());
    assert!(!p.sent.iter().any(|(_, m)| matches!(m, PeerMessage::Reject(_))));
}

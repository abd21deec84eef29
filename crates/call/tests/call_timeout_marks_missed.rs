//! An unanswered call is missed on both sides when the ring timeout passes, and both apps hear of it.

mod common;

use std::time::Duration;

use callvault_call::CallConfig;
use callvault_protocol::calling::AppNotification;
use callvault_protocol::fields::{CallStatus, EndReason, EndedStatus};
use common::*;

#[test]
fn ringing_for_60_seconds_is_missed_on_both_sides() {
    let mut p = Pair::new();
    let id = call_id(1);
    p.ring(&id);
    let wake = p.b.wake.expect("the callee asked to be woken");
    assert_eq!(wake, p.b.record(&id).created_at.saturating_add(secs(60)));

    p.advance(secs(59));
    p.settle();
    assert_eq!(p.a.status(&id), CallStatus::Ringing);
    assert_eq!(p.b.status(&id), CallStatus::Ringing);

    p.advance(secs(1));
    p.settle();
    for side in [Side::A, Side::B] {
        let rec = p.party(side).record(&id);
        assert_eq!(rec.status, CallStatus::Missed, "{side:?}");
        assert_eq!(rec.end_reason, Some(EndReason::Timeout), "{side:?}");
        assert_eq!(rec.duration_seconds, None);
        assert_eq!(rec.answered_at, None);
        let AppNotification::Ended(n) = p.party(side).last() else { panic!("{side:?}") };
        assert_eq!((n.status, n.reason), (EndedStatus::Missed, EndReason::Timeout));
    }
    assert_eq!(p.b.sb.next_deadline(), None);
    assert_eq!(p.a.sb.next_deadline(), None);
}

#[test]
fn the_ring_timeout_is_configurable() {
    let mut p = Pair::with_config(CallConfig { ring_timeout: secs(10), ..CallConfig::default() });
    let id = call_id(2);
    p.ring(&id);
    p.advance(secs(10));
    p.settle();
    assert_eq!(p.a.status(&id), CallStatus::Missed);
    assert_eq!(p.b.status(&id), CallStatus::Missed);
}

#[test]
fn a_caller_whose_callee_vault_is_gone_settles_missed_after_the_grace() {
    let mut p = Pair::new();
    let id = call_id(3);
    let r = p.initiate(Side::A, &id);
    p.app(Side::A, r).unwrap();
    p.wire.clear(); // B's vault never hears of it
    p.advance(secs(60));
    // The app is told at once; the record waits for a verdict that never comes.
    assert!(matches!(p.a.last(), AppNotification::Ended(n) if n.status == EndedStatus::Missed));
    assert_eq!(p.a.status(&id), CallStatus::Initiating);
    assert!(p.a.sb.call(&id).unwrap().pending().is_some());
    p.wire.clear();
    p.advance(secs(29));
    assert_eq!(p.a.status(&id), CallStatus::Initiating);
    p.advance(secs(1));
    let rec = p.a.record(&id);
    assert_eq!((rec.status, rec.end_reason), (CallStatus::Missed, Some(EndReason::Timeout)));
    let notified = p.a.app.iter().filter(|n| matches!(n, AppNotification::Ended(_))).count();
    assert_eq!(notified, 1, "the app hears of the end once");
}

#[test]
fn a_clock_that_jumps_far_ahead_does_not_panic_and_misses_the_call() {
    let mut p = Pair::new();
    let id = call_id(4);
    p.ring(&id);
    p.advance(Duration::MAX);
    p.settle();
    assert_eq!(p.b.status(&id), CallStatus::Missed);
}

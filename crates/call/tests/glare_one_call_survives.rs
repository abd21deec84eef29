//! When both users call each other at once, the call with the lower call_id survives on both
//! sides and the other ends `rejected`/`glare` on both sides, whatever the delivery order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]

mod common;

use callvault_call::CallError;
use callvault_protocol::calling::AppNotification;
use callvault_protocol::fields::{CallStatus, EndReason, RejectReason};
use common::*;

fn both_initiate(low_side: Side, reverse_delivery: bool) {
    let mut p = Pair::new();
    let low = call_id(0x10);
    let high = call_id(0x20);
    let (low_from, high_from) = (low_side, low_side.other());
    let r = p.initiate(low_from, &low);
    p.app(low_from, r).unwrap();
    let r = p.initiate(high_from, &high);
    p.app(high_from, r).unwrap();
    if reverse_delivery {
        let msgs: Vec<_> = p.wire.drain(..).collect();
        for (to, m) in msgs.into_iter().rev() {
            p.deliver(to, m).unwrap();
        }
    }
    p.settle();

    for side in [Side::A, Side::B] {
        let loser = p.party(side).record(&high);
        assert_eq!((loser.status, loser.end_reason), (CallStatus::Rejected, Some(EndReason::Glare)), "{side:?}");
        assert_eq!(p.party(side).status(&low), CallStatus::Ringing, "{side:?}");
    }
    // The side whose call lost hears of the replacement and rings with the winning call.
    let loser_app = &p.party(high_from).app;
    assert!(loser_app.iter().any(|n| matches!(n, AppNotification::Rejected(r) if r.reason == RejectReason::Glare && r.replaced_by == Some(low.clone()))));
    assert!(loser_app.iter().any(
        |n| matches!(n, AppNotification::Incoming(i) if i.call_id == low && i.replaces_call_id == Some(high.clone()))
    ));
    // The surviving call can be answered.
    let r = p.accept(&low);
    p.app(high_from, r).unwrap();
    p.settle();
    assert_eq!(p.a.status(&low), CallStatus::Active);
    assert_eq!(p.b.status(&low), CallStatus::Active);
    assert_eq!(p.party(high_from).status(&high), CallStatus::Rejected);
}

#[test]
fn lower_call_id_from_a_survives() {
    both_initiate(Side::A, false);
    both_initiate(Side::A, true);
}

#[test]
fn lower_call_id_from_b_survives() {
    both_initiate(Side::B, false);
    both_initiate(Side::B, true);
}

#[test]
fn calling_back_a_ringing_caller_points_to_the_call_to_accept() {
    let mut p = Pair::new();
    let ringing = call_id(0x10);
    p.ring(&ringing);
    // Bob tries to call Alice instead of answering: his call would lose glare.
    let r = p.initiate(Side::B, &call_id(0x20));
    assert_eq!(p.app(Side::B, r), Err(CallError::Glare { surviving: ringing.clone() }));
    assert_eq!(p.b.status(&ringing), CallStatus::Ringing);

    // A lower call_id wins instead: the ringing call is rejected with glare on both sides.
    let r = p.initiate(Side::B, &call_id(0x01));
    p.app(Side::B, r).unwrap();
    p.settle();
    assert_eq!(p.a.status(&ringing), CallStatus::Rejected);
    assert_eq!(p.b.status(&ringing), CallStatus::Rejected);
    assert_eq!(p.a.status(&call_id(0x01)), CallStatus::Ringing);
}

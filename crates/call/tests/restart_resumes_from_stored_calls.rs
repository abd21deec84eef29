//! A vault that restarts from what it stored carries on: a ringing call still times out, an
//! active call can still be ended, and no message id is reused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]

mod common;

use std::collections::BTreeSet;

use callvault_call::{Call, CallConfig, Input, Output, RestoreError, Switchboard};
use callvault_protocol::fields::{CallStatus, EndReason};
use common::*;

/// Replaces one side's switchboard with one restored from its stored calls (JSON round trip).
fn restart(p: &mut Pair, side: Side) {
    let party = p.party_mut(side);
    let stored: Vec<Call> =
        party.sb.calls().map(|c| serde_json::from_slice(&serde_json::to_vec(c).unwrap()).unwrap()).collect();
    party.sb = Switchboard::restore(party.guid.clone(), CallConfig::default(), stored).unwrap();
    while let Some(o) = party.sb.poll_output() {
        assert!(matches!(o, Output::WakeAt(_)), "a restore only schedules: {o:?}");
    }
}

#[test]
fn a_ringing_call_still_times_out_after_the_callee_restarts() {
    let mut p = Pair::new();
    let id = call_id(1);
    p.ring(&id);
    p.advance(secs(30));
    restart(&mut p, Side::B);
    p.advance(secs(30));
    p.settle();
    assert_eq!(p.b.status(&id), CallStatus::Missed);
    assert_eq!(p.a.status(&id), CallStatus::Missed);
}

#[test]
fn deadlines_that_passed_while_down_fire_on_the_first_tick() {
    let mut p = Pair::new();
    let id = call_id(2);
    p.ring(&id);
    restart(&mut p, Side::B);
    p.now = p.now.saturating_add(secs(600));
    p.input(Side::B, Input::Tick).unwrap();
    assert_eq!(p.b.record(&id).end_reason, Some(EndReason::Timeout));
}

#[test]
fn an_active_call_can_be_ended_after_both_restart_and_ids_are_not_reused() {
    let mut p = Pair::new();
    let id = call_id(3);
    p.connect(&id);
    restart(&mut p, Side::A);
    restart(&mut p, Side::B);
    p.advance(secs(12));
    let r = p.end(&id);
    p.app(Side::B, r).unwrap();
    p.settle();
    assert_eq!(p.a.status(&id), CallStatus::Ended);
    assert_eq!(p.b.record(&id).duration_seconds.map(|d| d.get()), Some(12));
    let ids: Vec<_> = p.sent.iter().map(|(_, m)| m.message_id().clone()).collect();
    let unique: BTreeSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "a message id was reused after the restart");
}

#[test]
fn restore_refuses_calls_of_another_vault() {
    let mut p = Pair::new();
    p.ring(&call_id(4));
    let theirs: Vec<Call> = p.b.sb.calls().cloned().collect();
    let err = Switchboard::restore(p.guid(Side::A), CallConfig::default(), theirs).unwrap_err();
    assert_eq!(err, RestoreError::ForeignCall(call_id(4)));
}

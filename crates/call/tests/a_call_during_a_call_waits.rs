//! One active call at a time: a call that arrives during another rings as a waiting call, to be
//! declined, missed or taken (taking it ends the call in progress); a user in a call cannot start
//! another; past the bounds on ringing calls a vault is busy.

mod common;

use callvault_call::CallError;
use callvault_protocol::calling::{
    AppNotification, AppRequest, CallAcceptedSignal, CallIncomingSignal, CallInitiateRequest, PeerMessage, tags,
};
use callvault_protocol::fields::{CallStatus, CallType, EndReason, ErrorCode, PublicKey, RejectReason};
use callvault_protocol::{CallId, Guid, KeyId, MessageId};
use common::*;

/// `stranger` (a third vault, shown as `name`) calls Bob with `id`; his vault takes it.
#[allow(clippy::unwrap_used)]
fn calls_bob(p: &mut Pair, stranger: &Guid, id: &CallId, name: &str) {
    let message = PeerMessage::Incoming(CallIncomingSignal {
        kind: tags::Incoming,
        message_id: MessageId::from_bytes([0x5c; 16]),
        timestamp: p.now,
        call_id: id.clone(),
        from_guid: stranger.clone(),
        call_type: CallType::Video,
        ext: None,
    });
    p.input(Side::B, callvault_call::Input::Peer { message, profile: profile(name) }).unwrap();
}

/// Alice and Bob in a call (`first`); Carol's call (`second`) has come to Bob.
#[allow(clippy::unwrap_used)]
fn carol_calls_during_a_call() -> (Pair, CallId, Guid, CallId) {
    let mut p = Pair::new();
    let first = call_id(1);
    p.connect(&first);
    let carol = Guid::from_public_key(&[3; 32]);
    let second = call_id(2);
    calls_bob(&mut p, &carol, &second, "Carol");
    (p, first, carol, second)
}

#[test]
fn a_second_caller_rings_as_waiting_and_can_be_declined() {
    // Carol (a third vault) calls Bob while he talks to Alice: it rings, as a waiting call.
    let (mut p, first, carol, second) = carol_calls_during_a_call();
    assert_eq!(p.b.status(&second), CallStatus::Ringing);
    assert!(matches!(p.b.last(), AppNotification::Incoming(n) if n.call_id == second));
    assert!(matches!(p.elsewhere.as_slice(), [(to, PeerMessage::Ringing(_))] if to == &carol), "Carol hears it ring");
    assert!(p.wire.is_empty(), "nothing went to Alice");
    assert_eq!(p.b.status(&first), CallStatus::Active, "the first call is untouched");

    // Bob declines it: Carol is told, the call with Alice goes on.
    p.elsewhere.clear();
    let r = p.reject(&second, None);
    p.app(Side::B, r).unwrap();
    let rec = p.b.record(&second);
    assert_eq!((rec.status, rec.end_reason), (CallStatus::Rejected, Some(EndReason::Rejected)));
    assert!(
        matches!(p.elsewhere.as_slice(), [(to, PeerMessage::Reject(r))] if to == &carol && r.reason == RejectReason::Declined)
    );
    assert!(p.wire.is_empty());
    assert_eq!(p.b.status(&first), CallStatus::Active);
}

#[test]
fn taking_a_waiting_call_ends_the_call_in_progress() {
    let (mut p, first, carol, second) = carol_calls_during_a_call();
    p.elsewhere.clear();
    let before = p.b.app.len();

    let r = p.accept(&second);
    assert_eq!(p.app(Side::B, r), Ok(callvault_call::Disposition::Applied));
    // Bob hung up on Alice (he was her callee) and answered Carol, in that order.
    let rec = p.b.record(&first);
    assert_eq!((rec.status, rec.end_reason), (CallStatus::Ended, Some(EndReason::Callee)));
    assert_eq!(p.b.status(&second), CallStatus::Active);
    let told: Vec<&'static str> = p.b.kinds()[before..].to_vec();
    assert_eq!(told, ["call.ended", "call.accepted"], "the app hears the end first");
    assert!(matches!(p.wire.front(), Some((Side::A, PeerMessage::End(_)))), "Alice's vault hears the hang-up");
    assert!(matches!(p.elsewhere.as_slice(), [(to, PeerMessage::Accept(_))] if to == &carol), "Carol is answered");
    p.settle();
    assert_eq!(p.a.status(&first), CallStatus::Ended, "Alice's side agrees");
    let active = p.b.bucket.values().filter(|r| r.status == CallStatus::Active).count();
    assert_eq!(active, 1, "one active call");
}

#[test]
fn a_waiting_call_left_alone_is_missed_and_cannot_be_taken_after() {
    let (mut p, first, _carol, second) = carol_calls_during_a_call();
    p.advance(secs(61));
    assert_eq!(p.b.status(&second), CallStatus::Missed);
    assert_eq!(p.b.status(&first), CallStatus::Active, "the call in progress has no ring timeout");
    // Too late to take: refused, and the call in progress does not end for it.
    let r = p.accept(&second);
    assert!(p.app(Side::B, r).is_err());
    assert_eq!(p.b.status(&first), CallStatus::Active);
    assert!(p.wire.is_empty(), "nothing went to Alice");
}

#[test]
fn a_user_in_a_call_cannot_start_another() {
    let mut p = Pair::new();
    let first = call_id(1);
    p.connect(&first);
    let r = p.initiate(Side::A, &call_id(9));
    assert_eq!(p.app(Side::A, r), Err(CallError::AlreadyInCall { active: first.clone() }));
    let AppNotification::Error(e) = p.a.last() else { panic!("no error notification") };
    assert_eq!(e.code, ErrorCode::AlreadyInCall);
    assert_eq!(e.call_id, Some(call_id(9)));
    assert!(p.a.sb.call(&call_id(9)).is_none(), "no call was created");
}

#[test]
fn a_vault_takes_only_so_many_unsettled_calls_at_once() {
    // Seed the limit small; the default (64) behaves the same.
    let config = callvault_call::CallConfig { max_unsettled: 3, ..callvault_call::CallConfig::default() };
    let mut p = Pair::with_config(config);
    // Three strangers' calls ring at Bob's (no call is active).
    for n in 1..=3u8 {
        let from = Guid::from_public_key(&[10 + n; 32]);
        calls_bob(&mut p, &from, &call_id(n), "Caller");
        assert_eq!(p.b.status(&call_id(n)), CallStatus::Ringing);
    }
    // A fourth is rejected busy, and its caller told so.
    let fourth = Guid::from_public_key(&[20; 32]);
    p.elsewhere.clear();
    calls_bob(&mut p, &fourth, &call_id(4), "Caller");
    let rec = p.b.record(&call_id(4));
    assert_eq!((rec.status, rec.end_reason), (CallStatus::Rejected, Some(EndReason::Busy)));
    assert!(
        matches!(p.elsewhere.as_slice(), [(to, PeerMessage::Reject(r))] if to == &fourth && r.reason == RejectReason::Busy)
    );
    // Bob cannot place a call either, until one settles.
    let r = p.initiate(Side::B, &call_id(9));
    assert_eq!(p.app(Side::B, r), Err(CallError::TooManyCalls { limit: 3 }));
    let AppNotification::Error(e) = p.b.last() else { panic!("no error notification") };
    assert_eq!(e.code, ErrorCode::Busy);
    // The ringing calls time out; then calls are taken again.
    p.advance(std::time::Duration::from_secs(61));
    for n in 1..=3u8 {
        assert_eq!(p.b.status(&call_id(n)), CallStatus::Missed);
    }
    calls_bob(&mut p, &fourth, &call_id(5), "Caller");
    assert_eq!(p.b.status(&call_id(5)), CallStatus::Ringing);
}

#[test]
fn one_peer_gets_only_so_many_calls_ringing() {
    let mut p = Pair::new();
    let limit = callvault_call::CallConfig::default().max_ringing_per_peer;
    let mallory = Guid::from_public_key(&[30; 32]);
    for n in 1..=limit as u8 + 2 {
        calls_bob(&mut p, &mallory, &call_id(n), "Mallory");
    }
    let ringing = (1..=limit as u8 + 2).filter(|n| p.b.status(&call_id(*n)) == CallStatus::Ringing).count();
    assert_eq!(ringing, limit);
    let rec = p.b.record(&call_id(limit as u8 + 1));
    assert_eq!((rec.status, rec.end_reason), (CallStatus::Rejected, Some(EndReason::Busy)));
    // Someone else's call still rings.
    let carol = Guid::from_public_key(&[31; 32]);
    calls_bob(&mut p, &carol, &call_id(99), "Carol");
    assert_eq!(p.b.status(&call_id(99)), CallStatus::Ringing);
}

#[test]
fn taking_a_call_cancels_ones_own_call_still_ringing_and_a_late_answer_is_hung_up() {
    let mut p = Pair::new();
    // Bob calls Carol (a third vault); it is unanswered when Alice calls him and he takes hers.
    let carol = Guid::from_public_key(&[3; 32]);
    let to_carol = call_id(7);
    let r = AppRequest::Initiate(CallInitiateRequest {
        kind: tags::Initiate,
        message_id: MessageId::from_bytes([0x71; 16]),
        timestamp: p.now,
        call_id: to_carol.clone(),
        peer_guid: carol.clone(),
        call_type: CallType::Audio,
        ext: None,
    });
    p.app(Side::B, r).unwrap();
    let from_alice = call_id(1);
    p.ring(&from_alice);
    p.elsewhere.clear();
    let r = p.accept(&from_alice);
    assert_eq!(p.app(Side::B, r), Ok(callvault_call::Disposition::Applied));
    assert_eq!(p.b.status(&from_alice), CallStatus::Active);
    // Bob's own call is cancelled (his vault waits for Carol's to settle it, as for any cancel).
    assert!(!p.b.sb.call(&to_carol).unwrap().is_live_unanswered(), "Bob's own call is cancelled");
    assert!(
        p.b.app.iter().any(|n| matches!(n, AppNotification::Ended(e) if e.call_id == to_carol)),
        "his app hears it ended"
    );
    assert!(matches!(p.elsewhere.as_slice(), [(to, PeerMessage::End(_))] if to == &carol), "Carol's vault hears so");
    // Carol's answer, already on its way: it makes no second active call.
    let late = PeerMessage::Accept(CallAcceptedSignal {
        kind: tags::Accept,
        message_id: MessageId::from_bytes([0x72; 16]),
        timestamp: p.now,
        call_id: to_carol.clone(),
        from_guid: carol.clone(),
        public_key: PublicKey::new("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=").unwrap(),
        key_id: KeyId::from_bytes([9; 16]),
        ext: None,
    });
    let _ = p.input(Side::B, callvault_call::Input::Peer { message: late, profile: profile("Carol") });
    let active = p.b.bucket.values().filter(|r| r.status == CallStatus::Active).count();
    assert_eq!(active, 1, "one active call");
    assert_eq!(p.b.status(&from_alice), CallStatus::Active);
}

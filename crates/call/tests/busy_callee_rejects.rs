//! One active call at a time: a call that arrives during another is rejected `busy`, and the
//! busy user cannot start or accept another call.

mod common;

use callvault_call::CallError;
use callvault_protocol::calling::{AppNotification, CallIncomingSignal, PeerMessage, tags};
use callvault_protocol::fields::{CallStatus, CallType, EndReason, ErrorCode, RejectReason};
use callvault_protocol::{CallId, Guid, MessageId};
use common::*;

fn incoming_from(p: &Pair, stranger: &Guid, id: &CallId) -> PeerMessage {
    PeerMessage::Incoming(CallIncomingSignal {
        kind: tags::Incoming,
        message_id: MessageId::from_bytes([0x5c; 16]),
        timestamp: p.now,
        call_id: id.clone(),
        from_guid: stranger.clone(),
        call_type: CallType::Video,
        ext: None,
    })
}

#[test]
fn a_second_caller_is_rejected_busy() {
    let mut p = Pair::new();
    let first = call_id(1);
    p.connect(&first);

    // Carol (a third vault) calls Bob while he talks to Alice.
    let carol = Guid::from_public_key(&[3; 32]);
    let second = call_id(2);
    let m = incoming_from(&p, &carol, &second);
    p.input(Side::B, callvault_call::Input::Peer { message: m, profile: profile("Carol") }).unwrap();
    let rec = p.b.record(&second);
    assert_eq!((rec.status, rec.end_reason), (CallStatus::Rejected, Some(EndReason::Busy)));
    assert!(matches!(p.b.last(), AppNotification::Rejected(n) if n.reason == RejectReason::Busy));
    // The reject went to Carol, and nothing went to Alice.
    assert!(
        matches!(p.elsewhere.as_slice(), [(to, PeerMessage::Reject(r))] if to == &carol && r.reason == RejectReason::Busy)
    );
    assert!(p.wire.is_empty());
    assert_eq!(p.b.status(&first), CallStatus::Active, "the first call is untouched");
}

#[test]
fn the_busy_user_cannot_start_or_accept_another_call() {
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

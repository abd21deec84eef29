//! Requests and messages that make no sense in a call's state are refused with a typed error
//! and change nothing: no record, no message, only an error notification for app requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]

mod common;

use callvault_call::{CallError, Event, Input};
use callvault_protocol::calling::{AppNotification, AppRequest, CallRingingSignal, PeerMessage, tags};
use callvault_protocol::fields::{CallStatus, ErrorCode};
use callvault_protocol::{Guid, MessageId};
use common::*;

/// Runs `f`, which must be refused, and checks that nothing but an error notification came out.
fn refused(p: &mut Pair, side: Side, input: Input, expected: CallError) {
    let before = (p.a.bucket.clone(), p.b.bucket.clone(), p.wire.len(), p.party(side).app.len());
    let is_app = matches!(input, Input::App(_));
    assert_eq!(p.input(side, input), Err(expected.clone()));
    assert_eq!((p.a.bucket.clone(), p.b.bucket.clone(), p.wire.len()), (before.0, before.1, before.2));
    let app = &p.party(side).app;
    if is_app {
        assert_eq!(app.len(), before.3 + 1);
        let AppNotification::Error(e) = app.last().unwrap() else { panic!("no error notification") };
        assert_eq!(e.code, expected.code());
    } else {
        assert_eq!(app.len(), before.3, "peer errors are not the app's business");
    }
}

#[test]
fn app_requests_in_the_wrong_state() {
    let mut p = Pair::new();
    let id = call_id(1);
    p.ring(&id);
    // The caller cannot accept or reject its own call.
    let r = p.accept(&id);
    refused(
        &mut p,
        Side::A,
        Input::App(r),
        CallError::InvalidTransition { call_id: id.clone(), status: CallStatus::Ringing, event: Event::AppAccept },
    );
    let r = p.reject(&id, None);
    refused(
        &mut p,
        Side::A,
        Input::App(r),
        CallError::InvalidTransition { call_id: id.clone(), status: CallStatus::Ringing, event: Event::AppReject },
    );
    // Unknown call.
    let r = p.end(&call_id(99));
    refused(&mut p, Side::A, Input::App(r), CallError::UnknownCall { call_id: call_id(99) });
    // A call to oneself.
    let mut r = p.initiate(Side::A, &call_id(7));
    if let AppRequest::Initiate(i) = &mut r {
        i.peer_guid = p.guid(Side::A);
    }
    refused(&mut p, Side::A, Input::App(r), CallError::SelfCall);
    // A second call to a peer already ringing.
    let r = p.initiate(Side::A, &call_id(8));
    refused(&mut p, Side::A, Input::App(r), CallError::CallInProgress { existing: id.clone() });
    // Re-using a call_id for a new call.
    let r = p.initiate(Side::A, &id);
    refused(&mut p, Side::A, Input::App(r), CallError::DuplicateCall { call_id: id.clone() });

    // Once answered, it cannot be rejected or accepted again.
    let r = p.accept(&id);
    p.app(Side::B, r).unwrap();
    p.settle();
    let r = p.reject(&id, None);
    refused(
        &mut p,
        Side::B,
        Input::App(r),
        CallError::InvalidTransition { call_id: id.clone(), status: CallStatus::Active, event: Event::AppReject },
    );
    let r = p.accept(&id);
    let e = p.app(Side::B, r).unwrap_err();
    assert!(matches!(e, CallError::AlreadyInCall { .. } | CallError::InvalidTransition { .. }), "{e:?}");
    let AppNotification::Error(n) = p.b.last() else { panic!() };
    assert!(matches!(n.code, ErrorCode::AlreadyInCall | ErrorCode::InvalidState));
}

#[test]
fn peer_messages_in_the_wrong_state_or_from_the_wrong_peer() {
    let mut p = Pair::new();
    let id = call_id(2);
    p.ring(&id);
    let now = p.now;
    let ringing = |from: Guid, n: u8| {
        PeerMessage::Ringing(CallRingingSignal {
            kind: tags::Ringing,
            message_id: MessageId::from_bytes([n; 16]),
            timestamp: now,
            call_id: id.clone(),
            from_guid: from,
            ext: None,
        })
    };
    // A stranger speaking for the call.
    let stranger = Guid::from_public_key(&[77; 32]);
    let m = ringing(stranger, 1);
    refused(
        &mut p,
        Side::A,
        Input::Peer { message: m, profile: profile("x") },
        CallError::WrongPeer { call_id: id.clone() },
    );
    // The caller telling the callee that it is ringing.
    let m = ringing(p.guid(Side::A), 2);
    refused(
        &mut p,
        Side::B,
        Input::Peer { message: m, profile: profile("x") },
        CallError::InvalidTransition { call_id: id.clone(), status: CallStatus::Ringing, event: Event::PeerRinging },
    );
    // A message for a call nobody knows.
    let mut m = ringing(p.guid(Side::B), 3);
    if let PeerMessage::Ringing(r) = &mut m {
        r.call_id = call_id(42);
    }
    refused(
        &mut p,
        Side::A,
        Input::Peer { message: m, profile: profile("x") },
        CallError::UnknownCall { call_id: call_id(42) },
    );
    // A message claiming to come from ourselves.
    let m = ringing(p.guid(Side::A), 4);
    refused(&mut p, Side::A, Input::Peer { message: m, profile: profile("x") }, CallError::SelfCall);
}

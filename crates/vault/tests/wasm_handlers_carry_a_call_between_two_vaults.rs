//! The seven handlers, run as WASM under wasmi, carry a call between two vaults as the seed's
//! Logic steps say, and give exactly the outputs the native state machine gives.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod common_inputs;

use std::collections::BTreeMap;

use callvault_call::Call;
use callvault_call::abi::{self, Event, HandlerInput, HandlerName, HandlerOutput, Outcome, OutputItem, WireMessage};
use callvault_kernel::EntityKey;
use callvault_protocol::fields::{CallStatus, ErrorCode};
use callvault_protocol::subject::{PeerKind, RequestKind};
use callvault_protocol::{CallId, Guid, Timestamp};
use callvault_vault::runtime::{HandlerLimits, HandlerRuntime};
use common_inputs::*;

/// A vault reduced to what a handler needs from its host: stored calls and one connection.
struct MiniVault {
    local: Guid,
    peer: u8,
    calls: BTreeMap<CallId, Call>,
    app: Vec<WireMessage>,
}

impl MiniVault {
    fn input(&self, handler: HandlerName, event: Event, now: Timestamp) -> HandlerInput {
        // The event's call, or (for a timer) the one call held.
        let named = match &event {
            Event::App(w) | Event::Peer(w) => w.value()["call_id"].as_str().map(str::to_owned),
            _ => self.calls.keys().next().map(|c| c.to_string()),
        };
        HandlerInput {
            handler: handler.as_str().into(),
            local: self.local.clone(),
            now,
            config: abi::config_json(60),
            event,
            entity: EntityKey::parse(&named.unwrap()).unwrap(),
            states: self.calls.values().filter_map(abi::entity_state).collect(),
            counts: Default::default(),
            connection: Some(connection(self.peer, "Peer")),
            page: None,
            connections: Vec::new(),
            tokens: Default::default(),
            record: None,
        }
    }

    /// Runs in WASM, checks against native, applies outputs; returns messages for the peer.
    fn run(&mut self, rt: &HandlerRuntime, input: HandlerInput) -> (Outcome, Vec<WireMessage>) {
        let handler = HandlerName::parse(&input.handler).unwrap();
        let wasm: HandlerOutput = rt.invoke(handler, &input).unwrap();
        assert_eq!(wasm, abi::run(&input), "WASM and native disagree on {:?}", input.handler);
        let mut to_peer = Vec::new();
        for o in wasm.outputs {
            match o {
                OutputItem::Store { state, .. } => {
                    let c: Call = serde_json::from_str(state.get()).unwrap();
                    self.calls.insert(c.id().clone(), c);
                }
                OutputItem::Send { message, .. } => to_peer.push(message),
                OutputItem::Notify(n) => self.app.push(n),
                OutputItem::Count { .. } => {}
                OutputItem::Forget { .. } => panic!("the call family forgets no call"),
            }
        }
        (wasm.outcome, to_peer)
    }

    fn app_request(
        &mut self,
        rt: &HandlerRuntime,
        kind: RequestKind,
        json: serde_json::Value,
        now: Timestamp,
    ) -> (Outcome, Vec<WireMessage>) {
        let input =
            self.input(HandlerName::for_request(kind), Event::App(WireMessage::from_value(kind.token(), &json)), now);
        self.run(rt, input)
    }

    fn deliver(&mut self, rt: &HandlerRuntime, msgs: Vec<WireMessage>, now: Timestamp) -> Vec<WireMessage> {
        let mut replies = Vec::new();
        for m in msgs {
            let kind = PeerKind::ALL.iter().copied().find(|k| k.token() == m.kind).unwrap();
            let input = self.input(HandlerName::for_peer(kind), Event::Peer(m), now);
            replies.extend(self.run(rt, input).1);
        }
        replies
    }

    fn status(&self, id: &CallId) -> CallStatus {
        self.calls[id].record().status
    }
}

#[test]
fn answered_call_with_signals_and_hang_up() {
    let rt = HandlerRuntime::with_builtins(HandlerLimits::default()).unwrap();
    let mut a = MiniVault { local: guid(1), peer: 2, calls: BTreeMap::new(), app: Vec::new() };
    let mut b = MiniVault { local: guid(2), peer: 1, calls: BTreeMap::new(), app: Vec::new() };
    let call_id = "00000000-0000-4000-8000-0000000000aa";
    let id = CallId::parse(call_id).unwrap();
    let msg = |n: u32, extra: serde_json::Value, now: Timestamp| {
        let mut v = serde_json::json!({"message_id": format!("00000000-0000-4000-8000-{n:012}"), "call_id": call_id, "timestamp": now.to_string()});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };

    let (o, out) = a.app_request(
        &rt,
        RequestKind::Initiate,
        msg(
            1,
            serde_json::json!({"type": "call.initiate", "peer_guid": guid(2).to_string(), "call_type": "video"}),
            at(0),
        ),
        at(0),
    );
    assert_eq!(o, Outcome::Applied);
    let back = b.deliver(&rt, out, at(0));
    assert_eq!(b.status(&id), CallStatus::Ringing);
    assert_eq!(b.app.last().unwrap().kind, "incoming");
    assert!(a.deliver(&rt, back, at(0)).is_empty());
    assert_eq!(a.status(&id), CallStatus::Ringing);

    let key = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    let (_, out) = b.app_request(&rt, RequestKind::Accept, msg(2, serde_json::json!({"type": "call.accept", "public_key": key, "key_id": "00000000-0000-4000-8000-0000000000bb"}), at(1)), at(1));
    a.deliver(&rt, out, at(1));
    assert_eq!((a.status(&id), b.status(&id)), (CallStatus::Active, CallStatus::Active));
    assert_eq!(a.app.last().unwrap().value()["public_key"], key);

    for (n, (side_is_a, t)) in
        [(true, "key_exchange"), (false, "key_exchange"), (true, "offer")].into_iter().enumerate()
    {
        let req = msg(
            10 + n as u32,
            serde_json::json!({"type": "call.signal", "signal_type": t, "payload": "c2VhbGVk"}),
            at(2),
        );
        if side_is_a {
            let (_, out) = a.app_request(&rt, RequestKind::Signal, req, at(2));
            b.deliver(&rt, out, at(2));
            assert_eq!(b.app.last().unwrap().value()["signal_type"], t);
        } else {
            let (_, out) = b.app_request(&rt, RequestKind::Signal, req, at(2));
            a.deliver(&rt, out, at(2));
            assert_eq!(a.app.last().unwrap().value()["signal_type"], t);
        }
    }
    assert!(a.calls[&id].record().key_exchange_complete && b.calls[&id].record().key_exchange_complete);
    // A large signal (an SDP with many candidates, sealed): the module's heap grows by many pages
    // and its buffers move; the result is still the native one (`run` compares them).
    let big = "QUJD".repeat(12_000);
    let req = msg(15, serde_json::json!({"type": "call.signal", "signal_type": "ice", "payload": big}), at(2));
    let (_, out) = a.app_request(&rt, RequestKind::Signal, req, at(2));
    b.deliver(&rt, out, at(2));
    assert_eq!(b.app.last().unwrap().value()["payload"].as_str().map(str::len), Some(48_000));

    let (_, out) =
        a.app_request(&rt, RequestKind::End, msg(20, serde_json::json!({"type": "call.end"}), at(33)), at(33));
    b.deliver(&rt, out, at(33));
    for v in [&a, &b] {
        let r = v.calls[&id].record();
        assert_eq!((r.status, r.duration_seconds.map(|d| d.get())), (CallStatus::Ended, Some(32)));
    }
}

#[test]
fn a_call_to_a_non_connection_is_refused_with_an_error_notification() {
    let rt = HandlerRuntime::with_builtins(HandlerLimits::default()).unwrap();
    let out = rt.invoke(HandlerName::Initiate, &initiate_input(1, 3, false, at(0))).unwrap();
    assert_eq!(out, abi::run(&initiate_input(1, 3, false, at(0))));
    assert!(matches!(out.outcome, Outcome::Refused { code: ErrorCode::NotConnected, .. }));
    assert!(
        matches!(&out.outputs[..], [OutputItem::Notify(n)] if n.kind == "error" && n.value()["code"] == "not_connected")
    );
}

#[test]
fn the_timeout_handler_marks_an_unanswered_call_missed() {
    let rt = HandlerRuntime::with_builtins(HandlerLimits::default()).unwrap();
    let mut b = MiniVault { local: guid(2), peer: 1, calls: BTreeMap::new(), app: Vec::new() };
    let mut a = MiniVault { local: guid(1), peer: 2, calls: BTreeMap::new(), app: Vec::new() };
    let (_, out) = a.run(&rt, initiate_input(1, 2, true, at(0)));
    b.deliver(&rt, out, at(0));
    let tick = b.input(HandlerName::Timeout, Event::Timer, at(61));
    let (_, out) = b.run(&rt, tick);
    let id = CallId::parse("00000000-0000-4000-8000-0000000000aa").unwrap();
    assert_eq!(b.status(&id), CallStatus::Missed);
    a.deliver(&rt, out, at(61));
    assert_eq!(a.status(&id), CallStatus::Missed);
}

#[test]
fn events_sent_to_the_wrong_handler_are_refused() {
    let rt = HandlerRuntime::with_builtins(HandlerLimits::default()).unwrap();
    let mut input = initiate_input(1, 2, true, at(0));
    input.handler = HandlerName::Accept.as_str().into();
    let out = rt.invoke(HandlerName::Accept, &input).unwrap();
    assert!(matches!(out.outcome, Outcome::Refused { code: ErrorCode::InvalidMessage, .. }));
    // Raw garbage in the input is a refusal, not a trap.
    let raw = rt.invoke_raw(HandlerName::Accept, b"{not json").unwrap();
    let out: HandlerOutput = serde_json::from_slice(&raw).unwrap();
    assert!(matches!(out.outcome, Outcome::Refused { code: ErrorCode::InvalidMessage, .. }));
}

#[test]
fn deeply_nested_json_is_handled_within_the_module_stack() {
    // The module's stack is small (its build script sets it) so that every event's fresh instance
    // is cheap; serde_json's recursion limit (128) must be reached before the stack runs out.
    let rt = HandlerRuntime::with_builtins(HandlerLimits::default()).unwrap();
    for depth in [64usize, 126, 127, 128, 129, 400, 5_000] {
        let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let mut input = initiate_input(1, 2, true, at(0));
        let Event::App(w) = &input.event else { unreachable!() };
        let mut v = w.value();
        v["ext"] = serde_json::json!({"deep": serde_json::Value::Null});
        let text = v.to_string().replace("null", &nested);
        input.event = Event::App(WireMessage::from_bytes("initiate", text.as_bytes()));
        let out = rt
            .invoke_raw(HandlerName::Initiate, &serde_json::to_vec(&input).unwrap())
            .unwrap_or_else(|e| panic!("depth {depth}: {e}"));
        let out: HandlerOutput = serde_json::from_slice(&out).unwrap();
        // Within the limit the call is placed (and the nesting kept in `ext`); past it, refused.
        match out.outcome {
            Outcome::Applied => assert!(depth < 128, "depth {depth} applied"),
            Outcome::Refused { code: ErrorCode::InvalidMessage, .. } => assert!(depth >= 126, "depth {depth} refused"),
            other => panic!("depth {depth}: {other:?}"),
        }
    }
    // And the runtime still serves an ordinary event.
    let out = rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap();
    assert_eq!(out.outcome, Outcome::Applied);
}

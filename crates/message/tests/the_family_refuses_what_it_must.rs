//! The message family's handlers as pure functions, in virtual time: retention expires what is
//! past it (in pages, across timer firings), and hostile events (another conversation named, a
//! sender that is no connection, an oversize body, a bad schema, a seq far ahead, a future
//! `sent_at`, a peer deleting one's own messages) are refused with nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::Duration;

use callvault_kernel::{
    ConnectionInfo, EntityKey, EntityState, Event, Input, Json, Outcome, Output, OutputItem, Page, PageRecord,
    WireMessage,
};
use callvault_message::run;
use callvault_protocol::fields::{DisplayName, ErrorCode, PeerProfile};
use callvault_protocol::messaging::{ConversationState, MAX_SEQ_GAP};
use callvault_protocol::{Guid, Timestamp};
use serde_json::{Value, json};

fn guid(n: u8) -> Guid {
    Guid::from_public_key(&[n; 32])
}

fn t0() -> Timestamp {
    Timestamp::from_unix_millis(1_796_000_000_000)
}

fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

struct Side {
    local: Guid,
    peer: Guid,
    state: Option<ConversationState>,
}

impl Side {
    fn new() -> Self {
        Self { local: guid(1), peer: guid(2), state: None }
    }

    fn input(&self, handler: &str, event: Event, now: Timestamp, connected: bool, page: Option<Page>) -> Input {
        let entity = EntityKey::parse(self.peer.as_str()).unwrap();
        let states = self
            .state
            .iter()
            .map(|s| EntityState { key: entity.clone(), version: 1, state: Json::of(s).unwrap() })
            .collect();
        Input {
            handler: handler.into(),
            local: self.local.clone(),
            now,
            config: None,
            event,
            entity,
            states,
            counts: Default::default(),
            connection: connected.then(|| ConnectionInfo {
                guid: self.peer.clone(),
                profile: PeerProfile { display_name: DisplayName::new("Bob").unwrap(), avatar_url: None },
                user_key: None,
                revoked: false,
            }),
            page,
            connections: Vec::new(),
            tokens: Default::default(),
            record: None,
        }
    }

    /// Runs and keeps the stored state.
    fn run(&mut self, handler: &str, event: Event, now: Timestamp, page: Option<Page>) -> Output {
        let out = run(handler, &self.input(handler, event, now, true, page));
        for o in &out.outputs {
            if let OutputItem::Store { state, .. } = o {
                self.state = Some(serde_json::from_str(state.get()).unwrap());
            }
        }
        out
    }
}

fn app(kind: &str, n: u32, fields: Value) -> Event {
    let mut doc = json!({"type": format!("message.{kind}"), "message_id": id(n), "timestamp": t0().to_string()});
    doc.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    Event::App(WireMessage::from_value(kind, &doc))
}

fn peer(kind: &str, n: u32, from: &Guid, fields: Value) -> Event {
    let mut doc = json!({"type": format!("message.{kind}"), "message_id": id(n), "timestamp": t0().to_string(),
        "conversation": from.to_string(), "from_guid": from.to_string()});
    doc.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    Event::Peer(WireMessage::from_value(kind, &doc))
}

fn stores(out: &Output) -> bool {
    out.outputs.iter().any(|o| matches!(o, OutputItem::Store { .. }))
}

fn code(out: &Output) -> Option<ErrorCode> {
    match &out.outcome {
        Outcome::Refused { code, .. } => Some(*code),
        _ => None,
    }
}

fn deliver(side: &Side, n: u64, sent_at: Timestamp, m: u32) -> Event {
    peer("deliver", m, &side.peer, json!({"seq": n, "sent_at": sent_at.to_string(), "body": "AAAA"}))
}

#[test]
fn hostile_events_are_refused_and_store_nothing() {
    let mut s = Side::new();
    let conv = s.peer.to_string();
    assert_eq!(s.run("deliver", deliver(&s, 1, t0(), 1), t0(), None).outcome, Outcome::Applied);
    let before = s.state.clone();

    let cases: Vec<(&str, &str, Input, ErrorCode)> = vec![
        (
            "another conversation named",
            "deliver",
            s.input(
                "deliver",
                peer("deliver", 2, &guid(3), json!({"seq": 2, "sent_at": t0().to_string(), "body": "AAAA"})),
                t0(),
                true,
                None,
            ),
            ErrorCode::InvalidMessage,
        ),
        (
            "a sender that is no connection",
            "deliver",
            s.input("deliver", deliver(&s, 2, t0(), 3), t0(), false, None),
            ErrorCode::NotConnected,
        ),
        (
            "a seq far ahead",
            "deliver",
            s.input("deliver", deliver(&s, 2 + MAX_SEQ_GAP, t0(), 4), t0(), true, None),
            ErrorCode::InvalidMessage,
        ),
        (
            "sent in the future",
            "deliver",
            s.input("deliver", deliver(&s, 2, t0().saturating_add(Duration::from_secs(60)), 5), t0(), true, None),
            ErrorCode::Stale,
        ),
        (
            "a bad schema",
            "deliver",
            s.input("deliver", peer("deliver", 6, &s.peer, json!({"seq": "two", "body": 1})), t0(), true, None),
            ErrorCode::InvalidMessage,
        ),
        (
            "an oversize body",
            "send",
            s.input(
                "send",
                app("send", 7, json!({"conversation": conv, "body": "A".repeat(40_000)})),
                t0(),
                true,
                None,
            ),
            ErrorCode::TooLarge,
        ),
        (
            "a send to no connection",
            "send",
            s.input("send", app("send", 8, json!({"conversation": conv, "body": "AAAA"})), t0(), false, None),
            ErrorCode::NotConnected,
        ),
        (
            "a receipt for a message never sent",
            "receipt",
            s.input("receipt", peer("delivered", 9, &s.peer, json!({"seq": 1})), t0(), true, None),
            ErrorCode::InvalidMessage,
        ),
        (
            "deleting the peer's message for both",
            "delete",
            s.input(
                "delete",
                app("delete", 10, json!({"conversation": conv, "item": "1796000000000-i-1", "for_both": true})),
                t0(),
                true,
                None,
            ),
            ErrorCode::InvalidState,
        ),
        (
            "reading a message never received",
            "receipt",
            s.input("receipt", app("read", 11, json!({"conversation": conv, "seq": 5})), t0(), true, None),
            ErrorCode::InvalidState,
        ),
        (
            "an event the handler does not take",
            "history",
            s.input("history", deliver(&s, 2, t0(), 12), t0(), true, None),
            ErrorCode::InvalidMessage,
        ),
    ];
    for (name, handler, input, expected) in cases {
        let out = run(handler, &input);
        assert_eq!(code(&out), Some(expected), "{name}: {:?}", out.outcome);
        assert!(!stores(&out), "{name} stored something");
        assert!(out.outputs.is_empty(), "{name} did something: {:?}", out.outputs);
    }
    // A repeat is a duplicate, with no effect.
    let again = s.run("deliver", deliver(&s, 1, t0(), 1), t0(), None);
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert!(again.outputs.is_empty());
    assert_eq!(s.state, before);
    // A peer's deletion may name only the peer's own message: the item is built from its seq.
    let del = s.run(
        "delete",
        peer("deleted", 13, &s.peer.clone(), json!({"seq": 1, "sent_at": t0().to_string()})),
        t0(),
        None,
    );
    let deleted: Vec<String> = del
        .outputs
        .iter()
        .filter_map(|o| match o {
            OutputItem::Store { records, .. } => Some(records.iter().map(|r| r.store_key()).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(deleted, vec![format!("{conv}.1796000000000-i-1")]);
}

#[test]
fn retention_expires_past_messages_page_by_page() {
    let mut s = Side::new();
    let conv = s.peer.to_string();
    let day = Duration::from_secs(86_400);
    // Three messages sent on day 0.
    for n in 1..=3 {
        let out = s.run("send", app("send", n, json!({"conversation": conv, "body": "AAAA"})), t0(), None);
        assert_eq!(out.outcome, Outcome::Applied);
    }
    // Keep 2 days: the timer is set at once, to look for what is past.
    let out = s.run("retention", app("retention", 10, json!({"conversation": conv, "days": 2})), t0(), None);
    let timer = out.outputs.iter().find_map(|o| match o {
        OutputItem::Store { timer, .. } => *timer,
        _ => None,
    });
    assert_eq!(timer, Some(t0()));
    let item = |n: u64| format!("{:013}-o-{n}", 1_796_000_000_000u64 + n - 1);
    let page = |items: &[u64], more: bool| {
        Page {
        records: items
            .iter()
            .map(|n| PageRecord {
                item: EntityKey::parse(&item(*n)).unwrap(),
                value: Json::of(&json!({"message_id": id(*n as u32), "direction": "outgoing", "seq": n,
                    "sent_at": Timestamp::from_unix_millis(1_796_000_000_000 + *n as i64 - 1).to_string(), "body": "AAAA"}))
                .unwrap(),
            })
            .collect(),
        more,
    }
    };
    // Day 1: nothing is past; the timer moves to day 2 after the oldest.
    let out = s.run("expire", Event::Timer, t0().saturating_add(day), Some(page(&[1, 2, 3], false)));
    let (timer, deleted) = expired(&out);
    assert!(deleted.is_empty());
    assert_eq!(timer, Some(t0().saturating_add(2 * day)));
    // Day 3, a page of two of three: both go, and the timer comes back in a second for the rest.
    let later = t0().saturating_add(3 * day);
    let out = s.run("expire", Event::Timer, later, Some(page(&[1, 2], true)));
    let (timer, deleted) = expired(&out);
    assert_eq!(deleted, vec![item(1), item(2)]);
    assert_eq!(timer, Some(later.saturating_add(Duration::from_secs(1))));
    let out = s.run("expire", Event::Timer, later, Some(page(&[3], false)));
    let (timer, deleted) = expired(&out);
    assert_eq!(deleted, vec![item(3)]);
    assert_eq!(timer, None, "nothing left to expire: no timer");
}

/// The timer and the items a run deleted.
fn expired(out: &Output) -> (Option<Timestamp>, Vec<String>) {
    out.outputs
        .iter()
        .find_map(|o| match o {
            OutputItem::Store { timer, records, .. } => Some((
                *timer,
                records.iter().filter(|r| r.value.is_none()).map(|r| r.item.clone().unwrap().to_string()).collect(),
            )),
            _ => None,
        })
        .unwrap()
}

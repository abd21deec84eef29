//! The `message` family: 1:1 messages between connections, on the vault kernel.
//!
//! A conversation is the entity, named by the peer's guid (`conversation`). Its state
//! ([`ConversationState`]) numbers one's own messages, tracks which of the peer's have arrived
//! (so a repeat is a duplicate) and the receipts; each message is a sealed [`MessageRecord`] in
//! the `messages` bucket under `<conversation>.<item>`. Bodies are sealed app to app: the vaults
//! store and forward ciphertext.
//!
//! | handler | events | does |
//! | --- | --- | --- |
//! | `send` | app `send` | numbers and stores the message, delivers it to the peer (at least once), tells the user's apps `sent` |
//! | `deliver` | peer `deliver` | stores the peer's message once per `seq`, tells the apps `received`, answers `delivered` |
//! | `receipt` | app `read`, peer `delivered`, peer `read` | keeps the receipts, passes a read receipt to the peer |
//! | `delete` | app `delete`, peer `deleted` | deletes a message here (and with `for_both`, one's own at the peer) |
//! | `history` | app `history` | a page of the conversation, newest first, with each message's status |
//! | `retention` | app `retention` | keeps the conversation's messages only so many days |
//! | `expire` | the conversation's timer | deletes the messages past its retention |
//!
//! No handler reads another conversation, so conversations run concurrently. Every handler is
//! a pure function of its [`Input`]; [`run`] never panics on any input.

// The call family's bump allocator (every event runs in a fresh instance: freeing buys nothing).
#[cfg(target_arch = "wasm32")]
#[path = "../../handlers/src/heap.rs"]
mod heap;

use callvault_kernel::{
    EntityKey, EntityState, Event, Input, Json, Outcome, Output, OutputItem, PageRecord, Record, WireMessage,
};
use callvault_protocol::fields::{Direction, ErrorCode};
use callvault_protocol::messaging::{
    ConversationState, HistoryItem, ItemKey, MessageDeleteRequest, MessageDeletedNotification, MessageDeletedSignal,
    MessageDeliver, MessageDelivered, MessageDeliveredNotification, MessageHistoryNotification, MessageHistoryRequest,
    MessageReadNotification, MessageReadReceipt, MessageReadRequest, MessageReceivedNotification, MessageRecord,
    MessageRetentionNotification, MessageRetentionRequest, MessageSendRequest, MessageSentNotification, MessageStatus,
    RECENT, Reader, RecentId, RecentSend, SealedBody, Seq, Side, tags,
};
use callvault_protocol::registry::Schema;
use callvault_protocol::{Guid, MessageId, Timestamp};
use serde::Serialize;
use serde_json::json;

/// The family's name.
pub const FAMILY: &str = "message";
/// The version of the state it writes.
pub const STATE_VERSION: u32 = 2;
/// The bucket its records go to.
pub const BUCKET: &str = "messages";
/// How far ahead of the receiver's clock a message's `sent_at` may be.
const MAX_SKEW_MS: i64 = 30_000;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;
/// The most bytes of sealed records in one history page: about a frame's worth.
const HISTORY_BYTES: u32 = 64 * 1024;

/// The family's manifest.
pub fn manifest() -> serde_json::Value {
    json!({
        "family": FAMILY,
        "state_version": STATE_VERSION,
        "entity_field": "conversation",
        "peer_fields": ["from_guid", "conversation"],
        "peers": "connections",
        "records": [BUCKET],
        "notifies": ["sent", "received", "delivered", "read", "deleted", "history", "retention"],
        "sends": ["deliver", "delivered", "read", "deleted"],
        "reliable": ["deliver", "delivered", "read", "deleted"],
        "handlers": [
            {"name": "send", "app": ["send"]},
            {"name": "deliver", "peer": ["deliver"]},
            {"name": "receipt", "app": ["read"], "peer": ["delivered", "read"]},
            {"name": "delete", "app": ["delete"], "peer": ["deleted"]},
            {"name": "history", "app": ["history"],
             "page": {"bucket": BUCKET, "newest_first": true, "cursor_field": "before", "limit_field": "limit",
                      "limit": callvault_protocol::messaging::MAX_PAGE, "max_bytes": HISTORY_BYTES}},
            {"name": "retention", "app": ["retention"]},
            {"name": "expire", "timer": true, "restore": true,
             "page": {"bucket": BUCKET, "limit": 200, "max_bytes": 256 * 1024}}
        ]
    })
}

/// The manifest's JSON (what `cv_manifest` returns).
pub fn manifest_json() -> Vec<u8> {
    serde_json::to_vec(&manifest()).unwrap_or_default()
}

/// What an id is derived for.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Purpose {
    Sent = 1,
    Received = 2,
    Delivered = 3,
    Read = 4,
    Deleted = 5,
    History = 6,
    Retention = 7,
    Expired = 8,
}

/// A message id derived from what caused it, so handling an event again makes the same ids.
fn derive_id(local: &Guid, of: &[u8], purpose: Purpose, n: u64) -> MessageId {
    MessageId::derived(b"cvmsg1", purpose as u8, local, of, n)
}

fn refused(code: ErrorCode, reason: impl Into<String>) -> Output {
    Output::refused(code, reason)
}

fn unix_ms(t: Timestamp) -> u64 {
    u64::try_from(t.unix_millis()).unwrap_or(0)
}

fn at_ms(ms: u64) -> Timestamp {
    Timestamp::from_unix_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn seq(n: u64) -> Result<Seq, Output> {
    Seq::new(n).map_err(internal)
}

fn wire<T: Serialize>(kind: &str, v: &T) -> Result<WireMessage, Output> {
    WireMessage::of(kind, v).map_err(internal)
}

/// What one event does to one conversation, gathered into the kernel's outputs.
struct Step {
    conversation: Guid,
    entity: EntityKey,
    state: ConversationState,
    records: Vec<Record>,
    outputs: Vec<OutputItem>,
    now: Timestamp,
    /// Fire the timer then instead (retention changed, or more to expire).
    next: Option<Timestamp>,
}

impl Step {
    fn record(&mut self, item: &ItemKey, value: Option<&MessageRecord>) -> Result<(), Output> {
        let item = EntityKey::parse(item.as_str()).map_err(internal)?;
        let value = value.map(Json::of).transpose().map_err(internal)?;
        self.records.push(Record { bucket: BUCKET.into(), key: self.entity.clone(), item: Some(item), value });
        Ok(())
    }

    fn notify<T: Serialize>(&mut self, kind: &str, v: &T) -> Result<(), Output> {
        self.outputs.push(OutputItem::Notify(wire(kind, v)?));
        Ok(())
    }

    fn send<T: Serialize>(&mut self, kind: &str, v: &T) -> Result<(), Output> {
        let message = wire(kind, v)?;
        self.outputs.push(OutputItem::Send { to: self.conversation.clone(), message });
        Ok(())
    }

    /// Deletes a message's record and tells the user's apps (`message.deleted`).
    fn forget(&mut self, item: ItemKey, message_id: MessageId, in_reply_to: Option<MessageId>) -> Result<(), Output> {
        self.record(&item, None)?;
        let note = MessageDeletedNotification {
            kind: tags::Deleted,
            message_id,
            timestamp: self.now,
            conversation: self.conversation.clone(),
            item,
            in_reply_to,
            ext: None,
        };
        self.notify("deleted", &note)
    }

    /// The conversation's timer: when its oldest message passes its retention.
    fn timer(&self) -> Option<Timestamp> {
        if self.next.is_some() {
            return self.next;
        }
        let days = self.state.retention_days?;
        let oldest = self.state.oldest_ms?;
        Some(at_ms(oldest.saturating_add(u64::from(days.get()).saturating_mul(DAY_MS))))
    }

    fn saw(&mut self, ms: u64) {
        self.state.oldest_ms = Some(self.state.oldest_ms.map_or(ms, |o| o.min(ms)));
    }

    /// The outputs: the store first (state, timer, records at once), then what announces it.
    fn finish(self, outcome: Outcome) -> Handled {
        let timer = self.timer();
        let store = OutputItem::Store {
            entity: self.entity,
            state: Json::of(&self.state).map_err(internal)?,
            tags: Vec::new(),
            peer: Some(self.conversation),
            timer,
            records: self.records,
        };
        let mut outputs = vec![store];
        outputs.extend(self.outputs);
        Ok(Output { outcome, outputs })
    }
}

/// The conversation's stored state, whichever version stored it.
fn state_of(states: &[EntityState], entity: &EntityKey) -> Result<ConversationState, String> {
    let Some(s) = states.iter().find(|s| &s.key == entity) else { return Ok(ConversationState::default()) };
    match s.version {
        // Version 1 kept each recent send's whole message_id; it reads as version 2.
        1 | 2 => ConversationState::from_json(s.state.get().as_bytes()).map_err(|e| e.to_string()),
        v => Err(format!("state version {v} is not one this module reads")),
    }
}

/// Runs handler `name` on `input`. Never panics: a bad event is refused with a code.
pub fn run(name: &str, input: &Input) -> Output {
    let conversation = match Guid::parse(input.entity.as_str()) {
        Ok(g) => g,
        Err(_) => return refused(ErrorCode::InvalidMessage, "a conversation is named by the peer's guid"),
    };
    let state = match state_of(&input.states, &input.entity) {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let step = Step {
        conversation,
        entity: input.entity.clone(),
        state,
        records: Vec::new(),
        outputs: Vec::new(),
        now: input.now,
        next: None,
    };
    let result = match (name, &input.event) {
        ("send", Event::App(w)) if w.kind == "send" => send(step, input, w),
        ("deliver", Event::Peer(w)) if w.kind == "deliver" => deliver(step, input, w),
        ("receipt", Event::App(w)) if w.kind == "read" => read_here(step, input, w),
        ("receipt", Event::Peer(w)) if w.kind == "delivered" => delivered(step, w),
        ("receipt", Event::Peer(w)) if w.kind == "read" => read_there(step, w),
        ("delete", Event::App(w)) if w.kind == "delete" => delete_here(step, input, w),
        ("delete", Event::Peer(w)) if w.kind == "deleted" => delete_there(step, w),
        ("history", Event::App(w)) if w.kind == "history" => history(step, input, w),
        ("retention", Event::App(w)) if w.kind == "retention" => retention(step, input, w),
        ("expire", Event::Timer | Event::Restore) => expire(step, input),
        _ => return refused(ErrorCode::InvalidMessage, "no handler of this family takes that event"),
    };
    result.unwrap_or_else(|refusal| refusal)
}

/// The JSON entry point of the module: input bytes in, output bytes out.
pub fn run_json(name: &str, input: &[u8]) -> Vec<u8> {
    callvault_kernel::guest::run_json(run, name, input)
}

/// A handler's answer; `Err` ends it early with a refusal.
type Handled = Result<Output, Output>;

/// A failure of the module itself (not of the event).
fn internal(e: impl std::fmt::Display) -> Output {
    refused(ErrorCode::Internal, e.to_string())
}

/// Parses a message of this family; a refusal names why.
fn parse<T: Schema>(w: &WireMessage) -> Result<T, Output> {
    T::from_json(w.json().as_bytes()).map_err(|e| refused(ErrorCode::InvalidMessage, e.to_string()))
}

/// A peer's message must name the conversation it came in (its sender) and come from a
/// connection (the kernel checked the seal).
fn from_the_peer(step: &Step, input: Option<&Input>, conversation: &Guid, from: &Guid) -> Result<(), Output> {
    if conversation != from || *from != step.conversation {
        return Err(refused(ErrorCode::InvalidMessage, "the message names another conversation"));
    }
    if input.is_some_and(|i| i.connection.as_ref().is_none_or(|c| c.guid != *from)) {
        return Err(refused(ErrorCode::NotConnected, "the sender is not a connection"));
    }
    Ok(())
}

/// A peer's receipt names this conversation and a message one sent.
fn a_receipt(step: &Step, conversation: &Guid, from: &Guid, n: Seq) -> Result<u64, Output> {
    from_the_peer(step, None, conversation, from)?;
    if n.get() > step.state.last_seq {
        return Err(refused(ErrorCode::InvalidMessage, "a receipt for a message not sent"));
    }
    Ok(n.get())
}

/// An outcome with nothing to do.
fn quiet(outcome: Outcome) -> Output {
    Output { outcome, outputs: Vec::new() }
}

fn send(mut step: Step, input: &Input, w: &WireMessage) -> Handled {
    let req: MessageSendRequest = parse(w).map_err(|refusal| {
        // Only a refused request is read again, for why: a body past the largest text.
        let body_len = w.value().get("body").and_then(|b| b.as_str().map(str::len)).unwrap_or(0);
        if body_len > SealedBody::MAX_CHARS {
            refused(ErrorCode::TooLarge, "the message is longer than 16 384 bytes of text")
        } else {
            refusal
        }
    })?;
    if input.connection.as_ref().is_none_or(|c| c.guid != req.conversation) || req.conversation != step.conversation {
        return Err(refused(ErrorCode::NotConnected, "the peer is not a connection"));
    }
    let recent_id = RecentId::of(&req.message_id);
    if let Some(r) = step.state.recent.iter().find(|r| r.id == recent_id) {
        // A repeat (the app lost the answer): answered as the first was, nothing sent again.
        let sent = MessageSentNotification {
            kind: tags::Sent,
            message_id: derive_id(&input.local, &req.message_id.to_bytes(), Purpose::Sent, 1),
            timestamp: step.now,
            in_reply_to: req.message_id.clone(),
            conversation: step.conversation.clone(),
            item: ItemKey::of(r.sent_ms, Side::Own, r.seq).map_err(internal)?,
            seq: r.seq,
            sent_at: at_ms(r.sent_ms),
            body: None,
            ext: None,
        };
        return Err(Output { outcome: Outcome::Duplicate, outputs: vec![OutputItem::Notify(wire("sent", &sent)?)] });
    }
    let n = step.state.last_seq.saturating_add(1);
    let number = seq(n)?;
    let sent_ms = unix_ms(step.now).max(step.state.last_sent_ms.saturating_add(1));
    let sent_at = at_ms(sent_ms);
    let item = ItemKey::of(sent_ms, Side::Own, number).map_err(internal)?;
    let record = MessageRecord {
        message_id: req.message_id.clone(),
        direction: Direction::Outgoing,
        seq: number,
        sent_at,
        body: req.body.clone(),
        ext: None,
    };
    step.record(&item, Some(&record))?;
    step.state.last_seq = n;
    step.state.last_sent_ms = sent_ms;
    step.state.recent.push(RecentSend { id: recent_id, seq: number, sent_ms });
    if step.state.recent.len() > RECENT {
        step.state.recent.remove(0);
    }
    step.saw(sent_ms);
    let deliver = MessageDeliver {
        kind: tags::Deliver,
        // The app's id: the peer's app opens the sealed body with it.
        message_id: req.message_id.clone(),
        timestamp: step.now,
        conversation: input.local.clone(),
        from_guid: input.local.clone(),
        seq: number,
        sent_at,
        body: req.body.clone(),
        ext: None,
    };
    step.send("deliver", &deliver)?;
    let sent = MessageSentNotification {
        kind: tags::Sent,
        message_id: derive_id(&input.local, &req.message_id.to_bytes(), Purpose::Sent, 0),
        timestamp: step.now,
        in_reply_to: req.message_id,
        conversation: step.conversation.clone(),
        item,
        seq: number,
        sent_at,
        body: Some(req.body),
        ext: None,
    };
    step.notify("sent", &sent)?;
    step.finish(Outcome::Applied)
}

fn deliver(mut step: Step, input: &Input, w: &WireMessage) -> Handled {
    let m: MessageDeliver = parse(w)?;
    from_the_peer(&step, Some(input), &m.conversation, &m.from_guid)?;
    let sent_ms = m.sent_at.unix_millis();
    if sent_ms < 0 || sent_ms > step.now.unix_millis().saturating_add(MAX_SKEW_MS) {
        return Err(refused(ErrorCode::Stale, "sent_at is in the future"));
    }
    let sent_ms = u64::try_from(sent_ms).unwrap_or(0);
    let n = m.seq.get();
    if step.state.received.contains(n) {
        return Err(quiet(Outcome::Duplicate));
    }
    if !step.state.received.insert(n) {
        return Err(refused(ErrorCode::InvalidMessage, "seq is too far ahead of the conversation"));
    }
    let item = ItemKey::of(sent_ms, Side::Peer, m.seq).map_err(internal)?;
    let record = MessageRecord {
        message_id: m.message_id.clone(),
        direction: Direction::Incoming,
        seq: m.seq,
        sent_at: m.sent_at,
        body: m.body.clone(),
        ext: None,
    };
    step.record(&item, Some(&record))?;
    step.saw(sent_ms);
    let of = m.message_id.to_bytes();
    let received = MessageReceivedNotification {
        kind: tags::Received,
        message_id: derive_id(&input.local, &of, Purpose::Received, 0),
        timestamp: step.now,
        conversation: step.conversation.clone(),
        item,
        seq: m.seq,
        sent_at: m.sent_at,
        sent_message_id: m.message_id,
        body: m.body,
        ext: None,
    };
    step.notify("received", &received)?;
    let ack = MessageDelivered {
        kind: tags::Delivered,
        message_id: derive_id(&input.local, &of, Purpose::Delivered, 0),
        timestamp: step.now,
        conversation: input.local.clone(),
        from_guid: input.local.clone(),
        seq: m.seq,
        ext: None,
    };
    step.send("delivered", &ack)?;
    step.finish(Outcome::Applied)
}

fn read_here(mut step: Step, input: &Input, w: &WireMessage) -> Handled {
    let req: MessageReadRequest = parse(w)?;
    if req.conversation != step.conversation {
        return Err(refused(ErrorCode::InvalidMessage, "the request names another conversation"));
    }
    let n = req.seq.get();
    if !step.state.received.contains(n) {
        return Err(refused(ErrorCode::InvalidState, "no such message from the peer"));
    }
    if n <= step.state.read_by_me {
        return Err(quiet(Outcome::Ignored));
    }
    step.state.read_by_me = n;
    let of = req.message_id.to_bytes();
    if input.connection.as_ref().is_some_and(|c| c.guid == step.conversation) {
        let receipt = MessageReadReceipt {
            kind: tags::Read,
            message_id: derive_id(&input.local, &of, Purpose::Read, 0),
            timestamp: step.now,
            conversation: input.local.clone(),
            from_guid: input.local.clone(),
            seq: req.seq,
            ext: None,
        };
        step.send("read", &receipt)?;
    }
    let note = MessageReadNotification {
        kind: tags::Read,
        message_id: derive_id(&input.local, &of, Purpose::Read, 1),
        timestamp: step.now,
        conversation: step.conversation.clone(),
        reader: Reader::Own,
        seq: req.seq,
        ext: None,
    };
    step.notify("read", &note)?;
    step.finish(Outcome::Applied)
}

fn delivered(mut step: Step, w: &WireMessage) -> Handled {
    let m: MessageDelivered = parse(w)?;
    let n = a_receipt(&step, &m.conversation, &m.from_guid, m.seq)?;
    if !step.state.delivered.insert(n) {
        return Err(quiet(Outcome::Duplicate));
    }
    let note = MessageDeliveredNotification {
        kind: tags::Delivered,
        message_id: derive_id(&step.conversation, &m.message_id.to_bytes(), Purpose::Delivered, 1),
        timestamp: step.now,
        conversation: step.conversation.clone(),
        seq: m.seq,
        ext: None,
    };
    step.notify("delivered", &note)?;
    step.finish(Outcome::Applied)
}

fn read_there(mut step: Step, w: &WireMessage) -> Handled {
    let m: MessageReadReceipt = parse(w)?;
    let n = a_receipt(&step, &m.conversation, &m.from_guid, m.seq)?;
    if n <= step.state.read_by_peer {
        return Err(quiet(Outcome::Duplicate));
    }
    step.state.read_by_peer = n;
    let note = MessageReadNotification {
        kind: tags::Read,
        message_id: derive_id(&step.conversation, &m.message_id.to_bytes(), Purpose::Read, 2),
        timestamp: step.now,
        conversation: step.conversation.clone(),
        reader: Reader::Peer,
        seq: m.seq,
        ext: None,
    };
    step.notify("read", &note)?;
    step.finish(Outcome::Applied)
}

fn delete_here(mut step: Step, input: &Input, w: &WireMessage) -> Handled {
    let req: MessageDeleteRequest = parse(w)?;
    if req.conversation != step.conversation {
        return Err(refused(ErrorCode::InvalidMessage, "the request names another conversation"));
    }
    let for_both = req.for_both.unwrap_or(false);
    if for_both && req.item.side() != Side::Own {
        return Err(refused(ErrorCode::InvalidState, "only one's own messages are deleted for both"));
    }
    let of = req.message_id.to_bytes();
    if for_both {
        let signal = MessageDeletedSignal {
            kind: tags::Deleted,
            message_id: derive_id(&input.local, &of, Purpose::Deleted, 0),
            timestamp: step.now,
            conversation: input.local.clone(),
            from_guid: input.local.clone(),
            seq: seq(req.item.seq())?,
            sent_at: at_ms(req.item.sent_at_ms()),
            ext: None,
        };
        step.send("deleted", &signal)?;
    }
    step.forget(req.item, derive_id(&input.local, &of, Purpose::Deleted, 1), Some(req.message_id))?;
    step.finish(Outcome::Applied)
}

fn delete_there(mut step: Step, w: &WireMessage) -> Handled {
    let m: MessageDeletedSignal = parse(w)?;
    from_the_peer(&step, None, &m.conversation, &m.from_guid)?;
    let Ok(sent_ms) = u64::try_from(m.sent_at.unix_millis()) else {
        return Err(refused(ErrorCode::InvalidMessage, "sent_at before 1970"));
    };
    let item = match ItemKey::of(sent_ms, Side::Peer, m.seq) {
        Ok(i) => i,
        Err(e) => return Err(refused(ErrorCode::InvalidMessage, e.to_string())),
    };
    let n = m.seq.get();
    // A deletion that overtook its message: the message, when it comes, is a duplicate.
    if !step.state.received.contains(n) && !step.state.received.insert(n) {
        return Err(refused(ErrorCode::InvalidMessage, "seq is too far ahead of the conversation"));
    }
    let id = derive_id(&step.conversation, &m.message_id.to_bytes(), Purpose::Deleted, 2);
    step.forget(item, id, None)?;
    step.finish(Outcome::Applied)
}

/// The records of a page, parsed; unreadable ones are skipped.
fn records(page: Option<&callvault_kernel::Page>) -> Vec<(ItemKey, MessageRecord)> {
    page.map(|p| p.records.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|PageRecord { item, value }| {
            let item = ItemKey::new(item.as_str()).ok()?;
            let record = MessageRecord::from_json(value.get().as_bytes()).ok()?;
            Some((item, record))
        })
        .collect()
}

fn cutoff_ms(state: &ConversationState, now: Timestamp) -> Option<u64> {
    state.retention_days.map(|d| unix_ms(now).saturating_sub(u64::from(d.get()).saturating_mul(DAY_MS)))
}

fn history(step: Step, input: &Input, w: &WireMessage) -> Handled {
    let req: MessageHistoryRequest = parse(w)?;
    if req.conversation != step.conversation {
        return Err(refused(ErrorCode::InvalidMessage, "the request names another conversation"));
    }
    let s = &step.state;
    let cutoff = cutoff_ms(s, step.now);
    let messages: Vec<HistoryItem> = records(input.page.as_ref())
        .into_iter()
        // Past retention: gone at the next timer, not shown meanwhile.
        .filter(|(item, _)| cutoff.is_none_or(|c| item.sent_at_ms() >= c))
        .map(|(item, r)| {
            let n = r.seq.get();
            let status = match r.direction {
                Direction::Outgoing if s.read_by_peer >= n => MessageStatus::Read,
                Direction::Outgoing if s.delivered.contains(n) => MessageStatus::Delivered,
                Direction::Outgoing => MessageStatus::Sent,
                Direction::Incoming if s.read_by_me >= n => MessageStatus::Read,
                Direction::Incoming => MessageStatus::Received,
            };
            HistoryItem {
                item,
                direction: r.direction,
                seq: r.seq,
                sent_at: r.sent_at,
                sent_message_id: r.message_id,
                status,
                body: r.body,
            }
        })
        .collect();
    let page = MessageHistoryNotification {
        kind: tags::History,
        message_id: derive_id(&input.local, &req.message_id.to_bytes(), Purpose::History, 0),
        timestamp: step.now,
        in_reply_to: req.message_id,
        conversation: step.conversation.clone(),
        messages,
        more: input.page.as_ref().is_some_and(|p| p.more),
        retention_days: s.retention_days,
        ext: None,
    };
    // A read stores nothing.
    Ok(Output { outcome: Outcome::Applied, outputs: vec![OutputItem::Notify(wire("history", &page)?)] })
}

fn retention(mut step: Step, input: &Input, w: &WireMessage) -> Handled {
    let req: MessageRetentionRequest = parse(w)?;
    if req.conversation != step.conversation {
        return Err(refused(ErrorCode::InvalidMessage, "the request names another conversation"));
    }
    step.state.retention_days = Some(req.days);
    // Applies at once: the timer looks for messages already past it.
    step.next = Some(step.now);
    let note = MessageRetentionNotification {
        kind: tags::Retention,
        message_id: derive_id(&input.local, &req.message_id.to_bytes(), Purpose::Retention, 0),
        timestamp: step.now,
        in_reply_to: req.message_id,
        conversation: step.conversation.clone(),
        days: req.days,
        ext: None,
    };
    step.notify("retention", &note)?;
    step.finish(Outcome::Applied)
}

fn expire(mut step: Step, input: &Input) -> Handled {
    let Some(cutoff) = cutoff_ms(&step.state, step.now) else {
        // No retention set (any more): the bucket's TTL keeps 90 days; no timer.
        step.state.oldest_ms = None;
        return step.finish(Outcome::Ignored);
    };
    let page = records(input.page.as_ref());
    let mut oldest = None;
    let mut gone = 0u64;
    for (item, _) in &page {
        if item.sent_at_ms() >= cutoff {
            oldest = Some(item.sent_at_ms());
            break;
        }
        step.forget(item.clone(), derive_id(&input.local, item.as_str().as_bytes(), Purpose::Expired, 0), None)?;
        gone = gone.saturating_add(1);
    }
    let more = input.page.as_ref().is_some_and(|p| p.more);
    // A full page expired and more may follow: look again in a second.
    if oldest.is_none() && more {
        step.next = Some(step.now.saturating_add(std::time::Duration::from_secs(1)));
    }
    step.state.oldest_ms = oldest;
    if gone > 0 {
        step.outputs.push(OutputItem::Count {
            name: callvault_kernel::Tag::parse("expired").map_err(internal)?,
            delta: i64::try_from(gone).unwrap_or(i64::MAX),
        });
    }
    step.finish(Outcome::Applied)
}

callvault_kernel::guest_exports!(manifest_json());

callvault_kernel::handler_exports! {
    run_json;
    cv_handle_send => "send",
    cv_handle_deliver => "deliver",
    cv_handle_receipt => "receipt",
    cv_handle_delete => "delete",
    cv_handle_history => "history",
    cv_handle_retention => "retention",
    cv_handle_expire => "expire",
}

//! The `connection` family: how two users become connections, and stop being ones.
//!
//! | handler | events | does |
//! | --- | --- | --- |
//! | `invite` | app `invite` (its token checked as the user's own) | keeps the invite pending until it expires (its timer), tells the apps `invited` |
//! | `connect` | app `connect` (both tokens checked; `mine` as the user's own) | stores the inviter as a connection, sends `accept` to the inviter's vault (at least once: an inviter's vault that is down gets it when it is back), tells the apps `connected` |
//! | `accept` | peer `accept` from a vault its token introduces (given the pending invite it names) | takes the acceptance of a pending, unexpired invite once: marks the invite accepted (until it expires), stores the invitee as a connection, tells the apps `accepted`; this acceptance again is a duplicate |
//! | `expire` | the timer of an invite | forgets it at its expiry |
//! | `revoke` | app `revoke` (given the connection's record) | marks the connection revoked, tells the apps `revoked` |
//! | `list` | app `list` (given every connection) | a page of connections in guid order |
//!
//! A connection is the entity named by the peer's guid: its [`ConnectionRecord`] in the
//! `connections` bucket (which the kernel reads to accept the peer's messages) and a small
//! [`ConnectionEntityState`]. An invite is the entity `invite-<nonce>`
//! ([`PendingInvite`]). Tokens are checked by the kernel (signature, delegation, expiry) before a
//! handler runs; every handler is a pure function of its [`Input`], and [`run`] never panics.

// The call family's bump allocator (every event runs in a fresh instance: freeing buys nothing).
#[cfg(target_arch = "wasm32")]
#[path = "../../handlers/src/heap.rs"]
mod heap;

use callvault_kernel::{
    EntityKey, Event, Input, Json, Outcome, Output, OutputItem, Record, VerifiedToken, WireMessage,
};
use callvault_protocol::app::{ConnectionState, ConnectionSummary};
use callvault_protocol::connection::{
    ConnectionAcceptSignal, ConnectionAcceptedNotification, ConnectionConnectRequest, ConnectionConnectedNotification,
    ConnectionEntityState, ConnectionInviteRequest, ConnectionInvitedNotification, ConnectionListNotification,
    ConnectionListRequest, ConnectionRecord, ConnectionRevokeRequest, ConnectionRevokedNotification, MAX_LIST,
    PendingInvite, tags,
};
use callvault_protocol::fields::ErrorCode;
use callvault_protocol::registry::Schema;
use callvault_protocol::{Guid, MessageId};
use serde::Serialize;
use serde_json::json;

/// The family's name.
pub const FAMILY: &str = "connection";
/// The bucket its records go to.
pub const BUCKET: &str = "connections";
/// The most bytes of connections one list answer carries (it must fit one app frame).
const LIST_BYTES: usize = 64 * 1024;

/// The family's manifest.
pub fn manifest() -> serde_json::Value {
    json!({
        "family": FAMILY,
        "state_version": 1,
        "entity_field": "peer_guid",
        "peer_fields": ["peer_guid", "from_guid"],
        "peers": "connections",
        "records": [BUCKET],
        "notifies": ["invited", "connected", "accepted", "revoked", "list"],
        "sends": ["accept"],
        "reliable": ["accept"],
        "handlers": [
            {"name": "invite", "app": ["invite"], "entity": "invite-{token.nonce}",
             "tokens": [{"field": "token", "own": true}]},
            {"name": "connect", "app": ["connect"], "entity": "{token.guid}",
             "tokens": [{"field": "token"}, {"field": "mine", "own": true}]},
            {"name": "accept", "peer": ["accept"], "peers": "introduced", "entity": "{token.guid}",
             "tokens": [{"field": "token"}], "also": ["invite-{nonce}"]},
            {"name": "expire", "timer": true},
            {"name": "revoke", "app": ["revoke"], "record": BUCKET},
            {"name": "list", "app": ["list"], "entity": "list", "all_connections": true}
        ]
    })
}

/// The manifest's JSON (what `cv_manifest` returns).
pub fn manifest_json() -> Vec<u8> {
    serde_json::to_vec(&manifest()).unwrap_or_default()
}

fn refused(code: ErrorCode, reason: impl Into<String>) -> Output {
    Output::refused(code, reason)
}

fn internal(e: impl std::fmt::Display) -> Output {
    refused(ErrorCode::Internal, e.to_string())
}

fn derive_id(local: &Guid, of: &MessageId, purpose: u8) -> MessageId {
    MessageId::derived(b"cvconn1", purpose, local, &of.to_bytes(), 0)
}

fn wire<T: Serialize>(kind: &str, v: &T) -> Result<WireMessage, Output> {
    WireMessage::of(kind, v).map_err(internal)
}

fn parse<T: Schema>(w: &WireMessage) -> Result<T, Output> {
    T::from_json(w.json().as_bytes()).map_err(|e| refused(ErrorCode::InvalidMessage, e.to_string()))
}

fn token<'a>(input: &'a Input, field: &str) -> Result<&'a VerifiedToken, Output> {
    input.tokens.get(field).ok_or_else(|| internal(format!("the kernel checked no token in {field}")))
}

fn state_of<T: Schema>(input: &Input, key: &EntityKey) -> Result<Option<T>, Output> {
    match input.states.iter().find(|s| &s.key == key) {
        Some(s) if s.version == 1 => T::from_json(s.state.get().as_bytes()).map(Some).map_err(internal),
        Some(s) => Err(internal(format!("state version {} is not one this module reads", s.version))),
        None => Ok(None),
    }
}

/// Stores a connection: its state and its record.
fn store_connection(
    entity: &EntityKey,
    peer: &Guid,
    record: &impl Serialize,
    state: &ConnectionEntityState,
) -> Result<OutputItem, Output> {
    Ok(OutputItem::Store {
        entity: entity.clone(),
        state: Json::of(state).map_err(internal)?,
        tags: Vec::new(),
        peer: Some(peer.clone()),
        timer: None,
        records: vec![Record {
            bucket: BUCKET.into(),
            key: entity.clone(),
            item: None,
            value: Some(Json::of(record).map_err(internal)?),
        }],
    })
}

/// Stores the connection a checked token offers, made now.
fn connected(input: &Input, t: &VerifiedToken) -> Result<OutputItem, Output> {
    let record = ConnectionRecord {
        guid: t.guid.clone(),
        user_key: t.user_key.clone(),
        vault_key: t.vault_key.clone(),
        delegation: t.delegation.clone(),
        display_name: t.display_name.clone(),
        reach: t.reach.clone(),
        state: ConnectionState::Active,
    };
    store_connection(
        &input.entity,
        &t.guid,
        &record,
        &ConnectionEntityState { connected_at: input.now, revoked_at: None },
    )
}

/// Runs handler `name` on `input`. Never panics: a bad event is refused with a code.
pub fn run(name: &str, input: &Input) -> Output {
    let r = match (name, &input.event) {
        ("invite", Event::App(w)) if w.kind == "invite" => invite(input, w),
        ("connect", Event::App(w)) if w.kind == "connect" => connect(input, w),
        ("accept", Event::Peer(w)) if w.kind == "accept" => accept(input, w),
        ("expire", Event::Timer) => expire(input),
        ("revoke", Event::App(w)) if w.kind == "revoke" => revoke(input, w),
        ("list", Event::App(w)) if w.kind == "list" => list(input, w),
        _ => Err(refused(ErrorCode::InvalidMessage, "no handler of this family takes that event")),
    };
    r.unwrap_or_else(|refusal| refusal)
}

/// The JSON entry point of the module.
pub fn run_json(name: &str, input: &[u8]) -> Vec<u8> {
    callvault_kernel::guest::run_json(run, name, input)
}

fn invite(input: &Input, w: &WireMessage) -> Result<Output, Output> {
    let req: ConnectionInviteRequest = parse(w)?;
    let t = token(input, "token")?;
    if state_of::<PendingInvite>(input, &input.entity)?.is_some() {
        // Pending, or accepted already: a nonce is taken once.
        return Err(refused(ErrorCode::InvalidState, "this invite is recorded already"));
    }
    let pending = PendingInvite { expires_at: t.expires_at, accepted_at: None };
    let note = ConnectionInvitedNotification {
        kind: tags::Invited,
        message_id: derive_id(&input.local, &req.message_id, 1),
        timestamp: input.now,
        in_reply_to: req.message_id,
        expires_at: t.expires_at,
        ext: None,
    };
    let store = OutputItem::Store {
        entity: input.entity.clone(),
        state: Json::of(&pending).map_err(internal)?,
        tags: Vec::new(),
        peer: None,
        timer: Some(t.expires_at),
        records: Vec::new(),
    };
    Ok(Output { outcome: Outcome::Applied, outputs: vec![store, OutputItem::Notify(wire("invited", &note)?)] })
}

fn connect(input: &Input, w: &WireMessage) -> Result<Output, Output> {
    let req: ConnectionConnectRequest = parse(w)?;
    let theirs = token(input, "token")?;
    if theirs.guid == input.local {
        return Err(refused(ErrorCode::SelfCall, "an invite of one's own"));
    }
    let accept = ConnectionAcceptSignal {
        kind: tags::Accept,
        message_id: derive_id(&input.local, &req.message_id, 2),
        timestamp: input.now,
        nonce: theirs.nonce.clone(),
        token: req.mine.clone(),
        from_guid: input.local.clone(),
        ext: None,
    };
    let note = ConnectionConnectedNotification {
        kind: tags::Connected,
        message_id: derive_id(&input.local, &req.message_id, 3),
        timestamp: input.now,
        in_reply_to: req.message_id,
        peer_guid: theirs.guid.clone(),
        display_name: theirs.display_name.clone(),
        ext: None,
    };
    Ok(Output {
        outcome: Outcome::Applied,
        outputs: vec![
            connected(input, theirs)?,
            OutputItem::Send { to: theirs.guid.clone(), message: wire("accept", &accept)? },
            OutputItem::Notify(wire("connected", &note)?),
        ],
    })
}

fn accept(input: &Input, w: &WireMessage) -> Result<Output, Output> {
    let m: ConnectionAcceptSignal = parse(w)?;
    let theirs = token(input, "token")?;
    if theirs.guid != m.from_guid || theirs.guid == input.local {
        return Err(refused(ErrorCode::InvalidMessage, "an acceptance comes from its token's vault"));
    }
    let invite = EntityKey::parse(&format!("invite-{}", m.nonce.as_str())).map_err(internal)?;
    let kept = state_of::<PendingInvite>(input, &invite)?;
    if kept.as_ref().is_none_or(|p| p.accepted_at.is_some())
        && input.connection.as_ref().is_some_and(|c| c.guid == theirs.guid)
    {
        // This acceptance again (it is sent until acknowledged): taken already.
        return Ok(Output { outcome: Outcome::Duplicate, outputs: Vec::new() });
    }
    let Some(pending) = kept.filter(|p| p.accepted_at.is_none()) else {
        // Never made, taken already (a repeat of an acceptance sent at least once: acknowledged
        // all the same), or expired and forgotten.
        return Err(refused(ErrorCode::InvalidState, "no such pending invite"));
    };
    if input.now > pending.expires_at {
        return Err(refused(ErrorCode::Stale, "the invite expired"));
    }
    let note = ConnectionAcceptedNotification {
        kind: tags::Accepted,
        message_id: derive_id(&input.local, &m.message_id, 4),
        timestamp: input.now,
        peer_guid: theirs.guid.clone(),
        display_name: theirs.display_name.clone(),
        ext: None,
    };
    Ok(Output {
        outcome: Outcome::Applied,
        outputs: vec![
            // Once: the nonce is used up with the connection's write, and stays so until it
            // expires (an app recording the same invite again cannot make it pending).
            OutputItem::Store {
                entity: invite,
                state: Json::of(&PendingInvite { accepted_at: Some(input.now), ..pending }).map_err(internal)?,
                tags: Vec::new(),
                peer: None,
                timer: Some(pending.expires_at),
                records: Vec::new(),
            },
            connected(input, theirs)?,
            OutputItem::Notify(wire("accepted", &note)?),
        ],
    })
}

fn expire(input: &Input) -> Result<Output, Output> {
    match state_of::<PendingInvite>(input, &input.entity)? {
        Some(p) if p.expires_at <= input.now => {
            Ok(Output { outcome: Outcome::Applied, outputs: vec![OutputItem::Forget { entity: input.entity.clone() }] })
        }
        Some(p) => Ok(Output {
            outcome: Outcome::Ignored,
            outputs: vec![OutputItem::Store {
                entity: input.entity.clone(),
                state: Json::of(&p).map_err(internal)?,
                tags: Vec::new(),
                peer: None,
                timer: Some(p.expires_at),
                records: Vec::new(),
            }],
        }),
        None => Ok(Output { outcome: Outcome::Ignored, outputs: Vec::new() }),
    }
}

fn revoke(input: &Input, w: &WireMessage) -> Result<Output, Output> {
    let req: ConnectionRevokeRequest = parse(w)?;
    if input.entity.as_str() != req.peer_guid.as_str() {
        return Err(refused(ErrorCode::InvalidMessage, "the request names another connection"));
    }
    let Some(stored) = &input.record else {
        return Err(refused(ErrorCode::NotConnected, "no such connection"));
    };
    // Changed in place, as stored: an entry an earlier callvault wrote (a name or a reach today's
    // schema would refuse) can be revoked all the same.
    let mut record: serde_json::Value = serde_json::from_str(stored.get()).map_err(internal)?;
    let Some(fields) = record.as_object_mut() else { return Err(internal("a connection entry that is no object")) };
    fields.insert("state".into(), json!(ConnectionState::Revoked));
    let connected_at = state_of::<ConnectionEntityState>(input, &input.entity)?.map_or(input.now, |s| s.connected_at);
    let state = ConnectionEntityState { connected_at, revoked_at: Some(input.now) };
    let peer = req.peer_guid.clone();
    let note = ConnectionRevokedNotification {
        kind: tags::Revoked,
        message_id: derive_id(&input.local, &req.message_id, 5),
        timestamp: input.now,
        in_reply_to: req.message_id,
        peer_guid: req.peer_guid,
        ext: None,
    };
    Ok(Output {
        outcome: Outcome::Applied,
        outputs: vec![
            store_connection(&input.entity, &peer, &record, &state)?,
            OutputItem::Notify(wire("revoked", &note)?),
        ],
    })
}

fn list(input: &Input, w: &WireMessage) -> Result<Output, Output> {
    let req: ConnectionListRequest = parse(w)?;
    let mut all: Vec<_> = input
        .connections
        .iter()
        .filter(|c| req.after.as_ref().is_none_or(|a| c.guid.as_str() > a.as_str()))
        .filter_map(|c| {
            Some(ConnectionSummary {
                guid: c.guid.clone(),
                user_key: c.user_key.clone()?,
                display_name: c.profile.display_name.clone(),
                state: if c.revoked { ConnectionState::Revoked } else { ConnectionState::Active },
            })
        })
        .collect();
    all.sort_by(|a, b| a.guid.as_str().cmp(b.guid.as_str()));
    let mut page = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    for c in all {
        let size = serde_json::to_vec(&c).map_or(0, |v| v.len());
        if page.len() >= MAX_LIST || bytes.saturating_add(size) > LIST_BYTES {
            more = true;
            break;
        }
        bytes = bytes.saturating_add(size);
        page.push(c);
    }
    let note = ConnectionListNotification {
        kind: tags::List,
        message_id: derive_id(&input.local, &req.message_id, 6),
        timestamp: input.now,
        in_reply_to: req.message_id,
        connections: page,
        more,
        ext: None,
    };
    Ok(Output { outcome: Outcome::Applied, outputs: vec![OutputItem::Notify(wire("list", &note)?)] })
}

callvault_kernel::guest_exports!(manifest_json());

callvault_kernel::handler_exports! {
    run_json;
    cv_handle_invite => "invite",
    cv_handle_connect => "connect",
    cv_handle_accept => "accept",
    cv_handle_expire => "expire",
    cv_handle_revoke => "revoke",
    cv_handle_list => "list",
}

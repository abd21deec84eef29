//! The `profile` family: the user's display name and avatar in the vault's `profile` bucket,
//! shared with every connection when it changes, and each connection's as they last shared it.
//!
//! | handler | events | does |
//! | --- | --- | --- |
//! | `set` | app `set` (given the active connections) | keeps one's profile, sends `update` to each connection (at least once), tells one's apps `updated` |
//! | `update` | peer `update` | keeps a connection's newer profile, tells one's apps `changed` |
//! | `get` | app `get` | answers `shown` with the profile kept |
//!
//! A profile is the entity named by its owner's guid; its state and its record in the `profile`
//! bucket are a [`ProfileRecord`]. The vault shows a connection by that record
//! (`call.incoming`'s `peer_profile`, the connection list).

// The call family's bump allocator (every event runs in a fresh instance: freeing buys nothing).
#[cfg(target_arch = "wasm32")]
#[path = "../../handlers/src/heap.rs"]
mod heap;

use callvault_kernel::{EntityKey, Event, Input, Json, Outcome, Output, OutputItem, Record, WireMessage};
use callvault_protocol::fields::ErrorCode;
use callvault_protocol::profile::{
    ProfileChangedNotification, ProfileGetRequest, ProfileRecord, ProfileSetRequest, ProfileShownNotification,
    ProfileUpdate, ProfileUpdatedNotification, tags,
};
use callvault_protocol::registry::Schema;
use callvault_protocol::{Guid, MessageId};
use serde::Serialize;
use serde_json::json;

/// The family's name.
pub const FAMILY: &str = "profile";
/// The bucket its records go to.
pub const BUCKET: &str = "profile";
/// How far ahead of the receiver's clock an update's `updated_at` may be.
const MAX_SKEW: std::time::Duration = std::time::Duration::from_secs(30);

/// The family's manifest.
pub fn manifest() -> serde_json::Value {
    json!({
        "family": FAMILY,
        "state_version": 1,
        "entity_field": "guid",
        "peer_fields": ["from_guid"],
        "peers": "connections",
        "records": [BUCKET],
        "notifies": ["updated", "changed", "shown"],
        "sends": ["update"],
        "reliable": ["update"],
        "handlers": [
            {"name": "set", "app": ["set"], "connections": true},
            {"name": "update", "peer": ["update"]},
            {"name": "get", "app": ["get"]}
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

fn derive_id(local: &Guid, of: &MessageId, purpose: u8, n: u64) -> MessageId {
    MessageId::derived(b"cvprofile1", purpose, local, &of.to_bytes(), n)
}

fn wire<T: Serialize>(kind: &str, v: &T) -> Result<WireMessage, Output> {
    WireMessage::of(kind, v).map_err(internal)
}

fn parse<T: Schema>(w: &WireMessage) -> Result<T, Output> {
    T::from_json(w.json().as_bytes()).map_err(|e| refused(ErrorCode::InvalidMessage, e.to_string()))
}

/// The profile kept for the event's entity, if any.
fn kept(input: &Input) -> Result<Option<ProfileRecord>, Output> {
    match input.states.iter().find(|s| s.key == input.entity) {
        Some(s) if s.version == 1 => ProfileRecord::from_json(s.state.get().as_bytes()).map(Some).map_err(internal),
        Some(s) => Err(internal(format!("state version {} is not one this module reads", s.version))),
        None => Ok(None),
    }
}

/// Keeps `record` as the entity's state and its record.
fn store(entity: &EntityKey, record: &ProfileRecord) -> Result<OutputItem, Output> {
    let value = Json::of(record).map_err(internal)?;
    Ok(OutputItem::Store {
        entity: entity.clone(),
        state: value.clone(),
        tags: Vec::new(),
        peer: None,
        timer: None,
        records: vec![Record { bucket: BUCKET.into(), key: entity.clone(), item: None, value: Some(value) }],
    })
}

/// Runs handler `name` on `input`. Never panics: a bad event is refused with a code.
pub fn run(name: &str, input: &Input) -> Output {
    let r = match (name, &input.event) {
        ("set", Event::App(w)) if w.kind == "set" => set(input, w),
        ("update", Event::Peer(w)) if w.kind == "update" => update(input, w),
        ("get", Event::App(w)) if w.kind == "get" => get(input, w),
        _ => Err(refused(ErrorCode::InvalidMessage, "no handler of this family takes that event")),
    };
    r.unwrap_or_else(|refusal| refusal)
}

/// The JSON entry point of the module.
pub fn run_json(name: &str, input: &[u8]) -> Vec<u8> {
    callvault_kernel::guest::run_json(run, name, input)
}

fn set(input: &Input, w: &WireMessage) -> Result<Output, Output> {
    let req: ProfileSetRequest = parse(w)?;
    if req.guid != input.local || input.entity.as_str() != input.local.as_str() {
        return Err(refused(ErrorCode::InvalidMessage, "one sets one's own profile"));
    }
    // `updated_at` only grows, so a connection takes the last change whatever the clocks did.
    let before = kept(input)?.map(|p| p.updated_at);
    let floor = before.map(|b| b.saturating_add(std::time::Duration::from_millis(1)));
    let updated_at = floor.filter(|f| *f > input.now).unwrap_or(input.now);
    let record = ProfileRecord {
        display_name: req.display_name.clone(),
        avatar_url: req.avatar_url.clone(),
        updated_at,
        ext: None,
    };
    let mut outputs = vec![store(&input.entity, &record)?];
    for (n, c) in input.connections.iter().enumerate() {
        let update = ProfileUpdate {
            kind: tags::Update,
            message_id: derive_id(&input.local, &req.message_id, 1, u64::try_from(n).unwrap_or(u64::MAX)),
            timestamp: input.now,
            guid: input.local.clone(),
            from_guid: input.local.clone(),
            display_name: req.display_name.clone(),
            updated_at,
            avatar_url: req.avatar_url.clone(),
            ext: None,
        };
        outputs.push(OutputItem::Send { to: c.guid.clone(), message: wire("update", &update)? });
    }
    let note = ProfileUpdatedNotification {
        kind: tags::Updated,
        message_id: derive_id(&input.local, &req.message_id, 2, 0),
        timestamp: input.now,
        in_reply_to: req.message_id,
        guid: input.local.clone(),
        display_name: req.display_name,
        shared_with: u64::try_from(input.connections.len()).unwrap_or(u64::MAX),
        avatar_url: req.avatar_url,
        ext: None,
    };
    outputs.push(OutputItem::Notify(wire("updated", &note)?));
    Ok(Output { outcome: Outcome::Applied, outputs })
}

fn update(input: &Input, w: &WireMessage) -> Result<Output, Output> {
    let m: ProfileUpdate = parse(w)?;
    if m.guid != m.from_guid || input.entity.as_str() != m.guid.as_str() {
        return Err(refused(ErrorCode::InvalidMessage, "a profile comes from its owner"));
    }
    if input.connection.as_ref().is_none_or(|c| c.guid != m.from_guid) {
        return Err(refused(ErrorCode::NotConnected, "the sender is not a connection"));
    }
    if m.updated_at > input.now.saturating_add(MAX_SKEW) {
        return Err(refused(ErrorCode::Stale, "updated_at is in the future"));
    }
    if kept(input)?.is_some_and(|p| p.updated_at >= m.updated_at) {
        return Ok(Output { outcome: Outcome::Duplicate, outputs: Vec::new() });
    }
    let record = ProfileRecord {
        display_name: m.display_name.clone(),
        avatar_url: m.avatar_url.clone(),
        updated_at: m.updated_at,
        ext: None,
    };
    let note = ProfileChangedNotification {
        kind: tags::Changed,
        message_id: derive_id(&input.local, &m.message_id, 3, 0),
        timestamp: input.now,
        guid: m.guid,
        display_name: m.display_name,
        avatar_url: m.avatar_url,
        ext: None,
    };
    Ok(Output {
        outcome: Outcome::Applied,
        outputs: vec![store(&input.entity, &record)?, OutputItem::Notify(wire("changed", &note)?)],
    })
}

fn get(input: &Input, w: &WireMessage) -> Result<Output, Output> {
    let req: ProfileGetRequest = parse(w)?;
    if input.entity.as_str() != req.guid.as_str() {
        return Err(refused(ErrorCode::InvalidMessage, "the request names another profile"));
    }
    let p = kept(input)?;
    let note = ProfileShownNotification {
        kind: tags::Shown,
        message_id: derive_id(&input.local, &req.message_id, 4, 0),
        timestamp: input.now,
        in_reply_to: req.message_id,
        guid: req.guid,
        display_name: p.as_ref().map(|p| p.display_name.clone()),
        avatar_url: p.and_then(|p| p.avatar_url),
        ext: None,
    };
    Ok(Output { outcome: Outcome::Applied, outputs: vec![OutputItem::Notify(wire("shown", &note)?)] })
}

callvault_kernel::guest_exports!(manifest_json());

callvault_kernel::handler_exports! {
    run_json;
    cv_handle_set => "set",
    cv_handle_update => "update",
    cv_handle_get => "get",
}

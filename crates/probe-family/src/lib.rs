//! `probe`: a handler family that exists for the kernel's tests. It is built by the vault's build
//! script in two versions and installed into a running vault, to show that a family is a module
//! and a manifest and needs no change to the kernel:
//!
//! - `note` (app `probe.note`, `{id, text?, after_ms?}`): counts the notes of entity `id`, keeps
//!   the last text (version 2), notifies `probe.noted` with the count and the module's version,
//!   and with `after_ms` sets the entity's timer and tags it `waiting`; with `repeat` (at most
//!   100 000) keeps the text that many times over, so a test can make a state past its bucket's
//!   largest value (the store refuses the write);
//! - `ring` (the entity's timer; also restores stored state): notifies `probe.rang` and clears the
//!   timer.
//!
//! State version 1 is `{"notes": n}`; version 2 is `{"count": n, "last": text}` and migrates
//! version 1 when it reads it.

use std::time::Duration;

use callvault_kernel::{EntityState, Event, Input, Json, Outcome, Output, OutputItem, Tag, WireMessage, guest};
use callvault_protocol::fields::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The state version this build writes.
pub const VERSION: u32 = if cfg!(feature = "v2") { 2 } else { 1 };

#[derive(Serialize, Deserialize)]
struct V1 {
    notes: u64,
}

#[derive(Serialize, Deserialize)]
struct V2 {
    count: u64,
    last: Option<String>,
}

#[derive(Deserialize)]
struct Note {
    id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    after_ms: Option<u64>,
    #[serde(default)]
    repeat: Option<u32>,
}

/// The manifest.
pub fn manifest() -> serde_json::Value {
    json!({
        "family": "probe", "state_version": VERSION, "entity_field": "id", "peers": "connections",
        "notifies": ["noted", "rang"],
        "handlers": [
            {"name": "note", "app": ["note"], "counts": ["waiting"]},
            {"name": "ring", "timer": true, "restore": true}
        ]
    })
}

/// The count and last text an entity's stored state holds, whichever version stored it.
fn current(states: &[EntityState]) -> Result<(u64, Option<String>), String> {
    let Some(s) = states.first() else { return Ok((0, None)) };
    match s.version {
        1 => serde_json::from_str::<V1>(s.state.get()).map(|v| (v.notes, None)),
        2 if VERSION >= 2 => serde_json::from_str::<V2>(s.state.get()).map(|v| (v.count, v.last)),
        v => return Err(format!("state version {v} is not one this module reads")),
    }
    .map_err(|e| e.to_string())
}

fn state(count: u64, last: Option<String>) -> Result<Json, String> {
    let r = if VERSION >= 2 { Json::of(&V2 { count, last }) } else { Json::of(&V1 { notes: count }) };
    r.map_err(|e| e.to_string())
}

fn notify(kind: &str, body: &serde_json::Value) -> OutputItem {
    OutputItem::Notify(WireMessage::from_value(kind, body))
}

fn run(input: &Input) -> Result<Output, String> {
    let (count, last) = current(&input.states)?;
    let entity = input.entity.clone();
    let store = |count, last, tags: Vec<Tag>, timer| -> Result<OutputItem, String> {
        Ok(OutputItem::Store {
            entity: entity.clone(),
            state: state(count, last)?,
            tags,
            peer: None,
            timer,
            records: vec![],
        })
    };
    let outputs = match (&input.event, input.handler.as_str()) {
        (Event::App(w), "note") => {
            let note: Note = serde_json::from_str(w.json()).map_err(|e| e.to_string())?;
            let count = count.saturating_add(1);
            let timer = note.after_ms.map(|ms| input.now.saturating_add(Duration::from_millis(ms)));
            let tags = timer.and_then(|_| Tag::parse("waiting").ok()).into_iter().collect();
            let times = usize::try_from(note.repeat.unwrap_or(1).clamp(1, 100_000)).unwrap_or(1);
            let text = note.text.map(|t| t.repeat(times)).or(last);
            let body = json!({"type": "probe.noted", "id": note.id, "count": count, "version": VERSION});
            vec![store(count, text, tags, timer)?, notify("noted", &body)]
        }
        (Event::Timer, "ring") => {
            let body = json!({"type": "probe.rang", "id": input.entity, "count": count});
            vec![store(count, last, vec![], None)?, notify("rang", &body)]
        }
        (Event::Restore, "ring") => vec![store(count, last, vec![], None)?],
        _ => return Err("no such event for this handler".into()),
    };
    Ok(Output { outcome: Outcome::Applied, outputs })
}

fn answer(input: &[u8]) -> Vec<u8> {
    let output = match serde_json::from_slice::<Input>(input) {
        Ok(i) => run(&i).unwrap_or_else(|e| Output::refused(ErrorCode::InvalidMessage, e)),
        Err(e) => Output::refused(ErrorCode::InvalidMessage, e.to_string()),
    };
    serde_json::to_vec(&output).unwrap_or_default()
}

callvault_kernel::guest_exports!(manifest().to_string().into_bytes());

/// The `note` handler.
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_handle_note(len: i32) -> i32 {
    guest::handle(len, answer)
}

/// The `ring` handler.
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_handle_ring(len: i32) -> i32 {
    guest::handle(len, answer)
}

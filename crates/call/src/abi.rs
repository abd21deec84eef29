//! The `call` family on the vault kernel: its manifest and its handlers over the kernel's ABI
//! (`callvault_kernel::abi`). A handler is a pure function: [`run`] takes the kernel's
//! [`Input`] (the event, the time, the call the event names and the calls of the indexes the
//! manifest asks for, the peer's connection) and returns an [`Output`] (the outcome and the
//! outputs to perform). The WASM module in `crates/handlers` is a thin shell around
//! [`run_json_as`] and [`manifest_json`].
//!
//! The seven handlers of the seed, the events each takes, and the context each is given:
//!
//! | handler | event | context besides the named call |
//! | --- | --- | --- |
//! | `initiate` | app `call.initiate` | the active call, the live calls with the peer, the live count |
//! | `incoming` | peer `call.incoming` | the same |
//! | `accept` | app `call.accept`, peer `call.accept` | the active call, one's own unanswered calls |
//! | `reject` | app `call.reject`, peer `call.reject` | none |
//! | `end` | app `call.end`, peer `call.end` | none |
//! | `signal` | app `call.signal`, peer `call.signal`, peer `call.ringing` | none |
//! | `timeout` | the call's timer; stored calls to restore | none |
//!
//! Tags: every unsettled call carries `live` and `with.<peer>`; an answered one `active`; one's
//! own unanswered one `dialing`. Each
//! call's timer is its own deadline. So an event's input and fuel do not grow with the number of
//! calls the vault holds.

use std::collections::BTreeMap;

use callvault_kernel::manifest::{HandlerSpec, Manifest, ManifestError, PeerPolicy};
use callvault_kernel::{EntityKey, Record, Tag};
use callvault_protocol::CallId;
use callvault_protocol::calling::{AppNotification, AppRequest, CallErrorNotification, PeerMessage, tags};
use callvault_protocol::family::{FamilyName, Kind};
use callvault_protocol::fields::{CallStatus, Direction, ErrorCode, ErrorText};
use callvault_protocol::subject::{NotificationKind, PeerKind, RequestKind};
use serde::{Deserialize, Serialize};

pub use callvault_kernel::abi::{ConnectionInfo, Event, Input, Json, Outcome, Output, OutputItem, WireMessage};

use crate::{Call, CallConfig, Disposition, Switchboard};

/// The family's name.
pub const FAMILY: &str = "call";

/// The version of the state the handlers write: a [`Call`] as JSON. (Version 0 is the same
/// document as an earlier callvault stored it, without the kernel's envelope.)
pub const STATE_VERSION: u32 = 1;

/// The kernel's input, as the call family names it.
pub type HandlerInput = Input;
/// The kernel's output, as the call family names it.
pub type HandlerOutput = Output;

/// The handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerName {
    /// `call.initiate` from the app.
    Initiate,
    /// `call.incoming` from a peer.
    Incoming,
    /// `call.accept` either way.
    Accept,
    /// `call.reject` either way.
    Reject,
    /// `call.end` either way.
    End,
    /// `call.signal` either way, and the peer's `call.ringing`.
    Signal,
    /// A call's timer, and stored calls to restore.
    Timeout,
}

impl HandlerName {
    /// The seed's seven, in its order.
    pub const ALL: [Self; 7] =
        [Self::Initiate, Self::Incoming, Self::Accept, Self::Reject, Self::End, Self::Signal, Self::Timeout];

    /// The name (`initiate`): the WASM export is `cv_handle_<name>`, the bucket key `call.<name>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiate => "initiate",
            Self::Incoming => "incoming",
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::End => "end",
            Self::Signal => "signal",
            Self::Timeout => "timeout",
        }
    }

    /// The handler named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == name)
    }

    /// The handler for an app request.
    pub fn for_request(kind: RequestKind) -> Self {
        match kind {
            RequestKind::Initiate => Self::Initiate,
            RequestKind::Accept => Self::Accept,
            RequestKind::Reject => Self::Reject,
            RequestKind::End => Self::End,
            RequestKind::Signal => Self::Signal,
        }
    }

    /// The handler for a peer message.
    pub fn for_peer(kind: PeerKind) -> Self {
        match kind {
            PeerKind::Incoming => Self::Incoming,
            PeerKind::Accept => Self::Accept,
            PeerKind::Reject => Self::Reject,
            PeerKind::End => Self::End,
            PeerKind::Signal | PeerKind::Ringing => Self::Signal,
        }
    }
}

impl From<HandlerName> for callvault_kernel::HandlerId {
    fn from(h: HandlerName) -> Self {
        Self::new(FAMILY, h.as_str())
    }
}

/// The family's settings, from the vault's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyConfig {
    /// Ring timeout in seconds (seed: 60).
    pub ring_timeout_secs: u64,
}

fn tag(s: &str) -> Option<Tag> {
    Tag::parse(s).ok()
}

/// The family's manifest.
pub fn manifest() -> Result<Manifest, ManifestError> {
    let shape = |e: callvault_protocol::family::FamilySubjectError| ManifestError::Shape(e.to_string());
    let wide = ["active".to_owned(), "with.{peer}".to_owned()];
    let active = ["active".to_owned(), "dialing".to_owned()];
    let spec = |name: HandlerName, app: &[RequestKind], peer: &[PeerKind], context: &[String], counts: &[&str]| {
        Ok::<_, ManifestError>(HandlerSpec {
            name: Kind::parse(name.as_str()).map_err(shape)?,
            app: app.iter().map(|k| Kind::parse(k.token())).collect::<Result<_, _>>().map_err(shape)?,
            peer: peer.iter().map(|k| Kind::parse(k.token())).collect::<Result<_, _>>().map_err(shape)?,
            timer: name == HandlerName::Timeout,
            restore: name == HandlerName::Timeout,
            context: context.to_vec(),
            counts: counts.iter().filter_map(|c| tag(c)).collect(),
            page: None,
            connections: false,
            entity: None,
            tokens: Vec::new(),
            peers: None,
            also: Vec::new(),
            record: None,
            all_connections: false,
        })
    };
    let m = Manifest {
        family: FamilyName::parse(FAMILY).map_err(shape)?,
        state_version: STATE_VERSION,
        entity_field: "call_id".into(),
        peer_fields: vec!["peer_guid".into(), "from_guid".into()],
        peers: PeerPolicy::Connections,
        records: vec!["calls".into()],
        notifies: NotificationKind::ALL
            .iter()
            .map(|k| Kind::parse(k.token()))
            .collect::<Result<_, _>>()
            .map_err(shape)?,
        sends: PeerKind::ALL.iter().map(|k| Kind::parse(k.token())).collect::<Result<_, _>>().map_err(shape)?,
        // The verdicts, at least once: an answer, a decline or a hang-up to a vault that was down
        // for a moment arrives when it is back (a repeat is a duplicate by its message_id). Calls,
        // rings and signals are not: late, they would be stale.
        reliable: [PeerKind::Accept, PeerKind::Reject, PeerKind::End]
            .iter()
            .map(|k| Kind::parse(k.token()))
            .collect::<Result<_, _>>()
            .map_err(shape)?,
        handlers: vec![
            spec(HandlerName::Initiate, &[RequestKind::Initiate], &[], &wide, &["live"])?,
            spec(HandlerName::Incoming, &[], &[PeerKind::Incoming], &wide, &["live"])?,
            spec(HandlerName::Accept, &[RequestKind::Accept], &[PeerKind::Accept], &active, &[])?,
            spec(HandlerName::Reject, &[RequestKind::Reject], &[PeerKind::Reject], &[], &[])?,
            spec(HandlerName::End, &[RequestKind::End], &[PeerKind::End], &[], &[])?,
            spec(HandlerName::Signal, &[RequestKind::Signal], &[PeerKind::Signal, PeerKind::Ringing], &[], &[])?,
            spec(HandlerName::Timeout, &[], &[], &[], &[])?,
        ],
        max_live: callvault_kernel::manifest::MAX_LIVE,
    };
    m.validate()?;
    Ok(m)
}

/// The manifest as JSON (what the module's `cv_manifest` returns; empty if it cannot be made,
/// which the kernel refuses).
pub fn manifest_json() -> Vec<u8> {
    manifest().ok().and_then(|m| serde_json::to_vec(&m).ok()).unwrap_or_default()
}

/// A call's tags: `live` and `with.<peer>` while unsettled, `active` while answered, `dialing`
/// while one's own call is unanswered (taking another call cancels it).
pub fn tags_of(call: &Call) -> Vec<Tag> {
    if call.record().status.is_terminal() {
        return Vec::new();
    }
    let mut t: Vec<Tag> = [Some("live".to_owned()), Some(format!("with.{}", call.peer()))]
        .into_iter()
        .flatten()
        .filter_map(|s| tag(&s))
        .collect();
    if call.is_active() {
        t.extend(tag("active"));
    }
    if call.is_dialing() {
        t.extend(tag("dialing"));
    }
    t.sort();
    t
}

fn wire_notification(n: &AppNotification) -> Result<WireMessage, String> {
    let json = n.to_raw_json().map_err(|e| e.to_string())?;
    Ok(WireMessage { kind: n.kind().token().to_owned(), json })
}

fn wire_peer(m: &PeerMessage) -> Result<WireMessage, String> {
    let json = m.to_raw_json().map_err(|e| e.to_string())?;
    Ok(WireMessage { kind: m.kind().token().to_owned(), json })
}

fn refused(code: ErrorCode, reason: impl Into<String>) -> Output {
    Output::refused(code, reason)
}

fn kind_of<K: Copy>(all: &[K], token: impl Fn(K) -> &'static str, wanted: &str) -> Option<K> {
    all.iter().copied().find(|k| token(*k) == wanted)
}

/// The calls of the input, older versions migrated (version 0 and 1 are one document).
fn calls_of(input: &Input) -> Result<Vec<Call>, String> {
    input
        .states
        .iter()
        .map(|s| {
            if s.version > STATE_VERSION {
                return Err(format!("call state version {} is newer than this module's", s.version));
            }
            serde_json::from_str::<Call>(s.state.get()).map_err(|e| format!("unreadable call state: {e}"))
        })
        .collect()
}

/// The setup counter a call's move from `before` to `after` adds to, if any (answered, declined
/// or missed, by direction). Active calls are a gauge the kernel keeps from the `active` tag.
fn setup_counter(direction: Direction, before: Option<CallStatus>, after: CallStatus) -> Option<&'static str> {
    if before == Some(after) {
        return None;
    }
    Some(match (direction, after) {
        (Direction::Outgoing, CallStatus::Active) => "setup.outgoing.answered",
        (Direction::Outgoing, CallStatus::Rejected) => "setup.outgoing.rejected",
        (Direction::Outgoing, CallStatus::Missed) => "setup.outgoing.missed",
        (Direction::Incoming, CallStatus::Active) => "setup.incoming.answered",
        (Direction::Incoming, CallStatus::Rejected) => "setup.incoming.rejected",
        (Direction::Incoming, CallStatus::Missed) => "setup.incoming.missed",
        _ => return None,
    })
}

/// The kernel's `Store` of a call: its state, tags, peer, timer and history record.
fn store_of(call: &Call, config: &CallConfig) -> Result<OutputItem, String> {
    let entity = EntityKey::parse(call.id().as_str()).map_err(|e| e.to_string())?;
    let state = Json::of(call).map_err(|e| e.to_string())?;
    let record = Json::of(call.record()).map_err(|e| e.to_string())?;
    Ok(OutputItem::Store {
        entity: entity.clone(),
        state,
        tags: tags_of(call),
        peer: Some(call.peer().clone()),
        timer: call.deadline(config),
        records: vec![Record { bucket: "calls".into(), key: entity, item: None, value: Some(record) }],
    })
}

/// Runs one handler. Never panics on any input: a bad event is refused with a code.
pub fn run(input: &Input) -> Output {
    let ring_timeout_secs = input
        .config
        .as_ref()
        .and_then(|c| serde_json::from_str::<FamilyConfig>(c.get()).ok())
        .map_or(60, |c| c.ring_timeout_secs);
    let config =
        CallConfig { ring_timeout: std::time::Duration::from_secs(ring_timeout_secs), ..CallConfig::default() };
    let Some(handler) = HandlerName::parse(&input.handler) else {
        return refused(ErrorCode::InvalidMessage, "no such handler");
    };
    let calls = match calls_of(input) {
        Ok(c) => c,
        Err(e) => return refused(ErrorCode::Internal, e),
    };
    let prior: BTreeMap<CallId, CallStatus> = calls.iter().map(|c| (c.id().clone(), c.record().status)).collect();
    if matches!(input.event, Event::Restore) {
        if handler != HandlerName::Timeout {
            return refused(ErrorCode::InvalidMessage, "stored state goes to the restore handler");
        }
        let outputs: Result<Vec<_>, _> = calls.iter().map(|c| store_of(c, &config)).collect();
        return match outputs {
            Ok(outputs) => Output { outcome: Outcome::Applied, outputs },
            Err(e) => refused(ErrorCode::Internal, e),
        };
    }
    let mut sb = match Switchboard::restore(input.local.clone(), config.clone(), calls) {
        Ok(sb) => sb,
        Err(e) => return refused(ErrorCode::Internal, e.to_string()),
    };
    if let Some(live) = input.counts.iter().find(|(t, _)| t.as_str() == "live").map(|(_, n)| *n) {
        sb.set_unsettled(usize::try_from(live).unwrap_or(usize::MAX));
    }
    run_on(&mut sb, handler, input, &config, &prior)
}

fn run_on(
    sb: &mut Switchboard,
    handler: HandlerName,
    input: &Input,
    config: &CallConfig,
    prior: &BTreeMap<CallId, CallStatus>,
) -> Output {
    let sb_input = match &input.event {
        Event::Timer | Event::Restore => {
            if handler != HandlerName::Timeout {
                return refused(ErrorCode::InvalidMessage, "a timer goes to the timeout handler");
            }
            crate::Input::Tick
        }
        Event::App(w) => {
            let Some(kind) = kind_of(RequestKind::ALL, RequestKind::token, &w.kind) else {
                return refused(ErrorCode::InvalidMessage, "unknown request type");
            };
            if HandlerName::for_request(kind) != handler {
                return refused(ErrorCode::InvalidMessage, "request sent to the wrong handler");
            }
            let req = match AppRequest::parse(kind, w.json.get().as_bytes()) {
                Ok(r) => r,
                Err(e) => return refused(ErrorCode::InvalidMessage, e.to_string()),
            };
            // Seed, initiate step 1: the peer must be a connection.
            if let AppRequest::Initiate(r) = &req
                && input.connection.as_ref().is_none_or(|c| c.guid != r.peer_guid)
            {
                return not_connected(input, &req);
            }
            crate::Input::App(req)
        }
        Event::Peer(w) => {
            let Some(kind) = kind_of(PeerKind::ALL, PeerKind::token, &w.kind) else {
                return refused(ErrorCode::InvalidMessage, "unknown peer message type");
            };
            if HandlerName::for_peer(kind) != handler {
                return refused(ErrorCode::InvalidMessage, "message sent to the wrong handler");
            }
            let message = match PeerMessage::parse(kind, w.json.get().as_bytes()) {
                Ok(m) => m,
                Err(e) => return refused(ErrorCode::InvalidMessage, e.to_string()),
            };
            // Seed, incoming step 1: calls come only from connections; the profile shown is theirs.
            let Some(conn) = input.connection.as_ref().filter(|c| &c.guid == message.from_guid()) else {
                return refused(ErrorCode::NotConnected, "the sender is not a connection");
            };
            crate::Input::Peer { message, profile: conn.profile.clone() }
        }
    };
    let result = sb.handle(input.now, sb_input);
    let mut outputs = Vec::new();
    let mut statuses = prior.clone();
    while let Some(o) = sb.poll_output() {
        let item = match o {
            crate::Output::Store(call) => {
                let before = statuses.insert(call.id().clone(), call.record().status);
                let store = store_of(&call, config);
                if let Ok(s) = store {
                    outputs.push(s);
                    let counter = setup_counter(call.record().direction, before, call.record().status);
                    outputs.extend(counter.and_then(tag).map(|name| OutputItem::Count { name, delta: 1 }));
                    continue;
                }
                store
            }
            crate::Output::SendToPeer { to, message } => {
                wire_peer(&message).map(|message| OutputItem::Send { to, message })
            }
            crate::Output::NotifyApp(n) => wire_notification(&n).map(OutputItem::Notify),
            // Each call's timer rides on its own Store.
            crate::Output::WakeAt(_) => continue,
        };
        match item {
            Ok(i) => outputs.push(i),
            Err(e) => return refused(ErrorCode::Internal, e),
        }
    }
    let outcome = match result {
        Ok(Disposition::Applied) => Outcome::Applied,
        Ok(Disposition::Duplicate) => Outcome::Duplicate,
        Ok(Disposition::Ignored) => Outcome::Ignored,
        // A refused app request still carries its call.error notification in `outputs`. The
        // reason names call ids only, never a guid.
        Err(e) => Outcome::Refused { code: e.code(), reason: e.to_string() },
    };
    Output { outcome, outputs }
}

fn not_connected(input: &Input, req: &AppRequest) -> Output {
    let n = AppNotification::Error(CallErrorNotification {
        kind: tags::Error,
        message_id: crate::call::derive_id(
            &input.local,
            req.message_id().to_bytes(),
            crate::call::IdPurpose::NotConnected,
        ),
        timestamp: input.now,
        in_reply_to: req.message_id().clone(),
        code: ErrorCode::NotConnected,
        message: ErrorText::truncated("the peer is not a connection"),
        call_id: Some(req.call_id().clone()),
        ext: None,
    });
    let outputs = wire_notification(&n).map(OutputItem::Notify).into_iter().collect();
    Output {
        outcome: Outcome::Refused { code: ErrorCode::NotConnected, reason: "the peer is not a connection".into() },
        outputs,
    }
}

/// [`run`] over JSON bytes, as the WASM module's export for handler `name` calls it: input meant
/// for another handler, and bad input JSON, are refused, never a trap.
pub fn run_json_as(name: HandlerName, input: &[u8]) -> Vec<u8> {
    let output = match serde_json::from_slice::<Input>(input) {
        Ok(i) if i.handler == name.as_str() => run(&i),
        Ok(_) => refused(ErrorCode::InvalidMessage, "input meant for another handler"),
        Err(e) => refused(ErrorCode::InvalidMessage, format!("handler input: {e}")),
    };
    serde_json::to_vec(&output).unwrap_or_default()
}

/// The family settings as the kernel passes them.
pub fn config_json(ring_timeout_secs: u64) -> Option<Json> {
    Json::of(&FamilyConfig { ring_timeout_secs }).ok()
}

/// A stored call as the kernel hands it to a handler.
pub fn entity_state(call: &Call) -> Option<callvault_kernel::EntityState> {
    Some(callvault_kernel::EntityState {
        key: EntityKey::parse(call.id().as_str()).ok()?,
        version: STATE_VERSION,
        state: Json::of(call).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use callvault_protocol::Guid;

    #[test]
    fn the_manifest_is_valid_and_routes_every_seed_event() {
        let m = Manifest::parse(&manifest_json()).unwrap();
        for kind in RequestKind::ALL {
            assert_eq!(m.for_app(kind.token()).unwrap().name.as_str(), HandlerName::for_request(*kind).as_str());
        }
        for kind in PeerKind::ALL {
            assert_eq!(m.for_peer(kind.token()).unwrap().name.as_str(), HandlerName::for_peer(*kind).as_str());
        }
        assert_eq!(m.for_timer().unwrap().name.as_str(), "timeout");
        assert_eq!(m.for_restore().unwrap().name.as_str(), "timeout");
        assert!(!m.for_app("signal").unwrap().is_wide(), "signals run concurrently across calls");
        assert!(m.for_app("initiate").unwrap().is_wide());
    }

    /// The vault-wide bound comes from the kernel's count of live calls, not from the calls the
    /// handler is given (it is given only those its event can touch).
    #[test]
    fn the_live_count_the_kernel_gives_bounds_new_calls() {
        let local = Guid::from_public_key(&[1; 32]);
        let peer = Guid::from_public_key(&[2; 32]);
        let now = callvault_protocol::Timestamp::from_unix_millis(1_790_000_000_000);
        let req = serde_json::json!({"type": "call.initiate", "message_id": "00000000-0000-4000-8000-000000000001",
            "call_id": "00000000-0000-4000-8000-0000000000aa", "timestamp": now.to_string(),
            "peer_guid": peer.to_string(), "call_type": "audio"});
        let input = |live: u64| Input {
            handler: "initiate".into(),
            local: local.clone(),
            now,
            config: config_json(60),
            event: Event::App(WireMessage::from_value("initiate", &req)),
            entity: EntityKey::parse("00000000-0000-4000-8000-0000000000aa").unwrap(),
            states: Vec::new(),
            counts: [(Tag::parse("live").unwrap(), live)].into_iter().collect(),
            connection: Some(ConnectionInfo {
                guid: peer.clone(),
                profile: callvault_protocol::fields::PeerProfile {
                    display_name: callvault_protocol::fields::DisplayName::new("Bob").unwrap(),
                    avatar_url: None,
                },
                user_key: None,
                revoked: false,
            }),
            page: None,
            connections: Vec::new(),
            tokens: Default::default(),
            record: None,
        };
        assert_eq!(run(&input(9_999)).outcome, Outcome::Applied);
        assert!(matches!(run(&input(10_000)).outcome, Outcome::Refused { code: ErrorCode::Busy, .. }));
    }
}

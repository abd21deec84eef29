//! The handler ABI: what the vault passes to a call handler and what the handler returns, as
//! JSON. A handler is a pure function: [`run`] takes a [`HandlerInput`] (the event, the current
//! time, and the context the host loaded: the stored calls involved and the peer's connection)
//! and returns a [`HandlerOutput`] (the result and the outputs to perform). The host does every
//! I/O and all crypto; the WASM modules in `crates/handlers` are thin shells around [`run_json`].
//!
//! The seven handlers of the seed and the events each accepts:
//!
//! | handler | event |
//! | --- | --- |
//! | `initiate` | app `call.initiate` |
//! | `incoming` | peer `call.incoming` |
//! | `accept` | app `call.accept`, peer `call.accept` |
//! | `reject` | app `call.reject`, peer `call.reject` |
//! | `end` | app `call.end`, peer `call.end` |
//! | `signal` | app `call.signal`, peer `call.signal`, peer `call.ringing` |
//! | `timeout` | tick |

use callvault_protocol::calling::{AppNotification, AppRequest, CallErrorNotification, PeerMessage, tags};
use callvault_protocol::fields::{ErrorCode, ErrorText, PeerProfile};
use callvault_protocol::subject::{PeerKind, RequestKind};
use callvault_protocol::{Guid, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{Call, CallConfig, Disposition, Input, Output, Switchboard};

/// The seven handlers.
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
    /// The timeout sweep.
    Timeout,
}

impl HandlerName {
    /// All seven, in the seed's order.
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

/// A message as it crosses the ABI: its subject kind's token and its JSON, carried verbatim (the
/// handler parses it once, into the protocol type, and nothing builds a generic JSON tree).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireMessage {
    /// The subject's last token (`initiate`, `incoming`, ...).
    pub kind: String,
    /// The message.
    pub json: Box<RawValue>,
}

impl PartialEq for WireMessage {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.json.get() == other.json.get()
    }
}

impl WireMessage {
    /// A message as received: bytes that are not JSON become `null`, which every handler refuses
    /// as an invalid message.
    pub fn from_bytes(kind: impl Into<String>, bytes: &[u8]) -> Self {
        let json = std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| RawValue::from_string(s.to_owned()).ok())
            .unwrap_or_else(|| RawValue::NULL.to_owned());
        Self { kind: kind.into(), json }
    }

    /// A message from a JSON value.
    pub fn from_value(kind: impl Into<String>, value: &serde_json::Value) -> Self {
        let json = serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self { kind: kind.into(), json }
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.json.get()
    }

    /// The JSON as a value (for callers that look inside; `null` if that ever fails).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.json.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// The event a handler handles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A request from the app.
    App(WireMessage),
    /// A message from a peer vault, already unwrapped and checked against the seal.
    Peer(WireMessage),
    /// Time passed.
    Tick,
}

/// The peer's entry in the `connections` bucket, as far as a handler needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// The peer.
    pub guid: Guid,
    /// How to show the peer.
    pub profile: PeerProfile,
}

/// Everything a handler gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerInput {
    /// Which handler the host meant to run.
    pub handler: HandlerName,
    /// The vault's user.
    pub local: Guid,
    /// The host's clock.
    pub now: Timestamp,
    /// Ring timeout in seconds (seed: 60).
    pub ring_timeout_secs: u64,
    /// The event.
    pub event: Event,
    /// The peer's connection, if the peer is one.
    pub connection: Option<ConnectionInfo>,
    /// The stored calls the event may touch: the call it names and every unanswered or active one.
    pub calls: Vec<Call>,
}

/// What the host must do, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputItem {
    /// Write this call (record to `calls`, state to `handler-state`).
    Store(Box<Call>),
    /// Seal and send to the peer's vault.
    Send {
        /// The peer.
        to: Guid,
        /// The message.
        message: WireMessage,
    },
    /// Publish to the app.
    Notify(WireMessage),
    /// Run the timeout handler at or after this instant.
    WakeAt(Timestamp),
}

/// How the event went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Handled.
    Applied,
    /// A repeat of a handled message: no effect.
    Duplicate,
    /// Late or moot: no effect.
    Ignored,
    /// Refused, with the code an app would see.
    Refused {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason (no secrets, no guids).
        reason: String,
    },
}

/// Everything a handler returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerOutput {
    /// How the event went.
    pub outcome: Outcome,
    /// What to do.
    pub outputs: Vec<OutputItem>,
}

fn wire_notification(n: &AppNotification) -> Result<WireMessage, String> {
    let json = n.to_raw_json().map_err(|e| e.to_string())?;
    Ok(WireMessage { kind: n.kind().token().to_owned(), json })
}

fn wire_peer(m: &PeerMessage) -> Result<WireMessage, String> {
    let json = m.to_raw_json().map_err(|e| e.to_string())?;
    Ok(WireMessage { kind: m.kind().token().to_owned(), json })
}

fn refused(code: ErrorCode, reason: impl Into<String>) -> HandlerOutput {
    HandlerOutput { outcome: Outcome::Refused { code, reason: reason.into() }, outputs: Vec::new() }
}

fn kind_of<K: Copy>(all: &[K], token: impl Fn(K) -> &'static str, wanted: &str) -> Option<K> {
    all.iter().copied().find(|k| token(*k) == wanted)
}

/// Runs one handler. Never panics on any input: a bad event is refused with a code.
///
/// Whatever the outcome (a refusal included), the outputs end with the vault's next deadline as
/// the handler sees it: one [`OutputItem::WakeAt`], or none when nothing is due. The host keeps
/// that one wake time and replaces it after every run, so a vault whose calls have all settled
/// sleeps until the next event instead of running the timeout handler again and again.
pub fn run(input: &HandlerInput) -> HandlerOutput {
    let config =
        CallConfig { ring_timeout: std::time::Duration::from_secs(input.ring_timeout_secs), ..CallConfig::default() };
    let mut sb = match Switchboard::restore(input.local.clone(), config, input.calls.iter().cloned()) {
        Ok(sb) => sb,
        Err(e) => return refused(ErrorCode::Internal, e.to_string()),
    };
    let mut output = run_on(&mut sb, input);
    output.outputs.retain(|o| !matches!(o, OutputItem::WakeAt(_)));
    if let Some(t) = sb.next_deadline() {
        output.outputs.push(OutputItem::WakeAt(t));
    }
    output
}

/// [`run`] on a restored switchboard, before the deadline is appended.
fn run_on(sb: &mut Switchboard, input: &HandlerInput) -> HandlerOutput {
    let sb_input = match &input.event {
        Event::Tick => {
            if input.handler != HandlerName::Timeout {
                return refused(ErrorCode::InvalidMessage, "a tick goes to the timeout handler");
            }
            Input::Tick
        }
        Event::App(w) => {
            let Some(kind) = kind_of(RequestKind::ALL, RequestKind::token, &w.kind) else {
                return refused(ErrorCode::InvalidMessage, "unknown request type");
            };
            if HandlerName::for_request(kind) != input.handler {
                return refused(ErrorCode::InvalidMessage, "request sent to the wrong handler");
            }
            let bytes = w.json.get().as_bytes();
            let req = match AppRequest::parse(kind, bytes) {
                Ok(r) => r,
                Err(e) => return refused(ErrorCode::InvalidMessage, e.to_string()),
            };
            // Seed, initiate step 1: the peer must be a connection.
            if let AppRequest::Initiate(r) = &req
                && input.connection.as_ref().is_none_or(|c| c.guid != r.peer_guid)
            {
                return not_connected(input, &req);
            }
            Input::App(req)
        }
        Event::Peer(w) => {
            let Some(kind) = kind_of(PeerKind::ALL, PeerKind::token, &w.kind) else {
                return refused(ErrorCode::InvalidMessage, "unknown peer message type");
            };
            if HandlerName::for_peer(kind) != input.handler {
                return refused(ErrorCode::InvalidMessage, "message sent to the wrong handler");
            }
            let bytes = w.json.get().as_bytes();
            let message = match PeerMessage::parse(kind, bytes) {
                Ok(m) => m,
                Err(e) => return refused(ErrorCode::InvalidMessage, e.to_string()),
            };
            // Seed, incoming step 1: calls come only from connections; the profile shown is theirs.
            let Some(conn) = input.connection.as_ref().filter(|c| &c.guid == message.from_guid()) else {
                return refused(ErrorCode::NotConnected, "the sender is not a connection");
            };
            Input::Peer { message, profile: conn.profile.clone() }
        }
    };
    let result = sb.handle(input.now, sb_input);
    let mut outputs = Vec::new();
    while let Some(o) = sb.poll_output() {
        let item = match o {
            Output::Store(call) => Ok(OutputItem::Store(call)),
            Output::SendToPeer { to, message } => wire_peer(&message).map(|message| OutputItem::Send { to, message }),
            Output::NotifyApp(n) => wire_notification(&n).map(OutputItem::Notify),
            Output::WakeAt(t) => Ok(OutputItem::WakeAt(t)),
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
    HandlerOutput { outcome, outputs }
}

fn not_connected(input: &HandlerInput, req: &AppRequest) -> HandlerOutput {
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
    HandlerOutput {
        outcome: Outcome::Refused { code: ErrorCode::NotConnected, reason: "the peer is not a connection".into() },
        outputs,
    }
}

/// [`run`] over JSON bytes, as the WASM module's export for handler `name` calls it: input meant
/// for another handler, and bad input JSON, are refused, never a trap.
pub fn run_json_as(name: HandlerName, input: &[u8]) -> Vec<u8> {
    let output = match serde_json::from_slice::<HandlerInput>(input) {
        Ok(i) if i.handler == name => run(&i),
        Ok(_) => refused(ErrorCode::InvalidMessage, "input meant for another handler"),
        Err(e) => refused(ErrorCode::InvalidMessage, format!("handler input: {e}")),
    };
    serde_json::to_vec(&output).unwrap_or_default()
}

//! What crosses the handler ABI, as JSON: the kernel gives a handler an [`Input`] and performs
//! the [`Output`] it returns.
//!
//! A module exports `cv_input(len) -> addr`, `cv_output() -> addr`, `cv_manifest() -> len` (its
//! [`Manifest`](crate::Manifest), read from `cv_output`) and `cv_handle_<name>(len) -> len` per
//! handler. Every event runs in a fresh instance under fuel and memory limits.

use std::collections::BTreeMap;

use callvault_protocol::fields::{DelegationText, DisplayName, ErrorCode, InviteNonce, KeyHex, PeerProfile, Reach};
use callvault_protocol::{Guid, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{EntityKey, Tag};

/// A message as it crosses the ABI: its kind (the subject's last token) and its JSON, verbatim.
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
    /// A message as received: bytes that are not JSON become `null`, which handlers refuse.
    pub fn from_bytes(kind: impl Into<String>, bytes: &[u8]) -> Self {
        let json = std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| RawValue::from_string(s.to_owned()).ok())
            .unwrap_or_else(|| RawValue::NULL.to_owned());
        Self { kind: kind.into(), json }
    }

    /// A message from anything serializable, written once (no `Value` in between).
    pub fn of<T: Serialize + ?Sized>(kind: impl Into<String>, value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self { kind: kind.into(), json: serde_json::value::to_raw_value(value)? })
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

    /// The JSON as a value (`null` if that ever fails).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.json.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// A JSON document carried verbatim (compared by its text).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(pub Box<RawValue>);

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Json {
    /// The JSON of `value`.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A request of the user's app.
    App(WireMessage),
    /// A message of a peer vault, unwrapped and checked against the family's peer policy.
    Peer(WireMessage),
    /// The entity's timer is due.
    Timer,
    /// Stored state to restore: answer with the entity's tags and timer (and migrated state).
    Restore,
}

/// The peer's connection, as far as a handler needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// The peer.
    pub guid: Guid,
    /// How to show the peer.
    pub profile: PeerProfile,
    /// Their identity key (given with every connection, for a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_key: Option<KeyHex>,
    /// Revoked (only a handler given every connection sees these).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// What a checked invite token says (its signature, delegation and expiry held at the event's
/// time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedToken {
    /// Whose.
    pub guid: Guid,
    /// Their identity key.
    pub user_key: KeyHex,
    /// Their vault key, which the delegation names.
    pub vault_key: KeyHex,
    /// The delegation.
    pub delegation: DelegationText,
    /// The name it carries.
    pub display_name: DisplayName,
    /// Where their vault is reached.
    pub reach: Reach,
    /// Its one-time nonce.
    pub nonce: InviteNonce,
    /// When it is void.
    pub expires_at: Timestamp,
}

/// One stored entity as the handler gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityState {
    /// Its key.
    pub key: EntityKey,
    /// The state version its module wrote.
    pub version: u32,
    /// The state, a JSON document the module owns (the kernel never reads inside it).
    pub state: Json,
}

/// Everything a handler gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Which handler the kernel meant to run.
    pub handler: String,
    /// The vault's user.
    pub local: Guid,
    /// The host's clock.
    pub now: Timestamp,
    /// The family's settings from the vault's configuration (the call family's ring timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Json>,
    /// The event.
    pub event: Event,
    /// The entity the event names.
    pub entity: EntityKey,
    /// The stored entities it may touch: the event's entity (when stored) and the members of the
    /// handler's context indexes, nothing else.
    pub states: Vec<EntityState>,
    /// Members per tag the handler asked to count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<Tag, u64>,
    /// The peer's connection, if the peer is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionInfo>,
    /// The page of the entity's item records, for a handler whose manifest asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<Page>,
    /// The user's active connections (or every one), for a handler whose manifest asks for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<ConnectionInfo>,
    /// The tokens the kernel checked, by the field that held each.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, VerifiedToken>,
    /// The event's entity's record in the bucket the handler's manifest names, if stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Json>,
}

/// A record for one of the vault's buckets (a call's history entry, a message of a
/// conversation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The bucket (one the manifest's `records` names).
    pub bucket: String,
    /// The entity it belongs to.
    pub key: EntityKey,
    /// An item of the entity (one message of a conversation): the record's key is then
    /// `<key>.<item>`; none, it is `<key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<EntityKey>,
    /// The value; none deletes the record.
    #[serde(default)]
    pub value: Option<Json>,
}

impl Record {
    /// The record's key in its bucket.
    pub fn store_key(&self) -> String {
        match &self.item {
            Some(item) => format!("{}.{}", self.key, item),
            None => self.key.to_string(),
        }
    }
}

/// One record of a page: its item and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageRecord {
    /// The item (`<entity>.<item>` in the bucket).
    pub item: EntityKey,
    /// The value.
    pub value: Json,
}

/// The page of an entity's item records a handler asked for (its manifest's `page`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The records, in the page's order.
    pub records: Vec<PageRecord>,
    /// Whether more records follow in that order.
    pub more: bool,
}

/// What the kernel must do, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputItem {
    /// Store an entity: its state, the tags that put it in indexes, its peer, its timer (replacing
    /// any; none clears it), and its records, all at once.
    Store {
        /// Which entity.
        entity: EntityKey,
        /// Its state.
        state: Json,
        /// Its tags (none: in no index).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<Tag>,
        /// The peer it is with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<Guid>,
        /// When its timer fires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timer: Option<Timestamp>,
        /// Records to write with it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        records: Vec<Record>,
    },
    /// Forget an entity: its state, tags and timer (not its records).
    Forget {
        /// Which entity.
        entity: EntityKey,
    },
    /// Seal and send to the peer's vault (`MessageSpace.{to}.{family}.{kind}`).
    Send {
        /// The peer.
        to: Guid,
        /// The message.
        message: WireMessage,
    },
    /// Publish to the user's apps (`OwnerSpace.{guid}.forApp.{family}.{kind}`).
    Notify(WireMessage),
    /// Add `delta` to the family's counter `name` (what `/metrics` shows).
    Count {
        /// The counter.
        name: Tag,
        /// How much.
        delta: i64,
    },
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
pub struct Output {
    /// How the event went.
    pub outcome: Outcome,
    /// What to do.
    pub outputs: Vec<OutputItem>,
}

impl Output {
    /// A refusal with no outputs.
    pub fn refused(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { outcome: Outcome::Refused { code, reason: reason.into() }, outputs: Vec::new() }
    }
}

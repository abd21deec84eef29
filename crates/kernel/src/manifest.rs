//! A family's manifest: what the kernel needs to route events to the family's handlers.
//!
//! A module carries its own manifest (its `cv_manifest` export returns this as JSON), so
//! installing a module is all it takes to add a family.

use std::collections::BTreeSet;

use callvault_protocol::Guid;
use callvault_protocol::family::{FamilyName, Kind};
use serde::{Deserialize, Serialize};

use crate::Tag;

/// The most live entities (entities with a tag or a timer) a family may hold in one vault,
/// unless its manifest says fewer. The kernel keeps their tags and timers in memory, about
/// 300 bytes each, so this bounds that memory to a few MB per family.
pub const MAX_LIVE: usize = 10_000;

/// Which peers' vaults a family takes messages from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerPolicy {
    /// Only the user's active connections, and only when sealed by that connection's vault key
    /// (the `from_guid` the message names).
    Connections,
    /// A vault that is no connection yet, introduced by the handler's first token: the wrap is
    /// sealed by the vault key that token's delegation names, and the message's `from_guid` is
    /// the token's guid (an invitee's acceptance). The handler decides whether to take it.
    Introduced,
}

/// A message field holding an invite token the kernel checks before the handler runs (its
/// signature, its delegation and its expiry at the event's time); the handler gets what it says
/// ([`crate::abi::VerifiedToken`]) under the field's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// The field.
    pub field: String,
    /// The token must be the vault's own user's, naming this vault's key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own: bool,
}

/// One handler: its name (the module exports `cv_handle_<name>`) and what it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerSpec {
    /// The handler's name.
    pub name: Kind,
    /// The entity its events name, as a template: `{field}` stands for a message field,
    /// `{field.guid}` and `{field.nonce}` for what a checked token in `field` says, other text
    /// is kept (`invite-{token.nonce}`). None: the manifest's `entity_field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Fields holding invite tokens the kernel checks first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenSpec>,
    /// Whose messages it takes, when not the family's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<PeerPolicy>,
    /// Other entities it is given and may store or forget, as templates like `entity`'s (the
    /// pending invite an acceptance names). A handler with any is *wide*.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// A bucket (one of the manifest's `records`) whose record of the event's entity it is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Requests of the user's apps it takes (`forVault.<family>.<kind>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app: Vec<Kind>,
    /// Messages of peer vaults it takes (`MessageSpace.<guid>.<family>.<kind>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peer: Vec<Kind>,
    /// Whether it takes an entity's timer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timer: bool,
    /// Whether it takes stored state to restore (after an upgrade of the state version, or from
    /// an older callvault), answering with the entity's current tags and timer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore: bool,
    /// Indexes whose members it is given besides the event's entity: tags, where `{peer}` stands
    /// for the event's peer (`with.{peer}`). A handler with any is *wide*: it runs alone among
    /// the family's events; the others run concurrently, one at a time per entity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    /// Tags whose member counts it is given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counts: Vec<Tag>,
    /// A page of the entity's item records it is given (a conversation's messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PageSpec>,
    /// Whether it is given the user's active connections (to send to each, as a profile change
    /// is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connections: bool,
    /// Whether it is given every connection, revoked ones too, with their keys (a list).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_connections: bool,
}

/// The most templates of `also` one handler may name.
pub const MAX_ALSO: usize = 4;
/// The most tokens one handler may have checked.
pub const MAX_TOKENS: usize = 2;

/// One part of an entity template.
enum Part<'a> {
    /// Text kept as it is.
    Text(&'a str),
    /// `{field}`: a message field.
    Field(&'a str),
    /// `{field.guid}` or `{field.nonce}`: what a checked token in `field` says.
    Token(&'a str, TokenPart),
}

/// What of a checked token a template takes.
#[derive(Clone, Copy)]
enum TokenPart {
    Guid,
    Nonce,
}

/// A template's parts; `None` when a brace is left open or a name in braces is neither a field
/// nor `field.guid`/`field.nonce`.
fn parts(template: &str) -> Option<Vec<Part<'_>>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open.saturating_add(1)..)?;
        let close = after.find('}')?;
        out.push(Part::Text(rest.get(..open)?));
        let name = after.get(..close)?;
        out.push(match name.split_once('.') {
            Some((field, "guid")) => Part::Token(field, TokenPart::Guid),
            Some((field, "nonce")) => Part::Token(field, TokenPart::Nonce),
            Some(_) => return None,
            None => Part::Field(name),
        });
        rest = after.get(close.saturating_add(1)..)?;
    }
    out.push(Part::Text(rest));
    Some(out)
}

/// Fills a template (`invite-{token.nonce}`) from a message and the tokens checked in it;
/// `None` when a field is missing or the result is no entity key.
pub fn render(
    template: &str,
    message: Option<&serde_json::Value>,
    tokens: &std::collections::BTreeMap<String, crate::abi::VerifiedToken>,
) -> Option<crate::EntityKey> {
    let mut out = String::new();
    for part in parts(template)? {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Field(name) => out.push_str(message?.get(name)?.as_str()?),
            Part::Token(field, TokenPart::Guid) => out.push_str(tokens.get(field)?.guid.as_str()),
            Part::Token(field, TokenPart::Nonce) => out.push_str(tokens.get(field)?.nonce.as_str()),
        }
    }
    crate::EntityKey::parse(&out).ok()
}

/// Whether a template is well formed: entity-key text around names in braces, each a field name
/// or `field.guid`/`field.nonce` of a token the handler checks.
fn template_ok(template: &str, tokens: &[TokenSpec]) -> bool {
    let literal = |t: &str| t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'=' || b == b'-');
    if template.is_empty() || template.len() > 128 {
        return false;
    }
    parts(template).is_some_and(|parts| {
        parts.iter().all(|p| match p {
            Part::Text(t) => literal(t),
            Part::Field(name) => !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            Part::Token(field, _) => tokens.iter().any(|t| &t.field == field),
        })
    })
}

/// The most records one page may hold.
pub const MAX_PAGE_RECORDS: u32 = 200;
/// The most bytes of record values one page may hold (at least one record is given).
pub const MAX_PAGE_BYTES: u32 = 256 * 1024;

/// A page of an entity's item records (`<entity>.<item>` in one of the family's buckets), in key
/// order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSpec {
    /// The bucket (one of the manifest's `records`).
    pub bucket: String,
    /// Newest (last key) first; else oldest first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub newest_first: bool,
    /// The event's field naming the item the page starts after (exclusive), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
    /// The event's field asking for fewer records than `limit`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_field: Option<String>,
    /// The most records (at most [`MAX_PAGE_RECORDS`]).
    pub limit: u32,
    /// The most bytes of values (at most [`MAX_PAGE_BYTES`]); the page stops before the record
    /// that would pass it, but always holds at least one.
    pub max_bytes: u32,
}

impl HandlerSpec {
    /// Runs alone among the family's events (it reads indexes, or entities, other events may
    /// change).
    pub fn is_wide(&self) -> bool {
        !self.context.is_empty() || !self.also.is_empty()
    }

    /// The template of its events' entity.
    pub fn entity_template(&self, manifest: &Manifest) -> String {
        self.entity.clone().unwrap_or_else(|| format!("{{{}}}", manifest.entity_field))
    }

    /// Its peer policy.
    pub fn peer_policy(&self, manifest: &Manifest) -> PeerPolicy {
        self.peers.unwrap_or(manifest.peers)
    }

    /// The context's tags for an event whose peer is `peer`; a template naming `{peer}` is left
    /// out when the event has none.
    pub fn context_tags(&self, peer: Option<&Guid>) -> Vec<Tag> {
        self.context
            .iter()
            .filter_map(|t| match (t.contains("{peer}"), peer) {
                (false, _) => Tag::parse(t).ok(),
                (true, Some(p)) => Tag::parse(&t.replace("{peer}", p.as_str())).ok(),
                (true, None) => None,
            })
            .collect()
    }
}

/// A family's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The family's name: its subjects' token and its keys' prefix.
    pub family: FamilyName,
    /// The version of the state its module writes. State stored under an older version is given
    /// to the module with that version, and the module migrates it.
    pub state_version: u32,
    /// The field of every message that names the event's entity (`call_id`).
    pub entity_field: String,
    /// Fields that name the event's peer, first found wins (`peer_guid`, `from_guid`); with none,
    /// the entity's stored peer.
    #[serde(default)]
    pub peer_fields: Vec<String>,
    /// Whose messages it takes.
    pub peers: PeerPolicy,
    /// The vault buckets its records go to (`calls`).
    #[serde(default)]
    pub records: Vec<String>,
    /// Kinds it may notify the user's apps of (`forApp.<family>.<kind>`).
    #[serde(default)]
    pub notifies: Vec<Kind>,
    /// Kinds it may send to peer vaults (`MessageSpace.<peer>.<family>.<kind>`).
    #[serde(default)]
    pub sends: Vec<Kind>,
    /// Kinds of `sends` delivered at least once: the sending vault keeps each until the peer's
    /// vault acknowledges it (`MessageSpace.{guid}.<family>.ack`) and sends it again meanwhile, so
    /// a message to a vault that was down for a while arrives when it is back. Receivers must
    /// take a repeat as a duplicate (by its `message_id`).
    #[serde(default)]
    pub reliable: Vec<Kind>,
    /// Its handlers.
    pub handlers: Vec<HandlerSpec>,
    /// The most live entities it may hold in one vault (at most [`MAX_LIVE`]).
    #[serde(default = "max_live")]
    pub max_live: usize,
}

/// Names no family may take: they prefix the kernel's own keys.
pub const RESERVED: &[&str] = &["family", "module", "index", "kernel", "builtin"];

fn max_live() -> usize {
    MAX_LIVE
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of a manifest's shape.
    #[error("not a manifest: {0}")]
    Shape(String),
    /// Two handlers share a name, or two take the same event.
    #[error("{0} is taken twice")]
    Twice(String),
    /// A context template does not make a tag.
    #[error("context {0:?} is not a tag")]
    Context(String),
    /// Out of range (state version 0, no entity field, too many live entities).
    #[error("{0}")]
    Range(&'static str),
}

impl Manifest {
    /// Parses and validates a manifest.
    pub fn parse(json: &[u8]) -> Result<Self, ManifestError> {
        let m: Self = serde_json::from_slice(json).map_err(|e| ManifestError::Shape(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if RESERVED.contains(&self.family.as_str()) {
            return Err(ManifestError::Range("the family's name is reserved (family, module, index, kernel, builtin)"));
        }
        if self.state_version == 0 {
            return Err(ManifestError::Range("state_version starts at 1"));
        }
        if self.entity_field.is_empty() || self.entity_field.len() > 64 {
            return Err(ManifestError::Range("entity_field must name a field"));
        }
        if self.max_live == 0 || self.max_live > MAX_LIVE {
            return Err(ManifestError::Range("max_live must be 1 to 10 000"));
        }
        if self.reliable.iter().any(|k| !self.sends.contains(k)) {
            return Err(ManifestError::Range("every reliable kind must be one the family sends"));
        }
        let ack = |k: &Kind| k.as_str() == "ack";
        if self.sends.iter().any(ack) || self.handlers.iter().any(|h| h.app.iter().chain(&h.peer).any(ack)) {
            return Err(ManifestError::Range("`ack` is the kernel's kind in every family"));
        }
        let mut names = BTreeSet::new();
        let mut events = BTreeSet::new();
        let sample = Guid::from_public_key(&[0; 32]);
        for h in &self.handlers {
            if !names.insert(h.name.as_str()) {
                return Err(ManifestError::Twice(format!("handler {}", h.name)));
            }
            let taken = h
                .app
                .iter()
                .map(|k| format!("app {k}"))
                .chain(h.peer.iter().map(|k| format!("peer {k}")))
                .chain(h.timer.then(|| "the timer".to_owned()))
                .chain(h.restore.then(|| "restore".to_owned()));
            for e in taken {
                if !events.insert(e.clone()) {
                    return Err(ManifestError::Twice(e));
                }
            }
            if let Some(p) = &h.page {
                if !self.records.contains(&p.bucket) {
                    return Err(ManifestError::Range("a page's bucket must be one of the family's records"));
                }
                if p.limit == 0 || p.limit > MAX_PAGE_RECORDS || p.max_bytes == 0 || p.max_bytes > MAX_PAGE_BYTES {
                    return Err(ManifestError::Range("a page holds 1 to 200 records and 1 to 256 KiB"));
                }
            }
            if h.tokens.len() > MAX_TOKENS
                || h.tokens.iter().any(|t| t.field.is_empty() || t.field.len() > 64)
                || h.tokens
                    .iter()
                    .enumerate()
                    .any(|(i, t)| h.tokens.iter().skip(i.saturating_add(1)).any(|u| u.field == t.field))
            {
                return Err(ManifestError::Range("a handler checks at most 2 tokens, in fields it names once"));
            }
            if h.entity.as_ref().is_some_and(|t| !template_ok(t, &h.tokens))
                || h.also.len() > MAX_ALSO
                || h.also.iter().any(|t| !template_ok(t, &h.tokens))
            {
                return Err(ManifestError::Range("an entity template must name fields and make an entity key"));
            }
            let introduced = h.peer_policy(self) == PeerPolicy::Introduced;
            if (introduced && !h.peer.is_empty() && h.tokens.first().is_none_or(|t| t.own))
                || (h.peers == Some(PeerPolicy::Introduced) && h.peer.is_empty())
            {
                return Err(ManifestError::Range("an introduced peer needs a peer message with a token not its own"));
            }
            if h.record.as_ref().is_some_and(|b| !self.records.contains(b)) {
                return Err(ManifestError::Range("a handler's record must be in one of the family's records"));
            }
            if h.connections && h.all_connections {
                return Err(ManifestError::Range("a handler takes active connections or all of them, not both"));
            }
            for t in &h.context {
                if Tag::parse(&t.replace("{peer}", sample.as_str())).is_err() {
                    return Err(ManifestError::Context(t.chars().take(64).collect()));
                }
            }
        }
        Ok(())
    }

    /// The handler for a request of the user's apps.
    pub fn for_app(&self, kind: &str) -> Option<&HandlerSpec> {
        self.handlers.iter().find(|h| h.app.iter().any(|k| k.as_str() == kind))
    }

    /// The handler for a peer vault's message.
    pub fn for_peer(&self, kind: &str) -> Option<&HandlerSpec> {
        self.handlers.iter().find(|h| h.peer.iter().any(|k| k.as_str() == kind))
    }

    /// The handler an entity's timer runs.
    pub fn for_timer(&self) -> Option<&HandlerSpec> {
        self.handlers.iter().find(|h| h.timer)
    }

    /// The handler that restores stored state.
    pub fn for_restore(&self) -> Option<&HandlerSpec> {
        self.handlers.iter().find(|h| h.restore)
    }

    /// A handler by name.
    pub fn handler(&self, name: &str) -> Option<&HandlerSpec> {
        self.handlers.iter().find(|h| h.name.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "family": "probe", "state_version": 1, "entity_field": "id", "peers": "connections",
            "handlers": [
                {"name": "poke", "app": ["poke"], "context": ["with.{peer}"], "counts": ["live"]},
                {"name": "tick", "timer": true}
            ]
        })
    }

    #[test]
    fn a_manifest_routes_events_to_handlers() {
        let m = Manifest::parse(sample().to_string().as_bytes()).unwrap();
        assert_eq!(m.for_app("poke").unwrap().name.as_str(), "poke");
        assert!(m.for_app("tick").is_none());
        assert_eq!(m.for_timer().unwrap().name.as_str(), "tick");
        assert_eq!(m.max_live, MAX_LIVE);
        let g = Guid::from_public_key(&[1; 32]);
        let poke = m.for_app("poke").unwrap();
        assert!(poke.is_wide());
        assert_eq!(poke.context_tags(Some(&g)), vec![Tag::parse(&format!("with.{g}")).unwrap()]);
        assert!(poke.context_tags(None).is_empty());
    }

    #[test]
    fn bad_manifests_are_refused() {
        let mut twice = sample();
        twice["handlers"][1]["app"] = serde_json::json!(["poke"]);
        assert!(matches!(Manifest::parse(twice.to_string().as_bytes()), Err(ManifestError::Twice(_))));
        let mut v0 = sample();
        v0["state_version"] = 0.into();
        assert!(Manifest::parse(v0.to_string().as_bytes()).is_err());
        let mut ctx = sample();
        ctx["handlers"][0]["context"] = serde_json::json!(["With Spaces"]);
        assert!(matches!(Manifest::parse(ctx.to_string().as_bytes()), Err(ManifestError::Context(_))));
        let mut family = sample();
        family["family"] = "a.b".into();
        assert!(Manifest::parse(family.to_string().as_bytes()).is_err());
        let mut unknown = sample();
        unknown["extra"] = true.into();
        assert!(Manifest::parse(unknown.to_string().as_bytes()).is_err());
        let mut ack = sample();
        ack["handlers"][0]["peer"] = serde_json::json!(["ack"]);
        assert!(Manifest::parse(ack.to_string().as_bytes()).is_err());
        let mut unsent = sample();
        unsent["reliable"] = serde_json::json!(["poke"]);
        assert!(Manifest::parse(unsent.to_string().as_bytes()).is_err());
        let mut big = sample();
        big["max_live"] = 10_001.into();
        assert!(Manifest::parse(big.to_string().as_bytes()).is_err());
    }
}

/// A handler of a family: `call.initiate`. Its module exports `cv_handle_<handler>`, and the
/// vault's `handlers` bucket names its module under the key `<family>.<handler>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId {
    /// The family.
    pub family: String,
    /// The handler.
    pub handler: String,
}

impl HandlerId {
    /// `family.handler`.
    pub fn new(family: &str, handler: &str) -> Self {
        Self { family: family.to_owned(), handler: handler.to_owned() }
    }

    /// The `handlers` bucket key naming its module.
    pub fn key(&self) -> String {
        format!("{}.{}", self.family, self.handler)
    }

    /// The module's export.
    pub fn export(&self) -> String {
        format!("cv_handle_{}", self.handler)
    }

    /// The id a bucket key names, if it names a handler (`<family>.<handler>`, both tokens).
    pub fn from_key(key: &str) -> Option<Self> {
        let (family, handler) = key.split_once('.')?;
        if RESERVED.contains(&family) {
            return None;
        }
        FamilyName::parse(family).ok()?;
        Kind::parse(handler).ok()?;
        Some(Self::new(family, handler))
    }
}

impl std::fmt::Display for HandlerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.family, self.handler)
    }
}

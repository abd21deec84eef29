//! The user's own requests about their vault that are not call events: invites, connections, and
//! call history.
//!
//! They arrive on `OwnerSpace.{guid}.forVault.<area>.<verb>` like call requests (the gateway lets
//! an app publish only into its own `forVault`), are handled by the vault itself (no handler
//! module: they touch only the vault's own buckets), and are answered on
//! `OwnerSpace.{guid}.forApp.<area>.<reply>` with `in_reply_to` set to the request's `message_id`.
//!
//! | request | body | answer |
//! | --- | --- | --- |
//! | `connection.invite` | `token` (signed by the app) | `connection.invited` |
//! | `connection.connect` | `token` (theirs), `mine` (the app's own token) | `connection.connected` |
//! | `connection.list` | — | `connection.list` with `connections` |
//! | `connection.revoke` | `peer_guid` | `connection.revoked` |
//! | `history.list` | `limit` (1..=200, default 50) | `history.list` with `calls`, newest first |
//!
//! A request that fails is answered with `<area>.error` (`code`, `message`, `in_reply_to`).

use callvault_protocol::Guid;
pub use callvault_protocol::app::ConnectionSummary;
use callvault_protocol::calling::CallRecord;

/// Most history entries one answer carries.
pub const MAX_HISTORY: usize = 200;
/// History entries when the request names no limit.
pub const DEFAULT_HISTORY: usize = 50;

/// A parsed admin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    /// Record an invite the app signed, so its acceptance is taken.
    Invite {
        /// The invite token.
        token: String,
    },
    /// Accept someone's invite, sending the app's own token back.
    Connect {
        /// Their token.
        token: String,
        /// Ours.
        mine: String,
    },
    /// List connections.
    ListConnections,
    /// Revoke a connection.
    Revoke {
        /// Whom.
        peer: Guid,
    },
    /// List calls, newest first.
    History {
        /// How many.
        limit: usize,
    },
}

/// Why an admin request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The subject names no admin request.
    #[error("unknown request {0:?}")]
    Unknown(String),
    /// The body does not parse or lacks a field.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

/// Which area a subject's request belongs to (`connection` or `history`), for the error answer.
pub fn area_of(verb_path: &str) -> &'static str {
    if verb_path.starts_with("history.") { "history" } else { "connection" }
}

fn text<'a>(json: &'a serde_json::Value, field: &'static str) -> Result<&'a str, AdminError> {
    json.get(field).and_then(|v| v.as_str()).ok_or(AdminError::Malformed(field))
}

impl AdminRequest {
    /// Parses the request `verb_path` (`connection.invite`, ...) with its JSON body.
    pub fn parse(verb_path: &str, json: &serde_json::Value) -> Result<Self, AdminError> {
        match verb_path {
            "connection.invite" => Ok(Self::Invite { token: text(json, "token")?.to_owned() }),
            "connection.connect" => {
                Ok(Self::Connect { token: text(json, "token")?.to_owned(), mine: text(json, "mine")?.to_owned() })
            }
            "connection.list" => Ok(Self::ListConnections),
            "connection.revoke" => Ok(Self::Revoke {
                peer: Guid::parse(text(json, "peer_guid")?).map_err(|_| AdminError::Malformed("peer_guid"))?,
            }),
            "history.list" => {
                let limit = match json.get("limit") {
                    None | Some(serde_json::Value::Null) => DEFAULT_HISTORY,
                    Some(v) => v
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|n| (1..=MAX_HISTORY).contains(n))
                        .ok_or(AdminError::Malformed("limit"))?,
                };
                Ok(Self::History { limit })
            }
            other => Err(AdminError::Unknown(other.chars().take(64).collect())),
        }
    }
}

/// Sorts records newest first and keeps `limit`.
pub fn newest_first(mut calls: Vec<CallRecord>, limit: usize) -> Vec<CallRecord> {
    calls.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.call_id.as_str().cmp(b.call_id.as_str())));
    calls.truncate(limit);
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_parse_and_bad_ones_name_the_field() {
        assert_eq!(
            AdminRequest::parse("history.list", &json!({})).unwrap(),
            AdminRequest::History { limit: DEFAULT_HISTORY }
        );
        assert_eq!(
            AdminRequest::parse("history.list", &json!({"limit": 3})).unwrap(),
            AdminRequest::History { limit: 3 }
        );
        assert_eq!(AdminRequest::parse("history.list", &json!({"limit": 0})), Err(AdminError::Malformed("limit")));
        assert_eq!(AdminRequest::parse("history.list", &json!({"limit": 201})), Err(AdminError::Malformed("limit")));
        assert_eq!(
            AdminRequest::parse("connection.connect", &json!({"token": "x"})),
            Err(AdminError::Malformed("mine"))
        );
        assert_eq!(
            AdminRequest::parse("connection.revoke", &json!({"peer_guid": "nope"})),
            Err(AdminError::Malformed("peer_guid"))
        );
        assert!(matches!(AdminRequest::parse("connection.steal", &json!({})), Err(AdminError::Unknown(_))));
        assert_eq!(area_of("history.list"), "history");
        assert_eq!(area_of("connection.list"), "connection");
    }
}

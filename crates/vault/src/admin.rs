//! The user's own request about their vault that no family handles yet: the call history.
//! (Invites, connections and their list are the `connection` family's.)
//!
//! It arrives on `OwnerSpace.{guid}.forVault.history.list` like call requests (the gateway lets
//! an app publish only into its own `forVault`), is handled by the vault itself (it reads only
//! the vault's `calls` bucket), and is answered on `OwnerSpace.{guid}.forApp.history.list` with
//! `in_reply_to` set to the request's `message_id`.
//!
//! | request | body | answer |
//! | --- | --- | --- |
//! | `history.list` | `limit` (1..=200, default 50) | `history.list` with `calls`, newest first |
//!
//! A request that fails is answered with `<area>.error` (`code`, `message`, `in_reply_to`).

use callvault_protocol::calling::CallRecord;

/// Most history entries one answer carries.
pub const MAX_HISTORY: usize = 200;
/// History entries when the request names no limit.
pub const DEFAULT_HISTORY: usize = 50;

/// A parsed admin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
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

/// Which area a subject's request belongs to, for the error answer.
pub fn area_of(_verb_path: &str) -> &'static str {
    "history"
}

impl AdminRequest {
    /// Parses the request `verb_path` (`connection.invite`, ...) with its JSON body.
    pub fn parse(verb_path: &str, json: &serde_json::Value) -> Result<Self, AdminError> {
        match verb_path {
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
        assert!(matches!(AdminRequest::parse("history.steal", &json!({})), Err(AdminError::Unknown(_))));
        assert_eq!(area_of("history.list"), "history");
    }
}

//! [`CallRecord`]: one call as one vault keeps it (`calls` bucket, key `call_id`).

use serde::{Deserialize, Serialize};

use crate::fields::{CallStatus, CallType, Direction, DurationSeconds, EndReason, Extensions, present};
use crate::{CallId, Guid, Timestamp};

/// One call as one vault keeps it. No key material is ever stored here.
///
/// Invariants kept by `callvault-call`: `answered_at` is set exactly for `active` and `ended`;
/// `duration_seconds` exactly for `ended`; `ended_at` and `end_reason` exactly for terminal
/// statuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRecord {
    /// The call's id (also the bucket key).
    pub call_id: CallId,
    /// The other party.
    pub peer_guid: Guid,
    /// Whether we called or were called.
    pub direction: Direction,
    /// Audio or video.
    pub call_type: CallType,
    /// Where the call is in its lifecycle.
    pub status: CallStatus,
    /// When this vault created the record.
    pub created_at: Timestamp,
    /// When the call was answered.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<Timestamp>,
    /// When the call reached a terminal status.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Answered duration, whole seconds.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<DurationSeconds>,
    /// Why the call ended.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// Both apps' key_exchange signals have passed through this vault.
    pub key_exchange_complete: bool,
    /// Extension point for additive v1 fields.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub ext: Option<Extensions>,
}

impl crate::registry::Schema for CallRecord {
    const ID: &'static str = "calling/v1/call-record";
}

impl crate::registry::Schema for CallStatus {
    const ID: &'static str = "calling/v1/call-state";

    fn from_json(bytes: &[u8]) -> Result<Self, crate::ParseError> {
        crate::parse::from_json_value(bytes)
    }
}

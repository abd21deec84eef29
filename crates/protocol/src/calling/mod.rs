//! The calling module, v1: the call record and every message of the vault plan.
//!
//! | direction | subject | types |
//! | --- | --- | --- |
//! | app -> vault | `OwnerSpace.{guid}.forVault.call.<type>` | [`AppRequest`] |
//! | vault -> vault | `MessageSpace.{guid}.call.<type>` | [`PeerMessage`] |
//! | vault -> app | `OwnerSpace.{guid}.forApp.call.<type>` | [`AppNotification`] |
//!
//! Every message carries `type`, `message_id`, `call_id` (optional only in `call.error`),
//! `timestamp` and the optional extension point `ext`; vault-to-vault messages add `from_guid`,
//! notifications add `peer_guid`. Optional fields are omitted, never `null`.

mod envelope;
mod notification;
mod peer;
mod record;
mod request;

pub use envelope::{AppNotification, AppRequest, PeerMessage};
pub use notification::*;
pub use peer::*;
pub use record::CallRecord;
pub use request::*;

/// Zero-sized `type` tags: each serializes as its wire name and refuses any other value.
pub mod tags {
    wire_tags! {
        /// `"call.initiate"`
        Initiate = "call.initiate",
        /// `"call.initiated"`
        Initiated = "call.initiated",
        /// `"call.incoming"`
        Incoming = "call.incoming",
        /// `"call.ringing"`
        Ringing = "call.ringing",
        /// `"call.accept"`
        Accept = "call.accept",
        /// `"call.accepted"`
        Accepted = "call.accepted",
        /// `"call.reject"`
        Reject = "call.reject",
        /// `"call.rejected"`
        Rejected = "call.rejected",
        /// `"call.end"`
        End = "call.end",
        /// `"call.ended"`
        Ended = "call.ended",
        /// `"call.signal"`
        Signal = "call.signal",
        /// `"call.error"`
        Error = "call.error",
    }
}

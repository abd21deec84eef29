//! One enum per direction, so a shell can parse a message from its subject kind and bytes.

use crate::ParseError;
use crate::registry::Schema;
use crate::subject::{NotificationKind, PeerKind, RequestKind};
use crate::{CallId, MessageId, Timestamp};

use super::*;

macro_rules! envelope {
    ($(#[$doc:meta])* $name:ident, $kind:ident { $($variant:ident($ty:ty)),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $(#[doc = concat!("`", stringify!($variant), "`")] $variant($ty)),+
        }

        impl $name {
            /// Parses the message that the subject of `kind` carries.
            pub fn parse(kind: $kind, bytes: &[u8]) -> Result<Self, ParseError> {
                Ok(match kind {
                    $($kind::$variant => Self::$variant(<$ty>::from_json(bytes)?),)+
                })
            }

            /// The subject kind this message travels on.
            pub fn kind(&self) -> $kind {
                match self { $(Self::$variant(_) => $kind::$variant),+ }
            }

            /// The message's id.
            pub fn message_id(&self) -> &MessageId {
                match self { $(Self::$variant(m) => &m.message_id),+ }
            }

            /// When the sender created it.
            pub fn timestamp(&self) -> Timestamp {
                match self { $(Self::$variant(m) => m.timestamp),+ }
            }

            /// JSON bytes.
            pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
                match self { $(Self::$variant(m) => m.to_json()),+ }
            }

            /// The JSON, held as written (embedding it in another document copies it verbatim).
            pub fn to_raw_json(&self) -> Result<Box<serde_json::value::RawValue>, serde_json::Error> {
                match self { $(Self::$variant(m) => serde_json::value::to_raw_value(m)),+ }
            }
        }
    };
}

envelope!(
    /// A request from the user's app to its vault.
    AppRequest, RequestKind {
        Initiate(CallInitiateRequest),
        Accept(CallAcceptRequest),
        Reject(CallRejectRequest),
        End(CallEndRequest),
        Signal(CallSignalRequest),
    }
);

impl AppRequest {
    /// The call the request is about.
    pub fn call_id(&self) -> &CallId {
        match self {
            Self::Initiate(m) => &m.call_id,
            Self::Accept(m) => &m.call_id,
            Self::Reject(m) => &m.call_id,
            Self::End(m) => &m.call_id,
            Self::Signal(m) => &m.call_id,
        }
    }
}

envelope!(
    /// A message from a peer's vault.
    PeerMessage, PeerKind {
        Incoming(CallIncomingSignal),
        Ringing(CallRingingSignal),
        Accept(CallAcceptedSignal),
        Reject(CallRejectedSignal),
        End(CallEndedSignal),
        Signal(CallSignal),
    }
);

impl PeerMessage {
    /// The call the message is about.
    pub fn call_id(&self) -> &CallId {
        match self {
            Self::Incoming(m) => &m.call_id,
            Self::Ringing(m) => &m.call_id,
            Self::Accept(m) => &m.call_id,
            Self::Reject(m) => &m.call_id,
            Self::End(m) => &m.call_id,
            Self::Signal(m) => &m.call_id,
        }
    }

    /// The sender's guid as the message claims it (the vault checks it against the seal).
    pub fn from_guid(&self) -> &crate::Guid {
        match self {
            Self::Incoming(m) => &m.from_guid,
            Self::Ringing(m) => &m.from_guid,
            Self::Accept(m) => &m.from_guid,
            Self::Reject(m) => &m.from_guid,
            Self::End(m) => &m.from_guid,
            Self::Signal(m) => &m.from_guid,
        }
    }
}

envelope!(
    /// A notification from a vault to its user's app.
    AppNotification, NotificationKind {
        Initiated(CallInitiatedNotification),
        Incoming(CallIncomingNotification),
        Ringing(CallRingingNotification),
        Accepted(CallAcceptedNotification),
        Rejected(CallRejectedNotification),
        Ended(CallEndedNotification),
        Signal(CallSignalNotification),
        Error(CallErrorNotification),
    }
);

impl AppNotification {
    /// The call the notification is about (absent only for some errors).
    pub fn call_id(&self) -> Option<&CallId> {
        match self {
            Self::Initiated(m) => Some(&m.call_id),
            Self::Incoming(m) => Some(&m.call_id),
            Self::Ringing(m) => Some(&m.call_id),
            Self::Accepted(m) => Some(&m.call_id),
            Self::Rejected(m) => Some(&m.call_id),
            Self::Ended(m) => Some(&m.call_id),
            Self::Signal(m) => Some(&m.call_id),
            Self::Error(m) => m.call_id.as_ref(),
        }
    }
}

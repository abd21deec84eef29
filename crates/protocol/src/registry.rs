//! The Rust side of `_registry.json`: every schema id paired with its Rust type.
//!
//! `tests/schema_and_code_agree.rs` checks that this list and the registry file name the same
//! schemas, that each type's fields are exactly the schema's properties, and that schema and
//! parser accept and refuse the same documents.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ParseError;
use crate::calling::*;
use crate::connection::*;
use crate::fields::{CallStatus, PeerProfile};
use crate::messaging::*;
use crate::profile::*;

/// A Rust type that mirrors one JSON Schema.
pub trait Schema: Serialize + DeserializeOwned {
    /// The schema's id in `_registry.json`.
    const ID: &'static str;

    /// Cross-field rules (`dependentRequired` and the like); fields alone are checked by serde.
    fn check(&self) -> Result<(), ParseError> {
        Ok(())
    }

    /// Parses untrusted bytes.
    fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        crate::parse::from_json(bytes)
    }

    /// Serializes to JSON.
    fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// One registry entry as Rust sees it.
#[derive(Clone, Copy)]
pub struct Entry {
    /// Schema id, as in `_registry.json`.
    pub id: &'static str,
    /// Rust type name, as in `_registry.json`.
    pub rust_type: &'static str,
    /// The names the type reads: struct fields, or enum values.
    pub names: fn() -> Vec<&'static str>,
    /// Parses bytes and serializes the result again (for agreement and round-trip tests).
    pub reparse: fn(&[u8]) -> Result<serde_json::Value, ParseError>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id)
    }
}

fn reparse<T: Schema>(bytes: &[u8]) -> Result<serde_json::Value, ParseError> {
    let v = T::from_json(bytes)?;
    serde_json::to_value(&v).map_err(|e| ParseError::field("$", e.to_string()))
}

macro_rules! entries {
    ($(#[$doc:meta])* $list:ident: $($ty:ident),+ $(,)?) => {
        $(#[$doc])*
        pub const $list: &[Entry] = &[$(Entry {
            id: <$ty as Schema>::ID,
            rust_type: stringify!($ty),
            names: introspect::names::<$ty>,
            reparse: reparse::<$ty>,
        }),+];
    };
}

entries!(
    /// Every schema of the calling module with a Rust type.
    ENTRIES:
    CallStatus,
    CallRecord,
    CallInitiateRequest,
    CallAcceptRequest,
    CallRejectRequest,
    CallEndRequest,
    CallSignalRequest,
    CallIncomingSignal,
    CallRingingSignal,
    CallAcceptedSignal,
    CallRejectedSignal,
    CallEndedSignal,
    CallSignal,
    CallInitiatedNotification,
    CallIncomingNotification,
    CallRingingNotification,
    CallAcceptedNotification,
    CallRejectedNotification,
    CallEndedNotification,
    CallSignalNotification,
    CallErrorNotification,
    ConnectionRecord,
    ConnectionEntityState,
    PendingInvite,
    ConnectionInviteRequest,
    ConnectionConnectRequest,
    ConnectionListRequest,
    ConnectionRevokeRequest,
    ConnectionAcceptSignal,
    ConnectionInvitedNotification,
    ConnectionConnectedNotification,
    ConnectionAcceptedNotification,
    ConnectionListNotification,
    ConnectionRevokedNotification,
    ConnectionErrorNotification,
);

entries!(
    /// Every schema of the messaging module with a Rust type.
    MESSAGING_ENTRIES:
    MessageRecord,
    ConversationState,
    MessageSendRequest,
    MessageReadRequest,
    MessageDeleteRequest,
    MessageHistoryRequest,
    MessageRetentionRequest,
    MessageDeliver,
    MessageDelivered,
    MessageReadReceipt,
    MessageDeletedSignal,
    MessageSentNotification,
    MessageReceivedNotification,
    MessageDeliveredNotification,
    MessageReadNotification,
    MessageDeletedNotification,
    MessageHistoryNotification,
    MessageRetentionNotification,
    MessageErrorNotification,
);

entries!(
    /// Every schema of the profile module with a Rust type.
    PROFILE_ENTRIES:
    ProfileRecord,
    ProfileSetRequest,
    ProfileGetRequest,
    ProfileUpdate,
    ProfileUpdatedNotification,
    ProfileChangedNotification,
    ProfileShownNotification,
    ProfileErrorNotification,
);

/// Named sub-schemas (`common.json#/$defs/<name>`) that are objects with their own Rust type.
pub fn component_names(def: &str) -> Option<Vec<&'static str>> {
    match def {
        "peer_profile" => Some(introspect::names::<PeerProfile>()),
        "history_item" => Some(introspect::names::<HistoryItem>()),
        "seq_set" => Some(introspect::names::<SeqSet>()),
        "connection_summary" => Some(introspect::names::<crate::app::ConnectionSummary>()),
        _ => None,
    }
}

/// Reads the field (or variant) names serde's derive gives a type, without a value of it.
mod introspect {
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    struct Catch<'a>(&'a mut Vec<&'static str>);

    impl<'de> Deserializer<'de> for Catch<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("introspection only"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(fields);
            Err(de::Error::custom("introspection only"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(variants);
            Err(de::Error::custom("introspection only"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
        }
    }

    pub(super) fn names<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
        let mut out = Vec::new();
        let _ = T::deserialize(Catch(&mut out));
        out
    }
}

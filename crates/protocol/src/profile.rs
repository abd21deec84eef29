//! The profile module, v1: the user's display name and avatar, kept in the vault's `profile`
//! bucket and shared with connections when they change.
//!
//! | direction | subject | types |
//! | --- | --- | --- |
//! | app -> vault | `OwnerSpace.{guid}.forVault.profile.<kind>` | `set`, `get` |
//! | vault -> vault | `MessageSpace.{guid}.profile.update`, gift-wrapped, at least once | `update` |
//! | vault -> app | `OwnerSpace.{guid}.forApp.profile.<kind>` | `updated` (one's own), `changed` (a connection's), `shown`, `error` |
//!
//! Each profile is an entity named by its owner's guid (`guid`): one's own, and each
//! connection's as they last shared it. Its [`ProfileRecord`] is in the `profile` bucket under
//! that guid; the vault shows a connection by it (`call.incoming`'s `peer_profile`, the connection
//! list). An update older than the one kept (by `updated_at`) changes nothing.

use serde::{Deserialize, Serialize};

use crate::fields::{AvatarUrl, DisplayName, ErrorCode, ErrorText, Extensions, present};
use crate::{Guid, MessageId, Timestamp};

/// Zero-sized `type` tags.
pub mod tags {
    wire_tags! {
        /// `"profile.set"`
        Set = "profile.set",
        /// `"profile.get"`
        Get = "profile.get",
        /// `"profile.update"`
        Update = "profile.update",
        /// `"profile.updated"`
        Updated = "profile.updated",
        /// `"profile.changed"`
        Changed = "profile.changed",
        /// `"profile.shown"`
        Shown = "profile.shown",
        /// `"profile.error"`
        Error = "profile.error",
    }
}

/// A profile as a vault keeps it (`profile` bucket, key = its owner's guid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRecord {
    /// The name to show.
    pub display_name: DisplayName,
    /// The avatar, if any.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<AvatarUrl>,
    /// When its owner changed it.
    pub updated_at: Timestamp,
    /// Extension point for additive v1 fields.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub ext: Option<Extensions>,
}

impl crate::registry::Schema for ProfileRecord {
    const ID: &'static str = "profile/v1/profile-record";
}

message! {
    /// `profile.set`: change one's display name and avatar (absent: none); shared with every
    /// connection.
    ProfileSetRequest, tag profile::Set, schema "profile/v1/for-vault.profile.set" {
        /// One's own guid.
        guid: Guid,
        /// The name to show.
        display_name: DisplayName,
    } optional {
        /// The avatar.
        avatar_url: AvatarUrl,
    }
}

message! {
    /// `profile.get`: one's own profile, or a connection's as they last shared it.
    ProfileGetRequest, tag profile::Get, schema "profile/v1/for-vault.profile.get" {
        /// Whose.
        guid: Guid,
    } optional {}
}

message! {
    /// `profile.update`: a connection's new profile.
    ProfileUpdate, tag profile::Update, schema "profile/v1/message-space.profile.update" {
        /// Whose: the sender's.
        guid: Guid,
        /// The sender.
        from_guid: Guid,
        /// The name to show.
        display_name: DisplayName,
        /// When the sender changed it.
        updated_at: Timestamp,
    } optional {
        /// The avatar.
        avatar_url: AvatarUrl,
    }
}

message! {
    /// `profile.updated`: one's own profile changed (and goes to one's connections).
    ProfileUpdatedNotification, tag profile::Updated, schema "profile/v1/for-app.profile.updated" {
        /// The `profile.set` it answers.
        in_reply_to: MessageId,
        /// One's own guid.
        guid: Guid,
        /// The name.
        display_name: DisplayName,
        /// How many connections it goes to.
        #[serde(deserialize_with = "crate::fields::uint::<_, 1_000_000>")]
        shared_with: u64,
    } optional {
        /// The avatar.
        avatar_url: AvatarUrl,
    }
}

message! {
    /// `profile.changed`: a connection changed their profile.
    ProfileChangedNotification, tag profile::Changed, schema "profile/v1/for-app.profile.changed" {
        /// Whose.
        guid: Guid,
        /// The name to show now.
        display_name: DisplayName,
    } optional {
        /// The avatar.
        avatar_url: AvatarUrl,
    }
}

message! {
    /// `profile.shown`: the answer to `profile.get`.
    ProfileShownNotification, tag profile::Shown, schema "profile/v1/for-app.profile.shown" {
        /// The `profile.get` it answers.
        in_reply_to: MessageId,
        /// Whose.
        guid: Guid,
    } optional {
        /// The name (absent: never shared).
        display_name: DisplayName,
        /// The avatar.
        avatar_url: AvatarUrl,
    }
}

message! {
    /// `profile.error`: a request was refused.
    ProfileErrorNotification, tag profile::Error, schema "profile/v1/for-app.profile.error" {
        /// The request it answers (all zeros when it had no readable id).
        in_reply_to: MessageId,
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        message: ErrorText,
    } optional {
        /// The profile, when the request named one.
        guid: Guid,
    }
}

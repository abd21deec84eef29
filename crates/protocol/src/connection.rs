//! The connection messages of the calling module, v1: invites, acceptance, revocation and the
//! list, handled by the `connection` family.
//!
//! | direction | subject | types |
//! | --- | --- | --- |
//! | app -> vault | `OwnerSpace.{guid}.forVault.connection.<kind>` | `invite`, `connect`, `list`, `revoke` |
//! | vault -> vault | `MessageSpace.{guid}.connection.accept`, gift-wrapped | `accept` |
//! | vault -> app | `OwnerSpace.{guid}.forApp.connection.<kind>` | `invited`, `connected`, `accepted`, `list`, `revoked`, `error` |
//!
//! A connection is an entity named by the peer's guid; its [`ConnectionRecord`] is in the
//! `connections` bucket under that guid, where the kernel reads it to accept the peer's
//! messages. An invite is an entity named `invite-<nonce>` ([`PendingInvite`]), pending until it
//! is accepted, forgotten when it expires.

use serde::{Deserialize, Serialize};

use crate::app::{ConnectionState, ConnectionSummary};
use crate::fields::{DelegationText, DisplayName, ErrorCode, ErrorText, InviteNonce, InviteText, KeyHex, Reach};
use crate::{Guid, MessageId, Timestamp};

/// The most connections one `connection.list` answer carries.
pub const MAX_LIST: usize = 200;

/// Zero-sized `type` tags.
pub mod tags {
    wire_tags! {
        /// `"connection.invite"`
        Invite = "connection.invite",
        /// `"connection.connect"`
        Connect = "connection.connect",
        /// `"connection.list"`
        List = "connection.list",
        /// `"connection.revoke"`
        Revoke = "connection.revoke",
        /// `"connection.accept"`
        Accept = "connection.accept",
        /// `"connection.invited"`
        Invited = "connection.invited",
        /// `"connection.connected"`
        Connected = "connection.connected",
        /// `"connection.accepted"`
        Accepted = "connection.accepted",
        /// `"connection.revoked"`
        Revoked = "connection.revoked",
        /// `"connection.error"`
        Error = "connection.error",
    }
}

/// One connection as a vault keeps it (`connections` bucket, key = the peer's guid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRecord {
    /// The peer's guid.
    pub guid: Guid,
    /// The peer's identity key.
    pub user_key: KeyHex,
    /// The peer's vault key.
    pub vault_key: KeyHex,
    /// The peer's delegation of that vault key.
    pub delegation: DelegationText,
    /// The name their invite carried.
    pub display_name: DisplayName,
    /// Where their vault is reached.
    pub reach: Reach,
    /// Active or revoked.
    pub state: ConnectionState,
}

impl crate::registry::Schema for ConnectionRecord {
    const ID: &'static str = "calling/v1/connection-record";
}

/// The connection family's state of one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionEntityState {
    /// When it was made (or made again).
    pub connected_at: Timestamp,
    /// When the user revoked it.
    #[serde(default, deserialize_with = "crate::fields::present", skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

impl crate::registry::Schema for ConnectionEntityState {
    const ID: &'static str = "calling/v1/connection-state";
}

/// An invite the user made, kept until it expires: pending until someone accepts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingInvite {
    /// When it is void (and forgotten).
    pub expires_at: Timestamp,
    /// When someone accepted it (its nonce is used up).
    #[serde(default, deserialize_with = "crate::fields::present", skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<Timestamp>,
}

impl crate::registry::Schema for PendingInvite {
    const ID: &'static str = "calling/v1/pending-invite";
}

message! {
    /// `connection.invite`: record an invite the app signed.
    ConnectionInviteRequest, tag connection::Invite, schema "calling/v1/for-vault.connection.invite" {
        /// The user's own token.
        token: InviteText,
    } optional {}
}

message! {
    /// `connection.connect`: accept someone's invite, sending one's own token back.
    ConnectionConnectRequest, tag connection::Connect, schema "calling/v1/for-vault.connection.connect" {
        /// Theirs.
        token: InviteText,
        /// The user's own.
        mine: InviteText,
    } optional {}
}

message! {
    /// `connection.list`: the user's connections.
    ConnectionListRequest, tag connection::List, schema "calling/v1/for-vault.connection.list" {
    } optional {
        /// The page starts after this guid.
        after: Guid,
    }
}

message! {
    /// `connection.revoke`: revoke a connection.
    ConnectionRevokeRequest, tag connection::Revoke, schema "calling/v1/for-vault.connection.revoke" {
        /// Whom.
        peer_guid: Guid,
    } optional {}
}

message! {
    /// `connection.accept`: an invitee's vault accepts an invite of this vault's user.
    ConnectionAcceptSignal, tag connection::Accept, schema "calling/v1/message-space.connection.accept" {
        /// The invite's nonce.
        nonce: InviteNonce,
        /// The invitee's own token.
        token: InviteText,
        /// The invitee.
        from_guid: Guid,
    } optional {}
}

message! {
    /// `connection.invited`: the invite is recorded.
    ConnectionInvitedNotification, tag connection::Invited, schema "calling/v1/for-app.connection.invited" {
        /// The `connection.invite` it answers.
        in_reply_to: MessageId,
        /// When the invite is void.
        expires_at: Timestamp,
    } optional {}
}

message! {
    /// `connection.connected`: the inviter is a connection now.
    ConnectionConnectedNotification, tag connection::Connected, schema "calling/v1/for-app.connection.connected" {
        /// The `connection.connect` it answers.
        in_reply_to: MessageId,
        /// The inviter.
        peer_guid: Guid,
        /// Their name.
        display_name: DisplayName,
    } optional {}
}

message! {
    /// `connection.accepted`: someone accepted one of the user's invites.
    ConnectionAcceptedNotification, tag connection::Accepted, schema "calling/v1/for-app.connection.accepted" {
        /// The invitee.
        peer_guid: Guid,
        /// Their name.
        display_name: DisplayName,
    } optional {}
}

message! {
    /// `connection.list`: the user's connections.
    ConnectionListNotification, tag connection::List, schema "calling/v1/for-app.connection.list" {
        /// The `connection.list` it answers.
        in_reply_to: MessageId,
        /// Active and revoked, shown by their profiles, in guid order.
        #[serde(deserialize_with = "crate::fields::at_most::<_, ConnectionSummary, MAX_LIST>")]
        connections: Vec<ConnectionSummary>,
        /// Whether more follow the last.
        more: bool,
    } optional {}
}

message! {
    /// `connection.revoked`: the connection is revoked.
    ConnectionRevokedNotification, tag connection::Revoked, schema "calling/v1/for-app.connection.revoked" {
        /// The `connection.revoke` it answers.
        in_reply_to: MessageId,
        /// Whom.
        peer_guid: Guid,
    } optional {}
}

message! {
    /// `connection.error`: a connection request was refused.
    ConnectionErrorNotification, tag connection::Error, schema "calling/v1/for-app.connection.error" {
        /// The request it answers (all zeros when it had no readable id).
        in_reply_to: MessageId,
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        message: ErrorText,
    } optional {
        /// The connection, when the request named one.
        peer_guid: Guid,
    }
}

//! Every message of the messaging module.

use super::{ItemKey, MessageStatus, PageLimit, Reader, RetentionDays, SealedBody, Seq};
use crate::fields::{Direction, ErrorCode, ErrorText};
use crate::{Guid, MessageId, Timestamp};

// App -> vault, on `OwnerSpace.{guid}.forVault.message.<kind>`.

message! {
    /// `message.send`: send a sealed text to a connection. The app chooses the message_id, and a
    /// repeat of one the vault has taken is a duplicate.
    MessageSendRequest, tag messaging::Send, schema "messaging/v1/for-vault.message.send" {
        /// The conversation: the peer's guid.
        conversation: Guid,
        /// The text, sealed to the peer.
        body: SealedBody,
    } optional {}
}

message! {
    /// `message.read`: the user has seen the peer's messages up to `seq`.
    MessageReadRequest, tag messaging::Read, schema "messaging/v1/for-vault.message.read" {
        /// The conversation.
        conversation: Guid,
        /// The peer's last message shown.
        seq: Seq,
    } optional {}
}

message! {
    /// `message.delete`: delete a message here, and with `for_both` (one's own only) at the peer.
    MessageDeleteRequest, tag messaging::Delete, schema "messaging/v1/for-vault.message.delete" {
        /// The conversation.
        conversation: Guid,
        /// The message.
        item: ItemKey,
    } optional {
        /// Also at the peer (own messages only); false when absent.
        for_both: bool,
    }
}

message! {
    /// `message.history`: a page of the conversation, newest first.
    MessageHistoryRequest, tag messaging::History, schema "messaging/v1/for-vault.message.history" {
        /// The conversation.
        conversation: Guid,
    } optional {
        /// Only messages before this one (the last page's oldest).
        before: ItemKey,
        /// At most this many (and at most 50).
        limit: PageLimit,
    }
}

message! {
    /// `message.retention`: keep this conversation's messages only so many days.
    MessageRetentionRequest, tag messaging::Retention, schema "messaging/v1/for-vault.message.retention" {
        /// The conversation.
        conversation: Guid,
        /// Days, 1 to 90.
        days: RetentionDays,
    } optional {}
}

// Vault -> vault, on `MessageSpace.{guid}.message.<kind>`, gift-wrapped.

message! {
    /// `message.deliver`: a message for the peer's vault to store and show.
    MessageDeliver, tag messaging::Deliver, schema "messaging/v1/message-space.message.deliver" {
        /// The conversation from the receiver's side: the sender's guid.
        conversation: Guid,
        /// The sender.
        from_guid: Guid,
        /// Its number in the sender's conversation.
        seq: Seq,
        /// When the sender's vault took it.
        sent_at: Timestamp,
        /// The text, sealed app to app.
        body: SealedBody,
    } optional {}
}

message! {
    /// `message.delivered`: the receiver's vault stored message `seq`.
    MessageDelivered, tag messaging::Delivered, schema "messaging/v1/message-space.message.delivered" {
        /// The conversation from the receiver's side.
        conversation: Guid,
        /// The vault that stored it.
        from_guid: Guid,
        /// The message.
        seq: Seq,
    } optional {}
}

message! {
    /// `message.read`: the receiver's app showed messages up to `seq`.
    MessageReadReceipt, tag messaging::Read, schema "messaging/v1/message-space.message.read" {
        /// The conversation from the receiver's side.
        conversation: Guid,
        /// The reader.
        from_guid: Guid,
        /// The last message shown.
        seq: Seq,
    } optional {}
}

message! {
    /// `message.deleted`: the sender deleted its message `seq` for both.
    MessageDeletedSignal, tag messaging::Deleted, schema "messaging/v1/message-space.message.deleted" {
        /// The conversation from the receiver's side.
        conversation: Guid,
        /// The sender.
        from_guid: Guid,
        /// The message.
        seq: Seq,
        /// When it was sent (with `seq`, its item key).
        sent_at: Timestamp,
    } optional {}
}

// Vault -> app, on `OwnerSpace.{guid}.forApp.message.<kind>`.

message! {
    /// `message.sent`: the vault stored the message and is delivering it.
    MessageSentNotification, tag messaging::Sent, schema "messaging/v1/for-app.message.sent" {
        /// The `message.send` it answers.
        in_reply_to: MessageId,
        /// The conversation.
        conversation: Guid,
        /// Its key in the conversation.
        item: ItemKey,
        /// Its number.
        seq: Seq,
        /// When the vault took it.
        sent_at: Timestamp,
    } optional {
        /// The text, sealed (so the user's other apps show it too); absent in the answer to a
        /// repeat.
        body: SealedBody,
    }
}

message! {
    /// `message.received`: a message from the peer, stored.
    MessageReceivedNotification, tag messaging::Received, schema "messaging/v1/for-app.message.received" {
        /// The conversation.
        conversation: Guid,
        /// Its key in the conversation.
        item: ItemKey,
        /// Its number in the peer's conversation.
        seq: Seq,
        /// When the peer's vault took it.
        sent_at: Timestamp,
        /// The message_id the peer's app gave it (the sealed body is bound to it).
        sent_message_id: MessageId,
        /// The text, sealed app to app.
        body: SealedBody,
    } optional {}
}

message! {
    /// `message.delivered`: the peer's vault stored one's message `seq`.
    MessageDeliveredNotification, tag messaging::Delivered, schema "messaging/v1/for-app.message.delivered" {
        /// The conversation.
        conversation: Guid,
        /// The message.
        seq: Seq,
    } optional {}
}

message! {
    /// `message.read`: messages up to `seq` were read, by the peer (one's own) or on one of
    /// one's apps (the peer's).
    MessageReadNotification, tag messaging::Read, schema "messaging/v1/for-app.message.read" {
        /// The conversation.
        conversation: Guid,
        /// Who read.
        reader: Reader,
        /// Read up to this message (of the other side's numbering).
        seq: Seq,
    } optional {}
}

message! {
    /// `message.deleted`: a message is gone from this vault.
    MessageDeletedNotification, tag messaging::Deleted, schema "messaging/v1/for-app.message.deleted" {
        /// The conversation.
        conversation: Guid,
        /// The message.
        item: ItemKey,
    } optional {
        /// The request it answers, when one of the user's apps asked.
        in_reply_to: MessageId,
    }
}

/// One message of a history page.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryItem {
    /// Its key in the conversation.
    pub item: ItemKey,
    /// Own or the peer's.
    pub direction: Direction,
    /// Its number in its sender's conversation.
    pub seq: Seq,
    /// When its sender's vault took it.
    pub sent_at: Timestamp,
    /// The message_id its sender's app gave it.
    pub sent_message_id: MessageId,
    /// Where it is.
    pub status: MessageStatus,
    /// The text, sealed app to app.
    pub body: SealedBody,
}

message! {
    /// `message.history`: a page of the conversation, newest first.
    MessageHistoryNotification, tag messaging::History, schema "messaging/v1/for-app.message.history" {
        /// The request it answers.
        in_reply_to: MessageId,
        /// The conversation.
        conversation: Guid,
        /// The messages, newest first (at most 50).
        #[serde(deserialize_with = "crate::fields::at_most::<_, _, 50>")]
        messages: Vec<HistoryItem>,
        /// Whether older messages follow (ask with `before` = the last item).
        more: bool,
    } optional {
        /// The conversation's retention in days, if the user set one.
        retention_days: RetentionDays,
    }
}

message! {
    /// `message.retention`: the conversation's retention is set.
    MessageRetentionNotification, tag messaging::Retention, schema "messaging/v1/for-app.message.retention" {
        /// The request it answers.
        in_reply_to: MessageId,
        /// The conversation.
        conversation: Guid,
        /// Days.
        days: RetentionDays,
    } optional {}
}

message! {
    /// `message.error`: a request was refused.
    MessageErrorNotification, tag messaging::Error, schema "messaging/v1/for-app.message.error" {
        /// The request it answers (all zeros when it had no readable id).
        in_reply_to: MessageId,
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        message: ErrorText,
    } optional {
        /// The conversation, when the request named one.
        conversation: Guid,
    }
}

//! Vault -> app notifications, on `OwnerSpace.{guid}.forApp.call.<type>`.

use crate::fields::{
    CallType, DurationSeconds, EndReason, EndedStatus, ErrorCode, ErrorText, PeerProfile, PublicKey, RejectReason,
    SignalPayload, SignalType,
};
use crate::{CallId, Guid, KeyId, MessageId};

message! {
    /// `call.initiated`: the vault stored the outgoing call and sent it to the peer.
    CallInitiatedNotification, tag Initiated, schema "calling/v1/for-app.call.initiated" {
        /// The call.
        call_id: CallId,
        /// The callee.
        peer_guid: Guid,
        /// Audio or video.
        call_type: CallType,
    } optional {}
}

message! {
    /// `call.incoming`: a connection is calling.
    CallIncomingNotification, tag Incoming, schema "calling/v1/for-app.call.incoming" {
        /// The call.
        call_id: CallId,
        /// The caller.
        peer_guid: Guid,
        /// Audio or video.
        call_type: CallType,
        /// How to show the caller, from the connections bucket.
        #[serde(deserialize_with = "crate::fields::object")]
        peer_profile: PeerProfile,
    } optional {
        /// Our own outgoing call to this peer that this call supersedes (glare).
        replaces_call_id: CallId,
    }
}

message! {
    /// `call.ringing`: the peer's app is ringing.
    CallRingingNotification, tag Ringing, schema "calling/v1/for-app.call.ringing" {
        /// The call.
        call_id: CallId,
        /// The callee.
        peer_guid: Guid,
    } optional {}
}

message! {
    /// `call.accepted`: the call is answered. `public_key`/`key_id` (both or neither) are the
    /// peer's and present when the peer accepted; the callee's own confirmation has neither.
    CallAcceptedNotification, tag Accepted, schema "calling/v1/for-app.call.accepted", check key_pair_complete {
        /// The call.
        call_id: CallId,
        /// The other party.
        peer_guid: Guid,
    } optional {
        /// The peer's ephemeral public key.
        public_key: PublicKey,
        /// Its id.
        key_id: KeyId,
    }
}

message! {
    /// `call.rejected`: the call was refused.
    CallRejectedNotification, tag Rejected, schema "calling/v1/for-app.call.rejected" {
        /// The call.
        call_id: CallId,
        /// The other party.
        peer_guid: Guid,
        /// Declined, busy or glare.
        reason: RejectReason,
    } optional {
        /// The call that superseded this one (glare).
        replaced_by: CallId,
    }
}

message! {
    /// `call.ended`: the call is over.
    CallEndedNotification, tag Ended, schema "calling/v1/for-app.call.ended" {
        /// The call.
        call_id: CallId,
        /// The other party.
        peer_guid: Guid,
        /// Ended after an answer, or missed.
        status: EndedStatus,
        /// Why.
        reason: EndReason,
    } optional {
        /// Present exactly when status is `ended`.
        duration_seconds: DurationSeconds,
    }
}

message! {
    /// `call.signal`: a sealed signal from the peer's app.
    CallSignalNotification, tag Signal, schema "calling/v1/for-app.call.signal" {
        /// The call.
        call_id: CallId,
        /// The sender.
        peer_guid: Guid,
        /// What the payload carries.
        signal_type: SignalType,
        /// Sealed to this user's identity key.
        payload: SignalPayload,
    } optional {}
}

message! {
    /// `call.error`: the vault refused an app request.
    CallErrorNotification, tag Error, schema "calling/v1/for-app.call.error" {
        /// The refused request's message_id.
        in_reply_to: MessageId,
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        message: ErrorText,
    } optional {
        /// The call concerned, when there is one.
        call_id: CallId,
    }
}

/// `dependentRequired`: `public_key` and `key_id` come together or not at all.
fn key_pair_complete(n: &CallAcceptedNotification) -> Result<(), crate::ParseError> {
    match (&n.public_key, &n.key_id) {
        (Some(_), None) => Err(crate::ParseError::field("key_id", "required when public_key is present")),
        (None, Some(_)) => Err(crate::ParseError::field("public_key", "required when key_id is present")),
        _ => Ok(()),
    }
}

//! App -> vault requests, on `OwnerSpace.{guid}.forVault.call.<type>`.

use crate::fields::{CallType, PublicKey, RejectReason, SignalPayload, SignalType};
use crate::{CallId, Guid, KeyId};

message! {
    /// `call.initiate`: call a connection. The app chooses the call_id.
    CallInitiateRequest, tag Initiate, schema "calling/v1/for-vault.call.initiate" {
        /// The new call's id.
        call_id: CallId,
        /// The connection to call.
        peer_guid: Guid,
        /// Audio or video.
        call_type: CallType,
    } optional {}
}

message! {
    /// `call.accept`: answer a ringing incoming call with an ephemeral E2EE public key.
    CallAcceptRequest, tag Accept, schema "calling/v1/for-vault.call.accept" {
        /// The call to answer.
        call_id: CallId,
        /// Base64 ECDH public key for the call's E2EE.
        public_key: PublicKey,
        /// Id of that key.
        key_id: KeyId,
    } optional {}
}

message! {
    /// `call.reject`: decline a ringing incoming call.
    CallRejectRequest, tag Reject, schema "calling/v1/for-vault.call.reject" {
        /// The call to decline.
        call_id: CallId,
    } optional {
        /// Why; `declined` when absent.
        reason: RejectReason,
    }
}

message! {
    /// `call.end`: hang up, or cancel an unanswered outgoing call.
    CallEndRequest, tag End, schema "calling/v1/for-vault.call.end" {
        /// The call to end.
        call_id: CallId,
    } optional {}
}

message! {
    /// `call.signal`: a sealed signal for the peer's app.
    CallSignalRequest, tag Signal, schema "calling/v1/for-vault.call.signal" {
        /// The call it belongs to.
        call_id: CallId,
        /// What the sealed payload carries.
        signal_type: SignalType,
        /// The sealed payload.
        payload: SignalPayload,
    } optional {}
}

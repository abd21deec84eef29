//! Vault -> vault messages, on `MessageSpace.{guid}.call.<type>`, always inside a gift wrap.
//!
//! `from_guid` must equal the author of the seal that carried the message; the vault checks that
//! before a message reaches the call state machine.

use crate::fields::{CallType, DurationSeconds, HangupReason, PublicKey, RejectReason, SignalPayload, SignalType};
use crate::{CallId, Guid, KeyId};

message! {
    /// `call.incoming`: the caller's vault announces a call.
    CallIncomingSignal, tag Incoming, schema "calling/v1/message-space.call.incoming" {
        /// The call's id.
        call_id: CallId,
        /// The caller.
        from_guid: Guid,
        /// Audio or video.
        call_type: CallType,
    } optional {}
}

message! {
    /// `call.ringing`: the callee's app is ringing.
    CallRingingSignal, tag Ringing, schema "calling/v1/message-space.call.ringing" {
        /// The call.
        call_id: CallId,
        /// The callee.
        from_guid: Guid,
    } optional {}
}

message! {
    /// `call.accept`: the callee answered; carries the callee's public key.
    CallAcceptedSignal, tag Accept, schema "calling/v1/message-space.call.accept" {
        /// The call.
        call_id: CallId,
        /// The callee.
        from_guid: Guid,
        /// The callee's ephemeral public key.
        public_key: PublicKey,
        /// Its id.
        key_id: KeyId,
    } optional {}
}

message! {
    /// `call.reject`: the callee's vault refuses the call.
    CallRejectedSignal, tag Reject, schema "calling/v1/message-space.call.reject" {
        /// The call.
        call_id: CallId,
        /// The callee.
        from_guid: Guid,
        /// Declined, busy or glare.
        reason: RejectReason,
    } optional {}
}

message! {
    /// `call.end`: the sender's side of the call is over.
    CallEndedSignal, tag End, schema "calling/v1/message-space.call.end" {
        /// The call.
        call_id: CallId,
        /// The sender.
        from_guid: Guid,
        /// Who or what ended it.
        reason: HangupReason,
    } optional {
        /// Present exactly when the sender saw the call answered.
        duration_seconds: DurationSeconds,
    }
}

message! {
    /// `call.signal`: a sealed app-to-app signal relayed by the vaults.
    CallSignal, tag Signal, schema "calling/v1/message-space.call.signal" {
        /// The call.
        call_id: CallId,
        /// The sender.
        from_guid: Guid,
        /// What the payload carries.
        signal_type: SignalType,
        /// Sealed to the peer user's identity key.
        payload: SignalPayload,
    } optional {}
}

//! What the state machine refuses, and what it did with what it accepted.

use std::fmt;

use callvault_protocol::CallId;
use callvault_protocol::fields::{CallStatus, ErrorCode};

/// An event that can be refused in some state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// App `call.accept`.
    AppAccept,
    /// App `call.reject`.
    AppReject,
    /// App `call.end`.
    AppEnd,
    /// App `call.signal`.
    AppSignal,
    /// Peer `call.ringing`.
    PeerRinging,
    /// Peer `call.accept`.
    PeerAccept,
    /// Peer `call.reject`.
    PeerReject,
    /// Peer `call.signal`.
    PeerSignal,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AppAccept => "accept from the app",
            Self::AppReject => "reject from the app",
            Self::AppEnd => "end from the app",
            Self::AppSignal => "signal from the app",
            Self::PeerRinging => "ringing from the peer",
            Self::PeerAccept => "accept from the peer",
            Self::PeerReject => "reject from the peer",
            Self::PeerSignal => "signal from the peer",
        })
    }
}

/// Why an input was refused. A refused input changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No call with that id.
    #[error("no call {call_id}")]
    UnknownCall {
        /// The id asked for.
        call_id: CallId,
    },
    /// A different call already has that id.
    #[error("call {call_id} already exists")]
    DuplicateCall {
        /// The id.
        call_id: CallId,
    },
    /// The call is in a state where the event makes no sense.
    #[error("{event} is not allowed for call {call_id} in state {status}")]
    InvalidTransition {
        /// The call.
        call_id: CallId,
        /// Its status.
        status: CallStatus,
        /// What was refused.
        event: Event,
    },
    /// The message's sender is not the call's peer.
    #[error("call {call_id} belongs to another peer")]
    WrongPeer {
        /// The call.
        call_id: CallId,
    },
    /// Another call is active; one active call at a time.
    #[error("call {active} is active; end it first")]
    AlreadyInCall {
        /// The active call.
        active: CallId,
    },
    /// An unanswered outgoing call to the same peer exists.
    #[error("call {existing} to this peer is already ringing")]
    CallInProgress {
        /// The existing call.
        existing: CallId,
    },
    /// The peer's call to us is ringing and survives glare; accept that one instead.
    #[error("the peer's call {surviving} survives glare; accept it instead")]
    Glare {
        /// The peer's call.
        surviving: CallId,
    },
    /// A `call.incoming` too old (or too far in the future) to ring.
    #[error("call {call_id} was announced too long ago (or in the future)")]
    Stale {
        /// The call.
        call_id: CallId,
    },
    /// Too many peer signals arrived before the accept they overtook.
    #[error("too many signals buffered for call {call_id}")]
    SignalBufferFull {
        /// The call.
        call_id: CallId,
    },
    /// The peer is the local user.
    #[error("a user cannot call themself")]
    SelfCall,
    /// As many calls as the vault takes at once are ringing or active.
    #[error("{limit} calls are ringing or active; no more for now")]
    TooManyCalls {
        /// The limit ([`crate::CallConfig::max_unsettled`]).
        limit: usize,
    },
}

impl CallError {
    /// The code an app sees in `call.error`.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownCall { .. } => ErrorCode::UnknownCall,
            Self::DuplicateCall { .. } => ErrorCode::DuplicateCall,
            Self::InvalidTransition { .. } | Self::WrongPeer { .. } => ErrorCode::InvalidState,
            Self::AlreadyInCall { .. } => ErrorCode::AlreadyInCall,
            Self::CallInProgress { .. } => ErrorCode::CallInProgress,
            Self::Glare { .. } => ErrorCode::Glare,
            Self::Stale { .. } => ErrorCode::Stale,
            Self::SignalBufferFull { .. } => ErrorCode::SignalBufferFull,
            Self::SelfCall => ErrorCode::SelfCall,
            Self::TooManyCalls { .. } => ErrorCode::Busy,
        }
    }
}

/// What happened to an accepted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// It changed state or produced outputs.
    Applied,
    /// Its message_id was already processed: no second effect.
    Duplicate,
    /// It arrived late (the call already moved past it) and has no effect.
    Ignored,
}

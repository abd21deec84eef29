//! The call lifecycle, one vault's view, as a sans-IO state machine.
//!
//! A [`Switchboard`] holds the calls of one user's vault. It never touches a clock, a socket, a
//! store or a random source: the vault shell feeds it [`Input`]s with the current time and drains
//! the [`Output`]s it asks for.
//!
//! ```text
//! loop {
//!     sb.handle(now, input)?;            // an app request, a peer vault's message, or a tick
//!     while let Some(o) = sb.poll_output() {
//!         match o {
//!             Output::Store(call)       => /* write call.record() to the calls bucket */,
//!             Output::SendToPeer {..}   => /* seal and publish to MessageSpace.{peer}.call.<type> */,
//!             Output::NotifyApp(n)      => /* publish to OwnerSpace.{guid}.forApp.call.<type> */,
//!             Output::WakeAt(t)         => /* feed Input::Tick at or after t */,
//!         }
//!     }
//! }
//! ```
//!
//! Outputs come in the order they must be performed: a call's `Store` comes before the messages
//! that announce its new state, so a crash between them never announces unstored state.
//!
//! # States
//!
//! `initiating -> ringing -> active -> ended` on the caller, `ringing -> active -> ended` on the
//! callee; `missed` and `rejected` end unanswered calls. Terminal states never change.
//!
//! # Who decides
//!
//! The callee's vault decides how a ringing call ends: answered, declined, busy, glare, or missed
//! (its ring timeout, or the caller's cancel arriving while it still rings). The caller's cancel
//! and the caller's own ring timeout are requests: the caller tells its app at once, keeps the
//! record unanswered with a pending end, and takes the callee's verdict as the final status
//! (falling back to its own after [`CallConfig::verdict_grace`]). This is what makes both records
//! agree when a cancel and an accept cross on the wire. Once a call is active, either side may
//! end it.
//!
//! See `docs/PROTOCOL.md` for the diagram, the glare rule and the busy policy.
#![forbid(unsafe_code)]

pub mod abi;
mod call;
mod config;
mod error;
mod switchboard;

pub use call::{Call, Pending, PendingCause};
pub use config::CallConfig;
pub use error::{CallError, Disposition, Event};
pub use switchboard::{Input, Output, RestoreError, Switchboard};

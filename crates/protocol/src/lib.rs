//! Wire types of the callvault protocol.
//!
//! The JSON Schemas under `protocol/schemas/modules/calling/v1/` are the source of truth; this crate
//! holds one Rust type per schema ([`registry`] lists the pairs) and a parser that refuses exactly
//! what the schemas refuse. The test `tests/schema_and_code_agree.rs` holds both to that.
//!
//! - [`ids`]: [`Guid`], [`CallId`], [`MessageId`], [`KeyId`], parsed once at the edge.
//! - [`Timestamp`]: RFC 3339 instants with arithmetic that cannot panic.
//! - [`calling`]: the call record and every message of the calling module.
//! - [`connection`]: the connection messages (invites, acceptance, revocation, the list).
//! - [`messaging`]: the messaging module's messages, its record and conversation state.
//! - [`profile`]: the profile module's messages and record.
//! - [`subject`]: the NATS subjects the messages travel on.
//! - [`family`]: the subjects of every handler family, typed.
//! - [`ParseError`]: what a refused message was refused for, naming the field.
#![forbid(unsafe_code)]

#[macro_use]
mod macros;
pub mod app;
pub mod calling;
pub mod connection;
pub mod family;
pub mod fields;
pub mod ids;
pub mod messaging;
mod parse;
pub mod profile;
pub mod ratelog;
pub mod redact;
pub mod registry;
pub mod subject;
mod timestamp;

pub use ids::{CallId, Guid, IdError, KeyId, MessageId};
pub use parse::{MAX_MESSAGE_BYTES, ParseError};
pub use timestamp::{Timestamp, TimestampError};

//! The vault kernel's pure part: what a handler family is, what crosses the handler ABI, and
//! the per-entity bookkeeping the vault keeps (indexes and timers). No I/O: the vault shell
//! (`crates/vault`) runs it on a bus and a store.
//!
//! A **family** is a WASM module and its [`Manifest`]: the handlers it exports, the subjects
//! each takes, the entity every event names, the indexes a handler is given, its peer policy
//! and its state version. The kernel knows no family by name.
//!
//! Every event names one **entity** (a call, a conversation). The handler gets that entity's
//! state and the members of the small indexes its manifest asks for ([`Input`]), never every
//! entity, and answers with outputs as data ([`Output`]): store an entity (its state, the tags
//! that put it in indexes, its timer, records for the user's history), send to a peer vault,
//! notify the apps, count. [`Index`] keeps the tags and timers of the entities that have any.
#![forbid(unsafe_code)]

pub mod abi;
mod entity;
pub mod guest;
mod index;
pub mod manifest;

pub use abi::{
    ConnectionInfo, EntityState, Event, Input, Json, Outcome, Output, OutputItem, Page, PageRecord, Record,
    VerifiedToken, WireMessage,
};
pub use entity::{EntityError, EntityKey, Tag};
pub use index::{Index, Meta};
pub use manifest::{HandlerId, HandlerSpec, Manifest, ManifestError, PageSpec, PeerPolicy, TokenSpec, render};

//! The vault of one user (see ARCHITECTURE.md): provisions its buckets, runs the call handlers,
//! seals vault-to-vault messages, and keeps the user's connections.
//!
//! This crate grows with the vault issue; today it holds [`permissions`], the nats-server
//! authorization that confines each vault and the gateway to their own subjects, and [`runtime`],
//! which runs the WASM call handlers under wasmi with fuel and memory limits.
#![forbid(unsafe_code)]

pub mod admin;
pub mod connections;
pub mod host;
pub mod invite;
pub mod manager;
pub mod modules;
pub mod permissions;
pub mod runtime;
pub mod stats;
mod writer;

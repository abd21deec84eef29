//! End-to-end encrypted media for 1:1 calls (`docs/MEDIA.md`).
//!
//! - [`peer`]: the sans-IO core: a str0m peer connection in frame mode, Opus, and SFrame on every
//!   encoded frame with the call's keys from `callvault-crypto`.
//! - [`audio`]: tone sources, WAV files, tone detection.
//! - [`shell`]: the socket and timer loop around a [`peer::MediaPeer`].
//! - [`turn`]: a TURN client (relay-only calls) and its shell.
//! - [`call`]: a whole call for a Rust app: signalling through the vaults, keys, media.
#![forbid(unsafe_code)]

pub mod audio;
pub mod call;
pub mod peer;
pub mod shell;
pub mod turn;

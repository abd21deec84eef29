//! The app gateway (see `docs/APP-API.md`): one WebSocket per app connection, authenticated by a
//! challenge the app signs with its identity key; registration creates the user's vault. After
//! authentication an app publishes only into its own `OwnerSpace.{guid}.forVault.>` and receives
//! only its own `OwnerSpace.{guid}.forApp.>`. Also: TURN credentials (TURN REST scheme), `/healthz`,
//! `/readyz` and Prometheus `/metrics`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod server;
pub mod turn;

pub use listener::{ListenConfig, Peer, serve};
pub use server::{Gateway, GatewayConfig};
pub use turn::{TurnConfig, TurnError};

//! The app gateway (see `docs/APP-API.md`): one WebSocket per app connection, authenticated by a
//! challenge the app signs with its identity key; registration creates the user's vault. After
//! authentication an app publishes only into its own `OwnerSpace.{guid}.forVault.>` and receives
//! only its own `OwnerSpace.{guid}.forApp.>`. Also: TURN credentials (TURN REST scheme), `/healthz`,
//! `/readyz` and Prometheus `/metrics`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod turn;

pub use server::{Gateway, GatewayConfig};
pub use turn::{TurnConfig, TurnError};

/// `listener` with TCP_NODELAY set on every accepted connection: app frames are small and
/// latency-bound, so they go out at once instead of waiting on Nagle's algorithm.
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|s: &mut tokio::net::TcpStream| {
        if let Err(e) = s.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    })
}

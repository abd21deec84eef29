//! The gateway's listening socket, as `serve` runs it.
//!
//! Accepts TCP connections under caps (in total and per source: an IPv4 address or an IPv6 /64),
//! serves HTTP/1.1 on each with a deadline for a request's head ([`ListenConfig::header_timeout`]:
//! a client that sends half a request, or nothing, is closed), and hands each request its
//! [`Peer`]: where it came from, when it was accepted, and its place under the caps. A WebSocket
//! session keeps that place while it lasts, so the caps count app sessions too. Past a cap a new
//! connection is closed at once and counted (`callvault_gateway_connections_refused_total`).

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

use crate::limits::{CapError, CapSlot, Caps, source_of};
use crate::metrics::GatewayMetrics;
use callvault_protocol::ratelog::RateLimitedLog;
use callvault_protocol::redact::Scrubbed;

/// Caps and deadlines of the listening socket.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Connections held at once, HTTP and WebSocket together (clamped below the process's limit
    /// of open files).
    pub max_connections: usize,
    /// Connections one source holds at once.
    pub max_connections_per_source: usize,
    /// How long a client has to send a whole request head (first request and each one after).
    pub header_timeout: Duration,
    /// Reverse proxies (a TLS terminator) whose connections carry many clients: they are held
    /// only to the total cap, and their requests' source is the last `X-Forwarded-For` address.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_source: 64,
            header_timeout: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
        }
    }
}

/// How long an HTTP connection lives at most (WebSocket sessions are not HTTP connections any
/// more once upgraded: their own limits apply).
pub const HTTP_LIFETIME: Duration = Duration::from_secs(60);

/// Where a request came from, as the listener saw it; in every request's extensions.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The source the per-source caps count (never logged).
    pub source: IpAddr,
    /// When the connection was accepted.
    pub accepted: tokio::time::Instant,
    /// The connection's place under the caps, held by whatever still serves it.
    pub slot: Arc<CapSlot<IpAddr>>,
    /// Requests seen on the connection so far, this one included.
    pub requests_seen: Arc<std::sync::atomic::AtomicU32>,
    /// The connection comes from a trusted proxy: the client is named by `X-Forwarded-For`.
    pub via_proxy: bool,
}

impl Peer {
    /// The source of the client behind this request: the connection's, or for a trusted proxy
    /// the last address of `X-Forwarded-For` (the one the proxy saw). None: a trusted proxy that
    /// names no client.
    pub fn client(&self, headers: &axum::http::HeaderMap) -> Option<IpAddr> {
        if !self.via_proxy {
            return Some(self.source);
        }
        let last = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?.rsplit(',').next()?;
        last.trim().parse::<IpAddr>().ok().map(source_of)
    }

    /// Requests seen on the connection so far, this one included.
    pub fn requests(&self) -> u32 {
        self.requests_seen.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Open files this process may hold (the soft limit), from `/proc/self/limits`; none elsewhere.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The total cap actually used: the configured one, or fewer when the limit of open files would
/// be reached first (256 files are kept for stores, the bus and logs).
pub fn effective_max_connections(configured: usize) -> usize {
    match open_files_limit() {
        Some(files) => configured.min(files.saturating_sub(256).max(16)),
        None => configured,
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, asks every
/// HTTP connection to finish its request and close, and waits up to `grace` for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ListenConfig,
    metrics: Arc<GatewayMetrics>,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) {
    let total = effective_max_connections(config.max_connections);
    if total < config.max_connections {
        tracing::warn!(
            configured = config.max_connections,
            used = total,
            "max_connections lowered to fit the limit of open files (raise it with ulimit -n)"
        );
    }
    let caps: Arc<Caps<IpAddr>> = Caps::new(total, config.max_connections_per_source);
    let (stop_tx, stop_rx) = watch::channel(false);
    let refused_log = RateLimitedLog::per_second(1);
    let accept_log = RateLimitedLog::per_second(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of files or a similar passing failure: say so (rarely), breathe, go on.
                if let Some(suppressed) = accept_log.allow() {
                    tracing::warn!(error = %Scrubbed(&e), suppressed, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let source = source_of(addr.ip());
        let via_proxy = config.trusted_proxies.contains(&addr.ip());
        let taken = if via_proxy { caps.take_under_total(source) } else { caps.take(source) };
        let slot = match taken {
            Ok(s) => Arc::new(s),
            Err(why) => {
                let reason = match why {
                    CapError::Total => "total",
                    CapError::PerKey => "per_source",
                };
                metrics.connections_refused(why);
                if let Some(suppressed) = refused_log.allow() {
                    tracing::info!(cap = reason, suppressed, "connection over a cap closed");
                }
                drop(stream);
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %Scrubbed(&e), "TCP_NODELAY not set");
        }
        let peer =
            Peer { source, accepted: tokio::time::Instant::now(), slot, requests_seen: Arc::default(), via_proxy };
        tokio::spawn(serve_connection(stream, peer, router.clone(), config.header_timeout, stop_rx.clone()));
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(stop_rx);
    if tokio::time::timeout(grace, stop_tx.closed()).await.is_err() {
        tracing::info!("HTTP connections still open after the grace period");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: Peer,
    router: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        peer.requests_seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        req.extensions_mut().insert(peer.clone());
        let mut router = router.clone();
        async move { Ok::<_, Infallible>(router.call(req).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::trace!(error = %Scrubbed(&e), "HTTP connection ended");
            }
            return;
        }
        // Shutting down (or the listener is gone).
        () = stopping => {}
        // An HTTP connection (one that became a WebSocket has ended here already) lives at most
        // this long: a client that stops reading an answer cannot hold its place for good.
        () = tokio::time::sleep(HTTP_LIFETIME) => {}
    }
    // Finish the request in hand, then close; a client that will not take the answer is dropped.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(header_timeout, conn.as_mut()).await;
}

//! The HTTP side: the app WebSocket (`/app`), `GET /calls/turn-credentials`, `/healthz`,
//! `/readyz`, `/metrics`, and the browser client's files.
//!
//! Before authentication a socket has one deadline, counted from accept
//! ([`GatewayConfig::auth_timeout`]), for the challenge's answer and any registration; any bad
//! frame in that phase closes it; sockets not yet authenticated are capped in total and per
//! source, and each source has a budget of logins. After `ready`, an identity's frames share one
//! rate budget across its connections (kept after they close until it refills). What is sent to
//! an app goes through a bounded queue drained by a writer with a send deadline: an app that does
//! not read is closed (`slow_consumer`) instead of holding the server's memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use bytes::Bytes;
use callvault_bus::{Bus, Subscription};
use callvault_crypto::{Delegation, PublicIdentity};
use callvault_protocol::app::{AppErrorCode, AppFrame, Limits, ServerFrame, app_may_publish};
use callvault_protocol::fields::DisplayName;
use callvault_protocol::ratelog::RateLimitedLog;
use callvault_protocol::redact::Redacted;
use callvault_protocol::redact::Scrubbed;
use callvault_protocol::{Guid, MAX_MESSAGE_BYTES};
use callvault_store::Store;
use callvault_vault::host::{Account, HostError, VaultHost};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::auth::{self, AuthError, SeenNotes};
use crate::limits::{CapSlot, Caps, KeyedBuckets};
use crate::listener::Peer;
use crate::metrics::{self, GatewayMetrics};
use crate::turn::{TurnConfig, TurnError};

/// Log lines about refused frames: at most this many a second, process-wide.
static REFUSALS: RateLimitedLog = RateLimitedLog::per_second(10);

/// The browser client's E2EE module (`crates/e2ee-wasm`, built by this crate's build script).
pub const E2EE_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/e2ee.wasm"));
/// The same module gzipped (by the build script), for the browsers that take gzip.
pub const E2EE_WASM_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/e2ee.wasm.gz"));

/// The browser client: plain ES modules and their page, embedded as written in `web/src` (no
/// build step, no third-party JavaScript).
pub const WEB_FILES: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("../../../web/src/index.html")),
    ("style.css", include_bytes!("../../../web/src/style.css")),
    ("app.js", include_bytes!("../../../web/src/app.js")),
    ("session.js", include_bytes!("../../../web/src/session.js")),
    ("calls.js", include_bytes!("../../../web/src/calls.js")),
    ("e2ee.js", include_bytes!("../../../web/src/e2ee.js")),
    ("views.js", include_bytes!("../../../web/src/views.js")),
    ("keystore.js", include_bytes!("../../../web/src/keystore.js")),
    ("identity.js", include_bytes!("../../../web/src/identity.js")),
    ("names.js", include_bytes!("../../../web/src/names.js")),
    ("messages.js", include_bytes!("../../../web/src/messages.js")),
    ("ringer.js", include_bytes!("../../../web/src/ringer.js")),
    ("devices.js", include_bytes!("../../../web/src/devices.js")),
    ("quality.js", include_bytes!("../../../web/src/quality.js")),
    ("sw.js", include_bytes!("../../../web/src/sw.js")),
    ("manifest.webmanifest", include_bytes!("../../../web/src/manifest.webmanifest")),
    ("icon-192.png", include_bytes!("../../../web/src/icon-192.png")),
    ("icon-512.png", include_bytes!("../../../web/src/icon-512.png")),
    ("wasm.js", include_bytes!("../../../web/src/wasm.js")),
    ("e2ee-worker.js", include_bytes!("../../../web/src/e2ee-worker.js")),
];

/// How the gateway behaves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Per-connection limits.
    pub limits: Limits,
    /// TURN credentials to hand out (none: the endpoint answers 503).
    pub turn: Option<TurnConfig>,
    /// Whether unknown identities may register.
    pub registration_open: bool,
    /// How long the app has to answer the challenge (and to register).
    pub auth_timeout: Duration,
    /// A directory of browser client files to serve at `/` instead of the embedded ones (`web/src`
    /// as built into the binary); for working on the client.
    pub web_dir: Option<std::path::PathBuf>,
    /// Sockets not yet authenticated, at once, in total.
    pub max_unauthenticated: usize,
    /// Sockets not yet authenticated, at once, from one source.
    pub max_unauthenticated_per_source: usize,
    /// Logins (WebSocket upgrades) one source may start per second, after `login_burst`.
    pub logins_per_second: u32,
    /// Logins one source may start at once.
    pub login_burst: u32,
    /// How long one send to an app may take before the app counts as not reading.
    pub send_timeout: Duration,
    /// Bytes queued for one app before it counts as not reading.
    pub max_queued_bytes: usize,
    /// Who may read `/metrics`: with a token, requests bearing it (`Authorization: Bearer`);
    /// without, loopback clients only.
    pub metrics_token: Option<String>,
    /// Serve `/test-hooks.js`, which turns on the browser client's test hooks (`window.cv`,
    /// `?tamper=1`, ...): for the browser tests only, never in a deployment.
    pub test_hooks: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            limits: Limits {
                max_frame_bytes: 128 * 1024,
                messages_per_second: 50,
                burst: 100,
                connections_per_identity: 8,
                idle_timeout_secs: 90,
            },
            turn: None,
            registration_open: true,
            auth_timeout: Duration::from_secs(10),
            web_dir: None,
            max_unauthenticated: 1024,
            max_unauthenticated_per_source: 16,
            logins_per_second: 5,
            login_burst: 20,
            send_timeout: Duration::from_secs(10),
            max_queued_bytes: 1024 * 1024,
            metrics_token: None,
            test_hooks: false,
        }
    }
}

/// The gateway of one server process.
pub struct Gateway<B: Bus + Clone, S: Store> {
    host: Arc<VaultHost<B, S>>,
    bus: B,
    config: GatewayConfig,
    metrics: Arc<GatewayMetrics>,
    per_identity: std::sync::Mutex<HashMap<Guid, u32>>,
    /// Frame budgets, one per identity across its connections.
    budgets: KeyedBuckets<Guid>,
    /// Login budgets, one per source.
    logins: KeyedBuckets<IpAddr>,
    unauthenticated: Arc<Caps<IpAddr>>,
    /// Signed HTTP requests seen (replays are refused).
    seen_notes: SeenNotes,
    /// The origin of the budgets' clock.
    origin: tokio::time::Instant,
    shutdown: watch::Sender<bool>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Releases an identity's connection slot when the session ends.
struct Slot<'a> {
    map: &'a std::sync::Mutex<HashMap<Guid, u32>>,
    guid: Guid,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock()
            && let Some(n) = m.get_mut(&self.guid)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.guid);
            }
        }
    }
}

/// Counts an open connection while alive.
struct Open(Arc<GatewayMetrics>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What goes to an app: frames queued for its writer task, which sends each within the send
/// deadline. A full queue or a late send ends the connection as `slow_consumer`.
struct Conn {
    queue: Option<mpsc::Sender<Message>>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    writer: tokio::task::JoinHandle<()>,
    send_timeout: Duration,
    /// How the writer ended (none while it runs; the sender is dropped if it was stopped).
    ended: watch::Receiver<Option<WriterEnd>>,
    metrics: Arc<GatewayMetrics>,
}

/// How a writer task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// Its queue closed; everything was sent and the socket closed.
    Done,
    /// The socket failed.
    Broken,
    /// A send did not complete in time.
    Slow,
}

fn wire_len(m: &Message) -> usize {
    match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(c) => c.as_ref().map_or(0, |c| c.reason.len()).saturating_add(2),
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    queued: Arc<AtomicUsize>,
    send_timeout: Duration,
) -> WriterEnd {
    while let Some(m) = queue.recv().await {
        let len = wire_len(&m);
        match tokio::time::timeout(send_timeout, sink.send(m)).await {
            Ok(Ok(())) => {
                queued.fetch_sub(len, Ordering::Relaxed);
            }
            Ok(Err(_)) => return WriterEnd::Broken,
            Err(_) => return WriterEnd::Slow,
        }
    }
    let _ = tokio::time::timeout(send_timeout, sink.close()).await;
    WriterEnd::Done
}

impl Conn {
    fn new(sink: SplitSink<WebSocket, Message>, config: &GatewayConfig, metrics: Arc<GatewayMetrics>) -> Self {
        // Bytes are what is bounded; the channel's slots (allocated as used) only cap tiny frames.
        let (tx, rx) = mpsc::channel(16_384);
        let queued = Arc::new(AtomicUsize::new(0));
        let (end_tx, ended) = watch::channel(None);
        let send_timeout = config.send_timeout;
        let q = queued.clone();
        let writer = tokio::spawn(async move {
            let end = write_loop(sink, rx, q, send_timeout).await;
            end_tx.send_replace(Some(end));
        });
        Self { queue: Some(tx), queued, max_queued: config.max_queued_bytes, writer, send_timeout, ended, metrics }
    }

    /// Queues `m`; false when the app cannot keep up (then the connection must end).
    fn push(&mut self, m: Message) -> bool {
        let Some(queue) = self.queue.as_ref() else { return false };
        // A writer that already ended (the socket failed) is not a slow app.
        if self.ended.borrow().is_some() {
            self.queue = None;
            return false;
        }
        let len = wire_len(&m);
        let held = self.queued.load(Ordering::Relaxed);
        if held > 0 && held.saturating_add(len) > self.max_queued {
            self.slow();
            return false;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        if queue.try_send(m).is_err() {
            self.slow();
            return false;
        }
        true
    }

    /// The app does not read: counted, logged (rate-limited), and its writer stopped at once.
    fn slow(&mut self) {
        self.queue = None;
        self.writer.abort();
        slow_consumer(&self.metrics);
    }

    async fn send(&mut self, frame: &ServerFrame) -> bool {
        let Ok(text) = serde_json::to_string(frame) else { return false };
        self.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
        self.push(Message::Text(text.into()))
    }

    /// Sends an error frame, counts it and logs the reason (rate-limited; no guids, no
    /// addresses).
    async fn refuse(&mut self, code: AppErrorCode, message: &str) -> bool {
        self.metrics.refuse(code);
        if let Some(suppressed) = REFUSALS.allow() {
            tracing::info!(code = code.as_str(), reason = message, suppressed, "app frame refused");
        }
        self.send(&ServerFrame::Error { code, message: message.to_owned() }).await
    }

    /// A receiver that [`writer_ended`] waits on.
    fn writer_watch(&self) -> watch::Receiver<Option<WriterEnd>> {
        self.ended.clone()
    }

    /// Closes with a close frame of `code` after what is queued.
    async fn close_with(mut self, code: u16, reason: &'static str) {
        self.push(Message::Close(Some(CloseFrame { code, reason: reason.into() })));
        self.close().await;
    }

    /// Sends what is queued and closes the socket, within one send deadline in all (an app that
    /// reads just fast enough must not hold the connection for long after it ended).
    async fn close(mut self) {
        drop(self.queue.take());
        let deadline = self.send_timeout;
        if tokio::time::timeout(deadline, &mut self.writer).await.is_err() {
            self.writer.abort();
        }
    }
}

/// Completes when the writer behind `ended` stops on its own: the socket failed, or a send was
/// late (counted as `slow_consumer`).
async fn writer_ended(ended: &mut watch::Receiver<Option<WriterEnd>>, metrics: &GatewayMetrics) {
    let end = ended.wait_for(Option::is_some).await.ok().and_then(|e| *e);
    if end == Some(WriterEnd::Slow) {
        slow_consumer(metrics);
    }
}

/// Counts and logs (rate-limited) an app closed for not reading: its queue filled, or a send
/// missed its deadline.
fn slow_consumer(metrics: &GatewayMetrics) {
    metrics.refuse(AppErrorCode::SlowConsumer);
    if let Some(suppressed) = REFUSALS.allow() {
        tracing::info!(code = "slow_consumer", suppressed, "app that does not read closed");
    }
}

/// What a read of the next app frame gave.
enum Read {
    Frame(AppFrame),
    /// Refused (already answered).
    Refused,
    /// Over the socket's hard size limit: close with 1009.
    TooBig,
    /// The socket is gone.
    Closed,
}

/// Decodes a data frame (text or binary) into an app frame, or says why it is refused.
fn decode(msg: Message, max: usize) -> Result<AppFrame, (AppErrorCode, String)> {
    let Message::Text(text) = msg else {
        return Err((AppErrorCode::BadFrame, "binary frames are not part of the API".to_owned()));
    };
    if text.len() > max {
        return Err((AppErrorCode::FrameTooLarge, format!("frame of {} bytes is over the limit of {max}", text.len())));
    }
    serde_json::from_str::<AppFrame>(text.as_str()).map_err(|e| {
        (AppErrorCode::BadFrame, format!("not a frame: {}", e.to_string().chars().take(120).collect::<String>()))
    })
}

/// Whether a read error is a message over the socket's size limit (then close with 1009).
fn too_big(e: axum::Error) -> bool {
    e.into_inner().downcast::<tungstenite::Error>().is_ok_and(|e| matches!(*e, tungstenite::Error::Capacity(_)))
}

async fn read_frame(rx: &mut SplitStream<WebSocket>, conn: &mut Conn, max: usize) -> Read {
    loop {
        let msg = match rx.next().await {
            Some(Ok(m)) => m,
            Some(Err(e)) => return if too_big(e) { Read::TooBig } else { Read::Closed },
            None => return Read::Closed,
        };
        conn.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        match msg {
            Message::Close(_) => return Read::Closed,
            Message::Ping(_) | Message::Pong(_) => continue,
            data => {
                return match decode(data, max) {
                    Ok(f) => Read::Frame(f),
                    Err((code, m)) if conn.refuse(code, &m).await => Read::Refused,
                    Err(_) => Read::Closed,
                };
            }
        }
    }
}

fn later(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d).unwrap_or(now)
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `relay_only=true` in a query string (the only parameter the endpoint reads).
fn relay_only_asked(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "relay_only=true" || kv == "relay_only=1"))
}

/// The browser client's Content-Security-Policy: its own scripts, styles and WebSocket only;
/// WebAssembly compiled (the E2EE module) but no other eval; never framed.
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; worker-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// Constant-time equality of two secrets' bytes (length may leak, contents not).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<B: Bus + Clone, S: Store> Gateway<B, S> {
    /// A gateway for the vaults of `host`, publishing on `bus`.
    pub fn new(host: Arc<VaultHost<B, S>>, bus: B, config: GatewayConfig) -> Arc<Self> {
        let l = config.limits;
        Arc::new(Self {
            host,
            bus,
            // At most 100 000 partly used budgets each (a few MB); full ones are dropped every
            // second, so only that many identities or sources active within a refill are held.
            budgets: KeyedBuckets::new(l.messages_per_second, l.burst, 100_000),
            logins: KeyedBuckets::new(config.logins_per_second, config.login_burst, 100_000),
            unauthenticated: Caps::new(config.max_unauthenticated, config.max_unauthenticated_per_source),
            seen_notes: SeenNotes::new(100_000),
            origin: tokio::time::Instant::now(),
            config,
            metrics: Arc::new(GatewayMetrics::default()),
            per_identity: std::sync::Mutex::new(HashMap::new()),
            shutdown: watch::channel(false).0,
        })
    }

    /// The gateway's counters.
    pub fn metrics(&self) -> Arc<GatewayMetrics> {
        self.metrics.clone()
    }

    /// Tells every session to close and `/readyz` to fail.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// The routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/app", get(Self::upgrade))
            .route("/calls/turn-credentials", get(Self::turn_credentials))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(Self::readyz))
            .route("/metrics", get(Self::metrics_text))
            .route("/e2ee.wasm", get(Self::e2ee_wasm))
            .route("/", get(Self::web_file))
            .route("/{file}", get(Self::web_file))
            .layer(middleware::map_response(security_headers))
            .with_state(self.clone())
    }

    /// Serves the gateway's routes on `listener` under `listen`'s caps until the task is
    /// dropped (tests, the demo); `serve` itself also shuts down gracefully.
    pub async fn serve_until_dropped(self: &Arc<Self>, listener: tokio::net::TcpListener, listen: crate::ListenConfig) {
        let pending = std::future::pending();
        crate::listener::serve(listener, self.router(), listen, self.metrics(), pending, Duration::ZERO).await;
    }

    /// The answer to a trusted proxy's request that names no client: refused, so that all the
    /// proxy's clients never share one source's limits unnoticed.
    fn no_forwarded_for() -> Response {
        if let Some(suppressed) = REFUSALS.allow() {
            tracing::warn!(suppressed, "a request through a trusted proxy without X-Forwarded-For refused");
        }
        (StatusCode::BAD_REQUEST, "the proxy in front must send X-Forwarded-For\n").into_response()
    }

    /// Time on the budgets' clock.
    fn clock(&self) -> Duration {
        self.origin.elapsed()
    }

    /// A file of the web client: only plain names of the build's files, never paths.
    async fn web_file(State(gw): State<Arc<Self>>, file: Option<axum::extract::Path<String>>) -> Response {
        let name = file.map_or_else(|| "index.html".to_owned(), |p| p.0);
        let kind = match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("webmanifest") => "application/manifest+json",
            Some("png") => "image/png",
            _ => return StatusCode::NOT_FOUND.into_response(),
        };
        let plain =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !plain || name.starts_with('.') {
            return StatusCode::NOT_FOUND.into_response();
        }
        if name == "test-hooks.js" {
            // Always answered (no 404 in the product's console); true only for the browser tests.
            let body = if gw.config.test_hooks {
                "// The server runs with test_hooks: the client exposes window.cv and its test switches.\nexport const testHooks = true\n"
            } else {
                "export const testHooks = false\n"
            };
            return ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response();
        }
        let found = match gw.config.web_dir.as_ref() {
            // A directory given by the operator (a client under development) replaces the
            // embedded files.
            Some(dir) => tokio::fs::read(dir.join(&name)).await.ok().map(std::borrow::Cow::Owned),
            None => WEB_FILES.iter().find(|(n, _)| *n == name).map(|(_, body)| std::borrow::Cow::Borrowed(*body)),
        };
        match found {
            Some(body) => ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }

    /// The E2EE module: gzipped when the browser takes gzip.
    async fn e2ee_wasm(headers: HeaderMap) -> Response {
        let gzip = headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|coding| {
                let mut parts = coding.split(';');
                let name = parts.next().unwrap_or_default().trim();
                let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
                name.eq_ignore_ascii_case("gzip") && !refused
            });
        let kind = (header::CONTENT_TYPE, "application/wasm");
        let vary = (header::VARY, "accept-encoding");
        let fresh = (header::CACHE_CONTROL, "no-cache");
        if gzip {
            ([kind, vary, fresh, (header::CONTENT_ENCODING, "gzip")], E2EE_WASM_GZ).into_response()
        } else {
            ([kind, vary, fresh], E2EE_WASM).into_response()
        }
    }

    async fn readyz(State(gw): State<Arc<Self>>) -> Response {
        let shutting_down = *gw.shutdown.borrow();
        if shutting_down {
            return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
        }
        match tokio::time::timeout(Duration::from_secs(2), gw.bus.flush()).await {
            Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "bus unreachable\n").into_response(),
        }
    }

    async fn metrics_text(State(gw): State<Arc<Self>>, peer: Option<Extension<Peer>>, headers: HeaderMap) -> Response {
        let allowed = match gw.config.metrics_token.as_deref() {
            Some(token) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes())),
            // Without a token, only this machine (a socket-less call in tests has no peer; behind
            // a trusted proxy, the client it names).
            None => peer.is_none_or(|Extension(p)| p.client(&headers).is_some_and(|c| c.is_loopback())),
        };
        if !allowed {
            return (StatusCode::FORBIDDEN, "metrics need the operator's token (metrics.token)\n").into_response();
        }
        let vaults: Vec<_> = gw.host.vaults().await.iter().map(|v| v.stats()).collect();
        let body = metrics::render(&gw.metrics, &vaults, gw.host.unserved());
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
    }

    async fn turn_credentials(
        State(gw): State<Arc<Self>>,
        peer: Option<Extension<Peer>>,
        headers: HeaderMap,
        uri: Uri,
    ) -> Response {
        let now = unix_now();
        let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let target = format!("{host}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
        let unauthorized = |gw: &Self, e: &dyn std::fmt::Display| {
            gw.metrics.refuse(AppErrorCode::BadSignature);
            if let Some(suppressed) = REFUSALS.allow() {
                tracing::info!(reason = %Scrubbed(&e), suppressed, "turn credentials refused");
            }
            (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": e.to_string()}))).into_response()
        };
        if let Some(Extension(p)) = &peer
            && !p.client(&headers).is_some_and(|source| gw.logins.take(&source, gw.clock()))
        {
            gw.metrics.refuse(AppErrorCode::RateLimited);
            return (StatusCode::TOO_MANY_REQUESTS, "too many requests from this address; try again shortly\n")
                .into_response();
        }
        let request = match auth::verify_http(value, "GET", &target, now) {
            Ok(r) => r,
            Err(e) => return unauthorized(&gw, &e),
        };
        let guid = request.signer.guid();
        match gw.host.account(&guid).await {
            // Only a registered user's notes take room in the replay cache.
            Ok(Some(_)) => {
                if let Err(e) = gw.seen_notes.first_use(&request, now) {
                    return unauthorized(&gw, &e);
                }
            }
            Ok(None) => {
                gw.metrics.refuse(AppErrorCode::RegistrationClosed);
                return (StatusCode::FORBIDDEN, axum::Json(serde_json::json!({"error": "not registered"})))
                    .into_response();
            }
            Err(e) => {
                tracing::warn!(error = %Scrubbed(&e), "accounts unreadable");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
        match gw.turn(&guid, now, relay_only_asked(&uri)) {
            Ok(c) => axum::Json(c).into_response(),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"error": e.to_string()})))
                .into_response(),
        }
    }

    fn turn(
        &self,
        guid: &Guid,
        now: u64,
        relay_only: bool,
    ) -> Result<callvault_protocol::app::TurnCredentials, TurnError> {
        self.config.turn.as_ref().ok_or(TurnError::NotConfigured)?.credentials(guid, now, relay_only)
    }

    async fn upgrade(
        State(gw): State<Arc<Self>>,
        peer: Option<Extension<Peer>>,
        headers: HeaderMap,
        ws: WebSocketUpgrade,
    ) -> Response {
        let peer = peer.map(|Extension(p)| p);
        // A socket-less call (tests of the router alone) has no peer and no per-source limits.
        let (deadline, unauthenticated) = match &peer {
            Some(p) => {
                let Some(source) = p.client(&headers) else { return Self::no_forwarded_for() };
                if !gw.logins.take(&source, gw.clock()) {
                    gw.metrics.refuse(AppErrorCode::RateLimited);
                    if let Some(suppressed) = REFUSALS.allow() {
                        tracing::info!(code = "rate_limited", suppressed, "login over the source's budget refused");
                    }
                    return (StatusCode::TOO_MANY_REQUESTS, "too many logins from this address; try again shortly\n")
                        .into_response();
                }
                let Ok(slot) = gw.unauthenticated.take(source) else {
                    gw.metrics.refuse(AppErrorCode::TooManyConnections);
                    if let Some(suppressed) = REFUSALS.allow() {
                        tracing::info!(
                            code = "too_many_connections",
                            suppressed,
                            "unauthenticated socket over a cap refused"
                        );
                    }
                    return (StatusCode::SERVICE_UNAVAILABLE, "too many connections waiting to log in\n")
                        .into_response();
                };
                // Counted from the TCP accept when the upgrade is the connection's first request;
                // on a connection kept alive after other requests, from this one's arrival (its
                // head was bounded by the header deadline).
                let from = if p.requests() <= 1 { p.accepted } else { tokio::time::Instant::now() };
                (from.checked_add(gw.config.auth_timeout), Some(slot))
            }
            None => (tokio::time::Instant::now().checked_add(gw.config.auth_timeout), None),
        };
        let deadline = deadline.unwrap_or_else(tokio::time::Instant::now);
        // The socket itself refuses frames far over the limit (close 1009); frames up to 4x the
        // limit are read and answered with `frame_too_large`, keeping the connection.
        let hard = gw.config.limits.max_frame_bytes.saturating_mul(4);
        ws.max_message_size(hard)
            .max_frame_size(hard)
            .on_upgrade(move |socket| async move { gw.session(socket, peer, deadline, unauthenticated).await })
    }

    async fn session(
        self: Arc<Self>,
        socket: WebSocket,
        // Held while the session lasts: its place under the listener's caps.
        _peer: Option<Peer>,
        deadline: tokio::time::Instant,
        unauthenticated: Option<CapSlot<IpAddr>>,
    ) {
        self.metrics.connections.fetch_add(1, Ordering::Relaxed);
        self.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        let _open = Open(self.metrics.clone());
        let (tx, mut rx) = socket.split();
        let mut conn = Conn::new(tx, &self.config, self.metrics.clone());
        let authenticated = self.authenticate(&mut rx, &mut conn, deadline).await;
        drop(unauthenticated);
        let (account, _slot, sub) = match authenticated {
            Ok(a) => a,
            Err(Read::TooBig) => return conn.close_with(1009, "frame too large").await,
            Err(_) => return conn.close().await,
        };
        self.metrics.sessions_total.fetch_add(1, Ordering::Relaxed);
        self.serve_session(account, rx, conn, sub).await;
    }

    /// Challenge, signature, registration when needed; then subscribes the user's `forApp` and
    /// sends `ready`.
    ///
    /// Everything must happen before `deadline` (counted from accept); any refused frame ends the
    /// attempt. The error says how the socket should close.
    async fn authenticate(
        &self,
        rx: &mut SplitStream<WebSocket>,
        conn: &mut Conn,
        deadline: tokio::time::Instant,
    ) -> Result<(Account, Slot<'_>, Subscription), Read> {
        let challenge = auth::new_challenge();
        if !conn.send(&ServerFrame::Challenge { challenge: challenge.clone(), server_time: unix_now() }).await {
            return Err(Read::Closed);
        }
        let frame = self.expect_frame(rx, conn, deadline, "no answer to the challenge").await?;
        let AppFrame::Auth { note } = frame else {
            conn.refuse(AppErrorCode::WrongState, "authenticate first").await;
            return Err(Read::Refused);
        };
        let user = match auth::verify_challenge(&note, &challenge, unix_now()) {
            Ok(u) => u,
            Err(e) => {
                let m = match e {
                    AuthError::WrongChallenge => "the note answers another challenge",
                    AuthError::Stale => "the note's time is too far from the server's",
                    _ => "the note does not verify",
                };
                conn.refuse(AppErrorCode::BadSignature, m).await;
                return Err(Read::Refused);
            }
        };
        let guid = user.guid();
        let taken = self.per_identity.lock().ok().is_some_and(|mut m| {
            let n = m.entry(guid.clone()).or_insert(0);
            let free = *n < self.config.limits.connections_per_identity;
            if free {
                *n = n.saturating_add(1);
            }
            free
        });
        if !taken {
            conn.refuse(AppErrorCode::TooManyConnections, "too many connections of this identity").await;
            return Err(Read::Refused);
        }
        let slot = Slot { map: &self.per_identity, guid: guid.clone() };
        let account = match self.host.account(&guid).await {
            Ok(Some(a)) => a,
            Ok(None) => self.register(rx, conn, &user, deadline).await?,
            Err(e) => {
                tracing::warn!(error = %Scrubbed(&e), "accounts unreadable");
                conn.refuse(AppErrorCode::Internal, "accounts unreadable").await;
                return Err(Read::Refused);
            }
        };
        let sub = match self.bus.subscribe(&format!("OwnerSpace.{guid}.forApp.>")).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %Scrubbed(&e), "subscription failed");
                conn.refuse(AppErrorCode::Unavailable, "the bus is unreachable").await;
                return Err(Read::Refused);
            }
        };
        let _ = self.bus.flush().await;
        let ready = ServerFrame::Ready {
            guid: account.guid.clone(),
            vault_key: account.vault_key.clone(),
            delegation: account.delegation.clone(),
            display_name: account.display_name.as_str().to_owned(),
            limits: self.config.limits,
        };
        if !conn.send(&ready).await {
            return Err(Read::Closed);
        }
        tracing::debug!(user = %Redacted(&guid), "app authenticated");
        Ok((account, slot, sub))
    }

    /// The next frame before `deadline`; a refused frame ends the attempt.
    async fn expect_frame(
        &self,
        rx: &mut SplitStream<WebSocket>,
        conn: &mut Conn,
        deadline: tokio::time::Instant,
        late: &str,
    ) -> Result<AppFrame, Read> {
        let limit = self.config.limits.max_frame_bytes;
        match tokio::time::timeout_at(deadline, read_frame(rx, conn, limit)).await {
            Err(_) => {
                conn.refuse(AppErrorCode::AuthTimeout, late).await;
                Err(Read::Refused)
            }
            Ok(Read::Frame(f)) => Ok(f),
            Ok(other) => Err(other),
        }
    }

    async fn register(
        &self,
        rx: &mut SplitStream<WebSocket>,
        conn: &mut Conn,
        user: &PublicIdentity,
        deadline: tokio::time::Instant,
    ) -> Result<Account, Read> {
        if !self.config.registration_open {
            conn.refuse(AppErrorCode::RegistrationClosed, "no account, and registration is closed").await;
            return Err(Read::Refused);
        }
        let vault_key = VaultHost::<B, S>::new_vault_key();
        if !conn.send(&ServerFrame::RegisterRequired { vault_key: vault_key.public().to_hex() }).await {
            return Err(Read::Closed);
        }
        let frame = self.expect_frame(rx, conn, deadline, "no registration").await?;
        let AppFrame::Register { delegation, display_name } = frame else {
            conn.refuse(AppErrorCode::WrongState, "register first").await;
            return Err(Read::Refused);
        };
        let Ok(name) = DisplayName::new(display_name) else {
            conn.refuse(
                AppErrorCode::BadRegistration,
                "display_name is empty, blank, too long, or has control or format characters",
            )
            .await;
            return Err(Read::Refused);
        };
        let Ok(delegation) = Delegation::from_json(&delegation) else {
            conn.refuse(AppErrorCode::BadRegistration, "delegation is not an event").await;
            return Err(Read::Refused);
        };
        match self.host.register(user, vault_key, &delegation, name, unix_now()).await {
            Ok(a) => Ok(a),
            // Another connection of this identity registered first: this one gets its account.
            Err(HostError::AlreadyRegistered) => match self.host.account(&user.guid()).await {
                Ok(Some(a)) => Ok(a),
                _ => {
                    conn.refuse(AppErrorCode::Internal, "registration failed").await;
                    Err(Read::Refused)
                }
            },
            Err(HostError::BadDelegation) => {
                conn.refuse(AppErrorCode::BadRegistration, "the delegation does not name this user and vault key")
                    .await;
                Err(Read::Refused)
            }
            Err(e) => {
                tracing::warn!(error = %Scrubbed(&e), "registration failed");
                conn.refuse(AppErrorCode::Internal, "registration failed").await;
                Err(Read::Refused)
            }
        }
    }

    async fn serve_session(
        &self,
        account: Account,
        mut rx: SplitStream<WebSocket>,
        mut conn: Conn,
        mut sub: Subscription,
    ) {
        let limits = self.config.limits;
        let idle = Duration::from_secs(limits.idle_timeout_secs.max(1));
        let mut refused_streak = 0u32;
        let mut last_notice: Option<tokio::time::Instant> = None;
        let mut deadline = later(idle);
        let mut ping = tokio::time::interval(idle.div_f64(3.0));
        ping.tick().await;
        let mut shutdown = self.shutdown.subscribe();
        let mut writer = conn.writer_watch();
        loop {
            tokio::select! {
                () = stopped(&mut shutdown) => {
                    conn.refuse(AppErrorCode::ShuttingDown, "the server is shutting down").await;
                    break;
                }
                () = tokio::time::sleep_until(deadline) => {
                    conn.refuse(AppErrorCode::IdleTimeout, "nothing heard within the idle timeout").await;
                    break;
                }
                () = writer_ended(&mut writer, &self.metrics) => break,
                _ = ping.tick() => {
                    if !conn.push(Message::Ping(Bytes::new())) {
                        break;
                    }
                }
                m = sub.next() => {
                    let Some(m) = m else { break };
                    let payload = serde_json::from_slice(&m.payload)
                        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&m.payload).into_owned()));
                    if !conn.send(&ServerFrame::Message { subject: m.subject, payload }).await {
                        break;
                    }
                }
                frame = rx.next() => {
                    let msg = match frame {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            if too_big(e) {
                                return conn.close_with(1009, "frame too large").await;
                            }
                            break;
                        }
                        None => break,
                    };
                    deadline = later(idle);
                    self.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
                    if matches!(msg, Message::Ping(_) | Message::Pong(_)) {
                        continue;
                    }
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                    if !self.budgets.take(&account.guid, self.clock()) {
                        self.metrics.refuse(AppErrorCode::RateLimited);
                        refused_streak = refused_streak.saturating_add(1);
                        // One notice a second; a flood that goes on is cut off.
                        if last_notice.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                            last_notice = Some(tokio::time::Instant::now());
                            if let Some(suppressed) = REFUSALS.allow() {
                                tracing::info!(code = "rate_limited", suppressed, "app frames over the rate dropped");
                            }
                            let e = ServerFrame::Error { code: AppErrorCode::RateLimited, message: format!("over {} frames per second", limits.messages_per_second) };
                            if !conn.send(&e).await { break; }
                        }
                        if refused_streak > limits.burst.saturating_mul(10) {
                            if let Some(suppressed) = REFUSALS.allow() {
                                tracing::info!(suppressed, "flooding app connection closed");
                            }
                            break;
                        }
                        continue;
                    }
                    refused_streak = 0;
                    if !self.on_frame(&account.guid, msg, &mut conn).await {
                        break;
                    }
                }
            }
        }
        conn.close().await;
    }

    /// Handles one frame of an authenticated app; false when the connection should end.
    async fn on_frame(&self, guid: &Guid, msg: Message, conn: &mut Conn) -> bool {
        let frame = match decode(msg, self.config.limits.max_frame_bytes) {
            Ok(f) => f,
            Err((code, m)) => return conn.refuse(code, &m).await,
        };
        match frame {
            AppFrame::Publish { subject, payload } => {
                if !app_may_publish(guid, &subject) {
                    return conn
                        .refuse(AppErrorCode::ForbiddenSubject, "apps publish only to their own forVault")
                        .await;
                }
                let Some(obj) = payload.as_object() else {
                    return conn.refuse(AppErrorCode::BadPayload, "the payload must be a JSON object").await;
                };
                let bytes = serde_json::to_vec(obj).unwrap_or_default();
                if bytes.len() > MAX_MESSAGE_BYTES {
                    return conn.refuse(AppErrorCode::BadPayload, "the payload is too large").await;
                }
                if let Err(e) = self.bus.publish(&subject, Bytes::from(bytes)).await {
                    tracing::warn!(error = %Scrubbed(&e), "publish failed");
                    return conn.refuse(AppErrorCode::Unavailable, "the bus refused the message").await;
                }
                true
            }
            AppFrame::TurnCredentials { request_id, relay_only } => {
                let request_id: String = request_id.chars().take(64).collect();
                match self.turn(guid, unix_now(), relay_only) {
                    Ok(credentials) => conn.send(&ServerFrame::TurnCredentials { request_id, credentials }).await,
                    Err(e) => conn.refuse(AppErrorCode::Unavailable, &e.to_string()).await,
                }
            }
            AppFrame::Ping {} => conn.send(&ServerFrame::Pong {}).await,
            AppFrame::Auth { .. } | AppFrame::Register { .. } => {
                conn.refuse(AppErrorCode::WrongState, "already authenticated").await
            }
        }
    }
}

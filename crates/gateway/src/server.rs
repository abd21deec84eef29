//! The HTTP side: the app WebSocket (`/app`), `GET /calls/turn-credentials`, `/healthz`,
//! `/readyz`, `/metrics`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use callvault_bus::{Bus, Subscription};
use callvault_crypto::{Delegation, PublicIdentity};
use callvault_protocol::app::{AppErrorCode, AppFrame, Limits, ServerFrame, app_may_publish};
use callvault_protocol::fields::DisplayName;
use callvault_protocol::redact::Redacted;
use callvault_protocol::{Guid, MAX_MESSAGE_BYTES};
use callvault_store::Store;
use callvault_vault::host::{Account, HostError, VaultHost};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;

use crate::auth::{self, AuthError};
use crate::limits::TokenBucket;
use crate::metrics::{self, GatewayMetrics};
use crate::turn::{TurnConfig, TurnError};

/// The browser client's E2EE module (`crates/e2ee-wasm`, built by this crate's build script).
pub const E2EE_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/e2ee.wasm"));

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
    /// The browser client's built files (`web/dist`), served at `/`; none: no web client.
    pub web_dir: Option<std::path::PathBuf>,
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

/// One app connection's sending half and bookkeeping.
struct Conn {
    tx: SplitSink<WebSocket, Message>,
    metrics: Arc<GatewayMetrics>,
}

impl Conn {
    async fn send(&mut self, frame: &ServerFrame) -> bool {
        let Ok(text) = serde_json::to_string(frame) else { return false };
        self.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
        self.tx.send(Message::Text(text.into())).await.is_ok()
    }

    /// Sends an error frame, counts it and logs the reason (no guids, no addresses).
    async fn refuse(&mut self, code: AppErrorCode, message: &str) -> bool {
        self.metrics.refuse(code);
        tracing::info!(code = code.as_str(), reason = message, "app frame refused");
        self.send(&ServerFrame::Error { code, message: message.to_owned() }).await
    }

    async fn close(mut self) {
        let _ = self.tx.close().await;
    }
}

/// What a read of the next app frame gave.
enum Read {
    Frame(AppFrame),
    /// Refused (already answered); go on.
    Refused,
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

async fn read_frame(rx: &mut SplitStream<WebSocket>, conn: &mut Conn, max: usize) -> Read {
    loop {
        let Some(Ok(msg)) = rx.next().await else { return Read::Closed };
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

#[derive(Debug, Deserialize)]
struct TurnQuery {
    #[serde(default)]
    relay_only: bool,
}

impl<B: Bus + Clone, S: Store> Gateway<B, S> {
    /// A gateway for the vaults of `host`, publishing on `bus`.
    pub fn new(host: Arc<VaultHost<B, S>>, bus: B, config: GatewayConfig) -> Arc<Self> {
        Arc::new(Self {
            host,
            bus,
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
            .route("/e2ee.wasm", get(|| async { ([(header::CONTENT_TYPE, "application/wasm")], E2EE_WASM) }))
            .route("/", get(Self::web_file))
            .route("/{file}", get(Self::web_file))
            .with_state(self.clone())
    }

    /// A file of the web client: only plain names of the build's files, never paths.
    async fn web_file(State(gw): State<Arc<Self>>, file: Option<axum::extract::Path<String>>) -> Response {
        let name = file.map_or_else(|| "index.html".to_owned(), |p| p.0);
        let kind = match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            _ => return StatusCode::NOT_FOUND.into_response(),
        };
        let plain =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        let Some(dir) = gw.config.web_dir.as_ref().filter(|_| plain && !name.starts_with('.')) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        match tokio::fs::read(dir.join(&name)).await {
            Ok(body) => ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
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

    async fn metrics_text(State(gw): State<Arc<Self>>) -> Response {
        let vaults: Vec<_> = gw.host.vaults().await.iter().map(|v| v.stats()).collect();
        let body = metrics::render(&gw.metrics, &vaults);
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
    }

    async fn turn_credentials(State(gw): State<Arc<Self>>, headers: HeaderMap, Query(q): Query<TurnQuery>) -> Response {
        let now = unix_now();
        let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let user = match auth::verify_http(value, "GET", "/calls/turn-credentials", now) {
            Ok(u) => u,
            Err(e) => {
                gw.metrics.refuse(AppErrorCode::BadSignature);
                tracing::info!(reason = %e, "turn credentials refused");
                return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": e.to_string()})))
                    .into_response();
            }
        };
        let guid = user.guid();
        match gw.host.account(&guid).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                gw.metrics.refuse(AppErrorCode::RegistrationClosed);
                return (StatusCode::FORBIDDEN, axum::Json(serde_json::json!({"error": "not registered"})))
                    .into_response();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accounts unreadable");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
        match gw.turn(&guid, now, q.relay_only) {
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

    async fn upgrade(State(gw): State<Arc<Self>>, ws: WebSocketUpgrade) -> Response {
        // The socket itself refuses frames far over the limit (close 1009); frames up to 4x the
        // limit are read and answered with `frame_too_large`, keeping the connection.
        let hard = gw.config.limits.max_frame_bytes.saturating_mul(4);
        ws.max_message_size(hard).max_frame_size(hard).on_upgrade(move |socket| async move { gw.session(socket).await })
    }

    async fn session(self: Arc<Self>, socket: WebSocket) {
        self.metrics.connections.fetch_add(1, Ordering::Relaxed);
        self.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        let _open = Open(self.metrics.clone());
        let (tx, mut rx) = socket.split();
        let mut conn = Conn { tx, metrics: self.metrics.clone() };
        let Some((account, _slot, sub)) = self.authenticate(&mut rx, &mut conn).await else {
            conn.close().await;
            return;
        };
        self.metrics.sessions_total.fetch_add(1, Ordering::Relaxed);
        self.serve_session(account, rx, conn, sub).await;
    }

    /// Challenge, signature, registration when needed; then subscribes the user's `forApp` and
    /// sends `ready`.
    async fn authenticate(
        &self,
        rx: &mut SplitStream<WebSocket>,
        conn: &mut Conn,
    ) -> Option<(Account, Slot<'_>, Subscription)> {
        let challenge = auth::new_challenge();
        if !conn.send(&ServerFrame::Challenge { challenge: challenge.clone(), server_time: unix_now() }).await {
            return None;
        }
        let frame = self.expect_frame(rx, conn, "no answer to the challenge").await?;
        let AppFrame::Auth { note } = frame else {
            conn.refuse(AppErrorCode::WrongState, "authenticate first").await;
            return None;
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
                return None;
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
            return None;
        }
        let slot = Slot { map: &self.per_identity, guid: guid.clone() };
        let account = match self.host.account(&guid).await {
            Ok(Some(a)) => a,
            Ok(None) => self.register(rx, conn, &user).await?,
            Err(e) => {
                tracing::warn!(error = %e, "accounts unreadable");
                conn.refuse(AppErrorCode::Internal, "accounts unreadable").await;
                return None;
            }
        };
        let sub = match self.bus.subscribe(&format!("OwnerSpace.{guid}.forApp.>")).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "subscription failed");
                conn.refuse(AppErrorCode::Unavailable, "the bus is unreachable").await;
                return None;
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
            return None;
        }
        tracing::debug!(user = %Redacted(&guid), "app authenticated");
        Some((account, slot, sub))
    }

    /// The next frame within the authentication timeout (refused frames skipped).
    async fn expect_frame(&self, rx: &mut SplitStream<WebSocket>, conn: &mut Conn, late: &str) -> Option<AppFrame> {
        let limit = self.config.limits.max_frame_bytes;
        loop {
            match tokio::time::timeout(self.config.auth_timeout, read_frame(rx, conn, limit)).await {
                Err(_) => {
                    conn.refuse(AppErrorCode::AuthTimeout, late).await;
                    return None;
                }
                Ok(Read::Closed) => return None,
                Ok(Read::Refused) => {}
                Ok(Read::Frame(f)) => return Some(f),
            }
        }
    }

    async fn register(
        &self,
        rx: &mut SplitStream<WebSocket>,
        conn: &mut Conn,
        user: &PublicIdentity,
    ) -> Option<Account> {
        if !self.config.registration_open {
            conn.refuse(AppErrorCode::RegistrationClosed, "no account, and registration is closed").await;
            return None;
        }
        let vault_key = VaultHost::<B, S>::new_vault_key();
        if !conn.send(&ServerFrame::RegisterRequired { vault_key: vault_key.public().to_hex() }).await {
            return None;
        }
        let frame = self.expect_frame(rx, conn, "no registration").await?;
        let AppFrame::Register { delegation, display_name } = frame else {
            conn.refuse(AppErrorCode::WrongState, "register first").await;
            return None;
        };
        let Ok(name) = DisplayName::new(display_name) else {
            conn.refuse(AppErrorCode::BadRegistration, "display_name is empty, too long or has control characters")
                .await;
            return None;
        };
        let Ok(delegation) = Delegation::from_json(&delegation) else {
            conn.refuse(AppErrorCode::BadRegistration, "delegation is not an event").await;
            return None;
        };
        match self.host.register(user, vault_key, &delegation, name, unix_now()).await {
            Ok(a) => Some(a),
            Err(HostError::AlreadyRegistered) => self.host.account(&user.guid()).await.ok().flatten(),
            Err(HostError::BadDelegation) => {
                conn.refuse(AppErrorCode::BadRegistration, "the delegation does not name this user and vault key")
                    .await;
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "registration failed");
                conn.refuse(AppErrorCode::Internal, "registration failed").await;
                None
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
        let origin = tokio::time::Instant::now();
        let mut bucket = TokenBucket::new(limits.messages_per_second, limits.burst, Duration::ZERO);
        let mut refused_streak = 0u32;
        let mut last_notice: Option<tokio::time::Instant> = None;
        let mut deadline = later(idle);
        let mut ping = tokio::time::interval(idle.div_f64(3.0));
        ping.tick().await;
        let mut shutdown = self.shutdown.subscribe();
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
                _ = ping.tick() => {
                    if conn.tx.send(Message::Ping(Bytes::new())).await.is_err() {
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
                    let Some(Ok(msg)) = frame else { break };
                    deadline = later(idle);
                    self.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
                    if matches!(msg, Message::Ping(_) | Message::Pong(_)) {
                        continue;
                    }
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                    if !bucket.take(origin.elapsed()) {
                        self.metrics.refuse(AppErrorCode::RateLimited);
                        refused_streak = refused_streak.saturating_add(1);
                        // One notice a second; a flood that goes on is cut off.
                        if last_notice.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                            last_notice = Some(tokio::time::Instant::now());
                            tracing::info!(code = "rate_limited", "app frames over the rate dropped");
                            let e = ServerFrame::Error { code: AppErrorCode::RateLimited, message: format!("over {} frames per second", limits.messages_per_second) };
                            if !conn.send(&e).await { break; }
                        }
                        if refused_streak > limits.burst.saturating_mul(10) {
                            tracing::info!("flooding app connection closed");
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
                    tracing::warn!(error = %e, "publish failed");
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

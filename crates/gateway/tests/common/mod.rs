//! An in-process server (vault host + gateway on the embedded backend) on a loopback port, and
//! raw WebSocket and HTTP helpers.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use callvault_bus::MemoryBus;
use callvault_gateway::{Gateway, GatewayConfig, ListenConfig};
use callvault_protocol::app::ServerFrame;
use callvault_store::EmbeddedStore;
use callvault_vault::host::VaultHost;
use callvault_vault::manager::VaultOptions;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Server {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway<MemoryBus, EmbeddedStore>>,
    pub host: Arc<VaultHost<MemoryBus, EmbeddedStore>>,
    pub bus: MemoryBus,
    pub dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The prefix of the gateway's refusal counters in `/metrics` (the reason label follows).
pub const ERR: &str = "callvault_refused_messages_total{source=\"gateway\",reason=";

pub async fn start(config: GatewayConfig) -> Server {
    start_with(config, ListenConfig::default()).await
}

/// A server whose listening socket has `listen`'s caps and deadlines.
pub async fn start_with(config: GatewayConfig, listen: ListenConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("callvault.redb")).unwrap();
    let bus = MemoryBus::new();
    let host = VaultHost::open(store, bus.clone(), dir.path(), VaultOptions::default()).await.unwrap();
    let gateway = Gateway::new(host.clone(), bus.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gw = gateway.clone();
    let task = tokio::spawn(async move { gw.serve_until_dropped(listener, listen).await });
    Server { addr, gateway, host, bus, dir, task }
}

impl Server {
    /// Stops the server and its vaults and hands over its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.task.abort();
        self.host.shutdown(Duration::from_secs(5)).await;
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn url(&self) -> String {
        format!("ws://{}/app", self.addr)
    }

    pub async fn ws(&self) -> Ws {
        tokio_tungstenite::connect_async(self.url()).await.unwrap().0
    }

    /// GET `path` with extra headers; (status, body).
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    /// Waits until the gateway counts `n` open connections (closed sockets are noticed
    /// asynchronously).
    pub async fn wait_connections(&self, n: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.metric("callvault_gateway_connections").await != n {
            assert!(tokio::time::Instant::now() < deadline, "connections never went to {n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of one metrics series (exact name with labels).
    pub async fn metric(&self, series: &str) -> f64 {
        let (status, body) = self.get("/metrics", &[]).await;
        assert_eq!(status, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no series {series} in\n{body}"))
            .trim()
            .parse()
            .unwrap()
    }
}

/// The next server frame, or None when the socket closed (or nothing came within 5 s).
pub async fn recv(ws: &mut Ws) -> Option<ServerFrame> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

pub async fn send(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Whether the server closed the socket (within 5 s), reading past any frames.
pub async fn closed(ws: &mut Ws) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The challenge the server opens a socket with.
pub async fn challenge(ws: &mut Ws) -> String {
    match recv(ws).await {
        Some(ServerFrame::Challenge { challenge, .. }) => challenge,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// Answers the challenge as `id` (registered already) and waits for `ready`.
pub async fn authenticate(ws: &mut Ws, id: &callvault_crypto::SecretIdentity) {
    let ch = challenge(ws).await;
    let note = id.sign_note(callvault_protocol::app::AUTH_KIND, &ch, unix_now()).unwrap();
    send(ws, serde_json::json!({"type": "auth", "note": note})).await;
    match recv(ws).await {
        Some(ServerFrame::Ready { .. }) => {}
        other => panic!("expected ready, got {other:?}"),
    }
}

//! The Rust client SDK over the app API (`docs/APP-API.md`), used by the CLI, the demo, tests
//! and bots.
//!
//! [`Client::connect`] opens the WebSocket, answers the challenge with the identity key, and
//! registers the user when the server asks (delegating the vault key it offers). Then the client
//! publishes requests into its own `forVault` and reads its `forApp` messages as [`AppEvent`]s.
//! Events that arrive while the client waits for something else are kept, in order, for
//! [`Client::next_event`].
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callvault_crypto::callkeys::EphemeralKey;
use callvault_crypto::invite::InviteToken;
use callvault_crypto::{Delegation, PublicIdentity, SecretIdentity, seal};
use callvault_protocol::app::ConnectionSummary;
use callvault_protocol::app::{AUTH_KIND, AppErrorCode, AppFrame, ServerFrame, TurnCredentials};
use callvault_protocol::calling::CallRecord;
use callvault_protocol::fields::{CallType, Direction, DisplayName, SignalPayload, SignalType};
use callvault_protocol::messaging::{MessageHistoryNotification, MessageStatus, SealedBody};
use callvault_protocol::{CallId, Guid, KeyId, MessageId, Timestamp};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// One message of a conversation, opened.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShownMessage {
    /// Its key in the conversation (to delete it, or to page before it).
    pub item: String,
    /// One's own.
    pub outgoing: bool,
    /// Its number in its sender's conversation.
    pub seq: u64,
    /// When its sender's vault took it.
    pub sent_at: Timestamp,
    /// Sent, delivered, read, received.
    pub status: MessageStatus,
    /// The text (or a note that it cannot be decrypted).
    pub text: String,
}

/// How long a request waits for its answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error("server unreachable at {url}: {reason}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The gateway refused a frame.
    #[error("refused by the server ({}): {message}", code.as_str())]
    Refused {
        /// What.
        code: AppErrorCode,
        /// Why.
        message: String,
    },
    /// The vault refused a request.
    #[error("refused by the vault ({code}): {message}")]
    Vault {
        /// The vault's error code (`not_connected`, `unknown_call`, ...).
        code: String,
        /// Why.
        message: String,
    },
    /// A message longer than the protocol takes (16 384 bytes of text).
    #[error("the message is longer than 16 384 bytes of text")]
    TooLarge,
    /// The peer is not among the user's connections.
    #[error("not connected to that peer")]
    NotConnected,
    /// No such call in the user's vault.
    #[error("call not found")]
    CallNotFound,
    /// No answer in time.
    #[error("no answer within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    /// The connection closed.
    #[error("the connection closed")]
    Closed,
    /// The server said something this client does not understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Signing failed.
    #[error("signing failed")]
    Signing,
}

/// One message from the user's vault.
#[derive(Debug, Clone, PartialEq)]
pub struct AppEvent {
    /// The subject after `OwnerSpace.{guid}.forApp.` (`call.incoming`, `history.list`, ...).
    pub kind: String,
    /// The message.
    pub payload: Value,
}

impl AppEvent {
    /// The `call_id` field, if any.
    pub fn call_id(&self) -> Option<&str> {
        self.payload.get("call_id").and_then(Value::as_str)
    }

    /// The `in_reply_to` field, if any.
    pub fn in_reply_to(&self) -> Option<&str> {
        self.payload.get("in_reply_to").and_then(Value::as_str)
    }
}

/// Who the client is on the server.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user's guid.
    pub guid: Guid,
    /// The vault's public key (hex).
    pub vault_key: String,
    /// The user's delegation of it.
    pub delegation: Delegation,
    /// The account's display name.
    pub display_name: DisplayName,
}

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// A connected, authenticated app.
pub struct Client {
    identity: Arc<SecretIdentity>,
    session: Session,
    sink: Sink,
    frames: mpsc::UnboundedReceiver<ServerFrame>,
    backlog: VecDeque<AppEvent>,
    prefix: String,
    timeout: Duration,
    server_errors: VecDeque<(AppErrorCode, String)>,
}

fn later(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d).unwrap_or(now)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    Timestamp::from_unix_millis(ms)
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        tracing::error!("OS random number generator failed");
    }
    b
}

/// A fresh random message id.
pub fn new_message_id() -> MessageId {
    MessageId::from_bytes(random16())
}

/// A fresh random call id.
pub fn new_call_id() -> CallId {
    CallId::from_bytes(random16())
}

async fn next_frame(
    frames: &mut mpsc::UnboundedReceiver<ServerFrame>,
    t: Duration,
    what: &'static str,
) -> Result<ServerFrame, ClientError> {
    match tokio::time::timeout(t, frames.recv()).await {
        Err(_) => Err(ClientError::Timeout(t, what)),
        Ok(None) => Err(ClientError::Closed),
        Ok(Some(f)) => Ok(f),
    }
}

async fn send(sink: &mut Sink, frame: &AppFrame) -> Result<(), ClientError> {
    let text = serde_json::to_string(frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
    sink.send(Message::Text(text.into())).await.map_err(|_| ClientError::Closed)
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("guid", &self.session.guid).field("kept_events", &self.backlog.len()).finish()
    }
}

impl Client {
    /// Connects to `url` (`ws://host:port/app`), authenticates as `identity`, and registers with
    /// `display_name` if the user has no account yet.
    pub async fn connect(url: &str, identity: Arc<SecretIdentity>, display_name: &str) -> Result<Self, ClientError> {
        let (ws, _) =
            tokio::time::timeout(DEFAULT_TIMEOUT, tokio_tungstenite::connect_async_with_config(url, None, true))
                .await
                .map_err(|_| ClientError::Unreachable { url: url.to_owned(), reason: "timed out".into() })?
                .map_err(|e| ClientError::Unreachable { url: url.to_owned(), reason: e.to_string() })?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                match serde_json::from_str::<ServerFrame>(t.as_str()) {
                    Ok(f) => {
                        if tx.send(f).is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable server frame"),
                }
            }
        });
        let t = DEFAULT_TIMEOUT;
        let ServerFrame::Challenge { challenge, server_time } = next_frame(&mut frames, t, "challenge").await? else {
            return Err(ClientError::Protocol("expected a challenge".into()));
        };
        // Stamp with the server's clock when ours is off by more than the allowed skew.
        let stamp = if unix_now().abs_diff(server_time) > 30 { server_time } else { unix_now() };
        let note = identity.sign_note(AUTH_KIND, &challenge, stamp).map_err(|_| ClientError::Signing)?;
        send(&mut sink, &AppFrame::Auth { note }).await?;
        let ready = loop {
            match next_frame(&mut frames, t, "authentication").await? {
                ServerFrame::RegisterRequired { vault_key } => {
                    let vault =
                        PublicIdentity::parse(&vault_key).map_err(|_| ClientError::Protocol("bad vault key".into()))?;
                    let d = Delegation::sign(&identity, &vault, stamp).map_err(|_| ClientError::Signing)?;
                    let frame = AppFrame::Register { delegation: d.to_json(), display_name: display_name.to_owned() };
                    send(&mut sink, &frame).await?;
                }
                ServerFrame::Error { code, message } => return Err(ClientError::Refused { code, message }),
                r @ ServerFrame::Ready { .. } => break r,
                other => return Err(ClientError::Protocol(format!("unexpected frame {other:?}"))),
            }
        };
        let ServerFrame::Ready { guid, vault_key, delegation, display_name, .. } = ready else {
            return Err(ClientError::Protocol("expected ready".into()));
        };
        if guid != identity.public().guid() {
            return Err(ClientError::Protocol("the server named another guid".into()));
        }
        let delegation =
            Delegation::from_json(&delegation).map_err(|_| ClientError::Protocol("bad delegation".into()))?;
        let display_name =
            DisplayName::new(display_name).map_err(|_| ClientError::Protocol("bad display name".into()))?;
        let prefix = format!("OwnerSpace.{guid}.forApp.");
        Ok(Self {
            identity,
            session: Session { guid, vault_key, delegation, display_name },
            sink,
            frames,
            backlog: VecDeque::new(),
            prefix,
            timeout: DEFAULT_TIMEOUT,
            server_errors: VecDeque::new(),
        })
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The user's guid.
    pub fn guid(&self) -> &Guid {
        &self.session.guid
    }

    /// Sets how long requests wait for answers.
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// Publishes `payload` to `OwnerSpace.{guid}.forVault.<kind>`.
    pub async fn publish(&mut self, kind: &str, payload: Value) -> Result<(), ClientError> {
        let subject = format!("OwnerSpace.{}.forVault.{kind}", self.session.guid);
        send(&mut self.sink, &AppFrame::Publish { subject, payload }).await
    }

    /// Sends a raw frame (for tests of the gateway's refusals).
    pub async fn send_frame(&mut self, frame: &AppFrame) -> Result<(), ClientError> {
        send(&mut self.sink, frame).await
    }

    /// Gateway errors received so far and not yet taken.
    pub fn take_server_errors(&mut self) -> Vec<(AppErrorCode, String)> {
        self.server_errors.drain(..).collect()
    }

    /// Reads the next frame into the backlog (events) or the error list; false on timeout.
    async fn pump(
        &mut self,
        until: tokio::time::Instant,
        what: &'static str,
    ) -> Result<Option<ServerFrame>, ClientError> {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        match next_frame(&mut self.frames, left, what).await {
            Ok(ServerFrame::Message { subject, payload }) => {
                let kind = subject.strip_prefix(&self.prefix).unwrap_or(&subject).to_owned();
                self.backlog.push_back(AppEvent { kind, payload });
                Ok(None)
            }
            Ok(ServerFrame::Error { code, message }) => {
                self.server_errors.push_back((code, message.clone()));
                Err(ClientError::Refused { code, message })
            }
            Ok(other) => Ok(Some(other)),
            Err(e) => Err(e),
        }
    }

    /// The next event from the vault (kept ones first), waiting up to `t`.
    pub async fn next_event(&mut self, t: Duration) -> Result<AppEvent, ClientError> {
        let until = later(t);
        loop {
            if let Some(e) = self.backlog.pop_front() {
                return Ok(e);
            }
            self.pump(until, "an event").await?;
        }
    }

    /// Waits for the first event (kept or new) that `pred` picks; others stay kept.
    pub async fn wait_for(
        &mut self,
        t: Duration,
        what: &'static str,
        pred: impl Fn(&AppEvent) -> bool,
    ) -> Result<AppEvent, ClientError> {
        let until = later(t);
        let mut seen = 0;
        loop {
            if let Some(i) = self.backlog.iter().skip(seen).position(&pred) {
                let at = seen.saturating_add(i);
                if let Some(e) = self.backlog.remove(at) {
                    return Ok(e);
                }
            }
            seen = self.backlog.len();
            self.pump(until, what).await?;
        }
    }

    /// Sends a request with a fresh `message_id` and waits for the answer that names it
    /// (`in_reply_to`) or, for call requests, names `call_id` with one of `kinds`.
    async fn request(
        &mut self,
        kind: &str,
        body: Value,
        kinds: &'static [&'static str],
        call_id: Option<&CallId>,
    ) -> Result<AppEvent, ClientError> {
        self.request_with(kind, body, new_message_id(), kinds, call_id).await
    }

    /// [`Self::request`] with a `message_id` chosen by the caller (a sealed body is bound to it).
    async fn request_as(&mut self, kind: &str, body: Value, id: MessageId) -> Result<AppEvent, ClientError> {
        self.request_with(kind, body, id, &[], None).await
    }

    async fn request_with(
        &mut self,
        kind: &str,
        mut body: Value,
        id: MessageId,
        kinds: &'static [&'static str],
        call_id: Option<&CallId>,
    ) -> Result<AppEvent, ClientError> {
        if let Some(o) = body.as_object_mut() {
            o.insert("message_id".into(), id.to_string().into());
            o.insert("timestamp".into(), now().to_string().into());
        }
        self.publish(kind, body).await?;
        let id = id.to_string();
        let call = call_id.map(ToString::to_string);
        let t = self.timeout;
        let e = self
            .wait_for(t, "the vault's answer", |e| {
                e.in_reply_to() == Some(id.as_str())
                    || (call.is_some() && e.call_id() == call.as_deref() && kinds.contains(&e.kind.as_str()))
            })
            .await?;
        if e.kind.ends_with(".error") {
            let code = e.payload.get("code").and_then(Value::as_str).unwrap_or("internal").to_owned();
            let message = e.payload.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
            return Err(match code.as_str() {
                "not_connected" => ClientError::NotConnected,
                "too_large" => ClientError::TooLarge,
                "unknown_call" => ClientError::CallNotFound,
                _ => ClientError::Vault { code, message },
            });
        }
        Ok(e)
    }

    /// Makes an invite valid `ttl_secs`, records it in the vault, and returns it to share.
    pub async fn invite(&mut self, ttl_secs: u64) -> Result<InviteToken, ClientError> {
        let token = self.own_token(ttl_secs)?;
        self.request("connection.invite", json!({"type": "connection.invite", "token": token.as_str()}), &[], None)
            .await?;
        Ok(token)
    }

    fn own_token(&self, ttl_secs: u64) -> Result<InviteToken, ClientError> {
        let s = &self.session;
        InviteToken::create(
            &self.identity,
            &s.delegation,
            s.display_name.clone(),
            "local",
            random16(),
            unix_now(),
            ttl_secs,
        )
        .map_err(|_| ClientError::Signing)
    }

    /// Accepts someone's invite; returns their guid and display name.
    pub async fn accept_invite(&mut self, token: &str) -> Result<(Guid, String), ClientError> {
        let mine = self.own_token(600)?;
        let e = self
            .request(
                "connection.connect",
                json!({"type": "connection.connect", "token": token.trim(), "mine": mine.as_str()}),
                &[],
                None,
            )
            .await?;
        let guid = e
            .payload
            .get("peer_guid")
            .and_then(Value::as_str)
            .and_then(|s| Guid::parse(s).ok())
            .ok_or_else(|| ClientError::Protocol("connected without a guid".into()))?;
        let name = e.payload.get("display_name").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok((guid, name))
    }

    /// The user's connections, in guid order (page after page).
    pub async fn connections(&mut self) -> Result<Vec<ConnectionSummary>, ClientError> {
        let mut all: Vec<ConnectionSummary> = Vec::new();
        loop {
            let req = match all.last() {
                Some(last) => json!({"type": "connection.list", "after": last.guid}),
                None => json!({"type": "connection.list"}),
            };
            let e = self.request("connection.list", req, &[], None).await?;
            let page: Vec<ConnectionSummary> =
                serde_json::from_value(e.payload.get("connections").cloned().unwrap_or(Value::Null))
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
            let more = e.payload.get("more").and_then(Value::as_bool).unwrap_or(false);
            if page.is_empty() || !more {
                all.extend(page);
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// A connection's identity key (to seal signals to, and to check the SAS against).
    pub async fn peer_identity(&mut self, peer: &Guid) -> Result<PublicIdentity, ClientError> {
        let list = self.connections().await?;
        let c = list.iter().find(|c| &c.guid == peer).ok_or(ClientError::NotConnected)?;
        PublicIdentity::parse(c.user_key.as_str()).map_err(|_| ClientError::Protocol("bad peer key".into()))
    }

    /// Seals `body` to `peer` and sends it as a `call.signal` of `call_id` through both vaults
    /// (which cannot read it).
    pub async fn send_signal(
        &mut self,
        call_id: &CallId,
        peer: &PublicIdentity,
        signal_type: SignalType,
        body: &[u8],
    ) -> Result<(), ClientError> {
        let payload = seal::seal_signal(&self.identity, peer, call_id, signal_type, body)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let body = json!({"type": "call.signal", "message_id": new_message_id(), "timestamp": now().to_string(),
            "call_id": call_id, "signal_type": signal_type, "payload": payload});
        self.publish("call.signal", body).await
    }

    /// Opens a received `call.signal` event sealed by `peer`: its type and body.
    pub fn open_signal(&self, event: &AppEvent, peer: &PublicIdentity) -> Result<(SignalType, Vec<u8>), ClientError> {
        let bad = |what: &str| ClientError::Protocol(format!("call.signal without a valid {what}"));
        let p = &event.payload;
        let call_id = p
            .get("call_id")
            .and_then(Value::as_str)
            .and_then(|s| CallId::parse(s).ok())
            .ok_or_else(|| bad("call_id"))?;
        let signal_type: SignalType = p
            .get("signal_type")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| bad("signal_type"))?;
        let payload: SignalPayload =
            p.get("payload").cloned().and_then(|v| serde_json::from_value(v).ok()).ok_or_else(|| bad("payload"))?;
        let body = seal::open_signal(&self.identity, peer, &call_id, signal_type, &payload)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((signal_type, body.to_vec()))
    }

    /// Seals `text` to `peer` (whose identity key is `key`) and sends it; returns the vault's
    /// `message.sent` (its `item`, `seq`, `sent_at`).
    pub async fn send_message(
        &mut self,
        peer: &Guid,
        key: &PublicIdentity,
        text: &str,
    ) -> Result<AppEvent, ClientError> {
        self.send_message_as(peer, key, text, new_message_id()).await
    }

    /// [`Self::send_message`] with the `message_id` the app chose: sending again with the same
    /// one after a lost answer (a dropped connection) is answered as the first was, and the
    /// message is stored and delivered once.
    pub async fn send_message_as(
        &mut self,
        peer: &Guid,
        key: &PublicIdentity,
        text: &str,
        id: MessageId,
    ) -> Result<AppEvent, ClientError> {
        let body = seal::seal_message(&self.identity, key, &id, text).map_err(|e| match e {
            seal::SealError::TooLarge(_) => ClientError::TooLarge,
            other => ClientError::Protocol(other.to_string()),
        })?;
        let req = json!({"type": "message.send", "conversation": peer, "body": body});
        self.request_as("message.send", req, id).await
    }

    /// Opens a sealed body of the conversation with `key`, bound to `sent_message_id`.
    pub fn open_message(&self, key: &PublicIdentity, sent_message_id: &str, body: &str) -> Result<String, ClientError> {
        let bad = |e: &dyn std::fmt::Display| ClientError::Protocol(format!("message body: {e}"));
        let id = MessageId::parse(sent_message_id).map_err(|e| bad(&e))?;
        let body = SealedBody::new(body).map_err(|e| bad(&e))?;
        let text = seal::open_message(&self.identity, key, &id, &body).map_err(|e| bad(&e))?;
        Ok(text.as_str().to_owned())
    }

    /// A page of the conversation with `peer`, newest first, opened; `before` is the last
    /// page's oldest item.
    pub async fn messages(
        &mut self,
        peer: &Guid,
        key: &PublicIdentity,
        limit: u32,
        before: Option<&str>,
    ) -> Result<(Vec<ShownMessage>, bool), ClientError> {
        let mut req = json!({"type": "message.history", "conversation": peer, "limit": limit.clamp(1, 50)});
        if let (Some(b), Some(o)) = (before, req.as_object_mut()) {
            o.insert("before".into(), json!(b));
        }
        let e = self.request("message.history", req, &[], None).await?;
        let page: MessageHistoryNotification =
            serde_json::from_value(e.payload).map_err(|e| ClientError::Protocol(format!("message.history: {e}")))?;
        let shown = page
            .messages
            .into_iter()
            .map(|m| {
                let text = self.open_message(key, m.sent_message_id.as_str(), m.body.as_str());
                ShownMessage {
                    item: m.item.to_string(),
                    outgoing: m.direction == Direction::Outgoing,
                    seq: m.seq.get(),
                    sent_at: m.sent_at,
                    status: m.status,
                    text: text.unwrap_or_else(|_| "(cannot be decrypted)".into()),
                }
            })
            .collect();
        Ok((shown, page.more))
    }

    /// Tells the vault (and the peer) that the peer's messages up to `seq` were shown.
    pub async fn mark_read(&mut self, peer: &Guid, seq: u64) -> Result<(), ClientError> {
        let req = json!({"type": "message.read", "message_id": new_message_id(), "timestamp": now().to_string(),
            "conversation": peer, "seq": seq});
        self.publish("message.read", req).await
    }

    /// Deletes a message here, and with `for_both` (one's own) at the peer.
    pub async fn delete_message(&mut self, peer: &Guid, item: &str, for_both: bool) -> Result<(), ClientError> {
        let req = json!({"type": "message.delete", "conversation": peer, "item": item, "for_both": for_both});
        self.request("message.delete", req, &[], None).await.map(|_| ())
    }

    /// Keeps the conversation with `peer` only `days` days (1 to 90).
    pub async fn set_retention(&mut self, peer: &Guid, days: u16) -> Result<(), ClientError> {
        let req = json!({"type": "message.retention", "conversation": peer, "days": days});
        self.request("message.retention", req, &[], None).await.map(|_| ())
    }

    /// Changes the user's display name and avatar; shared with every connection. Returns how
    /// many connections it goes to.
    pub async fn set_profile(&mut self, display_name: &str, avatar_url: Option<&str>) -> Result<u64, ClientError> {
        let mut req = json!({"type": "profile.set", "guid": self.guid(), "display_name": display_name});
        if let (Some(a), Some(o)) = (avatar_url, req.as_object_mut()) {
            o.insert("avatar_url".into(), json!(a));
        }
        let e = self.request("profile.set", req, &[], None).await?;
        Ok(e.payload.get("shared_with").and_then(Value::as_u64).unwrap_or(0))
    }

    /// A profile (one's own, or a connection's as they last shared it): its display name and
    /// avatar, or none if never set.
    pub async fn profile(&mut self, guid: &Guid) -> Result<Option<(String, Option<String>)>, ClientError> {
        let e = self.request("profile.get", json!({"type": "profile.get", "guid": guid}), &[], None).await?;
        let name = e.payload.get("display_name").and_then(Value::as_str).map(str::to_owned);
        let avatar = e.payload.get("avatar_url").and_then(Value::as_str).map(str::to_owned);
        Ok(name.map(|n| (n, avatar)))
    }

    /// Revokes a connection.
    pub async fn revoke(&mut self, peer: &Guid) -> Result<(), ClientError> {
        self.request("connection.revoke", json!({"type": "connection.revoke", "peer_guid": peer}), &[], None)
            .await
            .map(|_| ())
    }

    /// The user's calls, newest first.
    pub async fn history(&mut self, limit: usize) -> Result<Vec<CallRecord>, ClientError> {
        let e = self.request("history.list", json!({"limit": limit}), &[], None).await?;
        serde_json::from_value(e.payload.get("calls").cloned().unwrap_or(Value::Null))
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Calls `peer`; returns once the vault took the call (`call.initiated`).
    pub async fn call(&mut self, peer: &Guid, call_type: CallType) -> Result<CallId, ClientError> {
        let call_id = new_call_id();
        let body = json!({"type": "call.initiate", "call_id": call_id, "peer_guid": peer, "call_type": call_type});
        self.request("call.initiate", body, &["call.initiated"], Some(&call_id)).await?;
        Ok(call_id)
    }

    /// Answers a ringing call with a fresh ephemeral key (returned, for the media keys).
    pub async fn answer(&mut self, call_id: &CallId) -> Result<EphemeralKey, ClientError> {
        let key = EphemeralKey::generate();
        let public_key = key.public_field().map_err(|_| ClientError::Signing)?;
        let body = json!({"type": "call.accept", "call_id": call_id, "public_key": public_key, "key_id": KeyId::from_bytes(random16())});
        self.request("call.accept", body, &["call.accepted"], Some(call_id)).await?;
        Ok(key)
    }

    /// Declines a ringing call.
    pub async fn reject(&mut self, call_id: &CallId) -> Result<(), ClientError> {
        let body = json!({"type": "call.reject", "call_id": call_id});
        self.request("call.reject", body, &["call.rejected"], Some(call_id)).await.map(|_| ())
    }

    /// Hangs up (or cancels) a call; returns the `call.ended` (or, for a cancel, whatever settles
    /// the call) event.
    pub async fn hangup(&mut self, call_id: &CallId) -> Result<AppEvent, ClientError> {
        let body = json!({"type": "call.end", "call_id": call_id});
        self.request("call.end", body, &["call.ended", "call.rejected"], Some(call_id)).await
    }

    /// Waits until `call_id` is answered, rejected or ends; returns that event.
    pub async fn wait_call_settled(&mut self, call_id: &CallId, t: Duration) -> Result<AppEvent, ClientError> {
        let id = call_id.to_string();
        self.wait_for(t, "the call's outcome", |e| {
            e.call_id() == Some(id.as_str())
                && matches!(e.kind.as_str(), "call.accepted" | "call.rejected" | "call.ended" | "call.error")
        })
        .await
    }

    /// Waits for an incoming call; returns its event.
    pub async fn wait_incoming(&mut self, t: Duration) -> Result<AppEvent, ClientError> {
        self.wait_for(t, "an incoming call", |e| e.kind == "call.incoming").await
    }

    /// TURN credentials over the WebSocket.
    pub async fn turn_credentials(&mut self, relay_only: bool) -> Result<TurnCredentials, ClientError> {
        let request_id = new_message_id().to_string();
        send(&mut self.sink, &AppFrame::TurnCredentials { request_id: request_id.clone(), relay_only }).await?;
        let until = later(self.timeout);
        loop {
            if let Some(ServerFrame::TurnCredentials { request_id: r, credentials }) =
                self.pump(until, "TURN credentials").await?
                && r == request_id
            {
                return Ok(credentials);
            }
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

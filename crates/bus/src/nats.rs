//! [`NatsBus`]: the bus over a NATS server or cluster (async-nats).
//!
//! Reconnects forever with a short backoff; subscriptions are restored by the client after a
//! reconnect. Messages published while disconnected are buffered by the client and sent on
//! reconnect; messages the server had in flight to a subscriber when it went down are lost (NATS
//! core is at-most-once). Permission violations, which NATS reports asynchronously, are logged
//! without the subject and sent to [`Bus::refusals`].

use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::{ConnectOptions, Event, ServerError};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::broadcast;

use crate::subject::{check_pattern, check_subject};
use crate::{Bus, BusError, Message, Refusal, Subscription, check_group, check_payload};

/// How long [`Bus::flush`] waits for the server's echo.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the NATS server.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// Server URL(s), comma separated (`nats://127.0.0.1:4222`).
    pub url: String,
    /// User name and password, when the server requires them.
    pub user: Option<(String, String)>,
    /// Connection name shown by the server's monitoring.
    pub name: Option<String>,
    /// Prefix of this client's reply inboxes (default `_INBOX`). The client must be allowed to
    /// publish and subscribe to `<prefix>.>`: [`Bus::flush`] echoes through it.
    pub inbox_prefix: Option<String>,
}

/// A bus over NATS. Clones share the connection.
#[derive(Clone, Debug)]
pub struct NatsBus {
    client: async_nats::Client,
    refusals: broadcast::Sender<Refusal>,
}

impl NatsBus {
    /// Connects; fails if the server cannot be reached now.
    pub async fn connect(opts: NatsOptions) -> Result<Self, BusError> {
        let (refusals, _) = broadcast::channel(256);
        let tx = refusals.clone();
        let mut o = ConnectOptions::new()
            .event_callback(move |event| {
                let tx = tx.clone();
                async move { on_event(event, &tx) }
            })
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(u64::try_from(attempts).unwrap_or(u64::MAX).saturating_mul(50).min(1_000))
            })
            .connection_timeout(Duration::from_secs(5));
        if let Some((user, pass)) = opts.user {
            o = o.user_and_password(user, pass);
        }
        if let Some(name) = opts.name {
            o = o.name(name);
        }
        if let Some(prefix) = opts.inbox_prefix {
            o = o.custom_inbox_prefix(prefix);
        }
        let client = o.connect(opts.url.as_str()).await.map_err(|e| BusError::Unavailable(e.to_string()))?;
        Ok(Self { client, refusals })
    }

    /// The underlying client (for JetStream).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    async fn sub(&self, pattern: &str, group: Option<&str>) -> Result<Subscription, BusError> {
        check_pattern(pattern)?;
        let s = match group {
            Some(g) => {
                check_group(g)?;
                self.client.queue_subscribe(pattern.to_owned(), g.to_owned()).await
            }
            None => self.client.subscribe(pattern.to_owned()).await,
        }
        .map_err(|e| BusError::Unavailable(e.to_string()))?;
        Ok(Subscription::new(s.map(|m| Message {
            subject: m.subject.to_string(),
            reply: m.reply.map(|r| r.to_string()),
            payload: m.payload,
        })))
    }
}

fn on_event(event: Event, refusals: &broadcast::Sender<Refusal>) {
    match event {
        Event::ServerError(ServerError::Other(reason))
            if reason.to_ascii_lowercase().contains("permissions violation") =>
        {
            // The reason names the subject, which may carry a guid: log only the kind.
            tracing::warn!("nats: publish or subscribe refused: permissions violation");
            let _ = refusals.send(Refusal { reason });
        }
        Event::ServerError(ServerError::AuthorizationViolation) => {
            tracing::warn!("nats: authorization violation");
            let _ = refusals.send(Refusal { reason: "authorization violation".to_owned() });
        }
        Event::Connected => tracing::info!("nats: connected"),
        Event::Disconnected => tracing::warn!("nats: disconnected; reconnecting"),
        other => tracing::info!(event = %other, "nats"),
    }
}

impl Bus for NatsBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject)?;
        check_payload(payload.len(), self.max_payload())?;
        self.client.publish(subject.to_owned(), payload).await.map_err(|e| BusError::Unavailable(e.to_string()))
    }

    async fn publish_with_reply(&self, subject: &str, reply: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject)?;
        check_subject(reply)?;
        check_payload(payload.len(), self.max_payload())?;
        self.client
            .publish_with_reply(subject.to_owned(), reply.to_owned(), payload)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        self.sub(pattern, None).await
    }

    async fn queue_subscribe(&self, pattern: &str, group: &str) -> Result<Subscription, BusError> {
        self.sub(pattern, Some(group)).await
    }

    async fn request(&self, subject: &str, payload: Bytes, timeout: Duration) -> Result<Message, BusError> {
        check_subject(subject)?;
        check_payload(payload.len(), self.max_payload())?;
        let req = async_nats::Request::new().payload(payload).timeout(Some(timeout));
        match self.client.send_request(subject.to_owned(), req).await {
            Ok(m) => Ok(Message {
                subject: m.subject.to_string(),
                reply: m.reply.map(|r| r.to_string()),
                payload: m.payload,
            }),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::TimedOut => BusError::Timeout,
                RequestErrorKind::NoResponders => BusError::NoResponders,
                _ => BusError::Unavailable(e.to_string()),
            }),
        }
    }

    /// A round trip through the server: publishes to a fresh inbox of this client and waits for
    /// the echo. The server handles one connection's commands in order, so when the echo arrives
    /// every earlier publish and subscription of this client has been processed (async-nats's own
    /// `flush` only empties the socket buffer).
    async fn flush(&self) -> Result<(), BusError> {
        let unavailable = |e: &dyn std::fmt::Display| BusError::Unavailable(e.to_string());
        let inbox = self.client.new_inbox();
        let mut echo = self.client.subscribe(inbox.clone()).await.map_err(|e| unavailable(&e))?;
        self.client.publish(inbox, Bytes::new()).await.map_err(|e| unavailable(&e))?;
        self.client.flush().await.map_err(|e| unavailable(&e))?;
        match tokio::time::timeout(FLUSH_TIMEOUT, echo.next()).await {
            Ok(Some(_)) => Ok(()),
            _ => Err(BusError::Unavailable("no echo from the server within the flush timeout".into())),
        }
    }

    fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    fn refusals(&self) -> broadcast::Receiver<Refusal> {
        self.refusals.subscribe()
    }
}

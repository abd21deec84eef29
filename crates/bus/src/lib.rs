//! The bus: ephemeral publish/subscribe with NATS subject semantics.
//!
//! [`Bus`] has two backends with the same behaviour, checked by one conformance suite
//! (`conformance`, run by `tests/`): [`MemoryBus`], in-process, the default of a single-machine
//! deployment; and [`NatsBus`], over a NATS server or cluster.
//!
//! The bus stores nothing. A message published while nobody subscribes is gone; a subscriber
//! that falls too far behind loses messages (counted, as NATS does for slow consumers).
#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

mod memory;
mod nats;
pub mod subject;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use memory::MemoryBus;
pub use nats::{NatsBus, NatsOptions};
pub use subject::SubjectError;

/// One message as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The concrete subject it was published to.
    pub subject: String,
    /// Where a reply goes, for requests.
    pub reply: Option<String>,
    /// The payload.
    pub payload: Bytes,
}

/// A publish the server refused after accepting it on the wire (NATS reports permission
/// violations asynchronously).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The server's reason, e.g. `Permissions Violation for Publish to "x"`.
    pub reason: String,
}

/// What a bus operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The subject or pattern is not valid.
    #[error("invalid subject: {0}")]
    Subject(#[from] SubjectError),
    /// The queue group name is not a valid token.
    #[error("invalid queue group name")]
    QueueGroup,
    /// The payload is larger than the bus accepts.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// Payload size.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// No reply within the timeout.
    #[error("request timed out")]
    Timeout,
    /// Nobody subscribes to the request's subject.
    #[error("no responders for the request")]
    NoResponders,
    /// The server refused the operation (permissions).
    #[error("refused by the server: {0}")]
    Refused(String),
    /// The connection is closed or could not be made.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// A stream of messages for one subscription. Dropping it unsubscribes.
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = Message> + Send>>,
}

impl Subscription {
    pub(crate) fn new(inner: impl Stream<Item = Message> + Send + 'static) -> Self {
        Self { inner: Box::pin(inner) }
    }

    /// The next message, or `None` when the subscription ended.
    pub async fn next(&mut self) -> Option<Message> {
        futures_util::StreamExt::next(&mut self.inner).await
    }

    /// The next message within `timeout`; `None` on timeout or end.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Message> {
        tokio::time::timeout(timeout, self.next()).await.ok().flatten()
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

/// Publish/subscribe with NATS subject semantics.
pub trait Bus: Send + Sync + 'static {
    /// Publishes `payload` to the concrete `subject`.
    fn publish(&self, subject: &str, payload: Bytes) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Publishes with a reply subject (what a request does; also for forwarding requests).
    fn publish_with_reply(
        &self,
        subject: &str,
        reply: &str,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Subscribes to a pattern (`*` and `>` allowed).
    fn subscribe(&self, pattern: &str) -> impl Future<Output = Result<Subscription, BusError>> + Send;

    /// Subscribes as one member of a queue group: each message goes to one member of the group.
    fn queue_subscribe(
        &self,
        pattern: &str,
        group: &str,
    ) -> impl Future<Output = Result<Subscription, BusError>> + Send;

    /// Publishes a request and waits up to `timeout` for the first reply.
    fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<Message, BusError>> + Send;

    /// Waits until the bus has processed everything this client sent so far (publishes and
    /// subscriptions): after it returns, a message published by anyone reaches this client's
    /// subscriptions.
    fn flush(&self) -> impl Future<Output = Result<(), BusError>> + Send;

    /// The largest payload the bus accepts.
    fn max_payload(&self) -> usize;

    /// Publishes the server refused after the fact. The in-process bus never refuses.
    fn refusals(&self) -> tokio::sync::broadcast::Receiver<Refusal>;
}

pub(crate) fn check_payload(len: usize, max: usize) -> Result<(), BusError> {
    if len > max { Err(BusError::PayloadTooLarge { len, max }) } else { Ok(()) }
}

pub(crate) fn check_group(group: &str) -> Result<(), BusError> {
    subject::check_subject(group).map_err(|_| BusError::QueueGroup)?;
    if group.contains('.') {
        return Err(BusError::QueueGroup);
    }
    Ok(())
}

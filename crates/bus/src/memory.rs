//! [`MemoryBus`]: the in-process bus of a single-machine deployment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use callvault_protocol::ratelog::RateLimitedLog;
use callvault_protocol::redact::Scrubbed;
use tokio::sync::{broadcast, mpsc};
use tokio_stream_shim::ReceiverStream;

use crate::subject::{check_pattern, check_subject, matches};
use crate::{Bus, BusError, Message, Refusal, Subscription, check_group, check_payload};

/// Messages a subscriber may have queued before further ones are dropped (a slow consumer).
const SUBSCRIBER_QUEUE: usize = 65_536;

/// NATS's default maximum payload.
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// An in-process bus. Clones share the same bus.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

struct Inner {
    /// Subscriptions indexed by [`index_key`]: a publish looks at three buckets, not at every
    /// subscription of the process (a server hosting a thousand vaults has thousands).
    subs: Mutex<HashMap<String, Vec<Sub>>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
    max_payload: usize,
    refusals: broadcast::Sender<Refusal>,
}

struct Sub {
    pattern: String,
    group: Option<String>,
    tx: mpsc::Sender<Message>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").field("max_payload", &self.inner.max_payload).finish()
    }
}

impl MemoryBus {
    /// A bus with NATS's default 1 MiB maximum payload.
    pub fn new() -> Self {
        Self::with_max_payload(DEFAULT_MAX_PAYLOAD)
    }

    /// A bus with the given maximum payload.
    pub fn with_max_payload(max_payload: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                subs: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                max_payload,
                refusals: broadcast::channel(16).0,
            }),
        }
    }

    /// Messages dropped because a subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn add(&self, pattern: &str, group: Option<&str>) -> Result<Subscription, BusError> {
        check_pattern(pattern)?;
        if let Some(g) = group {
            check_group(g)?;
        }
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let sub = Sub { pattern: pattern.to_owned(), group: group.map(str::to_owned), tx };
        let mut subs = self.lock();
        let bucket = subs.entry(index_key(pattern)).or_default();
        bucket.retain(|s| !s.tx.is_closed());
        bucket.push(sub);
        Ok(Subscription::new(ReceiverStream::new(rx)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Sub>>> {
        // A panic while holding the lock cannot leave the list inconsistent: every operation on
        // it is a single push, retain or read.
        self.inner.subs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Delivers to every plain subscriber and one member per queue group; returns how many
    /// subscriptions matched.
    fn deliver(&self, msg: Message) -> usize {
        let mut subs = self.lock();
        let keys = candidate_keys(&msg.subject);
        for k in &keys {
            if let Some(bucket) = subs.get_mut(k) {
                bucket.retain(|s| !s.tx.is_closed());
                if bucket.is_empty() {
                    subs.remove(k);
                }
            }
        }
        let mut groups: HashMap<&str, Vec<&Sub>> = HashMap::new();
        let mut matched = 0usize;
        let candidates = keys.iter().filter_map(|k| subs.get(k)).flatten();
        for s in candidates.filter(|s| matches(&s.pattern, &msg.subject)) {
            matched = matched.saturating_add(1);
            match &s.group {
                Some(g) => groups.entry(g.as_str()).or_default().push(s),
                None => self.send(s, msg.clone()),
            }
        }
        for members in groups.values() {
            let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            let pick = usize::try_from(n).unwrap_or_default().checked_rem(members.len()).unwrap_or(0);
            if let Some(s) = members.get(pick) {
                self.send(s, msg.clone());
            }
        }
        matched
    }

    fn send(&self, s: &Sub, msg: Message) {
        if s.tx.try_send(msg).is_err() {
            // Said at most once a second, with the subscription's pattern scrubbed of guids.
            static SLOW: RateLimitedLog = RateLimitedLog::per_second(1);
            let dropped = self.inner.dropped.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            if let Some(suppressed) = SLOW.allow() {
                tracing::warn!(pattern = %Scrubbed(&s.pattern), dropped, suppressed, "slow consumer: message dropped");
            }
        }
    }

    fn publish_now(&self, subject: &str, reply: Option<&str>, payload: Bytes) -> Result<usize, BusError> {
        check_subject(subject)?;
        if let Some(r) = reply {
            check_subject(r)?;
        }
        check_payload(payload.len(), self.inner.max_payload)?;
        Ok(self.deliver(Message { subject: subject.to_owned(), reply: reply.map(str::to_owned), payload }))
    }
}

/// The index bucket of a pattern: its first two tokens, cut at the first wildcard.
fn index_key(pattern: &str) -> String {
    let literal: Vec<&str> = pattern.split('.').take(2).take_while(|t| *t != "*" && *t != ">").collect();
    literal.join(".")
}

/// The buckets a subject's subscribers can be in: "", its first token, its first two.
fn candidate_keys(subject: &str) -> Vec<String> {
    let mut tokens = subject.split('.');
    let first = tokens.next().unwrap_or_default();
    let mut keys = vec![String::new(), first.to_owned()];
    if let Some(second) = tokens.next() {
        keys.push(format!("{first}.{second}"));
    }
    keys
}

impl Bus for MemoryBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        self.publish_now(subject, None, payload).map(|_| ())
    }

    async fn publish_with_reply(&self, subject: &str, reply: &str, payload: Bytes) -> Result<(), BusError> {
        self.publish_now(subject, Some(reply), payload).map(|_| ())
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        self.add(pattern, None)
    }

    async fn queue_subscribe(&self, pattern: &str, group: &str) -> Result<Subscription, BusError> {
        self.add(pattern, Some(group))
    }

    async fn request(&self, subject: &str, payload: Bytes, timeout: Duration) -> Result<Message, BusError> {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = format!("_INBOX.mem.{n}");
        let mut replies = self.add(&inbox, None)?;
        if self.publish_now(subject, Some(&inbox), payload)? == 0 {
            return Err(BusError::NoResponders);
        }
        tokio::time::timeout(timeout, replies.next()).await.ok().flatten().ok_or(BusError::Timeout)
    }

    async fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }

    fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    fn refusals(&self) -> broadcast::Receiver<Refusal> {
        self.inner.refusals.subscribe()
    }
}

/// A tiny `Stream` over an `mpsc::Receiver` (what tokio-stream's wrapper does), kept here so the
/// runtime crate does not need tokio-stream.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::Stream;
    use tokio::sync::mpsc;

    pub(super) struct ReceiverStream<T>(mpsc::Receiver<T>);

    impl<T> ReceiverStream<T> {
        pub(super) fn new(rx: mpsc::Receiver<T>) -> Self {
            Self(rx)
        }
    }

    impl<T> Stream for ReceiverStream<T> {
        type Item = T;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_never_hides_a_matching_subscription() {
        let patterns = [
            ">", "*", "a", "a.>", "a.*", "a.b", "a.b.>", "a.b.*", "a.*.c", "*.b", "*.b.>", "*.*.c", "a.b.c", "x.>",
            "a.b.c.d", "a.*.>",
        ];
        let subjects = ["a", "b", "a.b", "a.c", "x.b", "a.b.c", "a.x.c", "a.b.c.d", "x.y.z", "a.b.d"];
        let mut checked = 0;
        for p in patterns {
            for s in subjects {
                if matches(p, s) {
                    checked += 1;
                    assert!(candidate_keys(s).contains(&index_key(p)), "{p} matches {s} but is not looked at");
                }
            }
        }
        assert!(checked > 40);
    }
}

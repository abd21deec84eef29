//! The vault's writer: every event's writes, in the order the events were handled, written a
//! round at a time.
//!
//! An event's handler runs, the kernel keeps what it stored in memory (so the entity's next
//! event reads it at once) and hands the writes here; the event is announced (sent, notified,
//! acknowledged) only once its writes are done. The writer takes every batch waiting when it is
//! free, keeps the last write of each key, and issues them all at once: the embedded store
//! commits them together (one fsync), JetStream takes them in one round trip. Rounds follow one
//! another, so a key's writes land in the order its events ran, and the next event of an entity
//! never waits for the commit of the one before.
//!
//! A round that fails fails every batch in it, and the vault's write epoch moves on: a batch
//! made before that (from memory that may hold what was never written) is refused, and the vault
//! reads its memory again from the store before it handles anything more
//! ([`crate::manager`]'s recovery).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use callvault_store::{Kv, KvError};
use tokio::sync::{mpsc, oneshot};

/// The most batches one round takes.
const MAX_ROUND_BATCHES: usize = 128;
/// The most writes one round takes (a batch is never split; the rest wait for the next round).
const MAX_ROUND_WRITES: usize = 512;

/// One key's new value (`None`: deleted).
pub(crate) struct Write<K> {
    pub bucket: K,
    pub key: String,
    pub value: Option<Bytes>,
}

/// The writes of one event, made at `epoch`.
struct Batch<K> {
    epoch: u64,
    writes: Vec<Write<K>>,
    done: oneshot::Sender<Result<(), KvError>>,
}

/// The handle events write through. Clones share the writer.
#[derive(Clone)]
pub(crate) struct Writer<K> {
    tx: mpsc::UnboundedSender<Batch<K>>,
    epoch: Arc<AtomicU64>,
}

/// What a batch waits on: done once its round is written.
pub(crate) type Written = oneshot::Receiver<Result<(), KvError>>;

impl<K: Kv + Clone> Writer<K> {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub(crate) fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let epoch = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(rx, epoch.clone()));
        Self { tx, epoch }
    }

    /// The current write epoch: it moves on when a round fails.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Queues an event's writes, made from memory as it was at `epoch`. Queued in call order:
    /// the caller holds the entity's turn.
    pub(crate) fn submit(&self, epoch: u64, writes: Vec<Write<K>>) -> Written {
        let (done, rx) = oneshot::channel();
        // The writer ends only with the vault; a send then fails the batch (its sender drops).
        let _ = self.tx.send(Batch { epoch, writes, done });
        rx
    }
}

/// The result of a batch whose sender is gone (the vault is closing).
pub(crate) fn closed() -> KvError {
    KvError::Backend("the vault's writer stopped".into())
}

async fn run<K: Kv + Clone>(mut rx: mpsc::UnboundedReceiver<Batch<K>>, epoch: Arc<AtomicU64>) {
    let mut held: Option<Batch<K>> = None;
    loop {
        let first = match held.take() {
            Some(b) => b,
            None => match rx.recv().await {
                Some(b) => b,
                None => return,
            },
        };
        let mut round = vec![first];
        let mut writes = round.iter().map(|b| b.writes.len()).sum::<usize>();
        while round.len() < MAX_ROUND_BATCHES {
            match rx.try_recv() {
                Ok(b) if writes.saturating_add(b.writes.len()) > MAX_ROUND_WRITES => {
                    held = Some(b);
                    break;
                }
                Ok(b) => {
                    writes = writes.saturating_add(b.writes.len());
                    round.push(b);
                }
                Err(_) => break,
            }
        }
        write_round(round, &epoch).await;
    }
}

/// Writes one round: stale batches refused, the last write of each key issued, all at once.
async fn write_round<K: Kv + Clone>(round: Vec<Batch<K>>, epoch: &AtomicU64) {
    let now = epoch.load(Ordering::Acquire);
    let (current, stale): (Vec<Batch<K>>, Vec<Batch<K>>) = round.into_iter().partition(|b| b.epoch == now);
    for b in stale {
        let _ = b.done.send(Err(KvError::Backend("made before an earlier write failed".into())));
    }
    let mut last: HashMap<(String, &str), (&K, Option<&Bytes>)> = HashMap::new();
    for w in current.iter().flat_map(|b| &b.writes) {
        last.insert((w.bucket.config().name.clone(), w.key.as_str()), (&w.bucket, w.value.as_ref()));
    }
    let issued = last.into_iter().map(|((_, key), (bucket, value))| async move {
        match value {
            Some(v) => bucket.put(key, v.clone()).await.map(|_| ()),
            None => bucket.delete(key).await,
        }
    });
    let result = futures_util::future::try_join_all(issued).await.map(|_| ());
    if result.is_err() {
        // Before any batch hears of it: whatever it made from memory afterwards is refused.
        epoch.fetch_add(1, Ordering::AcqRel);
    }
    for b in current {
        let _ = b.done.send(result.clone());
    }
}

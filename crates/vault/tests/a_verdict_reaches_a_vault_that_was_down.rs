//! At-least-once delivery (issue 13, point 5): the call family sends its verdicts (accept,
//! reject, end) at least once. A hang-up sent while the peer's vault is down is kept in the
//! sender's outbox, sent again with backoff, and arrives when the peer's vault is back; the
//! peer's acknowledgement empties the outbox. A repeat is a duplicate (no second effect).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod vaults;

use std::sync::atomic::Ordering;
use std::time::Duration;

use callvault_vault::manager::VaultOptions;
use vaults::*;

async fn hang_up_while_the_peer_is_down<W: Backend>(w: W) {
    let bus = w.bus().await;
    let options = VaultOptions::default();
    let (mut a, mut b) = (user(&w, &bus, options.clone()).await, user(&w, &bus, options.clone()).await);
    connect(&a, &b).await;
    let call = id(900);
    answered(&bus, &mut a, &mut b, &call, 900).await;
    status_becomes(&b, &call, "active").await;
    until("the accept was acknowledged", || a.vault.unacknowledged() == 0 && b.vault.unacknowledged() == 0).await;

    // Bob's vault goes down; Alice hangs up.
    let stopped = stop_vault(b).await;
    request(&bus, &a, "end", simple("end", &call, 910)).await;
    status_becomes(&a, &call, "ended").await;
    assert_eq!(a.vault.unacknowledged(), 1, "the hang-up waits in Alice's outbox");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(a.vault.stats().outbox_retries.load(Ordering::Relaxed) >= 1, "sent again while Bob was down");

    // Bob's vault is back: the hang-up arrives, and Alice's outbox empties.
    let Stopped { identity, key, delegation } = stopped;
    let b = start(&w, &bus, options, identity, key, delegation).await;
    let r = status_becomes(&b, &call, "ended").await;
    assert!(r["duration_seconds"].is_u64(), "{r}");
    until("Bob acknowledged the hang-up", || a.vault.unacknowledged() == 0).await;
    assert_eq!(b.vault.stats().handler_failures.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_hang_up_reaches_a_vault_that_was_down() {
    hang_up_while_the_peer_is_down(embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_hang_up_reaches_a_vault_that_was_down() {
    hang_up_while_the_peer_is_down(nats()).await;
}

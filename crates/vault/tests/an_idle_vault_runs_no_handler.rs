//! Idle costs nothing: once every call has settled (answered and hung up, rejected, cancelled,
//! timed out), a vault runs no handler and its timer never wakes, however long nothing happens.
//! Checked in virtual time: the calls run on the real clock, then tokio's clock is paused and
//! moved on by an hour.
//!
//! Regression (issue 12, point 1): on the earlier `main` the vault kept the last deadline it was
//! told after it passed, slept zero and ran the timeout handler again and again (thousands of runs
//! within seconds), so the counts below grew.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]

mod vaults;

use std::sync::atomic::Ordering;
use std::time::Duration;

use callvault_bus::Bus;
use callvault_store::Kv;
use callvault_vault::manager::VaultOptions;
use vaults::*;

/// (handler runs, timer wake-ups) of a user's vault.
fn counts<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>) -> (u64, u64) {
    let s = u.vault.stats();
    (s.handler_latency.counts().iter().sum(), s.timer_wakeups.load(Ordering::Relaxed))
}

#[tokio::test]
async fn settled_calls_leave_the_vault_asleep() {
    let w = embedded();
    let bus = w.bus().await;
    let options = VaultOptions { ring_timeout: Duration::from_secs(1), ..VaultOptions::default() };
    let (mut a, mut b) = (user(&w, &bus, options.clone()).await, user(&w, &bus, options).await);
    connect(&a, &b).await;

    // Answered, then hung up.
    let c1 = id(1);
    answered(&bus, &mut a, &mut b, &c1, 10).await;
    request(&bus, &a, "end", simple("end", &c1, 20)).await;
    for u in [&a, &b] {
        status_becomes(u, &c1, "ended").await;
    }
    // Rejected.
    let c2 = id(2);
    request(&bus, &a, "initiate", initiate(&c2, &b.guid, 30)).await;
    expect(&mut b, "incoming").await;
    request(&bus, &b, "reject", simple("reject", &c2, 31)).await;
    for u in [&a, &b] {
        status_becomes(u, &c2, "rejected").await;
    }
    // Cancelled while ringing.
    let c3 = id(3);
    request(&bus, &a, "initiate", initiate(&c3, &b.guid, 40)).await;
    expect(&mut b, "incoming").await;
    request(&bus, &a, "end", simple("end", &c3, 41)).await;
    for u in [&a, &b] {
        status_becomes(u, &c3, "missed").await;
    }
    // Not answered: times out on both sides (the timer fires for it, on the real clock).
    let c4 = id(4);
    request(&bus, &a, "initiate", initiate(&c4, &b.guid, 50)).await;
    expect(&mut b, "incoming").await;
    for u in [&a, &b] {
        status_becomes(u, &c4, "missed").await;
    }
    assert!(a.vault.stats().timer_wakeups.load(Ordering::Relaxed) >= 1, "the ring timeout woke the caller's vault");
    // Let the last events finish (their notifications are the last thing they do).
    while a.app.next_within(Duration::from_millis(300)).await.is_some() {}
    while b.app.next_within(Duration::from_millis(300)).await.is_some() {}

    let before = (counts(&a), counts(&b));
    tokio::time::pause();
    for _ in 0..60 {
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
    let after = (counts(&a), counts(&b));
    assert_eq!(after, before, "(handler runs, timer wake-ups) of both vaults over an idle hour");
}

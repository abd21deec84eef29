//! The conformance suite every [`Store`] backend must pass, written once.
//!
//! Each case opens its own bucket(s) through the store under test, so cases do not see each
//! other's data. Waiting for expiry polls with a deadline; nothing sleeps blindly.
#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{BucketConfig, BucketNaming, Kv, KvError, Operation, Store};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn open<S: Store>(s: &S, name: &str, history: u8, max: usize, ttl: Option<Duration>) -> S::Kv {
    s.bucket(&BucketConfig::new(name, history, max, ttl).expect("config")).await.expect("open bucket")
}

/// Runs every case, in order.
pub async fn run_all<S: Store>(s: &S) {
    put_get_and_revisions(s).await;
    create_fails_on_a_live_key_only(s).await;
    compare_and_set(s).await;
    concurrent_writes_are_answered_one_by_one(s).await;
    delete_hides_and_keeps_a_tombstone(s).await;
    keys_under_a_prefix(s).await;
    history_depth_is_kept(s).await;
    value_size_limit(s).await;
    invalid_keys_are_refused(s).await;
    watch_sees_changes_in_order(s).await;
    ttl_expires_values(s).await;
    seed_buckets_provision_and_reopen(s).await;
}

/// Puts overwrite, gets return the latest, revisions increase across the bucket.
pub async fn put_get_and_revisions<S: Store>(s: &S) {
    let kv = open(s, "conf_put", 1, 1024, None).await;
    assert_eq!(kv.get("a").await.unwrap(), None);
    let r1 = kv.put("a", b("1")).await.unwrap();
    let r2 = kv.put("b", b("2")).await.unwrap();
    let r3 = kv.put("a", b("3")).await.unwrap();
    assert!(r1 < r2 && r2 < r3, "revisions {r1} {r2} {r3}");
    let e = kv.get("a").await.unwrap().unwrap();
    assert_eq!((e.value, e.revision, e.operation), (b("3"), r3, Operation::Put));
    assert_eq!(kv.keys().await.unwrap(), vec!["a".to_owned(), "b".to_owned()]);
    // The same bucket opened again sees the same data.
    let again = open(s, "conf_put", 1, 1024, None).await;
    assert_eq!(again.get("b").await.unwrap().unwrap().value, b("2"));
}

/// `create` refuses a key holding a value, and accepts one that was deleted.
pub async fn create_fails_on_a_live_key_only<S: Store>(s: &S) {
    let kv = open(s, "conf_create", 3, 1024, None).await;
    kv.create("k", b("first")).await.unwrap();
    assert_eq!(kv.create("k", b("second")).await, Err(KvError::AlreadyExists));
    assert_eq!(kv.get("k").await.unwrap().unwrap().value, b("first"));
    kv.delete("k").await.unwrap();
    kv.create("k", b("again")).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().unwrap().value, b("again"));
}

/// `update` succeeds only from the latest revision; of two writers from the same revision,
/// exactly one wins and the loser is told the current revision.
pub async fn compare_and_set<S: Store>(s: &S) {
    let kv = open(s, "conf_cas", 5, 1024, None).await;
    let r1 = kv.put("c", b("v1")).await.unwrap();
    let r2 = kv.update("c", b("v2"), r1).await.unwrap();
    assert_eq!(kv.update("c", b("stale"), r1).await, Err(KvError::WrongRevision { expected: r1, current: Some(r2) }));
    assert_eq!(kv.get("c").await.unwrap().unwrap().value, b("v2"));
    let (x, y) = tokio::join!(kv.update("c", b("x"), r2), kv.update("c", b("y"), r2));
    assert!(x.is_ok() ^ y.is_ok(), "exactly one concurrent writer wins: {x:?} {y:?}");
    let winner = x.as_ref().or(y.as_ref()).copied().unwrap();
    assert_eq!(kv.get("c").await.unwrap().unwrap().revision, winner);
    // Revision 0 means "no revision yet": it creates a fresh key and fails on an existing one.
    kv.update("fresh", b("z"), 0).await.unwrap();
    assert!(matches!(kv.update("fresh", b("z"), 0).await, Err(KvError::WrongRevision { expected: 0, .. })));
}

/// Many writes at once, to two buckets (the embedded store commits writes that queue together in
/// one transaction): each is answered for itself. Puts all land with distinct revisions; of
/// sixteen updates from one revision and eight creates of one key, exactly one of each wins.
pub async fn concurrent_writes_are_answered_one_by_one<S: Store>(s: &S) {
    use futures_util::future::join_all;
    let (a, c) = (open(s, "conf_many_a", 1, 1024, None).await, open(s, "conf_many_b", 1, 1024, None).await);
    let r0 = a.put("shared", b("v0")).await.unwrap();
    let puts = (0..32).map(|i| {
        let kv = if i % 2 == 0 { &a } else { &c };
        async move { (i, kv.put(&format!("k{i}"), b(&format!("v{i}"))).await) }
    });
    let updates = (0..16).map(|i| a.update("shared", b(&format!("u{i}")), r0));
    let creates = (0..8).map(|i| c.create("once", b(&format!("c{i}"))));
    let (puts, updates, creates) = tokio::join!(join_all(puts), join_all(updates), join_all(creates));
    let mut revisions = std::collections::BTreeSet::new();
    for (i, r) in &puts {
        let rev = r.clone().unwrap_or_else(|e| panic!("put k{i}: {e}"));
        let kv = if i % 2 == 0 { &a } else { &c };
        assert!(revisions.insert((i % 2, rev)), "revision {rev} given twice");
        let e = kv.get(&format!("k{i}")).await.unwrap().unwrap();
        assert_eq!((e.value, e.revision), (b(&format!("v{i}")), rev));
    }
    let won: Vec<_> = updates.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "exactly one update from one revision wins: {updates:?}");
    assert!(
        updates
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(KvError::WrongRevision { expected, .. }) if *expected == r0))
    );
    assert_eq!(a.get("shared").await.unwrap().unwrap().revision, *won[0].as_ref().unwrap());
    assert_eq!(creates.iter().filter(|r| r.is_ok()).count(), 1, "exactly one create wins: {creates:?}");
    assert!(creates.iter().filter(|r| r.is_err()).all(|r| r == &Err(KvError::AlreadyExists)));
}

/// Deleting hides the key from `get` and `keys`; its history ends with a tombstone.
pub async fn delete_hides_and_keeps_a_tombstone<S: Store>(s: &S) {
    let kv = open(s, "conf_delete", 3, 1024, None).await;
    kv.put("d", b("v")).await.unwrap();
    kv.put("e", b("v")).await.unwrap();
    kv.delete("d").await.unwrap();
    assert_eq!(kv.get("d").await.unwrap(), None);
    assert_eq!(kv.keys().await.unwrap(), vec!["e".to_owned()]);
    let h = kv.history("d").await.unwrap();
    assert_eq!(h.iter().map(|e| e.operation).collect::<Vec<_>>(), vec![Operation::Put, Operation::Delete]);
    assert!(kv.history("never").await.unwrap().is_empty());
}

/// `keys_under` lists the keys below one prefix token, sorted, and no others; a deleted key, if
/// listed, reads as gone.
pub async fn keys_under_a_prefix<S: Store>(s: &S) {
    let kv = open(s, "conf_prefix", 1, 1024, None).await;
    for k in ["c1.003", "c1.001", "c1.002", "c10.001", "c1", "c2.001", "b.c1.001"] {
        kv.put(k, b("v")).await.unwrap();
    }
    kv.delete("c1.002").await.unwrap();
    let listed = kv.keys_under("c1").await.unwrap();
    let live: Vec<&str> = ["c1.001", "c1.003"].into();
    let mut visible = Vec::new();
    for k in &listed {
        assert!(k.starts_with("c1."), "{k} is not under c1");
        if kv.get(k).await.unwrap().is_some() {
            visible.push(k.as_str());
        }
    }
    assert_eq!(visible, live);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "keys_under is sorted");
    assert!(kv.keys_under("c3").await.unwrap().is_empty());
    assert!(kv.keys_under("c1.>").await.is_err(), "a pattern is not a prefix");
}

/// A bucket keeps the configured number of revisions per key, the newest ones.
pub async fn history_depth_is_kept<S: Store>(s: &S) {
    let kv = open(s, "conf_history", 3, 1024, None).await;
    for i in 1..=5 {
        kv.put("h", b(&i.to_string())).await.unwrap();
    }
    let values: Vec<Bytes> = kv.history("h").await.unwrap().into_iter().map(|e| e.value).collect();
    assert_eq!(values, vec![b("3"), b("4"), b("5")]);
    let one = open(s, "conf_history1", 1, 1024, None).await;
    one.put("h", b("1")).await.unwrap();
    one.put("h", b("2")).await.unwrap();
    assert_eq!(one.history("h").await.unwrap().len(), 1);
}

/// A value at the limit is stored; one byte more is refused with both sizes, by every write.
pub async fn value_size_limit<S: Store>(s: &S) {
    let kv = open(s, "conf_size", 1, 4096, None).await;
    let at = Bytes::from(vec![7u8; 4096]);
    let over = Bytes::from(vec![7u8; 4097]);
    let r = kv.put("v", at.clone()).await.unwrap();
    assert_eq!(kv.get("v").await.unwrap().unwrap().value, at);
    let too_large = Err(KvError::ValueTooLarge { len: 4097, max: 4096 });
    assert_eq!(kv.put("v", over.clone()).await, too_large.clone());
    assert_eq!(kv.create("w", over.clone()).await, too_large.clone());
    assert_eq!(kv.update("v", over, r).await, too_large);
    assert_eq!(kv.get("v").await.unwrap().unwrap().revision, r, "a refused write changes nothing");
}

/// Keys outside JetStream's alphabet are refused before anything is written.
pub async fn invalid_keys_are_refused<S: Store>(s: &S) {
    let kv = open(s, "conf_keys", 1, 1024, None).await;
    for bad in ["", ".a", "a.", "a b", "a*", "a>", "ü"] {
        assert!(matches!(kv.put(bad, b("x")).await, Err(KvError::InvalidKey(_))), "put {bad:?}");
        assert!(matches!(kv.get(bad).await, Err(KvError::InvalidKey(_))), "get {bad:?}");
    }
    assert!(kv.keys().await.unwrap().is_empty());
}

/// A watch sees later changes to matching keys, in revision order, deletes included.
pub async fn watch_sees_changes_in_order<S: Store>(s: &S) {
    let kv = open(s, "conf_watch", 3, 1024, None).await;
    kv.put("calls.before", b("old")).await.unwrap();
    let mut all = kv.watch(">").await.unwrap();
    let mut calls = kv.watch("calls.*").await.unwrap();
    let ops: [(&str, Option<&str>); 5] = [
        ("calls.1", Some("a")),
        ("other", Some("b")),
        ("calls.1", Some("c")),
        ("calls.2", Some("d")),
        ("calls.1", None),
    ];
    let mut revisions = Vec::new();
    for (k, v) in ops {
        match v {
            Some(v) => revisions.push(kv.put(k, b(v)).await.unwrap()),
            None => {
                kv.delete(k).await.unwrap();
                revisions.push(kv.history(k).await.unwrap().last().unwrap().revision);
            }
        }
    }
    let wait = Duration::from_secs(5);
    for ((k, v), rev) in ops.iter().zip(&revisions) {
        let e = all.next_within(wait).await.expect("a change").unwrap();
        assert_eq!((e.key.as_str(), e.revision), (*k, *rev));
        assert_eq!(e.operation, if v.is_some() { Operation::Put } else { Operation::Delete });
    }
    for ((k, _), rev) in ops.iter().zip(&revisions).filter(|((k, _), _)| k.starts_with("calls.")) {
        let e = calls.next_within(wait).await.expect("a change").unwrap();
        assert_eq!((e.key.as_str(), e.revision), (*k, *rev));
    }
    assert!(kv.watch("calls..x").await.is_err());
}

/// A value disappears `ttl` after it was written, from `get`, `keys` and `history`.
pub async fn ttl_expires_values<S: Store>(s: &S) {
    let kv = open(s, "conf_ttl", 1, 1024, Some(Duration::from_secs(1))).await;
    kv.put("t", b("short-lived")).await.unwrap();
    assert!(kv.get("t").await.unwrap().is_some());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if kv.get("t").await.unwrap().is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "the value did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kv.keys().await.unwrap().is_empty());
    assert!(kv.history("t").await.unwrap().is_empty());
    // The key is free again.
    kv.create("t", b("new")).await.unwrap();
}

/// The seed's seven buckets open with the seed's limits, and reopening is idempotent.
pub async fn seed_buckets_provision_and_reopen<S: Store>(s: &S) {
    let naming = BucketNaming::Shared { guid: "0123456789abcdef0123456789abcdef01234567".into() };
    for config in BucketConfig::seed_all(&naming) {
        let kv = s.bucket(&config).await.expect("seed bucket");
        assert_eq!(kv.config(), &config);
        let again = s.bucket(&config).await.expect("reopen");
        assert_eq!(again.config().max_value_size, config.max_value_size);
    }
    let sessions = s.bucket(&BucketConfig::seed_all(&naming)[6]).await.unwrap();
    assert_eq!(sessions.config().max_value_size, 4096);
    assert!(matches!(sessions.put("s", Bytes::from(vec![0u8; 4097])).await, Err(KvError::ValueTooLarge { .. })));
    let handlers = s.bucket(&BucketConfig::seed_all(&naming)[0]).await.unwrap();
    let module = Bytes::from(vec![1u8; 3 * 1024 * 1024]);
    handlers.put("call.initiate", module.clone()).await.expect("a 3 MiB handler module fits");
    assert_eq!(handlers.get("call.initiate").await.unwrap().unwrap().value, module);
}

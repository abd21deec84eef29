//! The conformance suite every [`Bus`] backend must pass, written once.
//!
//! Each case connects as many clients as it needs through a [`Connect`] factory (the in-process
//! backend hands out clones of one bus; the NATS backend opens new connections to one server).
//! Checks that something is *not* delivered publish a sentinel afterwards and assert that the
//! sentinel is the next message: a publisher's messages arrive in order, so no sleep is needed.
#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::{Bus, BusError, Subscription};

/// How long a case waits for a message that must arrive.
const WAIT: Duration = Duration::from_secs(5);

/// Hands out connected clients of the bus under test.
pub trait Connect {
    /// The backend.
    type Bus: Bus;
    /// A new client.
    fn connect(&self) -> impl Future<Output = Self::Bus>;
}

/// Runs every case, in order, naming the one that fails.
pub async fn run_all<C: Connect>(c: &C) {
    publish_reaches_subscribers(c).await;
    wildcards_match_whole_tokens(c).await;
    invalid_subjects_are_refused(c).await;
    payload_limit_is_enforced(c).await;
    order_is_kept_per_publisher(c).await;
    queue_groups_share_the_load(c).await;
    request_reply_and_timeouts(c).await;
    dropping_a_subscription_unsubscribes(c).await;
}

async fn expect(sub: &mut Subscription, subject: &str, case: &str) -> crate::Message {
    let m = sub.next_within(WAIT).await.unwrap_or_else(|| panic!("{case}: nothing arrived, expected {subject}"));
    assert_eq!(m.subject, subject, "{case}: wrong message");
    m
}

/// Subscribes on `sub_bus` and makes sure the server has the subscription before returning.
async fn subscribe<B: Bus>(bus: &B, pattern: &str) -> Subscription {
    let s = bus.subscribe(pattern).await.expect("subscribe");
    bus.flush().await.expect("flush");
    s
}

/// A message published to another connection reaches every matching subscriber, payload intact.
pub async fn publish_reaches_subscribers<C: Connect>(c: &C) {
    let case = "publish_reaches_subscribers";
    let (a, b) = (c.connect().await, c.connect().await);
    let mut s1 = subscribe(&a, "conf.pub.x").await;
    let mut s2 = subscribe(&b, "conf.pub.x").await;
    b.publish("conf.pub.x", Bytes::from_static(b"hello")).await.expect("publish");
    b.flush().await.expect("flush");
    assert_eq!(expect(&mut s1, "conf.pub.x", case).await.payload, Bytes::from_static(b"hello"));
    assert_eq!(expect(&mut s2, "conf.pub.x", case).await.payload, Bytes::from_static(b"hello"));
}

/// `*` is one token, `>` one or more trailing tokens; dashes are ordinary characters; nothing
/// matches across a token boundary.
pub async fn wildcards_match_whole_tokens<C: Connect>(c: &C) {
    let case = "wildcards_match_whole_tokens";
    let (sub_bus, pub_bus) = (c.connect().await, c.connect().await);
    let mut star = subscribe(&sub_bus, "conf.w.*.c").await;
    let mut tail = subscribe(&sub_bus, "conf.w.>").await;
    let mut exact = subscribe(&sub_bus, "conf.w.ab").await;
    for s in ["conf.w.b.c", "conf.w.b-x.c", "conf.w.b.d", "conf.w.b.c.d", "conf.w.a", "conf.w.ab", "conf.wx.b.c"] {
        pub_bus.publish(s, Bytes::new()).await.expect("publish");
    }
    pub_bus.publish("conf.w.end.c", Bytes::new()).await.expect("sentinel");
    pub_bus.flush().await.expect("flush");
    for expected in ["conf.w.b.c", "conf.w.b-x.c", "conf.w.end.c"] {
        expect(&mut star, expected, case).await;
    }
    for expected in
        ["conf.w.b.c", "conf.w.b-x.c", "conf.w.b.d", "conf.w.b.c.d", "conf.w.a", "conf.w.ab", "conf.w.end.c"]
    {
        expect(&mut tail, expected, case).await;
    }
    expect(&mut exact, "conf.w.ab", case).await;
    // `conf.w.>` does not match `conf.w` itself.
    pub_bus.publish("conf.w", Bytes::new()).await.expect("publish");
    pub_bus.publish("conf.w.last", Bytes::new()).await.expect("sentinel");
    pub_bus.flush().await.expect("flush");
    expect(&mut tail, "conf.w.last", case).await;
}

/// Wildcards in a publish subject, empty tokens and whitespace are refused before anything is sent.
pub async fn invalid_subjects_are_refused<C: Connect>(c: &C) {
    let bus = c.connect().await;
    for bad in ["conf.*", "conf.>", "conf..x", "conf x", "", ".conf"] {
        assert!(matches!(bus.publish(bad, Bytes::new()).await, Err(BusError::Subject(_))), "publish {bad:?}");
    }
    for bad in ["conf..x", "conf.>.x", "conf.a*", " "] {
        assert!(matches!(bus.subscribe(bad).await, Err(BusError::Subject(_))), "subscribe {bad:?}");
    }
    assert!(matches!(bus.queue_subscribe("conf.q", "a.b").await, Err(BusError::QueueGroup)));
}

/// A payload over the maximum is refused with both sizes; a large one under it arrives intact.
pub async fn payload_limit_is_enforced<C: Connect>(c: &C) {
    let case = "payload_limit_is_enforced";
    let bus = c.connect().await;
    let max = bus.max_payload();
    assert!(max >= 64 * 1024, "{case}: max payload {max}");
    let err = bus.publish("conf.big", Bytes::from(vec![0u8; max + 1])).await;
    assert_eq!(err, Err(BusError::PayloadTooLarge { len: max + 1, max }));
    let mut s = subscribe(&bus, "conf.big").await;
    let big: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    bus.publish("conf.big", Bytes::from(big.clone())).await.expect("publish");
    bus.flush().await.expect("flush");
    assert_eq!(expect(&mut s, "conf.big", case).await.payload, Bytes::from(big));
}

/// One publisher's messages reach a subscriber in the order they were published.
pub async fn order_is_kept_per_publisher<C: Connect>(c: &C) {
    let case = "order_is_kept_per_publisher";
    let (sub_bus, pub_bus) = (c.connect().await, c.connect().await);
    let mut s = subscribe(&sub_bus, "conf.order").await;
    for i in 0..1000u32 {
        pub_bus.publish("conf.order", Bytes::from(i.to_be_bytes().to_vec())).await.expect("publish");
    }
    pub_bus.flush().await.expect("flush");
    for i in 0..1000u32 {
        let m = expect(&mut s, "conf.order", case).await;
        assert_eq!(m.payload.as_ref(), i.to_be_bytes(), "{case}: message {i} out of order");
    }
}

/// Each message goes to exactly one member of a queue group (both members get some), and to
/// every plain subscriber.
pub async fn queue_groups_share_the_load<C: Connect>(c: &C) {
    let case = "queue_groups_share_the_load";
    let (m1, m2, plain_bus, pub_bus) = (c.connect().await, c.connect().await, c.connect().await, c.connect().await);
    let mut q1 = m1.queue_subscribe("conf.q.*", "workers").await.expect("queue subscribe");
    let mut q2 = m2.queue_subscribe("conf.q.*", "workers").await.expect("queue subscribe");
    m1.flush().await.expect("flush");
    m2.flush().await.expect("flush");
    let mut plain = subscribe(&plain_bus, "conf.q.*").await;
    let n = 200usize;
    for i in 0..n {
        pub_bus.publish(&format!("conf.q.{i}"), Bytes::new()).await.expect("publish");
    }
    pub_bus.flush().await.expect("flush");
    for i in 0..n {
        expect(&mut plain, &format!("conf.q.{i}"), case).await;
    }
    let (mut got1, mut got2) = (0usize, 0usize);
    while got1 + got2 < n {
        tokio::select! {
            Some(_) = q1.next() => got1 += 1,
            Some(_) = q2.next() => got2 += 1,
            () = tokio::time::sleep(WAIT) => panic!("{case}: only {} of {n} reached the group", got1 + got2),
        }
    }
    assert!(got1 > 0 && got2 > 0, "{case}: load not shared ({got1}/{got2})");
    // No duplicates: nothing more is queued for the group.
    pub_bus.publish("conf.q.sentinel", Bytes::new()).await.expect("sentinel");
    pub_bus.flush().await.expect("flush");
    let next = tokio::select! {
        Some(m) = q1.next() => m,
        Some(m) = q2.next() => m,
        () = tokio::time::sleep(WAIT) => panic!("{case}: sentinel lost"),
    };
    assert_eq!(next.subject, "conf.q.sentinel", "{case}: a message reached the group twice");
}

/// A request gets the responder's reply; a responder that stays silent gives `Timeout`; a subject
/// nobody serves gives `NoResponders`.
pub async fn request_reply_and_timeouts<C: Connect>(c: &C) {
    let case = "request_reply_and_timeouts";
    let (server, client) = (c.connect().await, c.connect().await);
    let mut svc = subscribe(&server, "conf.svc.echo").await;
    let _silent = subscribe(&server, "conf.svc.silent").await;
    let responder = async {
        let m = svc.next_within(WAIT).await.expect("request arrived");
        let reply = m.reply.clone().expect("request has a reply subject");
        let mut answer = b"echo:".to_vec();
        answer.extend_from_slice(&m.payload);
        server.publish(&reply, Bytes::from(answer)).await.expect("reply");
        server.flush().await.expect("flush");
    };
    let (reply, ()) = tokio::join!(client.request("conf.svc.echo", Bytes::from_static(b"ping"), WAIT), responder);
    assert_eq!(reply.expect(case).payload, Bytes::from_static(b"echo:ping"));
    let r = client.request("conf.svc.silent", Bytes::new(), Duration::from_millis(200)).await;
    assert_eq!(r, Err(BusError::Timeout), "{case}: silent responder");
    let r = client.request("conf.svc.nobody", Bytes::new(), WAIT).await;
    assert_eq!(r, Err(BusError::NoResponders), "{case}: no responder");
}

/// After a subscription is dropped, the subject has no responders any more.
pub async fn dropping_a_subscription_unsubscribes<C: Connect>(c: &C) {
    let case = "dropping_a_subscription_unsubscribes";
    let (server, client) = (c.connect().await, c.connect().await);
    let s = subscribe(&server, "conf.gone").await;
    drop(s);
    // Let the unsubscribe reach the server (in-process it is immediate).
    for _ in 0..50 {
        server.flush().await.expect("flush");
        if client.request("conf.gone", Bytes::new(), Duration::from_millis(100)).await == Err(BusError::NoResponders) {
            return;
        }
    }
    panic!("{case}: the dropped subscription still receives");
}

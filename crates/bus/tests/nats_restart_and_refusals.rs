//! What only a real NATS server shows: a server restart (clients reconnect and subscriptions come
//! back; messages in flight during the outage may be lost) and publishes refused by the server's
//! permissions, which NATS reports asynchronously and which must not vanish.

#![allow(clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use callvault_bus::{Bus, NatsBus, NatsOptions};
use callvault_testkit::{NatsServer, NatsUser, Permissions};

async fn connect(url: String, user: Option<(&str, &str)>) -> NatsBus {
    let user = user.map(|(u, p)| (u.to_owned(), p.to_owned()));
    NatsBus::connect(NatsOptions { url, user, ..NatsOptions::default() }).await.expect("connect")
}

#[tokio::test]
async fn clients_reconnect_and_subscriptions_come_back_after_a_server_restart() {
    let mut server = NatsServer::start();
    let sub_bus = connect(server.url(), None).await;
    let pub_bus = connect(server.url(), None).await;
    let mut sub = sub_bus.subscribe("restart.probe").await.unwrap();
    sub_bus.flush().await.unwrap();
    pub_bus.publish("restart.probe", Bytes::from_static(b"before")).await.unwrap();
    pub_bus.flush().await.unwrap();
    assert_eq!(sub.next_within(Duration::from_secs(5)).await.unwrap().payload, Bytes::from_static(b"before"));

    server.restart();

    // Probe until the subscriber's restored subscription receives (each probe is one publish;
    // probes sent before both clients are back are the documented loss).
    let mut received = None;
    for i in 0..200u32 {
        let _ = pub_bus.publish("restart.probe", Bytes::from(i.to_string())).await;
        if let Some(m) = sub.next_within(Duration::from_millis(100)).await {
            received = Some(m);
            break;
        }
    }
    assert!(received.is_some(), "no message after the restart; server log:\n{}", server.log());
    // And from then on nothing is lost.
    for i in 0..100u32 {
        pub_bus.publish("restart.after", Bytes::from(i.to_string())).await.unwrap();
    }
    let mut after = sub_bus.subscribe("restart.after2").await.unwrap();
    sub_bus.flush().await.unwrap();
    pub_bus.publish("restart.after2", Bytes::from_static(b"x")).await.unwrap();
    assert!(after.next_within(Duration::from_secs(5)).await.is_some());
}

#[tokio::test]
async fn a_publish_refused_by_permissions_is_observable_and_not_delivered() {
    let limited = Permissions {
        publish_allow: vec!["OwnerSpace.alice.>".into(), "_INBOX.>".into()],
        subscribe_allow: vec!["OwnerSpace.alice.>".into(), "_INBOX.>".into()],
    };
    let server = NatsServer::start_with_users(&[
        NatsUser { user: "alice".into(), password: "alice-pw".into(), permissions: Some(limited) },
        NatsUser { user: "admin".into(), password: "admin-pw".into(), permissions: None },
    ]);
    let alice = connect(server.url(), Some(("alice", "alice-pw"))).await;
    let admin = connect(server.url(), Some(("admin", "admin-pw"))).await;
    let mut watch = admin.subscribe("OwnerSpace.>").await.unwrap();
    admin.flush().await.unwrap();
    let mut refusals = alice.refusals();

    // Alice publishes to Bob's space: the call itself succeeds (NATS answers asynchronously)...
    alice.publish("OwnerSpace.bob.forVault.call.end", Bytes::from_static(b"forged")).await.unwrap();
    alice.flush().await.unwrap();
    // ...the refusal surfaces...
    let r = tokio::time::timeout(Duration::from_secs(5), refusals.recv()).await.expect("a refusal").unwrap();
    assert!(r.reason.to_lowercase().contains("permissions violation"), "{}", r.reason);
    assert!(r.reason.contains("OwnerSpace.bob.forVault.call.end"), "{}", r.reason);
    // ...and nothing reached Bob's space: the next message seen is Alice's allowed one.
    alice.publish("OwnerSpace.alice.forVault.call.end", Bytes::from_static(b"ok")).await.unwrap();
    alice.flush().await.unwrap();
    let m = watch.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(m.subject, "OwnerSpace.alice.forVault.call.end");

    // A forbidden subscription is refused the same way, and delivers nothing.
    let mut spy = alice.subscribe("OwnerSpace.bob.>").await.unwrap();
    alice.flush().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), refusals.recv()).await.expect("a refusal").unwrap();
    assert!(r.reason.to_lowercase().contains("subscription"), "{}", r.reason);
    admin.publish("OwnerSpace.bob.forApp.call.ended", Bytes::new()).await.unwrap();
    admin.flush().await.unwrap();
    assert!(spy.next_within(Duration::from_millis(300)).await.is_none(), "a forbidden subscription received");
    // The connection survives the violations.
    alice.publish("OwnerSpace.alice.x", Bytes::new()).await.unwrap();
    alice.flush().await.unwrap();
}

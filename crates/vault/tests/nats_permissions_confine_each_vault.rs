//! The generated nats-server authorization, on a real server: a vault cannot subscribe to another
//! user's MessageSpace or OwnerSpace, nor publish to another user's forVault or forApp, nor into a
//! peer's MessageSpace a kind no family of it sends; what the seed and the installed families
//! allow does work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]

use std::time::Duration;

use bytes::Bytes;
use callvault_bus::{Bus, NatsBus, NatsOptions, Refusal};
use callvault_protocol::Guid;
use callvault_testkit::NatsServer;
use callvault_vault::permissions::{NatsUser, authorization_block};
use callvault_vault::runtime::builtin_manifests;
use tokio::sync::broadcast::Receiver;

const WAIT: Duration = Duration::from_secs(5);

async fn login(server: &NatsServer, u: &NatsUser) -> NatsBus {
    NatsBus::connect(NatsOptions {
        url: server.url(),
        user: Some((u.user.clone(), u.password.clone())),
        name: None,
        inbox_prefix: Some(u.inbox_prefix.clone()),
    })
    .await
    .expect("login")
}

async fn refused(r: &mut Receiver<Refusal>, what: &str) {
    let refusal =
        tokio::time::timeout(WAIT, r.recv()).await.unwrap_or_else(|_| panic!("{what} was not refused")).unwrap();
    assert!(refusal.reason.to_lowercase().contains("permissions violation"), "{what}: {}", refusal.reason);
}

#[tokio::test]
async fn each_vault_is_confined_to_its_own_subjects() {
    let (a, b) = (Guid::from_public_key(&[1; 32]), Guid::from_public_key(&[2; 32]));
    let families = || builtin_manifests().iter().map(|(m, _)| m);
    let (ua, ub, ug) = (
        NatsUser::vault(&a, "pa".into(), families()),
        NatsUser::vault(&b, "pb".into(), families()),
        NatsUser::gateway("pg".into()),
    );
    let server =
        NatsServer::start_with_authorization(&authorization_block(&[ua.clone(), ub.clone(), ug.clone()]).unwrap());
    let (vault_a, vault_b, gateway) = (login(&server, &ua).await, login(&server, &ub).await, login(&server, &ug).await);

    // What the seed allows works: the gateway reaches A's vault, A reaches B's MessageSpace, B's
    // vault reaches B's app through the gateway.
    let mut a_requests = vault_a.subscribe(&format!("OwnerSpace.{a}.forVault.>")).await.unwrap();
    let mut b_inbox = vault_b.subscribe(&format!("MessageSpace.{b}.>")).await.unwrap();
    let mut apps = gateway.subscribe("OwnerSpace.*.forApp.>").await.unwrap();
    for bus in [&vault_a, &vault_b, &gateway] {
        bus.flush().await.unwrap();
    }
    gateway.publish(&format!("OwnerSpace.{a}.forVault.call.initiate"), Bytes::from_static(b"req")).await.unwrap();
    assert_eq!(a_requests.next_within(WAIT).await.unwrap().payload, Bytes::from_static(b"req"));
    vault_a.publish(&format!("MessageSpace.{b}.call.incoming"), Bytes::from_static(b"wrap")).await.unwrap();
    assert_eq!(b_inbox.next_within(WAIT).await.unwrap().payload, Bytes::from_static(b"wrap"));
    // Every kind the built-in families send, and their acknowledgements, go through.
    for kind in [
        "call.end",
        "call.ack",
        "message.deliver",
        "message.ack",
        "profile.update",
        "connection.accept",
        "connection.ack",
    ] {
        vault_a.publish(&format!("MessageSpace.{b}.{kind}"), Bytes::from_static(b"wrap")).await.unwrap();
        assert_eq!(b_inbox.next_within(WAIT).await.unwrap().subject, format!("MessageSpace.{b}.{kind}"));
    }
    vault_b.publish(&format!("OwnerSpace.{b}.forApp.call.incoming"), Bytes::from_static(b"note")).await.unwrap();
    assert_eq!(apps.next_within(WAIT).await.unwrap().subject, format!("OwnerSpace.{b}.forApp.call.incoming"));

    // What it forbids is refused, and nothing arrives.
    let mut refusals = vault_a.refusals();
    let mut spy_ms = vault_a.subscribe(&format!("MessageSpace.{b}.call.>")).await.unwrap();
    refused(&mut refusals, "subscribing to B's MessageSpace").await;
    let mut spy_os = vault_a.subscribe(&format!("OwnerSpace.{b}.>")).await.unwrap();
    refused(&mut refusals, "subscribing to B's OwnerSpace").await;
    vault_a.publish(&format!("OwnerSpace.{b}.forVault.call.end"), Bytes::from_static(b"forged")).await.unwrap();
    refused(&mut refusals, "publishing to B's forVault").await;
    vault_a.publish(&format!("OwnerSpace.{b}.forApp.call.ended"), Bytes::from_static(b"forged")).await.unwrap();
    refused(&mut refusals, "publishing to B's forApp").await;
    // Apps' requests reach a vault only from the gateway: a vault cannot inject into its own
    // forVault either.
    vault_a.publish(&format!("OwnerSpace.{a}.forVault.call.end"), Bytes::from_static(b"self")).await.unwrap();
    refused(&mut refusals, "publishing to its own forVault").await;
    // A kind no family sends, and a family it does not run, cannot be published to a peer.
    vault_a.publish(&format!("MessageSpace.{b}.message.send"), Bytes::from_static(b"x")).await.unwrap();
    refused(&mut refusals, "publishing a kind the message family does not send").await;
    vault_a.publish(&format!("MessageSpace.{b}.hotline.offer"), Bytes::from_static(b"x")).await.unwrap();
    refused(&mut refusals, "publishing for a family it does not run").await;

    // The real traffic still flows, and the spies saw nothing of it.
    gateway.publish(&format!("OwnerSpace.{b}.forVault.call.accept"), Bytes::from_static(b"y")).await.unwrap();
    vault_a.publish(&format!("MessageSpace.{b}.call.accept"), Bytes::from_static(b"z")).await.unwrap();
    assert_eq!(b_inbox.next_within(WAIT).await.unwrap().payload, Bytes::from_static(b"z"));
    assert!(spy_ms.next_within(Duration::from_millis(300)).await.is_none());
    assert!(spy_os.next_within(Duration::from_millis(300)).await.is_none());
    // Nothing forged reached A's own request stream or B's app.
    assert!(a_requests.next_within(Duration::from_millis(300)).await.is_none());
    assert!(apps.next_within(Duration::from_millis(300)).await.is_none());
}

//! The invite flow: Alice's token, accepted by Bob's vault, makes each a connection of the other
//! (Alice's vault learns through a sealed message); then they can call. Expired, tampered and
//! replayed invites are refused. On the embedded default and on NATS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod vaults;

use std::time::Duration;

use callvault_bus::Bus;
use callvault_protocol::fields::DisplayName;
use callvault_store::Kv;
use callvault_vault::connections;
use callvault_vault::invite::{InviteError, InviteToken};
use callvault_vault::manager::{VaultError, VaultOptions};
use vaults::*;

fn secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn token<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>, name: &str, nonce: u8, ttl: u64) -> InviteToken {
    InviteToken::create(&u.identity, &u.delegation, DisplayName::new(name).unwrap(), "local", [nonce; 16], secs(), ttl)
        .unwrap()
}

async fn invites<W: Backend>(w: W) {
    let bus = w.bus().await;
    let (mut a, mut b) = (user(&w, &bus, VaultOptions::default()).await, user(&w, &bus, VaultOptions::default()).await);
    let mut a_conn = bus.subscribe(&format!("OwnerSpace.{}.forApp.connection.accepted", a.guid)).await.unwrap();
    bus.flush().await.unwrap();

    // Not connected yet: a call is refused.
    request(&bus, &a, "initiate", initiate(&id(1), &b.guid, 1)).await;
    assert_eq!(expect(&mut a, "error").await["code"], "not_connected");

    let alices = token(&a, "Alice", 7, 3600);
    a.vault.record_invite(&alices).await.unwrap();
    let bobs = token(&b, "Bob", 8, 3600);
    assert_eq!(b.vault.accept_invite(&alices, &bobs).await.unwrap(), a.guid);
    let note = a_conn.next_within(WAIT).await.expect("Alice's app hears of the acceptance");
    let note: serde_json::Value = serde_json::from_slice(&note.payload).unwrap();
    assert_eq!((note["peer_guid"].as_str(), note["display_name"].as_str()), (Some(b.guid.as_str()), Some("Bob")));
    let at_alice = connections::get(&a.vault.buckets().connections, &b.guid).await.unwrap().unwrap();
    let at_bob = connections::get(&b.vault.buckets().connections, &a.guid).await.unwrap().unwrap();
    assert_eq!((at_alice.display_name.as_str(), at_bob.display_name.as_str()), ("Bob", "Alice"));
    assert!(
        a.vault.buckets().connections.get("invite.07070707070707070707070707070707").await.unwrap().is_none(),
        "the nonce is used up"
    );

    // Now they can call.
    request(&bus, &a, "initiate", initiate(&id(2), &b.guid, 2)).await;
    assert_eq!(expect(&mut b, "incoming").await["peer_profile"]["display_name"], "Alice");

    // The same acceptance again (a replay) is not taken: the nonce is gone.
    let carol = user(&w, &bus, VaultOptions::default()).await;
    let carols = token(&carol, "Carol", 9, 3600);
    assert!(carol.vault.accept_invite(&alices, &carols).await.is_ok());
    assert!(a_conn.next_within(Duration::from_millis(500)).await.is_none(), "a used invite was taken twice");
    assert!(connections::get(&a.vault.buckets().connections, &carol.guid).await.unwrap().is_none());

    // Expired and tampered tokens are refused before anything is stored.
    let old = InviteToken::create(
        &a.identity,
        &a.delegation,
        DisplayName::new("Alice").unwrap(),
        "local",
        [1; 16],
        secs() - 7200,
        60,
    )
    .unwrap();
    assert!(matches!(b.vault.accept_invite(&old, &bobs).await, Err(VaultError::Invite(InviteError::Expired))));
    let s = alices.as_str();
    let tampered = InviteToken::parse(&format!(
        "{}{}",
        &s[..s.len() - 12],
        if s.ends_with('A') { "BBBBBBBBBBBB" } else { "AAAAAAAAAAAA" }
    ))
    .unwrap();
    assert!(matches!(b.vault.accept_invite(&tampered, &bobs).await, Err(VaultError::Invite(_))));
    assert!(matches!(InviteToken::parse("not a token"), Err(InviteError::Malformed)));
    // A vault records only its own user's invites.
    assert!(matches!(a.vault.record_invite(&bobs).await, Err(VaultError::Invite(InviteError::BadSignature))));
}

#[tokio::test]
async fn embedded_invites() {
    invites(embedded()).await;
}

#[tokio::test]
async fn nats_invites() {
    invites(nats()).await;
}

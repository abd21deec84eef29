//! The `profile` family (issue 13, point 7), on both backends: a user's new display name and
//! avatar are kept in the profile bucket and reach each connection (only connections), whose
//! vault then shows the user by them: in `call.incoming`'s `peer_profile` and in the connection
//! list. An update older than the kept one, or from someone else's guid, changes nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod vaults;

use std::time::Duration;

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_store::Kv;
use callvault_vault::manager::VaultOptions;
use serde_json::{Value, json};
use vaults::*;

async fn profile_note(sub: &mut callvault_bus::Subscription, kind: &str) -> Value {
    next_of(sub, &format!("profile.{kind}")).await
}

async fn profiles<W: Backend>(w: W) {
    let bus = w.bus().await;
    let options = VaultOptions::default();
    let (mut a, mut b) = (user(&w, &bus, options.clone()).await, user(&w, &bus, options.clone()).await);
    let carol = user(&w, &bus, options.clone()).await;
    connect(&a, &b).await;
    let mut a_profile = bus.subscribe(&format!("OwnerSpace.{}.forApp.profile.*", a.guid)).await.unwrap();
    let mut b_profile = bus.subscribe(&format!("OwnerSpace.{}.forApp.profile.*", b.guid)).await.unwrap();
    let mut c_profile = bus.subscribe(&format!("OwnerSpace.{}.forApp.profile.*", carol.guid)).await.unwrap();
    let mut b_list = bus.subscribe(&format!("OwnerSpace.{}.forApp.connection.list", b.guid)).await.unwrap();
    bus.flush().await.unwrap();

    let set = json!({"type": "profile.set", "message_id": id(1), "timestamp": now(), "guid": a.guid.to_string(),
        "display_name": "Alice Liddell", "avatar_url": "https://example.org/alice.png"});
    bus.publish(&format!("OwnerSpace.{}.forVault.profile.set", a.guid), Bytes::from(set.to_string())).await.unwrap();
    let done = profile_note(&mut a_profile, "updated").await;
    assert_eq!((done["in_reply_to"].clone(), done["shared_with"].clone()), (json!(id(1)), json!(1)), "{done}");
    let changed = profile_note(&mut b_profile, "changed").await;
    assert_eq!(changed["guid"], json!(a.guid.to_string()));
    assert_eq!(changed["display_name"], json!("Alice Liddell"));
    assert!(c_profile.next_within(Duration::from_millis(300)).await.is_none(), "Carol is no connection of Alice's");
    let kept = a.vault.buckets().by_name["profile"].get(a.guid.as_str()).await.unwrap().expect("Alice's own record");
    let kept: Value = serde_json::from_slice(&kept.value).unwrap();
    assert_eq!(kept["display_name"], "Alice Liddell");

    // Bob's vault shows Alice by her profile: the connection list and an incoming call.
    let list = json!({"type": "connection.list", "message_id": id(2), "timestamp": now()});
    bus.publish(&format!("OwnerSpace.{}.forVault.connection.list", b.guid), Bytes::from(list.to_string()))
        .await
        .unwrap();
    let got: Value = serde_json::from_slice(&b_list.next_within(WAIT).await.unwrap().payload).unwrap();
    assert_eq!(got["connections"][0]["display_name"], "Alice Liddell", "{got}");
    let call = id(10);
    request(&bus, &a, "initiate", initiate(&call, &b.guid, 10)).await;
    let incoming = expect(&mut b, "incoming").await;
    assert_eq!(
        incoming["peer_profile"],
        json!({"display_name": "Alice Liddell", "avatar_url": "https://example.org/alice.png"})
    );
    request(&bus, &a, "end", simple("end", &call, 11)).await;
    expect(&mut a, "ended").await;

    // Asking for it: one's own, and a connection's.
    let get = |n: u32, whose: &callvault_protocol::Guid| json!({"type": "profile.get", "message_id": id(n), "timestamp": now(), "guid": whose.to_string()});
    bus.publish(&format!("OwnerSpace.{}.forVault.profile.get", b.guid), Bytes::from(get(20, &a.guid).to_string()))
        .await
        .unwrap();
    assert_eq!(profile_note(&mut b_profile, "shown").await["display_name"], "Alice Liddell");
    bus.publish(&format!("OwnerSpace.{}.forVault.profile.get", b.guid), Bytes::from(get(21, &carol.guid).to_string()))
        .await
        .unwrap();
    let none = profile_note(&mut b_profile, "shown").await;
    assert!(none.get("display_name").is_none(), "never shared: {none}");

    // Setting someone else's profile is refused.
    let forged = json!({"type": "profile.set", "message_id": id(30), "timestamp": now(), "guid": b.guid.to_string(),
        "display_name": "Mallory"});
    bus.publish(&format!("OwnerSpace.{}.forVault.profile.set", a.guid), Bytes::from(forged.to_string())).await.unwrap();
    assert_eq!(profile_note(&mut a_profile, "error").await["code"], "invalid_message");
    // A second change reaches Bob; the record holds the newest.
    let again = json!({"type": "profile.set", "message_id": id(31), "timestamp": now(), "guid": a.guid.to_string(),
        "display_name": "Alice"});
    bus.publish(&format!("OwnerSpace.{}.forVault.profile.set", a.guid), Bytes::from(again.to_string())).await.unwrap();
    let changed = profile_note(&mut b_profile, "changed").await;
    assert_eq!(changed["display_name"], "Alice");
    assert!(changed.get("avatar_url").is_none(), "the avatar was removed");
    let record = b.vault.buckets().by_name["profile"].get(a.guid.as_str()).await.unwrap().unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&record.value).unwrap()["display_name"], "Alice");
    until("Bob never acknowledged the updates", || a.vault.unacknowledged() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_profiles_reach_connections() {
    profiles(embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_profiles_reach_connections() {
    profiles(nats()).await;
}

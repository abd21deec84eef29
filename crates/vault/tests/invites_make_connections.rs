//! The invite flow, through the app API and the `connection` family: Alice's token, accepted by
//! Bob's vault, makes each a connection of the other (Alice's vault learns through a sealed
//! message from a vault that is not yet her connection); then they can call. Expired, tampered,
//! foreign and replayed invites are refused; an unaccepted invite is forgotten when it expires
//! (its timer); an acceptance sealed by a vault its token does not name, or naming an invite
//! that is not pending, stores nothing; an acceptance sent while the inviter's vault is down
//! arrives when it is back. On the embedded default and on NATS.

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

use bytes::Bytes;
use callvault_bus::{Bus, Subscription};
use callvault_crypto::{SecretIdentity, giftwrap};
use callvault_protocol::fields::DisplayName;
use callvault_store::Kv;
use callvault_vault::connections;
use callvault_vault::invite::InviteToken;
use callvault_vault::manager::VaultOptions;
use serde_json::{Value, json};
use vaults::*;

fn secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn token<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>, name: &str, nonce: u8, ttl: u64) -> InviteToken {
    InviteToken::create(&u.identity, &u.delegation, DisplayName::new(name).unwrap(), "local", [nonce; 16], secs(), ttl)
        .unwrap()
}

/// The user's app's view of the connection family.
async fn desk<B: Bus + Clone, K: Kv + Clone>(bus: &B, u: &User<B, K>) -> Subscription {
    let sub = bus.subscribe(&format!("OwnerSpace.{}.forApp.connection.*", u.guid)).await.unwrap();
    bus.flush().await.unwrap();
    sub
}

/// Sends a connection request as the user's app and returns the answer to it (`<kind>` or
/// `error`).
async fn ask<B: Bus + Clone, K: Kv + Clone>(
    bus: &B,
    u: &User<B, K>,
    answers: &mut Subscription,
    kind: &str,
    n: u32,
    mut body: Value,
) -> (String, Value) {
    let message_id = id(n);
    body["type"] = json!(format!("connection.{kind}"));
    body["message_id"] = json!(message_id);
    body["timestamp"] = json!(now());
    bus.publish(&format!("OwnerSpace.{}.forVault.connection.{kind}", u.guid), Bytes::from(body.to_string()))
        .await
        .unwrap();
    loop {
        let m = answers.next_within(WAIT).await.unwrap_or_else(|| panic!("no answer to connection.{kind}"));
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        if v["in_reply_to"] == json!(message_id) {
            return (m.subject.rsplit('.').next().unwrap().to_owned(), v);
        }
    }
}

async fn state_keys<B: Bus + Clone, K: Kv + Clone>(u: &User<B, K>) -> Vec<String> {
    u.vault.buckets().state.keys().await.unwrap()
}

async fn invites<W: Backend>(w: W) {
    let bus = w.bus().await;
    let (mut a, mut b) = (user(&w, &bus, VaultOptions::default()).await, user(&w, &bus, VaultOptions::default()).await);
    let (mut a_desk, mut b_desk) = (desk(&bus, &a).await, desk(&bus, &b).await);

    // Not connected yet: a call is refused.
    request(&bus, &a, "initiate", initiate(&id(1), &b.guid, 1)).await;
    assert_eq!(expect(&mut a, "error").await["code"], "not_connected");

    let alices = token(&a, "Alice", 7, 3600);
    let (kind, invited) = ask(&bus, &a, &mut a_desk, "invite", 10, json!({"token": alices.as_str()})).await;
    assert_eq!(kind, "invited", "{invited}");
    assert!(state_keys(&a).await.contains(&"connection.invite-07070707070707070707070707070707".to_owned()));
    let bobs = token(&b, "Bob", 8, 3600);
    let (kind, connected) =
        ask(&bus, &b, &mut b_desk, "connect", 11, json!({"token": alices.as_str(), "mine": bobs.as_str()})).await;
    assert_eq!((kind.as_str(), connected["peer_guid"].as_str()), ("connected", Some(a.guid.as_str())), "{connected}");
    assert_eq!(connected["display_name"], "Alice");
    let note = next_of(&mut a_desk, "accepted").await;
    assert_eq!((note["peer_guid"].as_str(), note["display_name"].as_str()), (Some(b.guid.as_str()), Some("Bob")));
    let at_alice = connections::get(&a.vault.buckets().connections, &b.guid).await.unwrap().unwrap();
    let at_bob = connections::get(&b.vault.buckets().connections, &a.guid).await.unwrap().unwrap();
    assert_eq!((at_alice.display_name.as_str(), at_bob.display_name.as_str()), ("Bob", "Alice"));
    let used = a.vault.buckets().state.get("connection.invite-07070707070707070707070707070707").await.unwrap();
    let used: Value = serde_json::from_slice(&used.expect("kept until it expires").value).unwrap();
    assert!(used["state"]["accepted_at"].is_string(), "the nonce is used up: {used}");
    // Recording the same invite again does not make it pending.
    let (kind, e) = ask(&bus, &a, &mut a_desk, "invite", 25, json!({"token": alices.as_str()})).await;
    assert_eq!((kind.as_str(), e["code"].as_str()), ("error", Some("invalid_state")), "{e}");

    // Now they can call.
    request(&bus, &a, "initiate", initiate(&id(2), &b.guid, 2)).await;
    assert_eq!(expect(&mut b, "incoming").await["peer_profile"]["display_name"], "Alice");

    // The same acceptance again (a replay) is not taken: the nonce is gone.
    let carol = user(&w, &bus, VaultOptions::default()).await;
    let mut c_desk = desk(&bus, &carol).await;
    let carols = token(&carol, "Carol", 9, 3600);
    let refused_before = a.vault.stats().refused.load(Ordering::Relaxed);
    let (kind, _) =
        ask(&bus, &carol, &mut c_desk, "connect", 12, json!({"token": alices.as_str(), "mine": carols.as_str()})).await;
    assert_eq!(kind, "connected", "Carol's own vault takes the token");
    until("Alice's vault refuses the used invite", || a.vault.stats().refused.load(Ordering::Relaxed) > refused_before)
        .await;
    assert!(a_desk.next_within(Duration::from_millis(300)).await.is_none(), "a used invite was taken twice");
    assert!(connections::get(&a.vault.buckets().connections, &carol.guid).await.unwrap().is_none());
    // Refused, it is acknowledged all the same: Carol's vault stops sending it.
    until("Alice acknowledged the refused acceptance", || carol.vault.unacknowledged() == 0).await;

    // Expired and tampered tokens are refused before anything is stored.
    let dave = user(&w, &bus, VaultOptions::default()).await;
    let mut d_desk = desk(&bus, &dave).await;
    let daves = token(&dave, "Dave", 10, 3600);
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
    let (kind, e) =
        ask(&bus, &dave, &mut d_desk, "connect", 13, json!({"token": old.as_str(), "mine": daves.as_str()})).await;
    assert_eq!(
        (kind.as_str(), e["code"].as_str(), e["message"].as_str()),
        ("error", Some("invalid_message"), Some("invite expired"))
    );
    let s = alices.as_str();
    let tampered = format!("{}{}", &s[..s.len() - 12], if s.ends_with('A') { "BBBBBBBBBBBB" } else { "AAAAAAAAAAAA" });
    let (kind, e) =
        ask(&bus, &dave, &mut d_desk, "connect", 14, json!({"token": tampered, "mine": daves.as_str()})).await;
    assert_eq!((kind.as_str(), e["code"].as_str()), ("error", Some("invalid_message")), "{e}");
    let (kind, e) =
        ask(&bus, &dave, &mut d_desk, "connect", 15, json!({"token": "not a token", "mine": daves.as_str()})).await;
    assert_eq!((kind.as_str(), e["code"].as_str()), ("error", Some("invalid_message")), "{e}");
    // One's own invite, and someone else's token as one's own, are refused.
    let (kind, e) =
        ask(&bus, &dave, &mut d_desk, "connect", 16, json!({"token": daves.as_str(), "mine": daves.as_str()})).await;
    assert_eq!((kind.as_str(), e["code"].as_str()), ("error", Some("self_call")), "{e}");
    let (kind, e) =
        ask(&bus, &dave, &mut d_desk, "connect", 17, json!({"token": alices.as_str(), "mine": bobs.as_str()})).await;
    assert_eq!((kind.as_str(), e["code"].as_str()), ("error", Some("invalid_message")), "{e}");
    assert!(connections::get(&dave.vault.buckets().connections, &a.guid).await.unwrap().is_none());
    // A vault records only its own user's invites.
    let (kind, e) = ask(&bus, &a, &mut a_desk, "invite", 18, json!({"token": bobs.as_str()})).await;
    assert_eq!((kind.as_str(), e["code"].as_str()), ("error", Some("invalid_message")), "{e}");
    assert!(e["message"].as_str().unwrap().contains("not this user's invite"), "{e}");

    // An acceptance sealed by a vault the token does not name (Dave's vault key, Bob's token), and
    // one naming no pending invite: nothing is stored, nothing told.
    let alices_next = token(&a, "Alice", 11, 3600);
    assert_eq!(ask(&bus, &a, &mut a_desk, "invite", 19, json!({"token": alices_next.as_str()})).await.0, "invited");
    let a_vault_key =
        connections::get(&b.vault.buckets().connections, &a.guid).await.unwrap().unwrap().vault_key().unwrap();
    let dave_key = SecretIdentity::parse(&dave.vault_key_nsec).unwrap();
    let senders_before = a.vault.stats().unknown_senders.load(Ordering::Relaxed);
    let refused_before = a.vault.stats().refused.load(Ordering::Relaxed);
    let forged = json!({"type": "connection.accept", "message_id": id(20), "timestamp": now(),
        "nonce": "0b".repeat(16), "token": bobs.as_str(), "from_guid": b.guid.to_string()});
    let wrap = giftwrap::wrap(&dave_key, &a_vault_key, &forged.to_string(), secs()).unwrap();
    bus.publish(&format!("MessageSpace.{}.connection.accept", a.guid), Bytes::from(wrap)).await.unwrap();
    let not_pending = json!({"type": "connection.accept", "message_id": id(21), "timestamp": now(),
        "nonce": "0d".repeat(16), "token": daves.as_str(), "from_guid": dave.guid.to_string()});
    let wrap = giftwrap::wrap(&dave_key, &a_vault_key, &not_pending.to_string(), secs()).unwrap();
    bus.publish(&format!("MessageSpace.{}.connection.accept", a.guid), Bytes::from(wrap)).await.unwrap();
    until("the forged seal is dropped", || a.vault.stats().unknown_senders.load(Ordering::Relaxed) > senders_before)
        .await;
    until("the unknown nonce is refused", || a.vault.stats().refused.load(Ordering::Relaxed) > refused_before).await;
    assert!(a_desk.next_within(Duration::from_millis(300)).await.is_none(), "a forged acceptance was told");
    assert!(connections::get(&a.vault.buckets().connections, &dave.guid).await.unwrap().is_none());
    assert!(state_keys(&a).await.iter().any(|k| k.contains("invite-0b0b0b0b")), "the pending invite stays");
    // A stranger's acceptance naming no invite Alice holds is dropped before its token is
    // checked (anyone can make a token; only whom Alice gave an invite knows its nonce).
    let (senders_before, refused_before) =
        (a.vault.stats().unknown_senders.load(Ordering::Relaxed), a.vault.stats().refused.load(Ordering::Relaxed));
    let stranger = json!({"type": "connection.accept", "message_id": id(26), "timestamp": now(),
        "nonce": "0e".repeat(16), "token": "cvinv1_AAAA", "from_guid": dave.guid.to_string()});
    let wrap = giftwrap::wrap(&dave_key, &a_vault_key, &stranger.to_string(), secs()).unwrap();
    bus.publish(&format!("MessageSpace.{}.connection.accept", a.guid), Bytes::from(wrap)).await.unwrap();
    until("the stranger's acceptance is dropped", || a.vault.stats().refused.load(Ordering::Relaxed) > refused_before)
        .await;
    assert_eq!(
        a.vault.stats().unknown_senders.load(Ordering::Relaxed),
        senders_before,
        "its token was never looked at"
    );

    // An invite no one accepts is forgotten when it expires (its timer).
    let brief = token(&a, "Alice", 12, 1);
    assert_eq!(ask(&bus, &a, &mut a_desk, "invite", 22, json!({"token": brief.as_str()})).await.0, "invited");
    assert!(state_keys(&a).await.iter().any(|k| k.contains("invite-0c0c0c0c")));
    let deadline = tokio::time::Instant::now() + WAIT;
    while state_keys(&a).await.iter().any(|k| k.contains("invite-0c0c0c0c")) {
        assert!(tokio::time::Instant::now() < deadline, "the expired invite was never forgotten");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An acceptance sent while the inviter's vault is down arrives when it is back (at least
    // once), and the inviter's acknowledgement empties the invitee's outbox.
    let alices_last = token(&a, "Alice", 13, 3600);
    assert_eq!(ask(&bus, &a, &mut a_desk, "invite", 23, json!({"token": alices_last.as_str()})).await.0, "invited");
    let Stopped { identity, key, delegation } = stop_vault(a).await;
    let erin = user(&w, &bus, VaultOptions::default()).await;
    let mut e_desk = desk(&bus, &erin).await;
    let erins = token(&erin, "Erin", 14, 3600);
    let (kind, _) =
        ask(&bus, &erin, &mut e_desk, "connect", 24, json!({"token": alices_last.as_str(), "mine": erins.as_str()}))
            .await;
    assert_eq!(kind, "connected");
    assert_eq!(erin.vault.unacknowledged(), 1, "the acceptance waits in Erin's outbox");
    let a = start(&w, &bus, VaultOptions::default(), identity, key, delegation).await;
    let note = next_of(&mut a_desk, "accepted").await;
    assert_eq!(note["peer_guid"].as_str(), Some(erin.guid.as_str()));
    until("Alice acknowledged the acceptance", || erin.vault.unacknowledged() == 0).await;
    assert!(connections::get(&a.vault.buckets().connections, &erin.guid).await.unwrap().is_some());
    assert!(a_desk.next_within(Duration::from_millis(1_500)).await.is_none(), "one acceptance was told twice");

    // Revoking, through the app: calls are refused from then on; an entry an earlier callvault
    // wrote (a name and a reach today's schema refuses) is revoked all the same; no connection,
    // `not_connected`.
    let (kind, r) = ask(&bus, &a, &mut a_desk, "revoke", 27, json!({"peer_guid": b.guid.to_string()})).await;
    assert_eq!((kind.as_str(), r["peer_guid"].as_str()), ("revoked", Some(b.guid.as_str())), "{r}");
    let at_alice = connections::get(&a.vault.buckets().connections, &b.guid).await.unwrap().unwrap();
    assert_eq!(at_alice.state, connections::ConnectionState::Revoked);
    let mut a = a;
    request(&bus, &a, "initiate", initiate(&id(28), &b.guid, 28)).await;
    assert_eq!(expect(&mut a, "error").await["code"], "not_connected");
    let mut legacy = serde_json::to_value(
        connections::Connection::from_delegation(&dave.delegation, DisplayName::new("Dave").unwrap(), "local").unwrap(),
    )
    .unwrap();
    legacy["display_name"] = json!("Old\u{7}Name");
    legacy["reach"] = json!("r".repeat(600));
    a.vault.buckets().connections.put(dave.guid.as_str(), Bytes::from(legacy.to_string())).await.unwrap();
    let (kind, r) = ask(&bus, &a, &mut a_desk, "revoke", 29, json!({"peer_guid": dave.guid.to_string()})).await;
    assert_eq!(kind, "revoked", "{r}");
    let stored: Value =
        serde_json::from_slice(&a.vault.buckets().connections.get(dave.guid.as_str()).await.unwrap().unwrap().value)
            .unwrap();
    assert_eq!((stored["state"].as_str(), stored["reach"].as_str().map(str::len)), (Some("revoked"), Some(600)));
    let (kind, e) = ask(
        &bus,
        &a,
        &mut a_desk,
        "revoke",
        30,
        json!({"peer_guid": erin.guid.to_string().replace(|c: char| c.is_ascii_digit(), "0")}),
    )
    .await;
    assert_eq!((kind.as_str(), e["code"].as_str()), ("error", Some("not_connected")), "{e}");
}

#[tokio::test]
async fn embedded_invites() {
    invites(embedded()).await;
}

#[tokio::test]
async fn nats_invites() {
    invites(nats()).await;
}

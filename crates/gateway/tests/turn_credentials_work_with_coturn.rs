//! TURN credentials from `/calls/turn-credentials` against a real coturn (`use-auth-secret`): ours
//! allocate a relay over UDP and TCP (with coturn's own client); expired and forged ones are
//! refused; during a secret rotation credentials of both secrets work. The HTTP endpoint takes
//! a request signed NIP-98 style for its method and full URL (query included), once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use base64::Engine;
use callvault_client::Client;
use callvault_crypto::SecretIdentity;
use callvault_gateway::auth::http_authorization;
use callvault_gateway::{GatewayConfig, TurnConfig};
use callvault_protocol::app::{HTTP_AUTH_KIND, TurnCredentials};
use callvault_testkit::Coturn;
use common::{start, unix_now};

const NEW: &str = "new-secret-0123456789";
const OLD: &str = "old-secret-0123456789";

fn turn(coturn: &Coturn, secrets: &[&str]) -> TurnConfig {
    TurnConfig {
        stun_urls: vec![format!("stun:127.0.0.1:{}", coturn.port())],
        turn_urls: coturn.urls(),
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        ttl_secs: 3_600,
        relay_only: false,
    }
}

fn user_and_password(c: &TurnCredentials) -> (String, String) {
    let s = c.ice_servers.iter().find(|s| s.username.is_some()).unwrap();
    (s.username.clone().unwrap(), s.credential.clone().unwrap())
}

#[tokio::test]
async fn our_credentials_allocate_on_coturn_and_bad_ones_do_not() {
    let coturn = Coturn::start(&[NEW, OLD]);
    let s = start(GatewayConfig { turn: Some(turn(&coturn, &[NEW, OLD])), ..GatewayConfig::default() }).await;
    let id = Arc::new(SecretIdentity::generate());
    let mut app = Client::connect(&s.url(), id.clone(), "Alice").await.unwrap();

    // Over HTTP, signed by the app's identity key.
    let path = "/calls/turn-credentials";
    let url = format!("http://{}{path}", s.addr);
    let (status, body) =
        s.get(path, &[("Authorization", &http_authorization(&id, "GET", &url, unix_now()).unwrap())]).await;
    assert_eq!(status, 200, "{body}");
    let creds: TurnCredentials = serde_json::from_str(&body).unwrap();
    assert_eq!(creds.ice_transport_policy, "all");
    assert!(creds.ice_servers[0].urls[0].starts_with("stun:"));
    let (user, pass) = user_and_password(&creds);
    assert!(user.ends_with(&format!(":{}", id.public().guid())));
    coturn.allocate(&user, &pass, false).unwrap_or_else(|e| panic!("UDP allocation refused: {e}\n{}", coturn.log()));
    coturn.allocate(&user, &pass, true).unwrap_or_else(|e| panic!("TCP allocation refused: {e}\n{}", coturn.log()));

    // Over the WebSocket, relay-only: no STUN server, policy relay; the credentials work too.
    let relay = app.turn_credentials(true).await.unwrap();
    assert_eq!(relay.ice_transport_policy, "relay");
    assert!(relay.ice_servers.iter().all(|s| s.urls.iter().all(|u| u.starts_with("turn"))));
    let (user, pass) = user_and_password(&relay);
    coturn.allocate(&user, &pass, false).unwrap();

    // Made with the old secret during a rotation: still taken.
    let old = turn(&coturn, &[OLD]).credentials(&id.public().guid(), unix_now(), false).unwrap();
    let (user, pass) = user_and_password(&old);
    coturn.allocate(&user, &pass, false).unwrap();

    // Expired: made two hours ago with a one-hour lifetime.
    let expired = turn(&coturn, &[NEW]).credentials(&id.public().guid(), unix_now() - 7_200, false).unwrap();
    let (user, pass) = user_and_password(&expired);
    let e = coturn.allocate(&user, &pass, false).expect_err("expired credentials must be refused");
    assert!(e.contains("Cannot complete Allocation"), "{e}");

    // Forged: a secret coturn does not have.
    let forged =
        turn(&coturn, &["forged-secret-0123456789"]).credentials(&id.public().guid(), unix_now(), false).unwrap();
    let (user, pass) = user_and_password(&forged);
    let e = coturn.allocate(&user, &pass, true).expect_err("forged credentials must be refused");
    assert!(e.contains("Cannot complete Allocation"), "{e}");
}

#[tokio::test]
async fn the_endpoint_refuses_unsigned_wrongly_signed_and_unregistered_requests() {
    let coturn = Coturn::start(&[NEW]);
    let s = start(GatewayConfig { turn: Some(turn(&coturn, &[NEW])), ..GatewayConfig::default() }).await;
    let id = Arc::new(SecretIdentity::generate());
    Client::connect(&s.url(), id.clone(), "Alice").await.unwrap().close().await;
    let path = "/calls/turn-credentials";
    let url = |s: &common::Server, p: &str| format!("http://{}{p}", s.addr);
    let signed = |p: &str, t: u64| http_authorization(&id, "GET", &url(&s, p), t).unwrap();
    assert_eq!(s.get(path, &[]).await.0, 401);
    assert_eq!(s.get(path, &[("Authorization", "Bearer abc")]).await.0, 401);
    assert_eq!(s.get(path, &[("Authorization", &signed("/metrics", unix_now()))]).await.0, 401);
    assert_eq!(s.get(path, &[("Authorization", &signed(path, unix_now() - 600))]).await.0, 401);
    // The old form (only "GET /calls/turn-credentials" signed, as content) is refused.
    let old = id.sign_note(HTTP_AUTH_KIND, "GET /calls/turn-credentials", unix_now()).unwrap();
    let old = format!("Nostr {}", base64::engine::general_purpose::STANDARD.encode(old));
    assert_eq!(s.get(path, &[("Authorization", &old)]).await.0, 401);
    // Signed for relay-only: the same header cannot ask for direct candidates, nor the other way.
    let relay = signed(&format!("{path}?relay_only=true"), unix_now());
    assert_eq!(s.get(path, &[("Authorization", &relay)]).await.0, 401);
    assert_eq!(s.get(&format!("{path}?relay_only=false"), &[("Authorization", &relay)]).await.0, 401);
    // A captured header works once: its replay is refused.
    let (status, body) = s.get(&format!("{path}?relay_only=true"), &[("Authorization", &relay)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<TurnCredentials>(&body).unwrap().ice_transport_policy, "relay");
    let (status, body) = s.get(&format!("{path}?relay_only=true"), &[("Authorization", &relay)]).await;
    assert_eq!(status, 401, "a replay: {body}");
    assert!(body.contains("used before"), "{body}");
    let stranger = SecretIdentity::generate();
    let note = http_authorization(&stranger, "GET", &url(&s, path), unix_now()).unwrap();
    assert_eq!(s.get(path, &[("Authorization", &note)]).await.0, 403);
    assert_eq!(s.metric("callvault_refused_messages_total{source=\"gateway\",reason=\"bad_signature\"}").await, 8.0);
    // Without TURN configured the endpoint says so.
    let bare = start(GatewayConfig::default()).await;
    Client::connect(&bare.url(), id.clone(), "Alice").await.unwrap().close().await;
    let ok = http_authorization(&id, "GET", &url(&bare, path), unix_now()).unwrap();
    assert_eq!(bare.get(path, &[("Authorization", &ok)]).await.0, 503);
}

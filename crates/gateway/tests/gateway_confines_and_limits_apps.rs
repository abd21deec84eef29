//! The app gateway against real WebSocket clients: authentication, confinement to the user's own
//! subjects, limits, health and metrics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_client::{Client, ClientError};
use callvault_crypto::SecretIdentity;
use callvault_gateway::GatewayConfig;
use callvault_protocol::app::{AUTH_KIND, AppErrorCode, AppFrame, Limits, ServerFrame};
use common::{ERR, challenge, closed, recv, send, start, unix_now};
use serde_json::json;

fn error_code(f: Option<ServerFrame>) -> AppErrorCode {
    match f {
        Some(ServerFrame::Error { code, .. }) => code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn registration_makes_a_vault_and_a_returning_user_is_recognised() {
    let s = start(GatewayConfig::default()).await;
    let id = Arc::new(SecretIdentity::generate());
    let c = Client::connect(&s.url(), id.clone(), "Alice").await.unwrap();
    assert_eq!(c.guid(), &id.public().guid());
    assert!(s.host.hosts(c.guid()).await);
    c.close().await;
    // A returning user is ready straight after the challenge answer: no registration offered.
    let mut ws = s.ws().await;
    let ch = challenge(&mut ws).await;
    let note = id.sign_note(AUTH_KIND, &ch, unix_now()).unwrap();
    send(&mut ws, json!({"type": "auth", "note": note})).await;
    match recv(&mut ws).await {
        Some(ServerFrame::Ready { guid, display_name, .. }) => {
            assert_eq!(guid, id.public().guid());
            assert_eq!(display_name, "Alice");
        }
        other => panic!("expected ready, got {other:?}"),
    }
    assert_eq!(s.host.vaults().await.len(), 1);
}

#[tokio::test]
async fn bad_signatures_replayed_challenges_and_stale_notes_are_refused() {
    let s = start(GatewayConfig::default()).await;
    let id = SecretIdentity::generate();
    // A note that answered one connection's challenge, replayed on another connection.
    let mut first = s.ws().await;
    let ch = challenge(&mut first).await;
    let answered = id.sign_note(AUTH_KIND, &ch, unix_now()).unwrap();
    let mut replay = s.ws().await;
    let _ = challenge(&mut replay).await;
    send(&mut replay, json!({"type": "auth", "note": answered})).await;
    assert_eq!(error_code(recv(&mut replay).await), AppErrorCode::BadSignature);
    assert!(closed(&mut replay).await);
    // A forged signature: the content changed after signing.
    let mut forged = s.ws().await;
    let ch = challenge(&mut forged).await;
    let note = id.sign_note(AUTH_KIND, &ch, unix_now()).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&note).unwrap();
    v["content"] = json!(ch.replace(&ch[..2], if &ch[..2] == "00" { "11" } else { "00" }));
    send(&mut forged, json!({"type": "auth", "note": v.to_string()})).await;
    assert_eq!(error_code(recv(&mut forged).await), AppErrorCode::BadSignature);
    // A stale note: signed ten minutes ago.
    let mut stale = s.ws().await;
    let ch = challenge(&mut stale).await;
    let note = id.sign_note(AUTH_KIND, &ch, unix_now() - 600).unwrap();
    send(&mut stale, json!({"type": "auth", "note": note})).await;
    assert_eq!(error_code(recv(&mut stale).await), AppErrorCode::BadSignature);
    // Another kind of frame before authenticating.
    let mut early = s.ws().await;
    let _ = challenge(&mut early).await;
    send(&mut early, json!({"type": "publish", "subject": "OwnerSpace.x.forVault.call.end", "payload": {}})).await;
    assert_eq!(error_code(recv(&mut early).await), AppErrorCode::WrongState);
    // Garbage.
    let mut junk = s.ws().await;
    let _ = challenge(&mut junk).await;
    send(&mut junk, json!({"type": "auth"})).await;
    assert_eq!(error_code(recv(&mut junk).await), AppErrorCode::BadFrame);
    assert_eq!(s.metric(&format!("{ERR}\"bad_signature\"}}")).await, 3.0);
    assert_eq!(s.metric(&format!("{ERR}\"wrong_state\"}}")).await, 1.0);
    assert!(s.host.vaults().await.is_empty(), "no refused identity got a vault");
    // The first connection still authenticates with its own answer.
    send(&mut first, json!({"type": "auth", "note": answered})).await;
    assert!(matches!(recv(&mut first).await, Some(ServerFrame::RegisterRequired { .. })));
}

#[tokio::test]
async fn an_app_cannot_publish_to_or_receive_another_users_subjects() {
    let s = start(GatewayConfig::default()).await;
    let mut alice = Client::connect(&s.url(), Arc::new(SecretIdentity::generate()), "Alice").await.unwrap();
    let mut bob = Client::connect(&s.url(), Arc::new(SecretIdentity::generate()), "Bob").await.unwrap();
    let (a, b) = (alice.guid().clone(), bob.guid().clone());
    let initiate = json!({"type": "call.initiate", "message_id": "00000000-0000-4000-8000-000000000001",
        "timestamp": "2026-11-22T00:00:00Z", "call_id": "00000000-0000-4000-8000-0000000000aa",
        "peer_guid": a, "call_type": "audio"});
    for subject in [
        format!("OwnerSpace.{b}.forVault.call.initiate"),
        format!("OwnerSpace.{b}.forApp.call.incoming"),
        format!("OwnerSpace.{a}.forApp.call.incoming"),
        format!("MessageSpace.{b}.call.incoming"),
        format!("OwnerSpace.{a}.forVault.>"),
        "OwnerSpace.*.forVault.call.initiate".to_owned(),
        "_INBOX.x".to_owned(),
    ] {
        alice.send_frame(&AppFrame::Publish { subject, payload: initiate.clone() }).await.unwrap();
        alice.send_frame(&AppFrame::Ping {}).await.unwrap();
        let e = alice.wait_for(Duration::from_secs(5), "refusal", |_| false).await;
        assert!(
            matches!(e, Err(ClientError::Refused { code: AppErrorCode::ForbiddenSubject, .. })),
            "expected forbidden_subject, got {e:?}"
        );
    }
    assert_eq!(s.metric(&format!("{ERR}\"forbidden_subject\"}}")).await, 7.0);
    // Nothing reached Bob or his vault.
    assert!(matches!(bob.next_event(Duration::from_millis(500)).await, Err(ClientError::Timeout(..))));
    let bob_vault = s.host.vaults().await.into_iter().find(|v| v.guid() == &b).unwrap();
    // (The kernel runs no start-up sweep: a vault with nothing due handles nothing.)
    assert_eq!(bob_vault.stats().handled.load(std::sync::atomic::Ordering::Relaxed), 0, "no event reached Bob's vault");
    // What the bus carries for Bob's app reaches Bob only.
    let note = json!({"type": "call.ringing", "call_id": "00000000-0000-4000-8000-0000000000bb"});
    s.bus.publish(&format!("OwnerSpace.{b}.forApp.call.ringing"), Bytes::from(note.to_string())).await.unwrap();
    let got = bob.next_event(Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.kind, "call.ringing");
    assert!(matches!(alice.next_event(Duration::from_millis(500)).await, Err(ClientError::Timeout(..))));
    // A payload that is not an object, and an admin request the vault does not know.
    alice
        .send_frame(&AppFrame::Publish { subject: format!("OwnerSpace.{a}.forVault.call.end"), payload: json!([1, 2]) })
        .await
        .unwrap();
    let e = alice.wait_for(Duration::from_secs(5), "refusal", |_| false).await;
    assert!(matches!(e, Err(ClientError::Refused { code: AppErrorCode::BadPayload, .. })), "{e:?}");
    alice.publish("connection.steal", json!({"message_id": "00000000-0000-4000-8000-000000000009"})).await.unwrap();
    let e = alice.next_event(Duration::from_secs(5)).await.unwrap();
    assert_eq!(e.kind, "connection.error");
    assert_eq!(e.in_reply_to(), Some("00000000-0000-4000-8000-000000000009"));
    // The connection still works.
    assert!(alice.connections().await.unwrap().is_empty());
}

fn tight() -> GatewayConfig {
    GatewayConfig {
        limits: Limits {
            max_frame_bytes: 4096,
            messages_per_second: 5,
            burst: 10,
            connections_per_identity: 2,
            idle_timeout_secs: 1,
        },
        ..GatewayConfig::default()
    }
}

async fn ready(s: &common::Server, id: &SecretIdentity) -> common::Ws {
    let mut ws = s.ws().await;
    common::authenticate(&mut ws, id).await;
    ws
}

#[tokio::test]
async fn oversized_frames_floods_extra_connections_and_idle_apps_are_refused() {
    let s = start(tight()).await;
    let id = Arc::new(SecretIdentity::generate());
    Client::connect(&s.url(), id.clone(), "Alice").await.unwrap().close().await;

    // Over the frame limit: refused, the connection stays.
    let mut ws = ready(&s, &id).await;
    let big = json!({"type": "ping", "pad": "x".repeat(8_000)});
    send(&mut ws, big).await;
    assert_eq!(error_code(recv(&mut ws).await), AppErrorCode::FrameTooLarge);
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await, Some(ServerFrame::Pong {}));
    // Far over it: the socket itself closes.
    send(&mut ws, json!({"type": "ping", "pad": "x".repeat(20_000)})).await;
    assert!(closed(&mut ws).await);
    s.wait_connections(0.0).await;

    // A flood: the burst passes, the rest is refused and counted, and a long flood is cut off.
    // (A fresh identity: the budget is the identity's, and Alice spent some of hers above.)
    let flooder = Arc::new(SecretIdentity::generate());
    Client::connect(&s.url(), flooder.clone(), "Flo").await.unwrap().close().await;
    let mut ws = ready(&s, &flooder).await;
    let flood_started = std::time::Instant::now();
    for _ in 0..300 {
        if futures_util::SinkExt::send(
            &mut ws,
            tokio_tungstenite::tungstenite::Message::Text(r#"{"type":"ping"}"#.into()),
        )
        .await
        .is_err()
        {
            break;
        }
    }
    let mut pongs = 0;
    let mut limited = 0;
    while let Some(f) = recv(&mut ws).await {
        match f {
            ServerFrame::Pong {} => pongs += 1,
            ServerFrame::Error { code: AppErrorCode::RateLimited, .. } => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // The burst of 10 passes, then what the rate (5/s) refills while the server works through the
    // flood: at most 5 per second of the time from the first frame to the close.
    let refill = (flood_started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    assert!(pongs >= 10 && pongs <= 10 + refill, "the burst of 10 and {refill} refills at most passed: {pongs}");
    assert!(limited >= 1);
    assert!(s.metric(&format!("{ERR}\"rate_limited\"}}")).await >= 100.0);
    s.wait_connections(0.0).await;

    // Two connections per identity; the third is refused.
    let _one = ready(&s, &id).await;
    let _two = ready(&s, &id).await;
    let mut three = s.ws().await;
    let ch = challenge(&mut three).await;
    send(&mut three, json!({"type": "auth", "note": id.sign_note(AUTH_KIND, &ch, unix_now()).unwrap()})).await;
    assert_eq!(error_code(recv(&mut three).await), AppErrorCode::TooManyConnections);
    drop((_one, _two));
    s.wait_connections(0.0).await;

    // An app that sends nothing (and answers no ping) is closed after the idle timeout.
    let mut idle = ready(&s, &id).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // (The client's pong to the queued pings may hit the closed socket before it reads the
    // error frame; the server's count says why it closed.)
    assert!(closed(&mut idle).await);
    assert_eq!(s.metric(&format!("{ERR}\"idle_timeout\"}}")).await, 1.0);
    assert_eq!(s.metric(&format!("{ERR}\"frame_too_large\"}}")).await, 1.0);
    assert_eq!(s.metric(&format!("{ERR}\"too_many_connections\"}}")).await, 1.0);
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected_past_the_idle_timeout() {
    let s = start(tight()).await;
    let mut c = Client::connect(&s.url(), Arc::new(SecretIdentity::generate()), "Alice").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(c.connections().await.unwrap().is_empty());
}

#[tokio::test]
async fn closed_registration_refuses_unknown_identities() {
    let s = start(GatewayConfig { registration_open: false, ..GatewayConfig::default() }).await;
    let e = Client::connect(&s.url(), Arc::new(SecretIdentity::generate()), "Mallory").await;
    assert!(matches!(e, Err(ClientError::Refused { code: AppErrorCode::RegistrationClosed, .. })), "{e:?}");
    assert!(s.host.vaults().await.is_empty());
    // A registration whose delegation names another vault key is refused.
    let open = start(GatewayConfig::default()).await;
    let id = SecretIdentity::generate();
    let mut ws = open.ws().await;
    let ch = challenge(&mut ws).await;
    send(&mut ws, json!({"type": "auth", "note": id.sign_note(AUTH_KIND, &ch, unix_now()).unwrap()})).await;
    assert!(matches!(recv(&mut ws).await, Some(ServerFrame::RegisterRequired { .. })));
    let other = SecretIdentity::generate().public();
    let d = callvault_crypto::Delegation::sign(&id, &other, unix_now()).unwrap();
    send(&mut ws, json!({"type": "register", "delegation": d.to_json(), "display_name": "Eve"})).await;
    assert_eq!(error_code(recv(&mut ws).await), AppErrorCode::BadRegistration);
    assert!(open.host.vaults().await.is_empty());
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = start(GatewayConfig::default()).await;
    assert_eq!(s.get("/healthz", &[]).await.0, 200);
    assert_eq!(s.get("/readyz", &[]).await.0, 200);
    let c = Client::connect(&s.url(), Arc::new(SecretIdentity::generate()), "Alice").await.unwrap();
    assert_eq!(s.metric("callvault_gateway_connections").await, 1.0);
    assert_eq!(s.metric("callvault_hosted_vaults").await, 1.0);
    let (_, body) = s.get("/metrics", &[]).await;
    for series in [
        "callvault_active_calls ",
        "callvault_call_setups_total{direction=\"outgoing\",outcome=\"answered\"} ",
        "callvault_handler_latency_seconds_bucket{le=\"+Inf\"} ",
        "callvault_refused_messages_total{source=\"vault\",reason=\"bad_wrap\"} ",
    ] {
        assert!(body.contains(series), "{series} missing");
    }
    assert!(!body.contains(c.guid().as_str()), "no guid in metrics");
    // A call moves the call series: both vaults are hosted here.
    let mut c = c;
    let mut bob = Client::connect(&s.url(), Arc::new(SecretIdentity::generate()), "Bob").await.unwrap();
    let token = c.invite(600).await.unwrap();
    bob.accept_invite(token.as_str()).await.unwrap();
    c.wait_for(Duration::from_secs(10), "acceptance", |e| e.kind == "connection.accepted").await.unwrap();
    let call = c.call(&bob.guid().clone(), callvault_protocol::fields::CallType::Audio).await.unwrap();
    bob.wait_incoming(Duration::from_secs(10)).await.unwrap();
    bob.answer(&call).await.unwrap();
    c.wait_call_settled(&call, Duration::from_secs(10)).await.unwrap();
    assert_eq!(s.metric("callvault_active_calls").await, 2.0);
    assert_eq!(s.metric("callvault_call_setups_total{direction=\"outgoing\",outcome=\"answered\"}").await, 1.0);
    assert_eq!(s.metric("callvault_call_setups_total{direction=\"incoming\",outcome=\"answered\"}").await, 1.0);
    assert_eq!(s.metric("callvault_call_setups_total{direction=\"incoming\",outcome=\"rejected\"}").await, 0.0);
    assert!(s.metric("callvault_handler_latency_seconds_count").await >= 4.0);
    c.hangup(&call).await.unwrap();
    bob.wait_call_settled(&call, Duration::from_secs(10)).await.unwrap();
    assert_eq!(s.metric("callvault_active_calls").await, 0.0);
    assert_eq!(s.metric("callvault_gateway_connections").await, 2.0);
    s.gateway.begin_shutdown();
    assert_eq!(s.get("/readyz", &[]).await.0, 503);
}

#[tokio::test]
async fn a_thousand_hostile_frames_are_refused_and_the_connection_keeps_working() {
    let config = GatewayConfig {
        limits: Limits { messages_per_second: 100_000, burst: 100_000, ..GatewayConfig::default().limits },
        ..GatewayConfig::default()
    };
    let s = start(config).await;
    let id = Arc::new(SecretIdentity::generate());
    Client::connect(&s.url(), id.clone(), "Alice").await.unwrap().close().await;
    let mut ws = ready(&s, &id).await;
    let me = id.public().guid();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut sent = 0;
    for i in 0..1_000u64 {
        let r = next();
        let frame = match i % 8 {
            0 => (0..(r % 200)).map(|k| char::from(b' ' + ((r >> (k % 50)) % 90) as u8)).collect::<String>(),
            1 => json!({"type": "publish", "subject": format!("OwnerSpace.{me}.forVault.{}", "x".repeat((r % 5) as usize)), "payload": r}).to_string(),
            2 => json!({"type": "publish", "subject": r.to_string(), "payload": {}}).to_string(),
            3 => json!({"type": "auth", "note": r.to_string()}).to_string(),
            4 => json!({"type": "register", "delegation": "{}", "display_name": ""}).to_string(),
            5 => json!({"type": "turn_credentials", "request_id": "x".repeat((r % 300) as usize)}).to_string(),
            6 => format!("{{\"type\":\"publish\",\"subject\":\"OwnerSpace.{me}.forVault.call.end\",\"payload\":{}}}", "[".repeat((r % 64) as usize)),
            _ => json!({"type": "ping", "extra": r}).to_string(),
        };
        send(&mut ws, serde_json::Value::String(String::new())).await; // an empty JSON string frame
        futures_util::SinkExt::send(&mut ws, tokio_tungstenite::tungstenite::Message::Text(frame.into()))
            .await
            .unwrap();
        sent += 2;
    }
    // Every hostile frame got its error frame, in order; the connection still works.
    send(&mut ws, json!({"type": "ping"})).await;
    let mut answers = 0;
    loop {
        match recv(&mut ws).await {
            Some(ServerFrame::Pong {}) => break,
            Some(ServerFrame::Error { .. }) => answers += 1,
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("the connection closed after {answers} answers"),
        }
    }
    assert_eq!(answers, sent);
    assert!(s.metric(&format!("{ERR}\"bad_frame\"}}")).await >= 1_000.0);
    assert!(s.metric(&format!("{ERR}\"wrong_state\"}}")).await >= 250.0);
    assert_eq!(s.get("/healthz", &[]).await.0, 200);
}

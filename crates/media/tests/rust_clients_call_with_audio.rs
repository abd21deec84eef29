//! Two Rust clients call each other through a server (gateway and both vaults in process, on the
//! embedded backend): the call is set up through the vaults, keys and SDP travel as sealed signals,
//! and real Opus audio flows SFrame-encrypted: a 440 Hz tone one way and 880 Hz the other, detected
//! in what each side decoded. Once directly on loopback, once relay-only through a real coturn.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault_bus::MemoryBus;
use callvault_client::Client;
use callvault_crypto::SecretIdentity;
use callvault_gateway::{Gateway, GatewayConfig, TurnConfig};
use callvault_media::audio::tone_share;
use callvault_media::call::{self, MediaOptions};
use callvault_media::peer::{FrameProtection, MediaPeer, MediaState};
use callvault_protocol::{CallId, Guid};
use callvault_store::EmbeddedStore;
use callvault_testkit::Coturn;
use callvault_vault::host::VaultHost;
use callvault_vault::manager::VaultOptions;

struct Server {
    url: String,
    _dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

async fn server(turn: Option<TurnConfig>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("callvault.redb")).unwrap();
    let bus = MemoryBus::new();
    let host = VaultHost::open(store, bus.clone(), dir.path(), VaultOptions::default()).await.unwrap();
    let gateway = Gateway::new(host, bus, GatewayConfig { turn, ..GatewayConfig::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/app", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { gateway.serve_until_dropped(listener, Default::default()).await });
    Server { url, _dir: dir, _task: task }
}

fn turn_config(coturn: &Coturn, relay_only: bool) -> TurnConfig {
    TurnConfig {
        stun_urls: vec![],
        turn_urls: coturn.urls(),
        secrets: vec!["relay-secret-0123456789".into()],
        ttl_secs: 600,
        relay_only,
    }
}

async fn connected_pair(url: &str) -> (Client, Client) {
    let mut alice = Client::connect(url, Arc::new(SecretIdentity::generate()), "Alice").await.unwrap();
    let mut bob = Client::connect(url, Arc::new(SecretIdentity::generate()), "Bob").await.unwrap();
    let token = alice.invite(600).await.unwrap();
    bob.accept_invite(token.as_str()).await.unwrap();
    alice.wait_for(Duration::from_secs(10), "acceptance", |e| e.kind == "connection.accepted").await.unwrap();
    (alice, bob)
}

fn options(tone: &str, relay_only: bool, duration: Option<Duration>) -> MediaOptions {
    MediaOptions {
        source_spec: tone.to_owned(),
        relay_only,
        duration,
        local_ip: Some("127.0.0.1".parse().unwrap()),
        wait: Duration::from_secs(20),
    }
}

async fn call_with_tones(url: &str, relay_only: bool) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
    let (mut alice, mut bob) = connected_pair(url).await;
    let bob_guid = bob.guid().clone();
    let caller = async {
        call::place(&mut alice, url, &bob_guid, &options("tone:440", relay_only, Some(Duration::from_secs(4)))).await
    };
    let callee = async {
        let incoming = bob.wait_incoming(Duration::from_secs(20)).await.unwrap();
        let id = CallId::parse(incoming.call_id().unwrap()).unwrap();
        let from = Guid::parse(incoming.payload["peer_guid"].as_str().unwrap()).unwrap();
        call::answer(&mut bob, url, &id, &from, &options("tone:880", relay_only, None)).await
    };
    let (a, b) = tokio::join!(caller, callee);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.call_id, b.call_id);
    assert_eq!(a.sas, b.sas, "both sides show the same short authentication string");
    assert!(a.we_hung_up && !b.we_hung_up, "Alice hung up; Bob's media ended with the call");
    assert_eq!(a.ended.state, MediaState::Flowing);
    assert_eq!(a.ended.stats.decrypt_failures, 0);
    let tail = |v: &[i16]| v[v.len().min(24_000)..].to_vec();
    let (heard_a, heard_b) = (tail(&a.heard), tail(&b.heard));
    assert!(heard_b.len() > 48_000, "Bob decoded {} samples", heard_b.len());
    assert!(tone_share(&heard_b, 440.0) > 0.5, "440 Hz at Bob: {}", tone_share(&heard_b, 440.0));
    assert!(tone_share(&heard_a, 880.0) > 0.5, "880 Hz at Alice: {}", tone_share(&heard_a, 880.0));
    assert!(tone_share(&heard_a, 440.0) < 0.05 && tone_share(&heard_b, 880.0) < 0.05);
    assert!(a.first_audio_after.unwrap() < Duration::from_secs(5));
    // The call is over in both vaults.
    let h = alice.history(5).await.unwrap();
    assert_eq!(h[0].call_id, a.call_id);
    assert_eq!(h[0].status, callvault_protocol::fields::CallStatus::Ended);
    (a.relayed, b.relayed)
}

#[tokio::test]
async fn rust_clients_exchange_tones_directly_on_loopback() {
    let s = server(None).await;
    assert_eq!(call_with_tones(&s.url, false).await, (None, None));
}

#[tokio::test]
async fn rust_clients_exchange_tones_relay_only_through_coturn() {
    let coturn = Coturn::start(&["relay-secret-0123456789"]);
    let turn = turn_config(&coturn, false);
    let s = server(Some(turn)).await;
    let (ra, rb) = call_with_tones(&s.url, true).await;
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_ne!(ra, rb);
    let log = coturn.log();
    for r in [ra, rb] {
        assert!(log.contains(&format!("Local relay addr: {r}")), "{r} allocated by coturn:\n{log}");
    }
    assert!(log.matches("ALLOCATE processed, success").count() >= 2, "two relays allocated:\n{log}");
    assert!(log.contains("CREATE_PERMISSION processed, success"), "{log}");
}

#[tokio::test]
async fn a_relay_only_offer_names_no_host_address() {
    let coturn = Coturn::start(&["relay-secret-0123456789"]);
    let turn = turn_config(&coturn, true);
    let creds = turn.credentials(&Guid::from_public_key(&[5; 32]), 1_900_000_000, true).unwrap();
    let relay =
        callvault_media::turn::Relay::allocate(callvault_media::turn::RelayConfig::from_credentials(&creds).unwrap())
            .await
            .unwrap();
    let mut peer = MediaPeer::new(Instant::now(), FrameProtection::Plain).unwrap();
    peer.add_relay_candidate(relay.relayed(), relay.local()).unwrap();
    let offer = peer.create_offer().unwrap();
    assert!(offer.contains("typ relay"), "{offer}");
    assert!(!offer.contains("typ host") && !offer.contains("typ srflx"), "{offer}");
    // Bad credentials are refused by the server, with its reason.
    let mut bad = callvault_media::turn::RelayConfig::from_credentials(&creds).unwrap();
    bad.password = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let e = callvault_media::turn::Relay::allocate(bad).await.err().unwrap();
    assert!(matches!(e, callvault_media::turn::TurnError::Refused(401, _)), "{e:?}");
}

//! The browser client (`web/src`, embedded in the binary) in headless Debian
//! Chromium driven by playwright-core (`web/tests/browser.mjs`), against `callvault serve` as a
//! process: two browsers in a video call, E2EE on, each decoding the other's video; a tampered key
//! gives "cannot decrypt" and no decoded media; a browser calls a Rust client and both decode the
//! other's audio. Screenshots go to `target/browser-artifacts/`.
#![cfg(feature = "media")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use callvault_testkit::ServeProcess;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_callvault");

fn repo() -> PathBuf {
    callvault_testkit::manifest_dir(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn artifacts() -> PathBuf {
    let dir = repo().join("target/browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Serve {
    process: ServeProcess,
    base: String,
    _dir: tempfile::TempDir,
}

fn serve() -> Serve {
    serve_with(&[])
}

fn serve_with(env: &[(&str, &str)]) -> Serve {
    // The browser client as the binary embeds it: what a user of `callvault serve` gets, with
    // the test hooks the scenarios read (window.cv) switched on.
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![("CALLVAULT_TEST_HOOKS", "1")];
    all.extend_from_slice(env);
    let process = ServeProcess::start(Path::new(BIN), dir.path(), &[], &all);
    Serve { base: process.base(), process, _dir: dir }
}

/// One browser scenario at a time: two Chromiums with fake cameras are load enough for two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs a scenario of `web/tests/browser.mjs`; what it saw.
fn browser(base: &str, scenario: &str, fake_audio: Option<&Path>, env: &[(&str, &str)]) -> Value {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut cmd = Command::new("node");
    cmd.current_dir(repo().join("web")).arg("tests/browser.mjs").args([base, scenario]).arg(artifacts());
    if let Some(wav) = fake_audio {
        cmd.arg(wav);
    }
    let out = cmd.envs(env.iter().copied()).output().expect("node (Node.js) runs the browser tests");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!("browser run printed no JSON ({e}): {text}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    assert!(v.get("error").is_none(), "browser scenario failed: {v:#}");
    v
}

fn n(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64().unwrap_or_else(|| panic!("no number at {path:?} in {v:#}"))
}

fn video_call(query: &str, path: &str) -> Value {
    video_call_on(&serve(), query, path)
}

fn video_call_on(s: &Serve, query: &str, path: &str) -> Value {
    let v = browser(&s.base, "video-call", None, &[("CV_QUERY", query)]);
    for who in ["alice", "bob"] {
        let first = n(&v, &[who, "first", "video", "framesDecoded"]);
        let last = n(&v, &[who, "last", "video", "framesDecoded"]);
        assert!(last > first + 30.0, "{who} decodes the other's video: {first} -> {last}");
        assert!(
            n(&v, &[who, "last", "audio", "totalAudioEnergy"]) > n(&v, &[who, "first", "audio", "totalAudioEnergy"])
        );
        assert!(n(&v, &[who, "e2ee", "decrypted"]) > 100.0, "{who}: frames went through SFrame");
        assert_eq!(n(&v, &[who, "e2ee", "failed"]), 0.0);
        assert_eq!(v[who]["e2ee"]["decryptText"], "end-to-end encrypted");
        assert_eq!(v[who]["e2ee"]["path"], path);
    }
    assert_eq!(v["alice"]["e2ee"]["sas"], v["bob"]["e2ee"]["sas"], "both show the same security code");
    // Bob's tab was hidden when the call came: it rang and showed one notification; taken, it
    // stopped ringing.
    assert_eq!(v["bobRinging"], serde_json::json!({"ringing": true, "notifications": 1}), "{v:#}");
    assert_eq!(v["bobRingingInCall"], false, "{v:#}");
    // The quality indicator, from getStats: a loopback call is good, and says so.
    assert_eq!(v["aliceQuality"]["level"], "good", "{v:#}");
    assert!(v["aliceQuality"]["shown"].as_str().unwrap().starts_with("Good connection ("), "{v:#}");
    assert_eq!(v["bobAfterHangup"], "call ended");
    // The call, from Bob's vault: incoming video, ended, with its length; shown by name.
    assert_eq!(v["bobHistory"], serde_json::json!([["incoming", "video", "ended"]]), "{v:#}");
    let text = v["bobHistoryText"].as_str().unwrap();
    assert!(text.contains("Alice") && text.contains("ended") && text.contains(" s"), "{text}");
    assert_eq!(v["aliceControls"]["audio"], false, "muted");
    assert_eq!(v["aliceControls"]["video"], false, "camera off");
    assert_eq!(v["aliceControls"]["mute"], "Unmute");
    assert_eq!(v["aliceControls"]["camera"], "Camera on");
    let shot = artifacts().join("call-video-call-alice.png");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a screenshot of the call");
    v
}

#[test]
fn two_browsers_hold_an_end_to_end_encrypted_video_call() {
    video_call("", "RTCRtpScriptTransform");
}

#[test]
fn the_encoded_streams_fallback_carries_the_same_call() {
    video_call("transform=streams", "createEncodedStreams");
}

#[test]
fn browsers_that_hide_their_addresses_call_through_a_relay() {
    let secret = "relay-secret-0123456789";
    let coturn = callvault_testkit::Coturn::start(&[secret]);
    let url = format!("turn:127.0.0.1:{}?transport=udp", coturn.port());
    let s = serve_with(&[("CALLVAULT_TURN_TURN_URLS", url.as_str()), ("CALLVAULT_TURN_SECRETS", secret)]);
    let v = video_call_on(&s, "relay=1", "RTCRtpScriptTransform");
    for who in ["alice", "bob"] {
        assert_eq!(v[who]["last"]["localCandidateType"], "relay", "{who} sends only through the relay");
    }
    assert!(coturn.log().contains("ALLOCATE processed, success"), "the relays were allocated on coturn");
}

#[test]
fn a_second_call_during_a_call_waits_to_be_declined_or_taken() {
    let s = serve();
    let v = browser(&s.base, "waiting", None, &[]);
    // Carol's call came while Bob talked to Alice: shown as waiting, his call still on.
    assert_eq!(v["bobWaiting"]["state"], "in call", "{v:#}");
    assert_eq!(v["bobWaiting"]["shown"], true);
    assert!(v["bobWaiting"]["heading"].as_str().unwrap().starts_with("Waiting audio call from Carol"), "{v:#}");
    assert_eq!(v["bobWaiting"]["accept"], "End call and accept");
    assert_eq!(v["bobWaiting"]["reject"], "Decline");
    // Declined: Carol hears so; Bob's call with Alice goes on.
    assert_eq!(v["carolAfterDecline"], "call rejected");
    assert_eq!(v["bobAfterDecline"], serde_json::json!({"state": "in call", "waiting": null, "shown": false}), "{v:#}");
    assert_eq!(v["aliceAfterDecline"], "in call");
    // Taken: the call with Alice ended, Bob talks to Carol with end-to-end encryption.
    assert_eq!(v["aliceAfterTaken"], "call ended");
    assert_eq!(v["bobPeer"], "Carol");
    assert_eq!(v["bobSas"], v["carolSas"]);
    // Bob's vault has all four: Alice's (ended by him), Carol's declined, Carol's answered,
    // Carol's given up before he answered (missed, and marked so).
    let mut h: Vec<String> = v["bobHistory"].as_array().unwrap().iter().map(|r| r.to_string()).collect();
    h.sort();
    assert_eq!(
        h,
        [
            r#"["incoming","ended","callee"]"#,
            r#"["incoming","ended","callee"]"#,
            r#"["incoming","missed","caller"]"#,
            r#"["incoming","rejected","rejected"]"#
        ],
        "{v:#}"
    );
    let missed = v["bobMissedMarked"].as_array().unwrap();
    assert_eq!(missed.len(), 1, "{v:#}");
    assert!(missed[0].as_str().unwrap().contains("Carol") && missed[0].as_str().unwrap().contains("missed"));
    assert!(std::fs::metadata(artifacts().join("waiting-call.png")).unwrap().len() > 10_000);
}

#[test]
fn a_call_survives_the_app_connection_being_cut_and_the_app_catches_up() {
    let s = serve();
    let target = s.base.trim_start_matches("http://").parse().unwrap();
    let proxy = callvault_testkit::CuttingProxy::start(target);
    let proxy_base = format!("http://127.0.0.1:{}", proxy.port());
    let control = proxy.control_port().to_string();
    let v = browser(
        &s.base,
        "reconnect",
        None,
        &[("CV_PROXY_BASE", proxy_base.as_str()), ("CV_PROXY_CONTROL", control.as_str())],
    );
    // The first cut closed Bob's app connection; the call went on and the app connected again.
    let closed: usize = v["cut1"].as_str().unwrap().trim_start_matches("cut ").parse().unwrap();
    assert!(closed >= 1, "the app connection (and the page's idle HTTP ones) closed: {v:#}");
    assert_eq!(v["afterReconnect"]["state"], "in call", "{v:#}");
    assert!(n(&v, &["afterReconnect", "framesGained"]) > 20.0, "media kept flowing: {v:#}");
    assert_eq!(v["afterReconnect"]["links"], serde_json::json!(["online", "reconnecting", "online"]));
    // A network change on Alice's side restarted ICE: new credentials reached Bob, media flows.
    assert_eq!(v["afterRestart"]["restarts"], 1, "{v:#}");
    assert_eq!(v["afterRestart"]["ufragChanged"], true);
    assert!(n(&v, &["afterRestart", "framesGained"]) > 20.0, "{v:#}");
    assert_eq!(v["afterRestart"]["state"], "in call");
    // The outage: Bob's page said so, and Alice's hang-up reached him only through his vault
    // once he was back.
    assert_eq!(v["offlineText"], "Reconnecting to the server…");
    assert_eq!(v["bobDuringOutage"], "in call");
    assert_eq!(v["bobAfterOutage"]["state"], "call ended", "{v:#}");
    assert_eq!(v["bobAfterOutage"]["link"], "online");
    assert!(proxy.refused() >= 1, "an attempt during the outage was refused and tried again");
}

#[test]
fn a_camera_is_chosen_with_a_preview_and_changed_during_a_call() {
    let s = serve();
    let v = browser(&s.base, "devices", None, &[("CV_FAKE_DEVICES", "device-count=3")]);
    let cams: Vec<&str> =
        v["lists"]["videoinput"].as_array().unwrap().iter().map(|d| d["label"].as_str().unwrap()).collect();
    assert_eq!(cams.len(), 3, "{v:#}");
    assert_ne!(cams[0], cams[2]);
    assert!(!v["lists"]["audioinput"].as_array().unwrap().is_empty(), "{v:#}");
    assert!(cams.contains(&v["previewLabel"].as_str().unwrap()), "the preview shows a camera: {v:#}");
    assert!(v["previewAfterClose"].is_null(), "closing the panel lets the camera go");
    // Chosen before the call, used by it; changed during it, sent instead, on the same sender.
    assert_eq!(v["sentBefore"], cams[0], "{v:#}");
    assert_eq!(v["sentAfter"], cams[2], "{v:#}");
    assert_eq!(v["chosenKept"]["videoinput"], v["lists"]["videoinput"][2]["id"], "the choice is kept");
    assert!(n(&v, &["bobAfterSwitch", "frames"]) > 20.0, "Bob decodes the new camera: {v:#}");
    assert!(n(&v, &["bobAfterSwitch", "decrypted"]) > 20.0, "through SFrame: {v:#}");
    assert_eq!(n(&v, &["bobAfterSwitch", "failed"]), 0.0);
}

#[test]
fn every_screen_is_accessible_fits_a_phone_and_the_app_installs() {
    let s = serve();
    let v = browser(&s.base, "screens", None, &[]);
    let screens = v["screens"].as_object().unwrap();
    assert!(screens.len() >= 10, "{v:#}");
    let violations: Vec<String> = screens
        .iter()
        .flat_map(|(name, screen)| screen["violations"].as_array().unwrap().iter().map(move |v| format!("{name}: {v}")))
        .collect();
    assert!(violations.is_empty(), "axe-core finds serious or critical violations: {violations:#?}");
    for (name, screen) in screens {
        if name.ends_with("/phone") {
            assert!(screen["scroll"].as_u64() <= screen["client"].as_u64(), "{name} scrolls sideways: {screen:#}");
        }
        let shot = artifacts().join(format!("screen-{}.png", name.replace('/', "-")));
        assert!(std::fs::metadata(&shot).unwrap().len() > 5_000, "a screenshot of {name}");
    }
    assert_eq!(v["tabbedTo"], "passphrase", "Tab goes from the name to the passphrase: {v:#}");
    assert_eq!(v["manifest"]["display"], "standalone", "{v:#}");
    assert_eq!(v["manifest"]["start_url"], "/");
    assert_eq!(v["manifest"]["icons"].as_array().unwrap().len(), 2);
    assert!(v["worker"]["script"].as_str().unwrap().ends_with("/sw.js"), "{v:#}");
    assert!(n(&v, &["worker", "kept"]) >= 20.0, "the shell is kept: {v:#}");
    assert_eq!(v["installability"], serde_json::json!([]), "Chromium finds it installable: {v:#}");
}

#[test]
fn a_wrong_key_shows_cannot_decrypt_and_decodes_nothing() {
    let s = serve();
    let v = browser(&s.base, "tamper", None, &[]);
    assert_eq!(n(&v, &["bob", "last", "video", "framesDecoded"]), 0.0);
    assert_eq!(n(&v, &["bob", "last", "audio", "totalSamplesReceived"]), 0.0);
    assert!(n(&v, &["bob", "last", "video", "packetsReceived"]) > 50.0, "the packets did arrive");
    assert!(n(&v, &["bob", "e2ee", "failed"]) > 50.0);
    assert_eq!(n(&v, &["bob", "e2ee", "decrypted"]), 0.0);
    assert_eq!(v["bob"]["e2ee"]["decryptText"], "cannot decrypt");
    // Alice's keys are right: she decodes Bob.
    assert!(n(&v, &["alice", "e2ee", "decrypted"]) > 100.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_calls_a_rust_client_and_both_hear_each_other() {
    use callvault_client::Client;
    use callvault_crypto::SecretIdentity;
    use callvault_media::audio::{AudioSource, tone_share, write_wav};
    use callvault_media::call::{self, MediaOptions};
    use callvault_protocol::{CallId, Guid};

    let s = serve();
    let url = s.process.url();
    let mut rust = Client::connect(&url, Arc::new(SecretIdentity::generate()), "Rusty").await.unwrap();
    let token = rust.invite(600).await.unwrap();
    // The browser's microphone: a 440 Hz tone.
    let wav = tempfile::NamedTempFile::with_suffix(".wav").unwrap();
    let mut tone = AudioSource::tone(440.0);
    let samples: Vec<i16> = (0..500).flat_map(|_| tone.next_frame()).collect();
    write_wav(wav.path(), &samples).unwrap();
    let base = s.base.clone();
    let path = wav.path().to_owned();
    let token_text = token.as_str().to_owned();
    let page = tokio::task::spawn_blocking(move || {
        browser(&base, "call-rust", Some(&path), &[("CALLVAULT_INVITE", token_text.as_str())])
    });
    let incoming = rust.wait_incoming(Duration::from_secs(60)).await.unwrap();
    let id = CallId::parse(incoming.call_id().unwrap()).unwrap();
    let from = Guid::parse(incoming.payload["peer_guid"].as_str().unwrap()).unwrap();
    let options = MediaOptions {
        source_spec: "tone:880".into(),
        relay_only: false,
        duration: None,
        local_ip: Some("127.0.0.1".parse().unwrap()),
        wait: Duration::from_secs(30),
    };
    let heard = call::answer(&mut rust, &url, &id, &from, &options).await.unwrap();
    let v = page.await.unwrap();
    // The Rust side decoded the browser's tone.
    assert!(!heard.we_hung_up, "the browser hung up");
    assert_eq!(heard.ended.stats.decrypt_failures, 0);
    let tail = &heard.heard[heard.heard.len().min(48_000)..];
    assert!(tail.len() > 48_000, "decoded {} samples", heard.heard.len());
    assert!(tone_share(tail, 440.0) > 0.3, "440 Hz from the browser: {}", tone_share(tail, 440.0));
    // The browser decoded the Rust side's audio, through its SFrame worker.
    assert!(
        n(&v, &["alice", "last", "audio", "totalAudioEnergy"])
            > n(&v, &["alice", "first", "audio", "totalAudioEnergy"])
    );
    assert!(n(&v, &["alice", "e2ee", "decrypted"]) > 100.0);
    assert_eq!(n(&v, &["alice", "e2ee", "failed"]), 0.0);
    assert_eq!(v["alice"]["e2ee"]["sas"].as_str().unwrap(), heard.sas, "the browser and the Rust client show one code");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_browsers_and_a_rust_client_exchange_sealed_messages_with_receipts() {
    use callvault_client::Client;
    use callvault_crypto::SecretIdentity;

    let s = serve();
    let url = s.process.url();
    let mut rust = Client::connect(&url, Arc::new(SecretIdentity::generate()), "Rusty").await.unwrap();
    let token = rust.invite(600).await.unwrap();
    let base = s.base.clone();
    let token_text = token.as_str().to_owned();
    let page = tokio::task::spawn_blocking(move || {
        browser(&base, "messages", None, &[("CALLVAULT_INVITE", token_text.as_str())])
    });
    // The browser's message to the Rust client opens with the Rust SDK: one envelope format.
    let got = rust
        .wait_for(Duration::from_secs(90), "the browser's message", |e| e.kind == "message.received")
        .await
        .unwrap();
    let alice = callvault_protocol::Guid::parse(got.payload["conversation"].as_str().unwrap()).unwrap();
    let alice_key = rust.peer_identity(&alice).await.unwrap();
    let text = rust
        .open_message(
            &alice_key,
            got.payload["sent_message_id"].as_str().unwrap(),
            got.payload["body"].as_str().unwrap(),
        )
        .unwrap();
    assert_eq!(text, "hello, Rust client");
    rust.send_message(&alice, &alice_key, "hello, browser — from Rust 🦀").await.unwrap();
    let v = page.await.unwrap();

    assert_eq!(v["bobBadge"], "Messages (1 new)", "{v:#}");
    let texts = |chat: &Value| -> Vec<(bool, String, String)> {
        chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["outgoing"].as_bool().unwrap(),
                    m["text"].as_str().unwrap().to_owned(),
                    m["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let hello = "Hello Bob 👋 — this stays between us".to_owned();
    let hi = "Hi Alice! Got it.".to_owned();
    let alice = texts(&v["aliceChat"]);
    assert_eq!(alice[0], (true, hello.clone(), "read".into()), "Bob showed it: {v:#}");
    assert_eq!((alice[1].0, alice[1].1.clone()), (false, hi.clone()));
    assert!(["received", "read"].contains(&alice[1].2.as_str()));
    // Bob's chat is open, so Alice's message is read there; his own went out and was stored.
    let bob = texts(&v["bobChat"]);
    assert_eq!(bob[0], (false, hello, "read".into()));
    assert_eq!((bob[1].0, bob[1].1.clone()), (true, hi.clone()));
    assert!(["sent", "delivered", "read"].contains(&bob[1].2.as_str()));
    assert_eq!(texts(&v["bobAfterDelete"]).into_iter().map(|m| m.1).collect::<Vec<_>>(), [hi], "deleted for both");
    let rust_chat = texts(&v["aliceRustChat"]);
    assert_eq!(rust_chat.last().unwrap().1, "hello, browser — from Rust 🦀");
    let mut after: Vec<(String, String)> = serde_json::from_value(v["aliceAfterRevoke"].clone()).unwrap();
    after.sort();
    assert_eq!(after, [("Bob".into(), "active".into()), ("Rusty".into(), "revoked".into())], "{v:#}");
    assert_eq!(v["revokedButtons"], 0, "a revoked connection offers no call or message");
    assert_eq!(v["bobHistory"], "No calls yet");
    assert!(v["logs"].as_array().unwrap().iter().all(|l| !l.as_str().unwrap().contains("error:")), "{v:#}");
}

#[test]
fn the_product_signs_up_without_test_hooks() {
    // As users get it: no test hooks, so no window.cv and no ?tamper=1.
    let dir = tempfile::tempdir().unwrap();
    let process = ServeProcess::start(Path::new(BIN), dir.path(), &[], &[]);
    let v = browser(&process.base(), "product", None, &[]);
    assert_eq!(v["hooks"], "undefined", "window.cv exists without test hooks: {v:#}");
    assert!(v["who"].as_str().unwrap().starts_with("Dana ("), "{v:#}");
    assert!(v["csp"].as_str().unwrap().contains("frame-ancestors 'none'"), "{v:#}");
    assert!(v["logs"].as_array().unwrap().iter().all(|l| !l.as_str().unwrap().contains("error:")), "{v:#}");
}

/// The identity is sealed at rest in the CLI's key-file format (issue 17, point 2): a key file
/// `callvault id export` wrote imports in the browser to the same guid; the browser's storage
/// then holds no raw key, only that file; a reload asks for the passphrase and refuses a wrong
/// one; and the backups the browser offers (of that identity, and of one made in the browser)
/// are files `callvault id import` opens, to the same guids.
#[test]
fn a_key_file_moves_between_the_cli_and_the_browser_both_ways() {
    const PASSPHRASE: &str = "correct horse battery";
    let cli = |home: &Path, pass: &str, args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--home")
            .arg(home)
            .args(["--server", "ws://127.0.0.1:1/app", "--json"])
            .args(args)
            .env("CALLVAULT_PASSPHRASE", pass)
            .output()
            .unwrap();
        assert!(out.status.success(), "callvault {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let home = tempfile::tempdir().unwrap();
    let made = cli(home.path(), PASSPHRASE, &["id", "new", "--name", "Erin"]);
    let file = home.path().join("erin.cvkey");
    cli(home.path(), PASSPHRASE, &["id", "export", file.to_str().unwrap()]);
    let bytes = std::fs::read(&file).unwrap();
    let secret = callvault_crypto::keyfile::open_key(&bytes, callvault_crypto::keyfile::KeyKind::User, PASSPHRASE)
        .unwrap()
        .secret_bytes();
    let secret_hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();

    let s = serve();
    let env = [("CALLVAULT_KEYFILE", file.to_str().unwrap()), ("CALLVAULT_PASSPHRASE", PASSPHRASE)];
    let v = browser(&s.base, "keyfile", None, &env);

    // CLI -> browser: the same identity, and no raw key in the browser's storage.
    assert_eq!(v["imported"], made["guid"], "{v:#}");
    assert_eq!(v["unlocked"], made["guid"], "{v:#}");
    let stored = v["storage"].as_object().unwrap();
    assert!(stored.values().all(|x| !x.as_str().unwrap().contains(&secret_hex)), "a raw key in storage: {v:#}");
    assert!(stored.contains_key("callvault.keyfile") && !stored.contains_key("callvault.sk"), "{v:#}");
    let file_hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v["stored_file_hex"].as_str().unwrap(), file_hex, "the browser keeps the CLI's file as it is");
    assert!(v["wrong"].as_str().unwrap().contains("wrong passphrase"), "{v:#}");
    assert_eq!(v["after_wrong"], "locked", "{v:#}");

    // Browser -> CLI: both backups import, to the same guids.
    for (backup, guid, pass) in [
        (&v["backup_of_imported"], &made["guid"], PASSPHRASE),
        (&v["backup_of_made"], &v["made"], v["passphrase"].as_str().unwrap()),
    ] {
        let other = tempfile::tempdir().unwrap();
        let imported = cli(other.path(), pass, &["id", "import", backup.as_str().unwrap(), "--name", "Backup"]);
        assert_eq!(&imported["guid"], guid, "{v:#}");
    }
    let made_storage = v["made_storage"].as_object().unwrap();
    assert!(!made_storage.contains_key("callvault.sk"), "{v:#}");
    // Browser -> browser: the backup restores in a second browser profile, as the same user.
    assert_eq!(v["restored"], v["made"], "{v:#}");
    assert!(v["restored_storage_keys"].as_array().unwrap().iter().all(|k| k != "callvault.sk"), "{v:#}");
    assert!(made_storage.contains_key("callvault.keyfile"), "{v:#}");
    assert!(v["logs"].as_array().unwrap().iter().all(|l| !l.as_str().unwrap().contains("error:")), "{v:#}");
}

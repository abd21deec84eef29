//! `callvault serve` as a process, driven by the `callvault` user commands as processes: register,
//! invite/connect, call, answer, reject, hang up, history, message, messages; on embedded defaults
//! and on NATS with two `serve` processes; bad configuration; graceful shutdown; message texts
//! in no store, bus capture or log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use callvault_testkit::{NatsServer, ServeProcess};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_callvault");

/// `callvault serve` as a process.
struct Serve(ServeProcess);

impl Serve {
    fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self(ServeProcess::start(Path::new(BIN), data_dir, extra, &[]))
    }

    fn url(&self) -> String {
        self.0.url()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        self.0.terminate()
    }
}

/// One user's CLI: a home directory and a server.
struct User {
    home: tempfile::TempDir,
    server: String,
}

impl User {
    fn new(name: &str, server: &Serve) -> (Self, String) {
        let u = Self { home: tempfile::tempdir().unwrap(), server: server.url() };
        let v = u.ok(&["id", "new", "--name", name]);
        let guid = v["guid"].as_str().unwrap().to_owned();
        (u, guid)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--home").arg(self.home.path()).args(["--server", &self.server, "--json"]).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; the JSON it printed.
    fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out:?}"))
    }

    /// Runs and expects failure; stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should have failed: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }
}

fn wait_output(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

/// Alice invites, Bob connects; waits until Alice's vault has Bob too.
fn connect(alice: &User, bob: &User, alice_guid: &str, bob_guid: &str) {
    let token = alice.ok(&["invite", "--ttl", "600"])["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cvinv1_"));
    let c = bob.ok(&["connect", &token]);
    assert_eq!(c["peer_guid"], alice_guid);
    assert_eq!(c["display_name"], "Alice");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = alice.ok(&["connections"]);
        if list["connections"].as_array().unwrap().iter().any(|c| c["guid"] == bob_guid) {
            break;
        }
        assert!(Instant::now() < deadline, "Alice's vault never learned of Bob");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A whole answered call and a rejected one, through the CLI, then both histories.
fn calls_through_the_cli(alice: &User, bob: &User, alice_guid: &str, bob_guid: &str) {
    // Answered by Bob, hung up by Bob.
    let caller = alice.spawn(&["call", "Bob", "--wait", "30"]);
    let answered = bob.ok(&["answer", "--wait", "20"]);
    let call_id = answered["call_id"].as_str().unwrap().to_owned();
    let out = wait_output(caller);
    assert!(out.status.success(), "{out:?}");
    let called: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(called["outcome"], "answered");
    assert_eq!(called["call_id"], call_id.as_str());
    assert_eq!(called["peer_guid"], bob_guid);
    std::thread::sleep(Duration::from_millis(1_100));
    let ended = bob.ok(&["hangup"]);
    assert_eq!(ended["status"], "ended");
    assert!(ended["duration_seconds"].as_u64().unwrap() >= 1);

    // Declined by Bob: the caller exits 2 and says so.
    let caller = alice.spawn(&["call", bob_guid, "--wait", "30"]);
    let rejected = bob.ok(&["reject", "--wait", "20"]);
    let out = wait_output(caller);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let called: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(called["outcome"].as_str().unwrap().starts_with("rejected"), "{called}");
    assert_eq!(called["call_id"], rejected["call_id"]);

    // Both vaults' histories, newest first.
    let history = alice.ok(&["history"]);
    let calls = history["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["status"], "rejected");
    assert_eq!(calls[1]["status"], "ended");
    assert_eq!(calls[1]["call_id"], call_id.as_str());
    assert_eq!(calls[1]["direction"], "outgoing");
    assert!(calls[1]["duration_seconds"].as_u64().unwrap() >= 1);
    let theirs = bob.ok(&["history"]);
    let calls = theirs["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c["direction"] == "incoming" && c["peer_guid"] == alice_guid));
    assert_eq!(calls[1]["status"], "ended");

    // Clear errors.
    assert!(bob.fails(&["hangup"]).contains("call not found"));
    let stranger = "0123456789abcdef0123456789abcdef01234567";
    assert!(alice.fails(&["call", stranger, "--ring-wait", "5"]).contains("not connected"));
}

/// Messages both ways through the CLI: delivered, read when shown, by names, newest last.
fn messages_through_the_cli(alice: &User, bob: &User, bob_guid: &str, texts: [&str; 3]) {
    let sent = alice.ok(&["message", "Bob", texts[0]]);
    assert_eq!(sent["status"], "delivered", "{sent}");
    assert_eq!(sent["to"], "Bob");
    let shown = bob.ok(&["messages", "Alice"]);
    let list = shown["messages"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{shown}");
    assert_eq!((list[0]["from"].as_str(), list[0]["text"].as_str()), (Some("Alice"), Some(texts[0])));
    assert_eq!(bob.ok(&["message", "Alice", texts[1]])["status"], "delivered");
    assert_eq!(alice.ok(&["message", bob_guid, texts[2]])["status"], "delivered");
    // Bob's `messages` marked Alice's first read; her second is only delivered.
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let shown = alice.ok(&["messages", "Bob"]);
        let list = shown["messages"].as_array().unwrap().clone();
        if list[0]["status"] == "read" {
            break list;
        }
        assert!(Instant::now() < deadline, "Bob's read receipt never came: {shown}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let said: Vec<(&str, &str)> =
        list.iter().map(|m| (m["from"].as_str().unwrap(), m["text"].as_str().unwrap())).collect();
    assert_eq!(said, [("Alice", texts[0]), ("Bob", texts[1]), ("Alice", texts[2])], "newest last");
    assert_eq!(list[2]["status"], "delivered");
    let human = Command::new(BIN)
        .arg("--home")
        .arg(alice.home.path())
        .args(["--server", &alice.server, "messages", "Bob"])
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains(&format!("Bob: {}", texts[1])) && human.contains(&format!("Alice: {}", texts[2])),
        "{human}"
    );
    assert!(!human.contains(bob_guid), "names, not guids: {human}");
    // Past the largest text: refused with a clear error, nothing sent.
    let long = "x".repeat(16_385);
    assert!(alice.fails(&["message", "Bob", &long]).contains("longer than 16 384 bytes"));
    let stranger = "0123456789abcdef0123456789abcdef01234567";
    assert!(alice.fails(&["message", stranger, "hello?"]).contains("not connected"));
}

#[test]
fn embedded_serve_carries_calls_driven_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (alice, a) = User::new("Alice", &serve);
    let (bob, b) = User::new("Bob", &serve);
    assert_eq!(alice.ok(&["id", "show"])["guid"], a.as_str());
    connect(&alice, &bob, &a, &b);
    calls_through_the_cli(&alice, &bob, &a, &b);
    messages_through_the_cli(&alice, &bob, &b, ["hello Bob", "hello Alice", "how are you?"]);
    // A new name reaches Bob's vault, which shows Alice by it from then on.
    let p = alice.ok(&["profile", "--name", "Alice Liddell", "--avatar", "https://example.org/alice.png"]);
    assert_eq!(p["shared_with"], 1, "{p}");
    assert_eq!(alice.ok(&["profile"])["display_name"], "Alice Liddell");
    let deadline = Instant::now() + Duration::from_secs(10);
    while bob.ok(&["connections"])["connections"][0]["display_name"] != "Alice Liddell" {
        assert!(Instant::now() < deadline, "Bob's vault never took Alice's new name");
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = bob.ok(&["messages", "Alice Liddell"]);
    assert_eq!(shown["with"], "Alice Liddell");
    assert_eq!(shown["messages"][0]["from"], "Alice Liddell");
    assert!(alice.fails(&["profile", "--name", "\u{202e}evil"]).contains("cannot be used"));
    // The human-readable history names the call.
    let text = Command::new(BIN)
        .arg("--home")
        .arg(alice.home.path())
        .args(["--server", &serve.url(), "history"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("outgoing") && text.contains("ended") && text.contains("Bob"), "{text}");
    assert!(!text.contains(&b), "the history names the peer, not its guid: {text}");

    // Idle costs nothing: every call settled and no app connected, no handler runs, no vault
    // timer wakes, and the process spends next to no CPU. (On the earlier main the vaults ran
    // the timeout handler without pause after a call: about 12 % of a core.)
    let runs = "callvault_handler_latency_seconds_count";
    let wakeups = "callvault_vault_timer_wakeups_total";
    let cpu = "process_cpu_seconds_total";
    let before = [runs, wakeups, cpu].map(|m| serve.0.metric(m).unwrap_or_else(|| panic!("{m} in /metrics")));
    std::thread::sleep(Duration::from_secs(3));
    let after = [runs, wakeups, cpu].map(|m| serve.0.metric(m).unwrap());
    assert_eq!((after[0], after[1]), (before[0], before[1]), "handler runs and timer wake-ups while idle");
    let spent = after[2] - before[2];
    assert!(spent < 0.06, "{spent} s of CPU in 3 s of idle");
    eprintln!("idle serve: {spent} s of CPU in 3 s");
}

#[test]
fn two_serve_processes_on_one_nats_server_carry_a_call() {
    let nats = NatsServer::start();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s1 = Serve::start(d1.path(), &["--nats", &nats.url()]);
    let mut s2 = Serve::start(d2.path(), &["--nats", &nats.url()]);
    let (alice, a) = User::new("Alice", &s1);
    let (bob, b) = User::new("Bob", &s2);
    connect(&alice, &bob, &a, &b);
    calls_through_the_cli(&alice, &bob, &a, &b);
    // Bob's server goes away: his vault cannot ring, and Alice is told the peer is offline.
    assert!(s2.terminate().success());
    let e = alice.fails(&["call", "Bob", "--ring-wait", "2"]);
    assert!(e.contains("peer offline"), "{e}");
    // It comes back (same data dir, same vault key): the call goes through again.
    let s2 = Serve::start(s2.0.data_dir(), &["--nats", &nats.url()]);
    let bob = User { home: bob.home, server: s2.url() };
    let caller = alice.spawn(&["call", "Bob", "--wait", "30"]);
    bob.ok(&["answer", "--wait", "20"]);
    assert!(wait_output(caller).status.success());
    assert_eq!(alice.ok(&["hangup"])["status"], "ended");
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[test]
fn two_serve_processes_carry_messages_and_no_text_is_in_a_store_a_bus_capture_or_a_log() {
    // The NATS server logs every payload it carries: a capture of the bus.
    let nats = NatsServer::start_tracing();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let logs = tempfile::tempdir().unwrap();
    let (l1, l2) = (logs.path().join("s1.log"), logs.path().join("s2.log"));
    let env = [("CALLVAULT_LOG", "debug")];
    let s1 = Serve(ServeProcess::start_logging_to(Path::new(BIN), d1.path(), &["--nats", &nats.url()], &env, &l1));
    let s2 = Serve(ServeProcess::start_logging_to(Path::new(BIN), d2.path(), &["--nats", &nats.url()], &env, &l2));
    let (alice, a) = User::new("Alice", &s1);
    let (bob, b) = User::new("Bob", &s2);
    connect(&alice, &bob, &a, &b);
    let texts = ["zebra-quartz-plaintext-1", "yellow-marble-plaintext-2", "xenon-violet-plaintext-3"];
    messages_through_the_cli(&alice, &bob, &b, texts);
    drop((s1, s2));
    // The scan finds what it looks for: the apps' requests cross the bus as JSON (the trace
    // quotes payloads as Go strings).
    let capture = nats.dir();
    let request = br#"\"type\":\"message.send\""#;
    assert!(!files_holding(capture, request).is_empty(), "the capture has the requests: {}", nats.log().len());
    for text in texts {
        for place in [capture, d1.path(), d2.path(), logs.path()] {
            let found = files_holding(place, text.as_bytes());
            assert!(found.is_empty(), "{text:?} in {found:?}");
        }
    }
}

/// Connects again, waiting out the gateway's login limit (5 a second per source after 20).
async fn reconnect(url: &str, identity: &std::sync::Arc<callvault_crypto::SecretIdentity>) -> callvault_client::Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match callvault_client::Client::connect(url, identity.clone(), "Alice").await {
            Ok(c) => return c,
            Err(e) => assert!(Instant::now() < deadline, "cannot connect again: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// 1 000 messages from Alice (on one `serve`) to Bob (on another), one NATS server, with one of
/// the two processes killed (SIGKILL) at 10 points chosen by a seeded generator, while a message
/// is in flight: every message is stored once per message_id at both ends and shown in Alice's
/// order. Alice's app sends again, with the same message_id, whatever it got no answer for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_arrive_once_and_in_order_across_ten_sigkills() {
    use callvault_client::Client;
    use callvault_crypto::SecretIdentity;
    use callvault_protocol::app::AppErrorCode;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    const N: usize = 1_000;
    let nats = NatsServer::start();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = nats.url();
    let args = ["--nats", url.as_str()];
    let start = |dir: &Path| ServeProcess::start(Path::new(BIN), dir, &args, &[]);
    let mut servers = [start(d1.path()), start(d2.path())];
    let (alice_id, bob_id) = (Arc::new(SecretIdentity::generate()), Arc::new(SecretIdentity::generate()));
    let mut alice = Client::connect(&servers[0].url(), alice_id.clone(), "Alice").await.unwrap();
    let mut bob = Client::connect(&servers[1].url(), bob_id.clone(), "Bob").await.unwrap();
    let token = alice.invite(600).await.unwrap();
    bob.accept_invite(token.as_str()).await.unwrap();
    alice.wait_for(Duration::from_secs(10), "acceptance", |e| e.kind == "connection.accepted").await.unwrap();
    let (bob_guid, bob_key) = (bob.guid().clone(), bob_id.public());
    bob.close().await;

    // Ten kill points in 1..N, and which process each kills: a seeded generator (xorshift).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut kills = std::collections::BTreeMap::new();
    while kills.len() < 10 {
        let at = 1 + usize::try_from(next() % (N as u64 - 1)).unwrap();
        kills.insert(at, usize::try_from(next() % 2).unwrap());
    }
    let ids: Vec<callvault_protocol::MessageId> = (0..N).map(|_| callvault_client::new_message_id()).collect();
    let text = |i: usize| format!("message number {i:04}");
    let (mut retries, mut paced) = (0, 0);
    for (i, id) in ids.iter().enumerate() {
        if let Some(&which) = kills.get(&i) {
            // In flight: the request is out, then the process dies.
            let t = text(i);
            let req = alice.send_message_as(&bob_guid, &bob_key, &t, id.clone());
            let _ = tokio::time::timeout(Duration::from_millis(next() % 4), req).await;
            servers[which].kill();
            servers[which] = start(if which == 0 { d1.path() } else { d2.path() });
            if which == 0 {
                alice = reconnect(&servers[0].url(), &alice_id).await;
            }
        }
        loop {
            alice.set_timeout(Duration::from_secs(5));
            match alice.send_message_as(&bob_guid, &bob_key, &text(i), id.clone()).await {
                Ok(sent) => {
                    assert_eq!(sent.payload["seq"], serde_json::json!(i + 1), "message {i} numbered in order");
                    break;
                }
                // The gateway holds an app to 50 frames a second after a burst of 100: wait, as
                // an app must, and send again on the same connection.
                Err(callvault_client::ClientError::Refused { code: AppErrorCode::RateLimited, .. }) => {
                    paced += 1;
                    tokio::time::sleep(Duration::from_millis(1_100)).await;
                }
                Err(e) => {
                    retries += 1;
                    assert!(retries < 50, "message {i} never taken: {e}");
                    alice = reconnect(&servers[0].url(), &alice_id).await;
                }
            }
        }
    }

    // Everything arrives at Bob's vault: read his conversation page by page, oldest last.
    let mut bob = Client::connect(&servers[1].url(), bob_id.clone(), "Bob").await.unwrap();
    let alice_key = alice_id.public();
    let deadline = Instant::now() + Duration::from_secs(120);
    let shown = loop {
        let mut all = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let (page, more) = bob.messages(alice.guid(), &alice_key, 50, before.as_deref()).await.unwrap();
            before = page.last().map(|m| m.item.clone());
            all.extend(page);
            if !more {
                break;
            }
        }
        if all.len() >= N || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(shown.len(), N, "each message stored once at Bob's");
    let texts: Vec<String> = shown.iter().rev().map(|m| m.text.clone()).collect();
    assert_eq!(texts, (0..N).map(text).collect::<Vec<_>>(), "shown in Alice's order");
    let seqs: BTreeSet<u64> = shown.iter().map(|m| m.seq).collect();
    assert_eq!(seqs.len(), N);
    // And once at Alice's.
    let mut mine = 0;
    let mut before: Option<String> = None;
    loop {
        let (page, more) = alice.messages(&bob_guid, &bob_key, 50, before.as_deref()).await.unwrap();
        before = page.last().map(|m| m.item.clone());
        mine += page.len();
        if !more {
            break;
        }
    }
    assert_eq!(mine, N, "each message stored once at Alice's");
    eprintln!(
        "1 000 messages across 10 SIGKILLs ({kills:?}); {retries} sends repeated, {paced} waits for the rate limit"
    );
}

#[test]
fn sigterm_stops_serve_cleanly_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(dir.path(), &[]);
    let (alice, a) = User::new("Alice", &serve);
    let (bob, b) = User::new("Bob", &serve);
    connect(&alice, &bob, &a, &b);
    let caller = alice.spawn(&["call", "Bob"]);
    bob.ok(&["answer", "--wait", "20"]);
    assert!(wait_output(caller).status.success());
    let status = serve.terminate();
    assert!(status.success(), "serve exited with {status:?}");
    // Restarted on the same data directory: the active call is still there and can be ended.
    let serve = Serve::start(dir.path(), &[]);
    let alice = User { home: alice.home, server: serve.url() };
    let bob = User { home: bob.home, server: serve.url() };
    assert_eq!(alice.ok(&["history"])["calls"][0]["status"], "active");
    assert_eq!(bob.ok(&["hangup"])["status"], "ended");
    assert_eq!(alice.ok(&["history"])["calls"][0]["status"], "ended");
}

#[test]
fn bad_configuration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(BIN).arg("serve").args(args).envs(env.iter().copied()).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--listen", "nowhere"], &[]).contains("`listen`"));
    assert!(run(&["--listen", "127.0.0.1:0"], &[("CALLVAULT_LIMITS_BURST", "lots")]).contains("`limits.burst`"));
    let file = dir.path().join("callvault.toml");
    std::fs::write(&file, "[turn]\nturn_urls = [\"turn:127.0.0.1:3478\"]\n").unwrap();
    assert!(run(&["--config", file.to_str().unwrap()], &[]).contains("`turn.secrets`"));
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nregistation = \"open\"\n").unwrap();
    assert!(run(&["--config", file.to_str().unwrap()], &[]).contains("`registation`"));
}

#[test]
fn identities_export_and_import_and_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let cli = |home: &Path, args: &[&str]| {
        Command::new(BIN)
            .arg("--home")
            .arg(home)
            .args(["--server", "ws://127.0.0.1:1/app", "--json"])
            .args(args)
            .env("CALLVAULT_PASSPHRASE", "correct horse battery")
            .output()
            .unwrap()
    };
    let made: Value = serde_json::from_slice(&cli(home.path(), &["id", "new", "--name", "Alice"]).stdout).unwrap();
    assert!(!cli(home.path(), &["id", "new", "--name", "Alice"]).status.success(), "no silent overwrite");
    let file = home.path().join("alice.key");
    assert!(cli(home.path(), &["id", "export", file.to_str().unwrap()]).status.success());
    let out = cli(other.path(), &["id", "import", file.to_str().unwrap(), "--name", "Alice"]);
    assert!(out.status.success(), "{out:?}");
    let shown: Value = serde_json::from_slice(&cli(other.path(), &["id", "show"]).stdout).unwrap();
    assert_eq!(shown["guid"], made["guid"]);
    // No server there.
    let out = cli(home.path(), &["history"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server unreachable"), "{out:?}");
    // Names that would move a terminal's cursor, reverse text or show as nothing are refused.
    for bad in ["\u{202e}evE", "Eve\u{9b}2J", "   ", "\u{200b}"] {
        let out = cli(other.path(), &["id", "new", "--force", "--name", bad]);
        assert!(!out.status.success(), "{bad:?} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be a display name"), "{out:?}");
    }
    // No identity yet.
    let empty = tempfile::tempdir().unwrap();
    let out = cli(empty.path(), &["invite"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("callvault id new"), "{out:?}");
}

#[tokio::test]
async fn the_client_sdk_carries_a_call_with_sealed_signals_and_messages_through_a_serve_process() {
    use callvault_client::Client;
    use callvault_crypto::SecretIdentity;
    use callvault_protocol::fields::{CallType, SignalType};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let alice_id = Arc::new(SecretIdentity::generate());
    let bob_id = Arc::new(SecretIdentity::generate());
    let mut alice = Client::connect(&serve.url(), alice_id.clone(), "Alice").await.unwrap();
    let mut bob = Client::connect(&serve.url(), bob_id.clone(), "Bob").await.unwrap();
    let token = alice.invite(600).await.unwrap();
    let (peer, name) = bob.accept_invite(token.as_str()).await.unwrap();
    assert_eq!((peer, name.as_str()), (alice.guid().clone(), "Alice"));
    alice.wait_for(Duration::from_secs(10), "acceptance", |e| e.kind == "connection.accepted").await.unwrap();
    let bob_key = alice.peer_identity(bob.guid()).await.unwrap();
    assert_eq!(bob_key, bob_id.public());
    let alice_key = bob.peer_identity(alice.guid()).await.unwrap();

    let call = alice.call(&bob.guid().clone(), CallType::Video).await.unwrap();
    let incoming = bob.wait_incoming(Duration::from_secs(10)).await.unwrap();
    assert_eq!(incoming.call_id(), Some(call.as_str()));
    assert_eq!(incoming.payload["call_type"], "video");
    bob.answer(&call).await.unwrap();
    let accepted = alice.wait_call_settled(&call, Duration::from_secs(10)).await.unwrap();
    assert_eq!(accepted.kind, "call.accepted");

    // Sealed app to app: the vaults relay what they cannot read.
    let offer = b"v=0 o=- 1 1 IN IP4 0.0.0.0 (an SDP offer)";
    alice.send_signal(&call, &bob_key, SignalType::Offer, offer).await.unwrap();
    let got = bob.wait_for(Duration::from_secs(10), "the offer", |e| e.kind == "call.signal").await.unwrap();
    assert!(!got.payload["payload"].as_str().unwrap().contains("SDP"), "sealed on the wire");
    assert_eq!(bob.open_signal(&got, &alice_key).unwrap(), (SignalType::Offer, offer.to_vec()));
    // Opened with the wrong sender key: refused.
    assert!(bob.open_signal(&got, &bob_id.public()).is_err());
    bob.send_signal(&call, &alice_key, SignalType::Answer, b"an SDP answer").await.unwrap();
    let got = alice.wait_for(Duration::from_secs(10), "the answer", |e| e.kind == "call.signal").await.unwrap();
    assert_eq!(alice.open_signal(&got, &bob_key).unwrap(), (SignalType::Answer, b"an SDP answer".to_vec()));

    // Messages through the SDK: sent, read, paged, deleted for both, retention set.
    let bob_guid = bob.guid().clone();
    let alice_guid = alice.guid().clone();
    for n in 0..5 {
        alice.send_message(&bob_guid, &bob_key, &format!("sdk message {n}")).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mine = loop {
        let (page, _) = bob.messages(&alice_guid, &alice_key, 50, None).await.unwrap();
        if page.len() == 5 {
            break page;
        }
        assert!(Instant::now() < deadline, "Bob's vault has {} of 5", page.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    bob.mark_read(&alice_guid, mine[0].seq).await.unwrap();
    let (first, more) = alice.messages(&bob_guid, &bob_key, 2, None).await.unwrap();
    assert!(more);
    let (second, _) = alice.messages(&bob_guid, &bob_key, 2, Some(&first[1].item)).await.unwrap();
    let texts: Vec<&str> = first.iter().chain(&second).map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["sdk message 4", "sdk message 3", "sdk message 2", "sdk message 1"], "paged, newest first");
    alice.delete_message(&bob_guid, &first[0].item, true).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (page, _) = bob.messages(&alice_guid, &alice_key, 50, None).await.unwrap();
        if page.len() == 4 && page.iter().all(|m| m.text != "sdk message 4") {
            break;
        }
        assert!(Instant::now() < deadline, "the delete for both never reached Bob");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (page, _) = alice.messages(&bob_guid, &bob_key, 50, None).await.unwrap();
        assert_eq!(page.len(), 4);
        if page[0].status == callvault_protocol::messaging::MessageStatus::Read {
            break;
        }
        assert!(Instant::now() < deadline, "Bob's read receipt never reached Alice: {:?}", page[0].status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alice.set_retention(&bob_guid, 7).await.unwrap();
    assert!(matches!(
        alice.set_retention(&bob_guid, 91).await,
        Err(callvault_client::ClientError::Vault { ref code, .. }) if code == "invalid_message"
    ));
    assert!(matches!(
        alice.send_message(&bob_guid, &bob_key, &"x".repeat(16_385)).await,
        Err(callvault_client::ClientError::TooLarge)
    ));

    let ended = bob.hangup(&call).await.unwrap();
    assert_eq!(ended.kind, "call.ended");
    let theirs = alice.wait_call_settled(&call, Duration::from_secs(10)).await.unwrap();
    assert_eq!(theirs.kind, "call.ended");
    let history = alice.history(10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].call_id, call);
}

#[cfg(feature = "media")]
#[test]
fn cli_calls_carry_encrypted_audio_both_ways() {
    use callvault_media::audio::{read_wav, tone_share};
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[]);
    let (alice, a) = User::new("Alice", &serve);
    let (bob, b) = User::new("Bob", &serve);
    connect(&alice, &bob, &a, &b);
    let wavs = tempfile::tempdir().unwrap();
    let (a_out, b_out) = (wavs.path().join("alice.wav"), wavs.path().join("bob.wav"));
    let caller = alice.spawn(&[
        "call",
        "Bob",
        "--audio-in",
        "tone:440",
        "--audio-out",
        a_out.to_str().unwrap(),
        "--duration",
        "4",
    ]);
    let answered =
        bob.ok(&["answer", "--wait", "20", "--audio-in", "tone:880", "--audio-out", b_out.to_str().unwrap()]);
    let out = wait_output(caller);
    assert!(out.status.success(), "{out:?}");
    let called: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(called["sas"], answered["sas"]);
    assert_eq!(called["we_hung_up"], true);
    assert_eq!(answered["we_hung_up"], false);
    assert_eq!(called["decrypt_failures"], 0);
    let tail = |v: Vec<i16>| v[v.len().min(24_000)..].to_vec();
    let (heard_a, heard_b) = (tail(read_wav(&a_out).unwrap()), tail(read_wav(&b_out).unwrap()));
    assert!(heard_b.len() > 48_000 && heard_a.len() > 48_000);
    assert!(tone_share(&heard_b, 440.0) > 0.5, "Bob heard 440 Hz: {}", tone_share(&heard_b, 440.0));
    assert!(tone_share(&heard_a, 880.0) > 0.5, "Alice heard 880 Hz: {}", tone_share(&heard_a, 880.0));
    assert_eq!(alice.ok(&["history"])["calls"][0]["status"], "ended");
}

#[cfg(unix)]
#[test]
fn the_data_dir_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let scratch = tempfile::tempdir().unwrap();
    // `serve` under umask 000: left to the umask, every file would be readable and writable by all.
    let wrapper = scratch.path().join("serve-umask-000");
    std::fs::write(&wrapper, format!("#!/bin/sh\numask 000\nexec '{BIN}' \"$@\"\n")).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = scratch.path().join("data");
    let serve = Serve(ServeProcess::start(&wrapper, &data, &[], &[]));
    let (alice, a) = User::new("Alice", &serve);
    alice.ok(&["connections"]); // registers Alice: her vault key file is written
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&data.join("callvault.redb")), 0o600, "store");
    assert_eq!(mode(&data.join("vault-keys")), 0o700, "vault-keys");
    assert_eq!(mode(&data.join("vault-keys").join(format!("{a}.key"))), 0o600, "vault key file");
    drop(serve);

    // A data dir others can write to is refused, saying why; one others can read is narrowed.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(BIN).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("writable by other users") && err.contains("chmod 700"), "{err}");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let serve = Serve::start(&data, &[]);
    assert_eq!(mode(&data), 0o700, "a data dir others could read is narrowed");
    let alice = User { home: alice.home, server: serve.url() };
    assert_eq!(alice.ok(&["id", "show"])["guid"], a.as_str());
    alice.ok(&["connections"]);
}

/// Where `text` holds a run of 32 or more hex digits (a guid, a key, a note id).
fn hex_runs(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_hexdigit()).filter(|w| w.len() >= 32).collect()
}

#[test]
fn the_log_holds_no_guid_key_address_or_sdp() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let serve = Serve(ServeProcess::start_logging_to(
        Path::new(BIN),
        &dir.path().join("data"),
        &[],
        &[("CALLVAULT_LOG", "debug")],
        &log,
    ));
    let (alice, a) = User::new("Alice", &serve);
    let (bob, b) = User::new("Bob", &serve);
    connect(&alice, &bob, &a, &b);
    calls_through_the_cli(&alice, &bob, &a, &b);
    // Refusals are logged too: a bad invite, a call to a stranger, a hangup with no call.
    assert!(!alice.run(&["connect", "cvinv1_not-an-invite"]).status.success());
    let _ = bob.run(&["hangup"]);
    // And raw junk at the app API and the TURN endpoint.
    let base = serve.0.base();
    let addr = base.trim_start_matches("http://");
    let _ = callvault_testkit::http_get(addr, "/calls/turn-credentials", &["Authorization: Nostr AAAA"]);
    let _ = callvault_testkit::http_get(addr, "/nothing-here", &[]);
    drop(serve);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 10, "the log has lines at debug level:\n{text}");
    for guid in [&a, &b] {
        assert!(!text.contains(guid.as_str()), "a full guid in the log:\n{text}");
    }
    assert_eq!(hex_runs(&text), Vec::<&str>::new(), "hex identifiers in the log:\n{text}");
    for needle in ["npub1", "nsec1", "v=0", "a=fingerprint", "candidate:"] {
        assert!(!text.contains(needle), "{needle} in the log:\n{text}");
    }
    // The only address is the server's own, in the line saying where it listens.
    for line in text.lines().filter(|l| l.contains("127.0.0.1")) {
        assert!(line.contains("listening"), "an address in the log: {line}");
    }
}

#[cfg(unix)]
#[test]
fn a_slowloris_flood_at_1024_open_files_leaves_logins_and_health_checks_working() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let scratch = tempfile::tempdir().unwrap();
    // `serve` limited to 1 024 open files, as the hardening review ran it (issue 12, point 4:
    // 1 100 half-sent requests then blocked every login and /healthz).
    let wrapper = scratch.path().join("serve-1024-files");
    std::fs::write(&wrapper, format!("#!/bin/sh\nulimit -n 1024\nexec '{BIN}' \"$@\"\n")).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o700)).unwrap();
    let log = scratch.path().join("serve.log");
    let serve = Serve(ServeProcess::start_logging_to(
        &wrapper,
        &scratch.path().join("data"),
        &[],
        // The default header deadline (10 s): every flood socket the server took stays open
        // while the flood is made, so without its caps it would need more than 1 024 files.
        &[("CALLVAULT_LOG", "warn")],
        &log,
    ));
    let addr: std::net::SocketAddr = serve.0.base().trim_start_matches("http://").parse().unwrap();
    // 1 100 sockets from 127.0.0.2-9, every other one sending half a request head.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut flood = Vec::new();
    for n in 0..1_100u32 {
        let source = std::net::SocketAddr::from(([127, 0, 0, 2 + (n % 8) as u8], 0));
        let connected = rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(source)?;
            socket.connect(addr).await?.into_std()
        });
        let Ok(mut s) = connected else { continue };
        s.set_nonblocking(false).unwrap();
        if n % 2 == 0 {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        }
        flood.push(s);
    }
    // During the flood: health checks answer and a new user registers and works.
    let (status, _) = serve.0.get("/healthz", &[]);
    assert_eq!(status, 200);
    let (alice, a) = User::new("Alice", &serve);
    assert_eq!(alice.ok(&["connections"])["connections"], serde_json::json!([]));
    assert_eq!(alice.ok(&["id", "show"])["guid"], a.as_str());
    let refused = serve.0.metric("callvault_gateway_connections_refused_total{cap=\"per_source\"}");
    assert!(refused.unwrap_or(0.0) >= 500.0, "past 64 per source the server closes at once: {refused:?}");
    // Within the header deadline every flood socket is closed by the server.
    for s in &mut flood {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("a flood socket still open after the header deadline: {e}"),
            }
        }
    }
    drop(serve);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("accept failed"), "the server ran out of files:\n{text}");
}

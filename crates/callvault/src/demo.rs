//! `callvault demo`: an embedded server in this process, two users, one call through its whole
//! lifecycle, printed as a timeline. Exits 0 only if every step happened.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use callvault_bus::MemoryBus;
use callvault_client::Client;
use callvault_crypto::SecretIdentity;
use callvault_gateway::{Gateway, GatewayConfig};
use callvault_protocol::calling::CallRecord;
use callvault_protocol::fields::CallType;
use callvault_protocol::{CallId, Guid};
use callvault_store::{EmbeddedStore, Kv};
use callvault_vault::host::VaultHost;
use callvault_vault::manager::VaultOptions;

struct Timeline {
    start: Instant,
}

impl Timeline {
    fn say(&self, who: &str, what: &str) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{ms:>8.1} ms  {who:<7} {what}");
    }
}

/// The first 8 characters of a guid or call id, for the timeline.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

async fn stored(host: &VaultHost<MemoryBus, EmbeddedStore>, guid: &Guid, id: &CallId) -> anyhow::Result<CallRecord> {
    for v in host.vaults().await {
        if v.guid() == guid
            && let Some(e) = v.buckets().calls.get(id.as_str()).await?
        {
            return Ok(serde_json::from_slice(&e.value)?);
        }
    }
    bail!("no record of the call in {}'s vault", short(guid.as_str()))
}

/// Runs the demo; `hold` is how long the call stays up.
pub(crate) async fn run(hold: Duration) -> anyhow::Result<()> {
    let t = Timeline { start: Instant::now() };
    let dir = tempfile::tempdir().context("cannot make a temporary data directory")?;
    let store = EmbeddedStore::open(dir.path().join("callvault.redb"))?;
    let bus = MemoryBus::new();
    let host = VaultHost::open(store, bus.clone(), dir.path(), VaultOptions::default()).await?;
    let gateway = Gateway::new(host.clone(), bus, GatewayConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let gw = gateway.clone();
    let server = tokio::spawn(async move { gw.serve_until_dropped(listener, Default::default()).await });
    let url = format!("ws://{addr}/app");
    t.say("server", &format!("embedded server up at {url} (in-process bus, redb store in a temp dir)"));

    let mut alice = Client::connect(&url, Arc::new(SecretIdentity::generate()), "Alice").await?;
    let a = alice.guid().clone();
    t.say("alice", &format!("registered; her vault {} is hosted by the server", short(a.as_str())));
    let mut bob = Client::connect(&url, Arc::new(SecretIdentity::generate()), "Bob").await?;
    let b = bob.guid().clone();
    t.say("bob", &format!("registered; his vault {} is hosted by the server", short(b.as_str())));

    let token = alice.invite(600).await?;
    t.say("alice", &format!("made an invite ({} characters, signed with her identity key)", token.as_str().len()));
    let (peer, name) = bob.accept_invite(token.as_str()).await?;
    if peer != a {
        bail!("bob connected to someone else");
    }
    t.say("bob", &format!("accepted it: {name} is now a connection in his vault"));
    alice.wait_for(Duration::from_secs(10), "the acceptance", |e| e.kind == "connection.accepted").await?;
    t.say("alice", "her vault took Bob's sealed acceptance: Bob is a connection in her vault");

    let setup = Instant::now();
    let id = alice.call(&b, CallType::Audio).await?;
    t.say("alice", &format!("calls Bob (call {})", short(id.as_str())));
    let incoming = bob.wait_incoming(Duration::from_secs(10)).await?;
    let setup_latency = setup.elapsed();
    if incoming.call_id() != Some(id.as_str()) {
        bail!("bob's app was told of another call");
    }
    t.say(
        "bob",
        &format!("his app rings: incoming call from Alice (setup {:.1} ms)", setup_latency.as_secs_f64() * 1e3),
    );
    bob.answer(&id).await?;
    t.say("bob", "answers with a fresh ephemeral key");
    let accepted = alice.wait_call_settled(&id, Duration::from_secs(10)).await?;
    if accepted.kind != "call.accepted" || accepted.payload.get("public_key").is_none() {
        bail!("alice was not told the call was answered ({})", accepted.kind);
    }
    t.say("alice", "her app learns the call was answered, with Bob's public key for the media keys");
    t.say("both", &format!("in call for {} s", hold.as_secs()));
    tokio::time::sleep(hold).await;
    let ended = alice.hangup(&id).await?;
    t.say("alice", &format!("hangs up ({})", ended.payload.get("status").and_then(|v| v.as_str()).unwrap_or("?")));
    let bob_ended = bob.wait_call_settled(&id, Duration::from_secs(10)).await?;
    if bob_ended.kind != "call.ended" {
        bail!("bob was not told the call ended");
    }
    t.say("bob", "his app is told the call ended");

    for (who, guid) in [("alice", &a), ("bob", &b)] {
        let r = stored(&host, guid, &id).await?;
        let d = r.duration_seconds.map(|d| d.get()).unwrap_or_default();
        t.say(who, &format!("vault stored: {:?} {:?} call, status {:?}, {d} s", r.direction, r.call_type, r.status));
        if r.status != callvault_protocol::fields::CallStatus::Ended {
            bail!("{who}'s vault did not record the call as ended");
        }
    }
    let history = bob.history(10).await?;
    t.say("bob", &format!("history from his vault: {} call(s)", history.len()));
    alice.close().await;
    bob.close().await;
    gateway.begin_shutdown();
    host.shutdown(Duration::from_secs(5)).await;
    server.abort();
    t.say(
        "server",
        &format!("stopped. Call setup latency: {:.1} ms. Every step happened.", setup_latency.as_secs_f64() * 1e3),
    );
    Ok(())
}

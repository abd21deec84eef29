//! The user commands: `id`, `invite`, `connect`, `connections`, `call`, `answer`, `reject`,
//! `hangup`, `history`, `message`, `messages`, `profile`. Each connects to the server as the user's app, does one thing, and prints
//! it for humans (or as one JSON object with `--json`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use callvault_client::{Client, ClientError};
use callvault_crypto::SecretIdentity;
use callvault_crypto::keyfile::{self, KdfParams, KeyKind};
#[cfg(feature = "media")]
use callvault_media::call::{self as media_call, MediaCall, MediaOptions};
use callvault_protocol::calling::CallRecord;
use callvault_protocol::fields::{CallStatus, CallType, Direction};
use callvault_protocol::{CallId, Guid};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Where the user's identity lives and which server to use.
#[derive(Debug, Clone)]
pub(crate) struct Home {
    /// The directory.
    pub(crate) dir: PathBuf,
    /// The server's app URL.
    pub(crate) server: String,
    /// Print JSON.
    pub(crate) json: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Profile {
    display_name: String,
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
}

impl Home {
    fn identity_path(&self) -> PathBuf {
        self.dir.join("identity")
    }

    fn print(&self, human: &str, value: serde_json::Value) {
        if self.json { out(&value.to_string()) } else { out(human) }
    }

    /// The stored identity.
    pub(crate) fn identity(&self) -> anyhow::Result<Arc<SecretIdentity>> {
        let path = self.identity_path();
        let text = std::fs::read_to_string(&path).map_err(|_| {
            anyhow!("no identity in {}: run `callvault id new --name <NAME>` first", self.dir.display())
        })?;
        Ok(Arc::new(
            SecretIdentity::parse(text.trim()).map_err(|_| anyhow!("{} is not an identity key", path.display()))?,
        ))
    }

    fn display_name(&self) -> String {
        std::fs::read(self.dir.join("profile.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Profile>(&b).ok())
            .map_or_else(|| "callvault user".to_owned(), |p| p.display_name)
    }

    fn store_identity(&self, id: &SecretIdentity, name: &str, force: bool) -> anyhow::Result<()> {
        if callvault_protocol::fields::DisplayName::new(name).is_err() {
            bail!(
                "{name:?} cannot be a display name: use 1 to 100 characters, not only spaces, and no control \
                 or invisible formatting characters"
            );
        }
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.identity_path();
        if path.exists() && !force {
            bail!("{} already holds an identity (use --force to replace it)", path.display());
        }
        write_private(&path, id.to_nsec().as_bytes())?;
        let profile = serde_json::to_vec(&Profile { display_name: name.to_owned() })?;
        std::fs::write(self.dir.join("profile.json"), profile)?;
        Ok(())
    }

    async fn client(&self) -> anyhow::Result<Client> {
        let id = self.identity()?;
        Ok(Client::connect(&self.server, id, &self.display_name()).await?)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

fn passphrase() -> anyhow::Result<String> {
    std::env::var("CALLVAULT_PASSPHRASE")
        .ok()
        .filter(|p| p.len() >= 8)
        .ok_or_else(|| anyhow!("set CALLVAULT_PASSPHRASE (8 characters or more) to protect the exported key"))
}

/// Why audio flags fail in a build without the `media` feature.
#[cfg(not(feature = "media"))]
const NO_MEDIA: &str =
    "this build has no media: build with `cargo build --release --features media` (needs libopus-dev)";

/// What `call` and `answer` do with audio (none: signalling only).
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "media"), allow(dead_code))] // read only by the media paths
pub(crate) struct Audio {
    /// `tone:<Hz>`, `silence` or a WAV file.
    pub(crate) input: Option<String>,
    /// Where to write what the peer sent (WAV).
    pub(crate) output: Option<PathBuf>,
    /// Relay-only (TURN): no address of this device reaches the peer.
    pub(crate) relay_only: bool,
    /// Hang up after this long.
    pub(crate) duration: Option<Duration>,
}

impl Audio {
    fn wanted(&self) -> bool {
        self.input.is_some() || self.output.is_some()
    }

    #[cfg(feature = "media")]
    fn options(&self, wait: Duration) -> MediaOptions {
        MediaOptions {
            source_spec: self.input.clone().unwrap_or_else(|| "silence".to_owned()),
            relay_only: self.relay_only,
            duration: self.duration,
            local_ip: None,
            wait,
        }
    }
}

#[cfg(feature = "media")]
fn report_media(home: &Home, audio: &Audio, m: &MediaCall) -> anyhow::Result<()> {
    if let Some(path) = &audio.output {
        callvault_media::audio::write_wav(path, &m.heard)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let s = m.ended.stats;
    let secs = m.heard.len() as f64 / 48_000.0;
    home.print(
        &format!(
            "call {} ended ({}); SAS {}; media end-to-end encrypted: {} frames sent, {} decoded ({secs:.1} s), {} did not decrypt{}",
            m.call_id,
            if m.we_hung_up { "we hung up" } else { "the peer hung up" },
            m.sas,
            s.frames_sent,
            s.frames_decoded,
            s.decrypt_failures,
            m.relayed.map(|r| format!("; relayed via {r}")).unwrap_or_default()
        ),
        json!({"call_id": m.call_id, "sas": m.sas, "frames_sent": s.frames_sent, "frames_decoded": s.frames_decoded,
            "decrypt_failures": s.decrypt_failures, "we_hung_up": m.we_hung_up, "relayed": m.relayed.is_some(),
            "first_audio_ms": m.first_audio_after.map(|d| d.as_millis()), "heard_seconds": secs}),
    );
    Ok(())
}

/// `id new`.
pub(crate) fn id_new(home: &Home, name: &str, force: bool) -> anyhow::Result<()> {
    let id = SecretIdentity::generate();
    home.store_identity(&id, name, force)?;
    let guid = id.public().guid();
    home.print(
        &format!("new identity {guid}\n  name: {name}\n  npub: {}", id.public().npub()),
        json!({"guid": guid, "npub": id.public().npub(), "display_name": name}),
    );
    Ok(())
}

/// `id show`.
pub(crate) fn id_show(home: &Home) -> anyhow::Result<()> {
    let id = home.identity()?;
    let guid = id.public().guid();
    let name = home.display_name();
    home.print(
        &format!("{guid}\n  name: {name}\n  npub: {}", id.public().npub()),
        json!({"guid": guid, "npub": id.public().npub(), "display_name": name}),
    );
    Ok(())
}

/// `id export FILE`: the identity sealed under `CALLVAULT_PASSPHRASE`.
pub(crate) fn id_export(home: &Home, file: &Path) -> anyhow::Result<()> {
    let id = home.identity()?;
    let sealed = keyfile::seal_key(&id, KeyKind::User, &passphrase()?, KdfParams::RECOMMENDED)
        .map_err(|e| anyhow!("cannot seal the key: {e}"))?;
    write_private(file, &sealed)?;
    home.print(&format!("identity exported to {}", file.display()), json!({"exported": file}));
    Ok(())
}

/// `id import FILE`.
pub(crate) fn id_import(home: &Home, file: &Path, name: &str, force: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let id = keyfile::open_key(&bytes, KeyKind::User, &passphrase()?)
        .map_err(|e| anyhow!("cannot open {}: {e}", file.display()))?;
    home.store_identity(&id, name, force)?;
    let guid = id.public().guid();
    home.print(&format!("identity {guid} imported"), json!({"guid": guid}));
    Ok(())
}

/// `invite`.
pub(crate) async fn invite(home: &Home, ttl: u64) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    let token = c.invite(ttl).await?;
    home.print(token.as_str(), json!({"token": token.as_str(), "expires_in_secs": ttl}));
    c.close().await;
    Ok(())
}

/// `connect TOKEN`.
pub(crate) async fn connect(home: &Home, token: &str) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    let (guid, name) = c.accept_invite(token).await?;
    home.print(&format!("connected to {name} ({guid})"), json!({"peer_guid": guid, "display_name": name}));
    c.close().await;
    Ok(())
}

/// `connections`.
pub(crate) async fn connections(home: &Home) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    let list = c.connections().await?;
    if home.json {
        out(&json!({"connections": list}).to_string());
    } else if list.is_empty() {
        out("no connections yet: share `callvault invite` or run `callvault connect <token>`");
    } else {
        for x in &list {
            out(&format!("{}  {}  {:?}", x.guid, x.display_name.as_str(), x.state));
        }
    }
    c.close().await;
    Ok(())
}

/// Finds a connection by guid or display name.
async fn resolve_peer(c: &mut Client, peer: &str) -> anyhow::Result<Guid> {
    if let Ok(g) = Guid::parse(peer) {
        return Ok(g);
    }
    let list = c.connections().await?;
    let found: Vec<_> = list.iter().filter(|x| x.display_name.as_str().eq_ignore_ascii_case(peer)).collect();
    match found.as_slice() {
        [one] => Ok(one.guid.clone()),
        [] => Err(ClientError::NotConnected.into()),
        _ => bail!("several connections are called {peer:?}: use the guid"),
    }
}

/// `call PEER`: rings the peer and waits for the outcome. Exit status 0 when answered.
pub(crate) async fn call(
    home: &Home,
    peer: &str,
    video: bool,
    ring_wait: Duration,
    wait: Duration,
    audio: &Audio,
) -> anyhow::Result<bool> {
    let mut c = home.client().await?;
    let peer = resolve_peer(&mut c, peer).await?;
    if audio.wanted() {
        #[cfg(feature = "media")]
        {
            let m = media_call::place(&mut c, &home.server, &peer, &audio.options(wait)).await?;
            report_media(home, audio, &m)?;
            c.close().await;
            return Ok(true);
        }
        #[cfg(not(feature = "media"))]
        bail!("{NO_MEDIA}");
    }
    let started = std::time::Instant::now();
    let call_type = if video { CallType::Video } else { CallType::Audio };
    let id = c.call(&peer, call_type).await?;
    let idstr = id.to_string();
    let ringing = c
        .wait_for(ring_wait, "ringing", |e| {
            e.call_id() == Some(idstr.as_str())
                && matches!(e.kind.as_str(), "call.ringing" | "call.accepted" | "call.rejected" | "call.ended")
        })
        .await;
    let first = match ringing {
        Ok(e) => e,
        Err(ClientError::Timeout(..)) => {
            // Cancel; the peer's vault, being away, will not confirm, so do not wait long.
            c.set_timeout(Duration::from_secs(3));
            let _ = c.hangup(&id).await;
            bail!("peer offline: their vault did not ring within {}s (call cancelled)", ring_wait.as_secs());
        }
        Err(e) => return Err(e.into()),
    };
    if !home.json && first.kind == "call.ringing" {
        out(&format!("ringing {peer} (call {id}) after {} ms", started.elapsed().as_millis()));
    }
    let settled = if first.kind == "call.ringing" { c.wait_call_settled(&id, wait).await? } else { first };
    let answered = settled.kind == "call.accepted";
    let outcome = match settled.kind.as_str() {
        "call.accepted" => "answered".to_owned(),
        "call.rejected" => {
            format!("rejected ({})", settled.payload.get("reason").and_then(|v| v.as_str()).unwrap_or("declined"))
        }
        "call.ended" => settled.payload.get("status").and_then(|v| v.as_str()).unwrap_or("ended").to_owned(),
        other => other.to_owned(),
    };
    home.print(
        &format!("call {id}: {outcome} after {} ms", started.elapsed().as_millis()),
        json!({"call_id": id, "peer_guid": peer, "outcome": outcome, "setup_ms": started.elapsed().as_millis()}),
    );
    c.close().await;
    Ok(answered)
}

fn newest(calls: &[CallRecord], pick: impl Fn(&CallRecord) -> bool) -> Option<CallId> {
    calls.iter().find(|r| pick(r)).map(|r| r.call_id.clone())
}

fn ringing_incoming(r: &CallRecord) -> bool {
    r.direction == Direction::Incoming && r.status == CallStatus::Ringing
}

/// Picks the named call, or the newest call `pick` takes from history, or (waiting up to
/// `wait`) the next incoming one.
async fn target(
    c: &mut Client,
    call_id: Option<&str>,
    pick: impl Fn(&CallRecord) -> bool,
    wait: Duration,
) -> anyhow::Result<CallId> {
    if let Some(s) = call_id {
        return CallId::parse(s).map_err(|_| anyhow!("{s:?} is not a call id"));
    }
    if let Some(id) = newest(&c.history(50).await?, &pick) {
        return Ok(id);
    }
    if wait.is_zero() {
        return Err(ClientError::CallNotFound.into());
    }
    let e = match c.wait_incoming(wait).await {
        Ok(e) => e,
        Err(ClientError::Timeout(..)) => return Err(ClientError::CallNotFound.into()),
        Err(e) => return Err(e.into()),
    };
    e.call_id().and_then(|s| CallId::parse(s).ok()).ok_or_else(|| ClientError::CallNotFound.into())
}

/// `answer [CALL_ID]`.
pub(crate) async fn answer(home: &Home, call_id: Option<&str>, wait: Duration, audio: &Audio) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    let id = target(&mut c, call_id, ringing_incoming, wait).await?;
    if audio.wanted() {
        #[cfg(feature = "media")]
        {
            let calls = c.history(50).await?;
            let caller =
                calls.iter().find(|r| r.call_id == id).map(|r| r.peer_guid.clone()).ok_or(ClientError::CallNotFound)?;
            let m =
                media_call::answer(&mut c, &home.server, &id, &caller, &audio.options(Duration::from_secs(30))).await?;
            report_media(home, audio, &m)?;
            c.close().await;
            return Ok(());
        }
        #[cfg(not(feature = "media"))]
        bail!("{NO_MEDIA}");
    }
    c.answer(&id).await?;
    home.print(&format!("answered call {id}"), json!({"call_id": id, "status": "active"}));
    c.close().await;
    Ok(())
}

/// `reject [CALL_ID]`.
pub(crate) async fn reject(home: &Home, call_id: Option<&str>, wait: Duration) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    let id = target(&mut c, call_id, ringing_incoming, wait).await?;
    c.reject(&id).await?;
    home.print(&format!("rejected call {id}"), json!({"call_id": id, "status": "rejected"}));
    c.close().await;
    Ok(())
}

/// `hangup [CALL_ID]`: the named call, else the active one, else an unanswered outgoing one.
pub(crate) async fn hangup(home: &Home, call_id: Option<&str>) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    let pick = |r: &CallRecord| {
        r.status == CallStatus::Active
            || (r.direction == Direction::Outgoing && matches!(r.status, CallStatus::Ringing | CallStatus::Initiating))
    };
    let id = target(&mut c, call_id, pick, Duration::ZERO).await?;
    let e = c.hangup(&id).await?;
    let status = e.payload.get("status").and_then(|v| v.as_str()).unwrap_or("ended").to_owned();
    let duration = e.payload.get("duration_seconds").and_then(serde_json::Value::as_u64);
    let human = match duration {
        Some(d) => format!("call {id} {status} after {d}s"),
        None => format!("call {id} {status}"),
    };
    home.print(&human, json!({"call_id": id, "status": status, "duration_seconds": duration}));
    c.close().await;
    Ok(())
}

/// `history`.
pub(crate) async fn history(home: &Home, limit: usize) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    let calls = c.history(limit).await?;
    if home.json {
        out(&json!({"calls": calls}).to_string());
    } else if calls.is_empty() {
        out("no calls yet");
    } else {
        // People by name: the connection's display name, or a short guid for a peer who is no
        // longer one.
        let names: std::collections::HashMap<Guid, String> =
            c.connections().await?.into_iter().map(|c| (c.guid, c.display_name.as_str().to_owned())).collect();
        for r in &calls {
            let d = r.duration_seconds.map(|d| format!(" {}s", d.get())).unwrap_or_default();
            let who = names
                .get(&r.peer_guid)
                .cloned()
                .unwrap_or_else(|| callvault_protocol::redact::Redacted(&r.peer_guid).to_string());
            out(&format!(
                "{}  {:<8} {:<5} {:<9} {who}{d}  {}",
                r.created_at,
                format!("{:?}", r.direction).to_lowercase(),
                format!("{:?}", r.call_type).to_lowercase(),
                format!("{:?}", r.status).to_lowercase(),
                r.call_id
            ));
        }
    }
    c.close().await;
    Ok(())
}

/// The connection named `peer` (guid or display name): its guid, name and identity key.
async fn conversation_with(
    c: &mut Client,
    peer: &str,
) -> anyhow::Result<(Guid, String, callvault_crypto::PublicIdentity)> {
    let guid = resolve_peer(c, peer).await?;
    let list = c.connections().await?;
    let found = list.iter().find(|x| x.guid == guid).ok_or(ClientError::NotConnected)?;
    let key =
        callvault_crypto::PublicIdentity::parse(found.user_key.as_str()).map_err(|_| anyhow!("bad key for {peer}"))?;
    Ok((guid, found.display_name.as_str().to_owned(), key))
}

/// `message PEER TEXT`: sends a message, sealed to the peer; waits `wait` for the peer's vault
/// to store it.
pub(crate) async fn message(home: &Home, peer: &str, text: &str, wait: Duration) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    let (guid, name, key) = conversation_with(&mut c, peer).await?;
    let sent = c.send_message(&guid, &key, text).await?;
    let seq = sent.payload.get("seq").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let delivered = !wait.is_zero()
        && c.wait_for(wait, "the delivery receipt", |e| {
            e.kind == "message.delivered"
                && e.payload.get("conversation").and_then(serde_json::Value::as_str) == Some(guid.as_str())
                && e.payload.get("seq").and_then(serde_json::Value::as_u64) == Some(seq)
        })
        .await
        .is_ok();
    let status = if delivered { "delivered" } else { "sent" };
    home.print(
        &format!("{status} to {name}"),
        json!({"to": name, "item": sent.payload.get("item"), "seq": seq, "status": status}),
    );
    c.close().await;
    Ok(())
}

/// `messages PEER`: the conversation, newest last, by names; marks the peer's messages read.
pub(crate) async fn messages(home: &Home, peer: &str, limit: usize) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    let (guid, name, key) = conversation_with(&mut c, peer).await?;
    let mut shown = Vec::new();
    let mut before: Option<String> = None;
    while shown.len() < limit {
        let want = u32::try_from(limit.saturating_sub(shown.len())).unwrap_or(50).min(50);
        let (page, more) = c.messages(&guid, &key, want, before.as_deref()).await?;
        before = page.last().map(|m| m.item.clone());
        shown.extend(page);
        if !more {
            break;
        }
    }
    shown.reverse();
    let me = home.display_name();
    if let Some(newest) = shown.iter().rev().find(|m| !m.outgoing) {
        c.mark_read(&guid, newest.seq).await?;
    }
    if home.json {
        let list: Vec<_> = shown
            .iter()
            .map(|m| {
                json!({"from": if m.outgoing { &me } else { &name }, "outgoing": m.outgoing, "text": m.text,
                    "sent_at": m.sent_at, "status": m.status, "item": m.item, "seq": m.seq})
            })
            .collect();
        out(&json!({"with": name, "messages": list}).to_string());
    } else if shown.is_empty() {
        out(&format!("no messages with {name} yet: `callvault message {name} <text>`"));
    } else {
        for m in &shown {
            let who = if m.outgoing { &me } else { &name };
            let status = if m.outgoing { format!("  ({})", m.status) } else { String::new() };
            out(&format!("{}  {who}: {}{status}", m.sent_at, m.text));
        }
    }
    c.close().await;
    Ok(())
}

/// `profile [--name NAME] [--avatar URL]`: shows the user's profile, or changes it (shared with
/// every connection).
pub(crate) async fn profile(home: &Home, name: Option<&str>, avatar: Option<&str>) -> anyhow::Result<()> {
    let mut c = home.client().await?;
    if let Some(name) = name {
        if let Some(problem) = callvault_protocol::fields::DisplayName::new(name).err() {
            bail!("that name cannot be used: {problem}");
        }
        let shared = c.set_profile(name, avatar).await?;
        let bytes = serde_json::to_vec(&Profile { display_name: name.to_owned() })?;
        write_private(&home.dir.join("profile.json"), &bytes)?;
        home.print(
            &format!("you are {name} now (shared with {shared} connections)"),
            json!({"display_name": name, "avatar_url": avatar, "shared_with": shared}),
        );
    } else {
        let guid = c.guid().clone();
        let shown = c.profile(&guid).await?;
        let (name, avatar) = shown.unwrap_or_else(|| (home.display_name(), None));
        home.print(
            &format!("{name}{}", avatar.as_deref().map(|a| format!(" ({a})")).unwrap_or_default()),
            json!({"display_name": name, "avatar_url": avatar}),
        );
    }
    c.close().await;
    Ok(())
}

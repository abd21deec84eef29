//! A whole 1:1 call with media for a Rust app: the client SDK carries the call through both vaults;
//! key exchange, offer and answer travel as sealed `call.signal`s; then the media session runs
//! until either side hangs up.
//!
//! Order of events (caller A, callee B):
//!
//! 1. A `call.initiate`; B rings; B `call.accept` with B's ephemeral X25519 key;
//! 2. A gets `call.accepted` with B's key, derives the call keys, and sends its own ephemeral key
//!    (`key_exchange`) and the SDP offer (`offer`), both sealed to B's identity key;
//! 3. B derives the same keys, answers (`answer`); both show the short authentication string;
//! 4. media flows (SFrame on every frame) until a `call.ended` or the local hang-up.
//!
//! A Rust app puts all its candidates in its SDP; a browser trickles its own (`ice` signals, any
//! time after its description): they are kept until the peer's description is taken, then added,
//! during the media session too; at most [`MAX_TRICKLED`] per call.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use callvault_client::{AppEvent, Client, ClientError};
use callvault_crypto::PublicIdentity;
use callvault_crypto::callkeys::{self, CallKeys, EphemeralKey, Role};
use callvault_protocol::fields::{CallType, PublicKey, SignalType};
use callvault_protocol::ratelog::RateLimitedLog;
use callvault_protocol::{CallId, Guid};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::audio::AudioSource;
use crate::peer::{FrameProtection, MediaError, MediaPeer};
use crate::shell::{self, Ended};
use crate::turn::{RelayConfig, TurnError};

/// Why a media call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call itself (server, vault, peer).
    #[error("{0}")]
    Client(#[from] ClientError),
    /// Media.
    #[error("media: {0}")]
    Media(#[from] MediaError),
    /// TURN.
    #[error("relay: {0}")]
    Turn(#[from] TurnError),
    /// The peer's signals do not hold (bad key, bad SDP, wrong sender).
    #[error("peer signalling: {0}")]
    Signal(String),
    /// The call was not answered.
    #[error("not answered: {0}")]
    NotAnswered(String),
}

/// How media is set up.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// What we send.
    pub source_spec: String,
    /// Only relay candidates (TURN); no host address leaves the device.
    pub relay_only: bool,
    /// End the call after this long (None: wait for the peer to hang up).
    pub duration: Option<Duration>,
    /// The local address for host candidates (None: the one that routes to the server).
    pub local_ip: Option<IpAddr>,
    /// How long to wait for the peer's answer / signals.
    pub wait: Duration,
}

/// What happened in a media call.
#[derive(Debug)]
pub struct MediaCall {
    /// The call.
    pub call_id: CallId,
    /// The short authentication string both sides should see.
    pub sas: String,
    /// Everything decoded from the far end, 48 kHz mono.
    pub heard: Vec<i16>,
    /// How the media session ended.
    pub ended: Ended,
    /// Who hung up: true when we did.
    pub we_hung_up: bool,
    /// Time from the call being answered to the first decoded far-end frame.
    pub first_audio_after: Option<Duration>,
    /// The relayed address media went through, in relay-only mode.
    pub relayed: Option<SocketAddr>,
}

/// At most this many trickled candidates are taken from a peer per call; the rest are dropped.
pub const MAX_TRICKLED: usize = 64;

/// The candidates a peer trickles (`ice` signals: an `RTCIceCandidate`'s JSON, `candidate` empty
/// at the end of candidates), counted against [`MAX_TRICKLED`].
#[derive(Debug, Default)]
struct Trickled {
    taken: usize,
}

impl Trickled {
    /// The `a=candidate` value in an `ice` signal's body, if it is one and the call has room.
    fn take(&mut self, body: &[u8]) -> Option<String> {
        static REFUSED: RateLimitedLog = RateLimitedLog::per_second(1);
        if self.taken >= MAX_TRICKLED {
            if let Some(suppressed) = REFUSED.allow() {
                tracing::warn!(suppressed, "the peer trickled more candidates than a call takes: dropped");
            }
            return None;
        }
        self.taken = self.taken.saturating_add(1);
        let line = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("candidate").and_then(serde_json::Value::as_str).map(str::to_owned))
            .filter(|c| c.len() <= 512);
        if line.is_none()
            && let Some(suppressed) = REFUSED.allow()
        {
            tracing::warn!(suppressed, "an ice signal that holds no candidate: dropped");
        }
        line.filter(|c| !c.is_empty())
    }
}

fn bad(what: impl std::fmt::Display) -> CallError {
    CallError::Signal(what.to_string())
}

/// The local address that routes towards `server` (a UDP "connect" sends nothing).
pub fn local_ip_towards(server: &str) -> IpAddr {
    let host = server
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|hp| hp.rsplit_once(':').map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']').to_owned()));
    let target = host.and_then(|h| format!("{h}:9").parse::<SocketAddr>().ok());
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok().zip(target).and_then(|(s, t)| {
        s.connect(t).ok()?;
        s.local_addr().ok()
    });
    probe.map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip())
}

async fn next_signal(
    client: &mut Client,
    call: &CallId,
    peer: &PublicIdentity,
    wait: Duration,
) -> Result<(SignalType, Vec<u8>), CallError> {
    let id = call.to_string();
    let e: AppEvent = client
        .wait_for(wait, "a signal from the peer", |e| {
            e.call_id() == Some(id.as_str()) && matches!(e.kind.as_str(), "call.signal" | "call.ended")
        })
        .await?;
    if e.kind == "call.ended" {
        return Err(CallError::NotAnswered("the peer hung up during setup".into()));
    }
    Ok(client.open_signal(&e, peer)?)
}

/// Media transport: a host socket, or a TURN relay.
enum Transport {
    Host(UdpSocket),
    Relay(Box<crate::turn::Relay>),
}

async fn transport(
    peer: &mut MediaPeer,
    client: &mut Client,
    options: &MediaOptions,
    server: &str,
) -> Result<Transport, CallError> {
    if options.relay_only {
        let creds = client.turn_credentials(true).await?;
        let config = RelayConfig::from_credentials(&creds)?;
        let relay = crate::turn::Relay::allocate(config).await?;
        peer.add_relay_candidate(relay.relayed(), relay.local())?;
        return Ok(Transport::Relay(Box::new(relay)));
    }
    let ip = options.local_ip.unwrap_or_else(|| local_ip_towards(server));
    Ok(Transport::Host(shell::bind_host(peer, ip).await?))
}

#[allow(clippy::too_many_arguments)]
async fn run_media(
    peer: MediaPeer,
    transport: Transport,
    options: &MediaOptions,
    client: &mut Client,
    call: &CallId,
    peer_key: &PublicIdentity,
    mut trickled: Trickled,
    answered_at: Instant,
) -> Result<MediaCall, CallError> {
    let mut source = AudioSource::parse(&options.source_spec).map_err(|e| CallError::Signal(e.to_string()))?;
    let mut heard = Vec::new();
    let mut first: Option<Duration> = None;
    let id = call.to_string();
    let mut hung_up_by_peer = false;
    let mut limit_reached = false;
    let relayed = match &transport {
        Transport::Relay(r) => Some(r.relayed()),
        Transport::Host(_) => None,
    };
    let (candidates, trickled_in) = mpsc::channel(MAX_TRICKLED);
    let ended = {
        let limit = async {
            match options.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        // Until the peer hangs up or the time is up: the candidates the peer trickles go to the
        // media session.
        let stop = async {
            let mut limit = std::pin::pin!(limit);
            loop {
                let next = client.wait_for(Duration::from_secs(24 * 3600), "the end of the call", |e| {
                    e.call_id() == Some(id.as_str()) && matches!(e.kind.as_str(), "call.ended" | "call.signal")
                });
                tokio::select! {
                    r = next => match r {
                        Ok(e) if e.kind == "call.ended" => { hung_up_by_peer = true; break; }
                        Ok(e) => match client.open_signal(&e, peer_key) {
                            Ok((SignalType::Ice, body)) => {
                                if let Some(line) = trickled.take(&body) {
                                    let _ = candidates.try_send(line);
                                }
                            }
                            Ok((other, _)) => tracing::debug!(signal = ?other, "signal during the call ignored"),
                            Err(e) => tracing::debug!(error = %e, "a signal that does not open ignored"),
                        },
                        Err(_) => break,
                    },
                    () = &mut limit => { limit_reached = true; break; }
                }
            }
        };
        let on_audio = |pcm: &[i16]| {
            first.get_or_insert_with(|| answered_at.elapsed());
            heard.extend_from_slice(pcm);
        };
        match transport {
            Transport::Host(socket) => {
                shell::run(peer, socket, || source.next_frame(), stop, on_audio, trickled_in).await?
            }
            Transport::Relay(relay) => {
                crate::turn::run_relayed(peer, *relay, || source.next_frame(), stop, on_audio, trickled_in).await?
            }
        }
    };
    if !hung_up_by_peer && !limit_reached {
        // The media closed by itself: the peer hung up and its `call.ended` is on the way.
        let ended = client
            .wait_for(Duration::from_secs(3), "the end of the call", |e| {
                e.call_id() == Some(id.as_str()) && e.kind == "call.ended"
            })
            .await;
        hung_up_by_peer = ended.is_ok();
    }
    if !hung_up_by_peer {
        client.hangup(call).await?;
    }
    Ok(MediaCall {
        call_id: call.clone(),
        sas: String::new(),
        heard,
        ended,
        we_hung_up: !hung_up_by_peer,
        first_audio_after: first,
        relayed,
    })
}

/// Calls `peer` and, once answered, runs media until either side hangs up.
pub async fn place(
    client: &mut Client,
    server: &str,
    peer: &Guid,
    options: &MediaOptions,
) -> Result<MediaCall, CallError> {
    let peer_key = client.peer_identity(peer).await?;
    let call = client.call(peer, CallType::Audio).await?;
    let settled = client.wait_call_settled(&call, options.wait).await?;
    if settled.kind != "call.accepted" {
        return Err(CallError::NotAnswered(settled.kind));
    }
    let answered_at = Instant::now();
    let theirs: PublicKey = settled
        .payload
        .get("public_key")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| bad("call.accepted without the callee's key"))?;
    let theirs = callkeys::parse_public(&theirs).map_err(bad)?;
    let mine = EphemeralKey::generate();
    let my_public = mine.public();
    let keys = mine.agree(Role::Caller, &call, client.guid(), peer, &theirs).map_err(bad)?;
    client.send_signal(&call, &peer_key, SignalType::KeyExchange, &my_public).await?;
    let mut media = MediaPeer::new(Instant::now(), FrameProtection::from_keys(&keys)?)?;
    let transport = transport(&mut media, client, options, server).await?;
    let offer = media.create_offer()?;
    client.send_signal(&call, &peer_key, SignalType::Offer, offer.as_bytes()).await?;
    let mut trickled = Trickled::default();
    let mut early = Vec::new();
    let answer = loop {
        match next_signal(client, &call, &peer_key, options.wait).await? {
            (SignalType::Answer, answer) => break answer,
            (SignalType::Ice, body) => early.extend(trickled.take(&body)),
            (kind, _) => return Err(bad(format!("expected an answer, got {kind:?}"))),
        }
    };
    media.accept_answer(std::str::from_utf8(&answer).map_err(bad)?)?;
    for line in early {
        shell::add_trickled(&mut media, &line);
    }
    let mut result = run_media(media, transport, options, client, &call, &peer_key, trickled, answered_at).await?;
    result.sas = keys.sas().to_string();
    Ok(result)
}

/// Answers the ringing call `call` (from `caller`) and runs media until either side hangs up.
pub async fn answer(
    client: &mut Client,
    server: &str,
    call: &CallId,
    caller: &Guid,
    options: &MediaOptions,
) -> Result<MediaCall, CallError> {
    let peer_key = client.peer_identity(caller).await?;
    let mine = client.answer(call).await?;
    let answered_at = Instant::now();
    let (mut theirs, mut offer) = (None, None);
    let mut trickled = Trickled::default();
    let mut early = Vec::new();
    while theirs.is_none() || offer.is_none() {
        match next_signal(client, call, &peer_key, options.wait).await? {
            (SignalType::KeyExchange, body) => {
                theirs =
                    Some(<[u8; 32]>::try_from(body.as_slice()).map_err(|_| bad("a key exchange of the wrong size"))?);
            }
            (SignalType::Offer, body) => offer = Some(String::from_utf8(body).map_err(bad)?),
            (SignalType::Ice, body) => early.extend(trickled.take(&body)),
            (other, _) => tracing::debug!(signal = ?other, "signal before the offer ignored"),
        }
    }
    let (Some(theirs), Some(offer)) = (theirs, offer) else { return Err(bad("no key or offer")) };
    let keys: CallKeys = mine.agree(Role::Callee, call, caller, client.guid(), &theirs).map_err(bad)?;
    let mut media = MediaPeer::new(Instant::now(), FrameProtection::from_keys(&keys)?)?;
    let transport = transport(&mut media, client, options, server).await?;
    let answer = media.accept_offer(&offer)?;
    for line in early {
        shell::add_trickled(&mut media, &line);
    }
    client.send_signal(call, &peer_key, SignalType::Answer, answer.as_bytes()).await?;
    let mut result = run_media(media, transport, options, client, call, &peer_key, trickled, answered_at).await?;
    result.sas = keys.sas().to_string();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0";

    #[test]
    fn trickled_candidates_are_read_from_the_browsers_json_and_capped() {
        let mut t = Trickled::default();
        let body = serde_json::json!({"candidate": HOST, "sdpMid": "0", "sdpMLineIndex": 0}).to_string();
        assert_eq!(t.take(body.as_bytes()).as_deref(), Some(HOST));
        assert_eq!(t.take(br#"{"candidate":""}"#), None, "the end of candidates adds nothing");
        assert_eq!(t.take(b"not json"), None);
        assert_eq!(t.take(br#"{"candidate": 7}"#), None);
        let long = serde_json::json!({ "candidate": "x".repeat(513) }).to_string();
        assert_eq!(t.take(long.as_bytes()), None, "longer than any candidate line");
        while t.taken < MAX_TRICKLED {
            assert!(t.take(body.as_bytes()).is_some());
        }
        assert_eq!(t.take(body.as_bytes()), None, "no more than MAX_TRICKLED per call");
    }
}

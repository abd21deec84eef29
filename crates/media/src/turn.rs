//! A TURN client (RFC 8656) over UDP, enough for media through a relay: Allocate with long-term
//! credentials (the TURN REST ones from `/calls/turn-credentials`), CreatePermission per peer,
//! Send and Data indications, Refresh. [`TurnClient`] is sans-IO; [`Relay`] and
//! [`run_relayed`] are its socket shell.
//!
//! In relay-only mode the media session's only local candidate is the relayed address, so no host
//! or server-reflexive address leaves the device: the peer and every server in between see the
//! relay's address only.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use callvault_protocol::app::TurnCredentials;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use tokio::net::UdpSocket;

use crate::peer::{MediaError, MediaPeer, PeerOutput};
use crate::shell::Ended;

const MAGIC: u32 = 0x2112_A442;
const ALLOCATE: u16 = 0x0003;
const REFRESH: u16 = 0x0004;
const CREATE_PERMISSION: u16 = 0x0008;
const SEND_INDICATION: u16 = 0x0016;
const DATA_INDICATION: u16 = 0x0017;
const SUCCESS: u16 = 0x0100;
const ERROR: u16 = 0x0110;

const A_USERNAME: u16 = 0x0006;
const A_MESSAGE_INTEGRITY: u16 = 0x0008;
const A_ERROR_CODE: u16 = 0x0009;
const A_LIFETIME: u16 = 0x000D;
const A_XOR_PEER_ADDRESS: u16 = 0x0012;
const A_DATA: u16 = 0x0013;
const A_REALM: u16 = 0x0014;
const A_NONCE: u16 = 0x0015;
const A_XOR_RELAYED_ADDRESS: u16 = 0x0016;
const A_REQUESTED_TRANSPORT: u16 = 0x0019;

/// Permissions last 300 s on the server; renew well before.
const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
/// A request unanswered this long is sent again (up to [`RETRIES`] times).
const RETRANSMIT: Duration = Duration::from_millis(500);
const RETRIES: u8 = 6;

/// Why TURN failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    /// The credentials name no usable `turn:` URL over UDP.
    #[error("no usable TURN server in the credentials")]
    NoServer,
    /// The server refused (error code and reason).
    #[error("TURN server refused: {0} {1}")]
    Refused(u16, String),
    /// No answer.
    #[error("TURN server did not answer")]
    Timeout,
    /// A message that does not parse.
    #[error("malformed TURN message")]
    Malformed,
    /// The socket failed.
    #[error("socket: {0}")]
    Io(String),
}

/// Where and as whom to allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The TURN server (UDP).
    pub server: SocketAddr,
    /// TURN REST username.
    pub username: String,
    /// TURN REST password.
    pub password: String,
}

impl RelayConfig {
    /// The first `turn:` URL over UDP (or with no transport) in `creds`, with its username and
    /// credential.
    pub fn from_credentials(creds: &TurnCredentials) -> Result<Self, TurnError> {
        for s in &creds.ice_servers {
            let (Some(user), Some(pass)) = (&s.username, &s.credential) else { continue };
            for url in &s.urls {
                let Some(rest) = url.strip_prefix("turn:") else { continue };
                let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
                if !(query.is_empty() || query.contains("transport=udp")) {
                    continue;
                }
                let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:3478") };
                if let Some(server) = hostport.to_socket_addrs().ok().and_then(|mut a| a.next()) {
                    return Ok(Self { server, username: user.clone(), password: pass.clone() });
                }
            }
        }
        Err(TurnError::NoServer)
    }
}

/// What the client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// The allocation exists: the relayed address.
    Allocated(SocketAddr),
    /// Data from `peer` through the relay.
    Data {
        /// Who sent it (to the relayed address).
        peer: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// The server refused a request for good.
    Failed(TurnError),
}

#[derive(Debug, Clone)]
struct Pending {
    method: u16,
    message: Vec<u8>,
    sent: Instant,
    tries: u8,
    peer_ip: Option<IpAddr>,
}

/// A sans-IO TURN client for one allocation.
#[derive(Debug)]
pub struct TurnClient {
    username: String,
    password: String,
    realm: Option<String>,
    nonce: Option<String>,
    key: Option<[u8; 16]>,
    relayed: Option<SocketAddr>,
    refresh_at: Option<Instant>,
    permissions: HashMap<IpAddr, Instant>,
    pending: HashMap<[u8; 12], Pending>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<TurnEvent>,
}

fn random_txid() -> [u8; 12] {
    let mut t = [0u8; 12];
    if getrandom::fill(&mut t).is_err() {
        tracing::error!("OS random number generator failed");
    }
    t
}

fn pad4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// Builds STUN messages.
struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn new(kind: u16, txid: &[u8; 12]) -> Self {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&kind.to_be_bytes());
        bytes.extend_from_slice(&0u16.to_be_bytes());
        bytes.extend_from_slice(&MAGIC.to_be_bytes());
        bytes.extend_from_slice(txid);
        Self { bytes }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        self.bytes.extend_from_slice(&kind.to_be_bytes());
        self.bytes.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.resize(pad4(self.bytes.len()), 0);
        self.set_len(self.bytes.len().saturating_sub(20));
    }

    fn set_len(&mut self, len: usize) {
        let l = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
        if let Some(b) = self.bytes.get_mut(2..4) {
            b.copy_from_slice(&l);
        }
    }

    fn xor_address(&mut self, kind: u16, addr: SocketAddr, txid: &[u8; 12]) {
        let mut v = vec![0u8];
        let port = addr.port() ^ u16::try_from(MAGIC >> 16).unwrap_or(0);
        match addr.ip() {
            IpAddr::V4(ip) => {
                v.push(1);
                v.extend_from_slice(&port.to_be_bytes());
                v.extend_from_slice(&(u32::from(ip) ^ MAGIC).to_be_bytes());
            }
            IpAddr::V6(ip) => {
                v.push(2);
                v.extend_from_slice(&port.to_be_bytes());
                v.extend(ip.octets().iter().zip(xor_mask(txid)).map(|(a, m)| a ^ m));
            }
        }
        self.attr(kind, &v);
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1 with the long-term key, over the message with the
    /// length already counting the integrity attribute).
    fn sign(mut self, key: &[u8; 16]) -> Vec<u8> {
        self.set_len(self.bytes.len().saturating_sub(20).saturating_add(24));
        let mac = Hmac::<Sha1>::new_from_slice(key).map(|mut m| {
            m.update(&self.bytes);
            m.finalize().into_bytes().to_vec()
        });
        self.bytes.extend_from_slice(&A_MESSAGE_INTEGRITY.to_be_bytes());
        self.bytes.extend_from_slice(&20u16.to_be_bytes());
        self.bytes.extend_from_slice(&mac.unwrap_or_else(|_| vec![0; 20]));
        self.bytes
    }
}

/// A parsed STUN message.
struct Parsed<'a> {
    kind: u16,
    txid: [u8; 12],
    attrs: Vec<(u16, &'a [u8])>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at.checked_add(1)?)?]))
}

fn parse(b: &[u8]) -> Result<Parsed<'_>, TurnError> {
    let m = TurnError::Malformed;
    let kind = be16(b, 0).ok_or(m.clone())?;
    let len = usize::from(be16(b, 2).ok_or(m.clone())?);
    let magic = b.get(4..8).and_then(|x| <[u8; 4]>::try_from(x).ok()).map(u32::from_be_bytes);
    let end = len.checked_add(20).filter(|e| *e <= b.len()).ok_or(m.clone())?;
    if kind & 0xC000 != 0 || magic != Some(MAGIC) {
        return Err(m);
    }
    let txid: [u8; 12] = b.get(8..20).and_then(|x| x.try_into().ok()).ok_or(m.clone())?;
    let mut attrs = Vec::new();
    let mut at = 20usize;
    while at.saturating_add(4) <= end {
        let t = be16(b, at).ok_or(m.clone())?;
        let l = usize::from(be16(b, at.saturating_add(2)).ok_or(m.clone())?);
        let start = at.saturating_add(4);
        let v = b.get(start..start.saturating_add(l)).ok_or(m.clone())?;
        attrs.push((t, v));
        at = start.saturating_add(pad4(l));
    }
    Ok(Parsed { kind, txid, attrs })
}

fn xor_mask(txid: &[u8; 12]) -> [u8; 16] {
    let mut mask = [0u8; 16];
    for (m, b) in mask.iter_mut().zip(MAGIC.to_be_bytes().iter().chain(txid.iter())) {
        *m = *b;
    }
    mask
}

impl Parsed<'_> {
    fn get(&self, kind: u16) -> Option<&[u8]> {
        self.attrs.iter().find(|(t, _)| *t == kind).map(|(_, v)| *v)
    }

    fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        let v = self.get(kind)?;
        let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]) ^ u16::try_from(MAGIC >> 16).ok()?;
        match v.get(1)? {
            1 => {
                let raw = u32::from_be_bytes(v.get(4..8)?.try_into().ok()?) ^ MAGIC;
                Some(SocketAddr::from((std::net::Ipv4Addr::from(raw), port)))
            }
            2 => {
                let raw: Vec<u8> = v.get(4..20)?.iter().zip(xor_mask(&self.txid)).map(|(a, m)| a ^ m).collect();
                let octets: [u8; 16] = raw.try_into().ok()?;
                Some(SocketAddr::from((std::net::Ipv6Addr::from(octets), port)))
            }
            _ => None,
        }
    }

    fn error(&self) -> (u16, String) {
        let Some(v) = self.get(A_ERROR_CODE) else { return (0, String::new()) };
        let class = u16::from(v.get(2).copied().unwrap_or(0) & 0x7);
        let number = u16::from(v.get(3).copied().unwrap_or(0));
        let code = class.saturating_mul(100).saturating_add(number);
        (code, String::from_utf8_lossy(v.get(4..).unwrap_or_default()).into_owned())
    }
}

impl TurnClient {
    /// A client that will allocate with these credentials; the first request is queued.
    pub fn new(username: &str, password: &str, now: Instant) -> Self {
        let mut c = Self {
            username: username.to_owned(),
            password: password.to_owned(),
            realm: None,
            nonce: None,
            key: None,
            relayed: None,
            refresh_at: None,
            permissions: HashMap::new(),
            pending: HashMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        c.request(ALLOCATE, now, None);
        c
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    fn request(&mut self, method: u16, now: Instant, peer: Option<SocketAddr>) {
        let txid = random_txid();
        let mut m = Message::new(method, &txid);
        match method {
            ALLOCATE => m.attr(A_REQUESTED_TRANSPORT, &[17, 0, 0, 0]),
            REFRESH => m.attr(A_LIFETIME, &600u32.to_be_bytes()),
            _ => {}
        }
        if let Some(p) = peer {
            m.xor_address(A_XOR_PEER_ADDRESS, p, &txid);
        }
        let message = match (&self.key, &self.realm, &self.nonce) {
            (Some(key), Some(realm), Some(nonce)) => {
                m.attr(A_USERNAME, self.username.as_bytes());
                m.attr(A_REALM, realm.as_bytes());
                m.attr(A_NONCE, nonce.as_bytes());
                m.sign(key)
            }
            _ => m.bytes,
        };
        self.out.push_back(message.clone());
        let peer_ip = peer.map(|p| p.ip());
        self.pending.insert(txid, Pending { method, message, sent: now, tries: 1, peer_ip });
    }

    /// Allows `peer`'s address to send to us through the relay (renewed on use).
    pub fn permit(&mut self, peer: SocketAddr, now: Instant) {
        let fresh =
            self.permissions.get(&peer.ip()).is_some_and(|t| now.saturating_duration_since(*t) < PERMISSION_REFRESH);
        if !fresh && self.relayed.is_some() {
            self.permissions.insert(peer.ip(), now);
            self.request(CREATE_PERMISSION, now, Some(peer));
        }
    }

    /// The datagram (to the server) that relays `data` to `peer`.
    pub fn send_to(&mut self, peer: SocketAddr, data: &[u8], now: Instant) -> Vec<u8> {
        self.permit(peer, now);
        let txid = random_txid();
        let mut m = Message::new(SEND_INDICATION, &txid);
        m.xor_address(A_XOR_PEER_ADDRESS, peer, &txid);
        m.attr(A_DATA, data);
        m.bytes
    }

    /// A datagram from the server.
    pub fn handle(&mut self, bytes: &[u8], now: Instant) {
        let Ok(p) = parse(bytes) else { return };
        if p.kind == DATA_INDICATION {
            if let (Some(peer), Some(data)) = (p.xor_address(A_XOR_PEER_ADDRESS), p.get(A_DATA)) {
                self.events.push_back(TurnEvent::Data { peer, data: data.to_vec() });
            }
            return;
        }
        let Some(req) = self.pending.remove(&p.txid) else { return };
        let class = p.kind & 0x0110;
        if class == SUCCESS {
            if req.method == ALLOCATE {
                self.relayed = p.xor_address(A_XOR_RELAYED_ADDRESS);
                let life = p.get(A_LIFETIME).and_then(|v| v.try_into().ok()).map_or(600, u32::from_be_bytes);
                self.refresh_at = now.checked_add(Duration::from_secs(u64::from(life / 2).max(30)));
                if let Some(r) = self.relayed {
                    self.events.push_back(TurnEvent::Allocated(r));
                }
            } else if req.method == REFRESH {
                self.refresh_at = now.checked_add(Duration::from_secs(300));
            }
            return;
        }
        if class != ERROR {
            return;
        }
        let (code, reason) = p.error();
        // 401 with realm and nonce on the first try, 438 (stale nonce): retry with credentials.
        let new_nonce = p.get(A_NONCE).map(|n| String::from_utf8_lossy(n).into_owned());
        let retry = (code == 401 && self.key.is_none()) || code == 438;
        if retry && let Some(nonce) = new_nonce {
            if let Some(realm) = p.get(A_REALM).map(|r| String::from_utf8_lossy(r).into_owned()) {
                let digest = Md5::digest(format!("{}:{realm}:{}", self.username, self.password).as_bytes());
                let mut key = [0u8; 16];
                key.copy_from_slice(&digest);
                self.key = Some(key);
                self.realm = Some(realm);
            }
            self.nonce = Some(nonce);
            let peer = req.peer_ip.and_then(|_| self.retry_peer(&req));
            self.request(req.method, now, peer);
            return;
        }
        if req.method == CREATE_PERMISSION
            && let Some(ip) = req.peer_ip
        {
            self.permissions.remove(&ip);
        }
        self.events.push_back(TurnEvent::Failed(TurnError::Refused(code, reason)));
    }

    fn retry_peer(&self, req: &Pending) -> Option<SocketAddr> {
        parse(&req.message).ok().and_then(|p| p.xor_address(A_XOR_PEER_ADDRESS))
    }

    /// Timers: retransmits and refreshes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut gave_up = false;
        for p in self.pending.values_mut() {
            if now.saturating_duration_since(p.sent) >= RETRANSMIT {
                if p.tries >= RETRIES {
                    gave_up = true;
                    continue;
                }
                p.tries = p.tries.saturating_add(1);
                p.sent = now;
                self.out.push_back(p.message.clone());
            }
        }
        if gave_up {
            self.pending.retain(|_, p| p.tries < RETRIES);
            self.events.push_back(TurnEvent::Failed(TurnError::Timeout));
        }
        if self.refresh_at.is_some_and(|t| now >= t) {
            self.refresh_at = now.checked_add(Duration::from_secs(60));
            self.request(REFRESH, now, None);
        }
    }

    /// When [`TurnClient::handle_timeout`] should run next.
    pub fn next_timeout(&self, now: Instant) -> Instant {
        let retransmit = self.pending.values().filter_map(|p| p.sent.checked_add(RETRANSMIT)).min();
        let idle = now.checked_add(Duration::from_secs(1)).unwrap_or(now);
        [retransmit, self.refresh_at].into_iter().flatten().min().unwrap_or(idle)
    }

    /// The next datagram for the server.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }
}

/// An allocation and the socket that talks to the TURN server.
pub struct Relay {
    socket: UdpSocket,
    client: TurnClient,
    server: SocketAddr,
    relayed: SocketAddr,
    local: SocketAddr,
}

impl Relay {
    /// Allocates a relay on `config.server`.
    pub async fn allocate(config: RelayConfig) -> Result<Self, TurnError> {
        let io = |e: std::io::Error| TurnError::Io(e.to_string());
        let bind: SocketAddr = if config.server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(bind).await.map_err(io)?;
        socket.connect(config.server).await.map_err(io)?;
        let local = socket.local_addr().map_err(io)?;
        let mut client = TurnClient::new(&config.username, &config.password, Instant::now());
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(Duration::from_secs(10)).unwrap_or(start);
        let mut buf = vec![0u8; 2_048];
        loop {
            while let Some(m) = client.poll_transmit() {
                socket.send(&m).await.map_err(io)?;
            }
            while let Some(e) = client.poll_event() {
                match e {
                    TurnEvent::Allocated(relayed) => {
                        return Ok(Self { socket, client, server: config.server, relayed, local });
                    }
                    TurnEvent::Failed(e) => return Err(e),
                    TurnEvent::Data { .. } => {}
                }
            }
            let wake = tokio::time::Instant::from_std(client.next_timeout(Instant::now())).min(deadline);
            tokio::select! {
                r = socket.recv(&mut buf) => {
                    let n = r.map_err(io)?;
                    client.handle(buf.get(..n).unwrap_or_default(), Instant::now());
                }
                () = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(TurnError::Timeout);
                    }
                    client.handle_timeout(Instant::now());
                }
            }
        }
    }

    /// The relayed address (the media session's relay candidate).
    pub fn relayed(&self) -> SocketAddr {
        self.relayed
    }

    /// The local socket's address, as a candidate's base. When bound to the unspecified address
    /// this is that of the route to the server.
    pub fn local(&self) -> SocketAddr {
        if self.local.ip().is_unspecified() {
            let ip = crate::call::local_ip_towards(&format!("turn://{}/", self.server));
            SocketAddr::new(ip, self.local.port())
        } else {
            self.local
        }
    }
}

/// Moves outputs between the media session, the TURN client and the socket until neither has
/// any; false once the session closed.
async fn pump(peer: &mut MediaPeer, relay: &mut Relay, on_audio: &mut impl FnMut(&[i16])) -> Result<bool, MediaError> {
    let io = |e: std::io::Error| MediaError::Rtc(e.to_string());
    let mut open = true;
    loop {
        let mut moved = false;
        while let Some(o) = peer.poll_output() {
            moved = true;
            match o {
                PeerOutput::Transmit { destination, contents, .. } => {
                    let m = relay.client.send_to(destination, &contents, Instant::now());
                    // A new peer's CreatePermission goes out before the data it allows.
                    while let Some(req) = relay.client.poll_transmit() {
                        relay.socket.send(&req).await.map_err(io)?;
                    }
                    relay.socket.send(&m).await.map_err(io)?;
                }
                PeerOutput::Audio(pcm) => on_audio(&pcm),
                PeerOutput::Connected => {}
                PeerOutput::Closed => open = false,
            }
        }
        while let Some(req) = relay.client.poll_transmit() {
            moved = true;
            relay.socket.send(&req).await.map_err(io)?;
        }
        while let Some(e) = relay.client.poll_event() {
            moved = true;
            match e {
                TurnEvent::Data { peer: from, data } => {
                    let to = relay.relayed;
                    peer.handle_receive(Instant::now(), from, to, &data)?;
                }
                TurnEvent::Failed(e) => tracing::warn!(error = %e, "relay request failed"),
                TurnEvent::Allocated(_) => {}
            }
        }
        if !moved {
            return Ok(open);
        }
    }
}

/// Like [`crate::shell::run`], with every datagram through the relay.
pub async fn run_relayed(
    mut peer: MediaPeer,
    mut relay: Relay,
    mut next_frame: impl FnMut() -> Vec<i16>,
    stop: impl Future<Output = ()>,
    mut on_audio: impl FnMut(&[i16]),
    mut candidates: tokio::sync::mpsc::Receiver<String>,
) -> Result<Ended, MediaError> {
    let mut buf = vec![0u8; 2_048];
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    let mut stop = std::pin::pin!(stop);
    let io = |e: std::io::Error| MediaError::Rtc(e.to_string());
    loop {
        if !pump(&mut peer, &mut relay, &mut on_audio).await? {
            break;
        }
        let now = Instant::now();
        let wake = tokio::time::Instant::from_std(peer.next_timeout().min(relay.client.next_timeout(now)));
        tokio::select! {
            () = &mut stop => break,
            Some(line) = candidates.recv() => crate::shell::add_trickled(&mut peer, &line),
            r = relay.socket.recv(&mut buf) => {
                let n = r.map_err(io)?;
                relay.client.handle(buf.get(..n).unwrap_or_default(), Instant::now());
            }
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                relay.client.handle_timeout(now);
                if peer.next_timeout() <= now {
                    peer.handle_timeout(now)?;
                }
            }
            _ = clock.tick() => {
                if peer.is_connected() {
                    let frame = next_frame();
                    peer.send_audio(Instant::now(), &frame)?;
                }
            }
        }
    }
    peer.close();
    Ok(Ended { stats: peer.stats(), state: peer.state() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_xor_encoding() {
        for addr in ["127.0.0.1:49170", "[2001:db8::1]:3478"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let txid = random_txid();
            let mut m = Message::new(SEND_INDICATION, &txid);
            m.xor_address(A_XOR_PEER_ADDRESS, addr, &txid);
            m.attr(A_DATA, b"hello");
            let bytes = m.bytes;
            let p = parse(&bytes).unwrap();
            assert_eq!(p.xor_address(A_XOR_PEER_ADDRESS), Some(addr));
            assert_eq!(p.get(A_DATA), Some(&b"hello"[..]));
        }
    }

    #[test]
    fn integrity_is_an_hmac_over_the_message_with_its_final_length() {
        // RFC 5769 2.4's long-term credential sample: the key is MD5(user:realm:pass).
        let digest = Md5::digest("\u{30de}\u{30c8}\u{30ea}\u{30c3}\u{30af}\u{30b9}:example.org:TheMatrIX".as_bytes());
        assert_eq!(digest.len(), 16);
        let txid = [7u8; 12];
        let mut m = Message::new(ALLOCATE, &txid);
        m.attr(A_REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        let key = [1u8; 16];
        let signed = m.sign(&key);
        let p = parse(&signed).unwrap();
        let mi = p.get(A_MESSAGE_INTEGRITY).unwrap();
        let mut mac = Hmac::<Sha1>::new_from_slice(&key).unwrap();
        mac.update(&signed[..signed.len() - 24]);
        assert_eq!(&mac.finalize().into_bytes()[..], mi);
        assert_eq!(usize::from(u16::from_be_bytes([signed[2], signed[3]])), signed.len() - 20);
    }

    #[test]
    fn hostile_server_datagrams_do_not_panic() {
        let mut c = TurnClient::new("u", "p", Instant::now());
        for junk in [
            &[][..],
            &[0u8; 19][..],
            &[0x01, 0x13, 0xff, 0xff, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            c.handle(junk, Instant::now());
        }
        assert!(c.poll_event().is_none());
        assert!(c.relayed().is_none());
    }
}

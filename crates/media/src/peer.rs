//! One side of a 1:1 media session, sans-IO: a str0m peer connection in frame mode carrying Opus,
//! with every encoded frame SFrame-encrypted before packetization and decrypted after
//! depacketization. Time comes in; datagrams to send and decoded audio come out as data.
//!
//! The SFrame layer is end to end: str0m's DTLS-SRTP protects each hop, but whatever terminates
//! it (a TURN relay does not, an SFU would) sees only SFrame ciphertext. Without the call's keys
//! the frames do not decrypt, and a frame that does not authenticate is dropped and counted, never
//! decoded: libopus would "decode" garbage without complaint.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callvault_crypto::callkeys::CallKeys;
use callvault_crypto::frame::{DEFAULT_GRACE, FrameDecryptor, FrameEncryptor, FrameError};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};

/// Largest encoded frame written: str0m splits Opus frames over ~1 120 bytes into several packets,
/// which would cut an SFrame apart. Opus at our bitrate makes about 100.
pub const MAX_ENCODED_FRAME: usize = 1_000;

/// Why the session failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The peer connection refused an operation or input.
    #[error("peer connection: {0}")]
    Rtc(String),
    /// The SDP does not parse or does not fit.
    #[error("bad SDP: {0}")]
    Sdp(String),
    /// A candidate does not parse or is refused.
    #[error("bad candidate: {0}")]
    Candidate(String),
    /// The codec failed.
    #[error("opus: {0}")]
    Codec(String),
    /// The frame keys failed.
    #[error("frame keys: {0}")]
    Keys(#[from] FrameError),
    /// An offer/answer step out of order.
    #[error("{0}")]
    Order(&'static str),
}

fn rtc_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Rtc(e.to_string())
}

/// What the session hands the shell.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerOutput {
    /// Send `contents` from local `source` to `destination`.
    Transmit {
        /// Local address (a host candidate, or the relay address when relayed).
        source: SocketAddr,
        /// Remote address.
        destination: SocketAddr,
        /// The datagram.
        contents: Vec<u8>,
    },
    /// 20 ms of decoded far-end audio (48 kHz mono).
    Audio(Vec<i16>),
    /// ICE and DTLS are up: media flows from now.
    Connected,
    /// The peer connection closed.
    Closed,
}

/// Counters of the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Frames encoded, encrypted and written.
    pub frames_sent: u64,
    /// Frames that arrived.
    pub frames_received: u64,
    /// Frames decrypted and decoded.
    pub frames_decoded: u64,
    /// Frames that did not decrypt (wrong key, tampered): dropped.
    pub decrypt_failures: u64,
    /// Datagrams that were not STUN, DTLS or RTP: dropped.
    pub junk_datagrams: u64,
}

/// Where the session is, as a call UI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaState {
    /// Negotiating, ICE, DTLS.
    Connecting,
    /// Media decrypts.
    Flowing,
    /// Frames arrive but none of the recent ones decrypts: the keys differ.
    CannotDecrypt,
}

/// How frames are protected end to end.
pub enum FrameProtection {
    /// SFrame with the call's keys.
    Sframe {
        /// Encrypts what we send.
        sender: Box<FrameEncryptor>,
        /// Decrypts what we receive.
        receiver: Box<FrameDecryptor>,
    },
    /// None: only for measuring what E2EE costs.
    Plain,
}

impl FrameProtection {
    /// SFrame from the 1:1 call keys.
    pub fn from_keys(keys: &CallKeys) -> Result<Self, MediaError> {
        let sender = FrameEncryptor::new(keys.send_base_key(), keys.send_key_id())?;
        let mut receiver = FrameDecryptor::new(DEFAULT_GRACE);
        receiver.add_key(Duration::ZERO, keys.recv_base_key(), keys.recv_key_id(), |_| false)?;
        Ok(Self::Sframe { sender: Box::new(sender), receiver: Box::new(receiver) })
    }
}

/// One side of a 1:1 media session.
pub struct MediaPeer {
    rtc: Rtc,
    start: Instant,
    mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    encoder: opus::Encoder,
    decoder: opus::Decoder,
    protection: FrameProtection,
    out: VecDeque<PeerOutput>,
    next_timeout: Instant,
    frame_no: u64,
    stats: MediaStats,
    /// Outcomes of the last frames received: true = decrypted.
    recent: VecDeque<bool>,
    connected: bool,
    /// The latest instant the session was given.
    clock: Instant,
    /// Received frames as the depacketizer gave them, when capturing.
    captured: Option<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for MediaPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPeer").field("stats", &self.stats).field("connected", &self.connected).finish()
    }
}

impl MediaPeer {
    /// A session at `now` protecting frames with `protection`.
    pub fn new(now: Instant, protection: FrameProtection) -> Result<Self, MediaError> {
        let rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(now);
        let mut encoder = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
            .map_err(|e| MediaError::Codec(e.to_string()))?;
        encoder.set_bitrate(opus::Bitrate::Bits(32_000)).map_err(|e| MediaError::Codec(e.to_string()))?;
        let decoder =
            opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).map_err(|e| MediaError::Codec(e.to_string()))?;
        Ok(Self {
            rtc,
            start: now,
            mid: None,
            pending: None,
            encoder,
            decoder,
            protection,
            out: VecDeque::new(),
            next_timeout: now,
            frame_no: 0,
            stats: MediaStats::default(),
            recent: VecDeque::new(),
            connected: false,
            clock: now,
            captured: None,
        })
    }

    /// Adds a local host candidate (a bound socket's address; not 0.0.0.0).
    pub fn add_host_candidate(&mut self, addr: SocketAddr) -> Result<(), MediaError> {
        let c = Candidate::host(addr, "udp").map_err(|e| MediaError::Candidate(e.to_string()))?;
        self.rtc.add_local_candidate(c).ok_or_else(|| MediaError::Candidate("refused".into()))?;
        Ok(())
    }

    /// Adds a relayed candidate: `relay` allocated on a TURN server reached from `local`.
    pub fn add_relay_candidate(&mut self, relay: SocketAddr, local: SocketAddr) -> Result<(), MediaError> {
        let c = Candidate::relayed(relay, local, "udp").map_err(|e| MediaError::Candidate(e.to_string()))?;
        self.rtc.add_local_candidate(c).ok_or_else(|| MediaError::Candidate("refused".into()))?;
        Ok(())
    }

    /// Adds a remote candidate (`a=candidate` line or its value) learnt after the SDP.
    pub fn add_remote_candidate(&mut self, line: &str) -> Result<(), MediaError> {
        let line = line.trim().trim_start_matches("a=");
        let c = Candidate::from_sdp_string(line).map_err(|e| MediaError::Candidate(e.to_string()))?;
        self.rtc.add_remote_candidate(c);
        self.drain();
        Ok(())
    }

    /// The caller's side: an SDP offer with one send-and-receive audio track.
    pub fn create_offer(&mut self) -> Result<String, MediaError> {
        let mut api = self.rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api.apply().ok_or(MediaError::Order("nothing to offer"))?;
        self.mid = Some(mid);
        self.pending = Some(pending);
        self.drain();
        Ok(offer.to_sdp_string())
    }

    /// The callee's side: answers an offer.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, MediaError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| MediaError::Sdp(e.to_string()))?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| MediaError::Sdp(e.to_string()))?;
        self.drain();
        Ok(answer.to_sdp_string())
    }

    /// The caller's side: takes the answer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), MediaError> {
        let pending = self.pending.take().ok_or(MediaError::Order("an answer without an offer"))?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| MediaError::Sdp(e.to_string()))?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| MediaError::Sdp(e.to_string()))?;
        self.drain();
        Ok(())
    }

    /// A datagram arrived on `destination` (a local candidate's address) from `source`.
    /// Datagrams that are not WebRTC are dropped and counted.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), MediaError> {
        let Ok(r) = Receive::new(Protocol::Udp, source, destination, bytes) else {
            self.stats.junk_datagrams = self.stats.junk_datagrams.saturating_add(1);
            return Ok(());
        };
        self.clock = self.clock.max(now);
        let input = Input::Receive(now, r);
        if !self.rtc.accepts(&input) {
            self.stats.junk_datagrams = self.stats.junk_datagrams.saturating_add(1);
            return Ok(());
        }
        self.rtc.handle_input(input).map_err(rtc_err)?;
        self.drain();
        Ok(())
    }

    /// Time passed: timers fire.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), MediaError> {
        self.clock = self.clock.max(now);
        self.rtc.handle_input(Input::Timeout(now)).map_err(rtc_err)?;
        self.drain();
        Ok(())
    }

    /// When [`MediaPeer::handle_timeout`] is due next.
    pub fn next_timeout(&self) -> Instant {
        self.next_timeout
    }

    /// Encodes, encrypts and sends one 20 ms frame of 48 kHz mono audio. Before the connection is
    /// up this does nothing (there is no one to hear it).
    pub fn send_audio(&mut self, now: Instant, pcm: &[i16]) -> Result<(), MediaError> {
        if !self.connected || pcm.len() != FRAME_SAMPLES {
            return Ok(());
        }
        let Some(mid) = self.mid else { return Ok(()) };
        // A frame that would not fit fails to encode rather than being cut.
        let mut buf = [0u8; MAX_ENCODED_FRAME];
        let n = self.encoder.encode(pcm, &mut buf).map_err(|e| MediaError::Codec(e.to_string()))?;
        let encoded = buf.get(..n).unwrap_or_default();
        let frame = match &mut self.protection {
            FrameProtection::Sframe { sender, .. } => sender.encrypt(encoded)?,
            FrameProtection::Plain => encoded.to_vec(),
        };
        let rtp_time = MediaTime::new(self.frame_no.saturating_mul(960), Frequency::FORTY_EIGHT_KHZ);
        let Some(writer) = self.rtc.writer(mid) else { return Ok(()) };
        let Some(pt) = writer.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt()) else {
            return Err(MediaError::Order("the peer accepted no Opus"));
        };
        writer.write(pt, now, rtp_time, frame).map_err(rtc_err)?;
        self.frame_no = self.frame_no.saturating_add(1);
        self.stats.frames_sent = self.stats.frames_sent.saturating_add(1);
        self.drain();
        Ok(())
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<PeerOutput> {
        self.out.pop_front()
    }

    /// Counters.
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Where the session is.
    pub fn state(&self) -> MediaState {
        if !self.connected {
            MediaState::Connecting
        } else if self.recent.len() >= 10 && self.recent.iter().all(|ok| !ok) {
            MediaState::CannotDecrypt
        } else {
            MediaState::Flowing
        }
    }

    /// Closes the connection (hang-up).
    pub fn close(&mut self) {
        self.rtc.disconnect();
        self.drain();
    }

    /// Keeps every received frame as it comes out of the depacketizer, before SFrame: what
    /// anything that terminated the transport would see (for tests of the E2EE claim).
    pub fn capture_received_frames(&mut self) {
        self.captured.get_or_insert_with(Vec::new);
    }

    /// The frames captured so far.
    pub fn take_captured_frames(&mut self) -> Vec<Vec<u8>> {
        self.captured.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn on_frame(&mut self, data: &[u8]) {
        // Empty payloads (padding, which browsers send around the start of a stream) carry no
        // frame: nothing to decrypt, nothing to decode.
        if data.is_empty() {
            return;
        }
        self.stats.frames_received = self.stats.frames_received.saturating_add(1);
        if let Some(c) = &mut self.captured {
            c.push(data.to_vec());
        }
        let since_start = self.clock.saturating_duration_since(self.start);
        let plain = match &mut self.protection {
            FrameProtection::Sframe { receiver, .. } => match receiver.decrypt(since_start, data) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.stats.decrypt_failures = self.stats.decrypt_failures.saturating_add(1);
                    tracing::debug!(error = %e, "media frame does not decrypt; dropped");
                    None
                }
            },
            FrameProtection::Plain => Some(data.to_vec()),
        };
        self.recent.push_back(plain.is_some());
        if self.recent.len() > 25 {
            self.recent.pop_front();
        }
        let Some(plain) = plain else { return };
        let mut pcm = vec![0i16; FRAME_SAMPLES];
        match self.decoder.decode(&plain, &mut pcm, false) {
            Ok(n) => {
                pcm.truncate(n);
                self.stats.frames_decoded = self.stats.frames_decoded.saturating_add(1);
                self.out.push_back(PeerOutput::Audio(pcm));
            }
            Err(e) => tracing::debug!(error = %e, "undecodable audio frame dropped"),
        }
    }

    /// Drains str0m's outputs after a mutation (its one invariant).
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => self.out.push_back(PeerOutput::Transmit {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                }),
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.out.push_back(PeerOutput::Connected);
                    }
                    Event::MediaAdded(m) if m.kind == MediaKind::Audio => {
                        self.mid.get_or_insert(m.mid);
                    }
                    Event::MediaData(d) => self.on_frame(&d.data),
                    Event::Closed => {
                        self.connected = false;
                        self.out.push_back(PeerOutput::Closed);
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::warn!(error = %e, "peer connection failed");
                    self.connected = false;
                    self.out.push_back(PeerOutput::Closed);
                    break;
                }
            }
        }
    }
}

//! Two media peers: tones both ways, decoded and detected on the far side; the frames in between
//! are SFrame ciphertext (they do not decode without the key, and do with it); a wrong key gives
//! no audio and a "cannot decrypt" state, not a crash. First with the sans-IO core and virtual
//! time, then through the UDP shell on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callvault_crypto::callkeys::{CallKeys, EphemeralKey, Role};
use callvault_crypto::frame::{DEFAULT_GRACE, FrameDecryptor};
use callvault_media::audio::{AudioSource, tone_share};
use callvault_media::peer::{FrameProtection, MediaPeer, MediaState, PeerOutput};
use callvault_protocol::{CallId, Guid};

fn keys() -> (CallKeys, CallKeys) {
    let call = CallId::from_bytes([9; 16]);
    let (a, b) = (Guid::from_public_key(&[1; 32]), Guid::from_public_key(&[2; 32]));
    let (ka, kb) = (EphemeralKey::generate(), EphemeralKey::generate());
    let (pa, pb) = (ka.public(), kb.public());
    (ka.agree(Role::Caller, &call, &a, &b, &pb).unwrap(), kb.agree(Role::Callee, &call, &a, &b, &pa).unwrap())
}

struct Side {
    peer: MediaPeer,
    addr: SocketAddr,
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
    heard: Vec<i16>,
    source: AudioSource,
}

impl Side {
    fn new(now: Instant, protection: FrameProtection, addr: &str, freq: f64) -> Self {
        let mut peer = MediaPeer::new(now, protection).unwrap();
        let addr: SocketAddr = addr.parse().unwrap();
        peer.add_host_candidate(addr).unwrap();
        Self { peer, addr, inbox: VecDeque::new(), heard: Vec::new(), source: AudioSource::tone(freq) }
    }
}

/// Moves outputs between the two sides: transmits into the other's inbox, audio into `heard`.
fn shuttle(from: &mut Side, to: &mut Side) {
    while let Some(o) = from.peer.poll_output() {
        match o {
            PeerOutput::Transmit { destination, contents, source } => {
                assert_eq!(destination, to.addr);
                to.inbox.push_back((source, contents));
            }
            PeerOutput::Audio(pcm) => from.heard.extend(pcm),
            PeerOutput::Connected | PeerOutput::Closed => {}
        }
    }
}

/// Runs both sides for `secs` of virtual time in 5 ms steps, sending audio every 20 ms.
fn run(a: &mut Side, b: &mut Side, start: Instant, secs: u64) {
    let mut t = start;
    let end = start + Duration::from_secs(secs);
    let mut step = 0u64;
    while t < end {
        t += Duration::from_millis(5);
        step += 1;
        tick(a, b, t, step);
        tick(b, a, t, step);
    }
}

fn tick(me: &mut Side, other: &mut Side, t: Instant, step: u64) {
    while let Some((src, bytes)) = me.inbox.pop_front() {
        me.peer.handle_receive(t, src, me.addr, &bytes).unwrap();
    }
    if me.peer.next_timeout() <= t {
        me.peer.handle_timeout(t).unwrap();
    }
    if step.is_multiple_of(4) {
        let f = me.source.next_frame();
        me.peer.send_audio(t, &f).unwrap();
    }
    shuttle(me, other);
}

fn negotiate(a: &mut Side, b: &mut Side) {
    let offer = a.peer.create_offer().unwrap();
    assert!(offer.contains("opus"), "{offer}");
    let answer = b.peer.accept_offer(&offer).unwrap();
    a.peer.accept_answer(&answer).unwrap();
}

#[test]
fn tones_cross_both_ways_encrypted_and_the_wire_frames_are_ciphertext() {
    let start = Instant::now();
    let (ka, kb) = keys();
    let mut a = Side::new(start, FrameProtection::from_keys(&ka).unwrap(), "10.0.0.1:5000", 440.0);
    let mut b = Side::new(start, FrameProtection::from_keys(&kb).unwrap(), "10.0.0.2:6000", 880.0);
    b.peer.capture_received_frames();
    negotiate(&mut a, &mut b);
    run(&mut a, &mut b, start, 4);
    assert!(a.peer.is_connected() && b.peer.is_connected());
    assert_eq!(a.peer.state(), MediaState::Flowing);
    // Skip the first half second (the decoder settling), then look for the tones.
    let tail = |v: &[i16]| v[v.len().min(24_000)..].to_vec();
    let (heard_a, heard_b) = (tail(&a.heard), tail(&b.heard));
    assert!(heard_b.len() > 48_000, "b decoded {} samples", heard_b.len());
    assert!(tone_share(&heard_b, 440.0) > 0.5, "440 Hz at b: {}", tone_share(&heard_b, 440.0));
    assert!(tone_share(&heard_b, 880.0) < 0.05);
    assert!(tone_share(&heard_a, 880.0) > 0.5, "880 Hz at a: {}", tone_share(&heard_a, 880.0));
    assert!(tone_share(&heard_a, 440.0) < 0.05);
    assert_eq!(b.peer.stats().decrypt_failures, 0);

    // The frames b received, as anything terminating the transport would see them: SFrame
    // ciphertext. Decoded as Opus without the key they carry no tone; with the key they do.
    let frames = b.peer.take_captured_frames();
    assert!(frames.len() > 100);
    let mut blind = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut keyed = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut receiver = FrameDecryptor::new(DEFAULT_GRACE);
    receiver.add_key(Duration::ZERO, kb.recv_base_key(), kb.recv_key_id(), |_| false).unwrap();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for f in &frames[25..] {
        let mut pcm = [0i16; 960];
        if let Ok(n) = blind.decode(f, &mut pcm, false) {
            without.extend_from_slice(&pcm[..n]);
        }
        let plain = receiver.decrypt(Duration::ZERO, f).unwrap();
        let n = keyed.decode(&plain, &mut pcm, false).unwrap();
        with.extend_from_slice(&pcm[..n]);
    }
    assert!(tone_share(&with, 440.0) > 0.5);
    assert!(tone_share(&without, 440.0) < 0.05, "ciphertext decoded to the tone: {}", tone_share(&without, 440.0));
}

#[test]
fn a_wrong_key_gives_no_audio_and_a_cannot_decrypt_state() {
    let start = Instant::now();
    let (ka, _) = keys();
    let (_, stranger) = keys();
    let mut a = Side::new(start, FrameProtection::from_keys(&ka).unwrap(), "10.0.0.1:5000", 440.0);
    let mut b = Side::new(start, FrameProtection::from_keys(&stranger).unwrap(), "10.0.0.2:6000", 880.0);
    negotiate(&mut a, &mut b);
    run(&mut a, &mut b, start, 3);
    assert!(b.peer.is_connected());
    assert!(b.heard.is_empty() && a.heard.is_empty(), "nothing decodes");
    assert!(b.peer.stats().decrypt_failures > 50);
    assert_eq!(b.peer.stats().frames_decoded, 0);
    assert_eq!(b.peer.state(), MediaState::CannotDecrypt);
    assert_eq!(a.peer.state(), MediaState::CannotDecrypt);
}

#[test]
fn junk_datagrams_and_bad_sdp_are_refused_without_harm() {
    let start = Instant::now();
    let (ka, kb) = keys();
    let mut a = Side::new(start, FrameProtection::from_keys(&ka).unwrap(), "10.0.0.1:5000", 440.0);
    let mut b = Side::new(start, FrameProtection::from_keys(&kb).unwrap(), "10.0.0.2:6000", 880.0);
    assert!(b.peer.accept_offer("v=0 not sdp").is_err());
    assert!(a.peer.accept_answer("v=0").is_err(), "an answer before any offer");
    assert!(a.peer.add_remote_candidate("candidate:garbage").is_err());
    negotiate(&mut a, &mut b);
    for junk in [&b""[..], &[0xff; 10][..], &[0x80; 3][..], &[1, 2, 3, 4, 5][..]] {
        b.peer.handle_receive(start, "10.9.9.9:1".parse().unwrap(), b.addr, junk).unwrap();
    }
    run(&mut a, &mut b, start, 3);
    assert!(b.peer.stats().junk_datagrams >= 2);
    assert!(tone_share(&b.heard[b.heard.len().min(24_000)..], 440.0) > 0.5);
}

#[tokio::test]
async fn the_udp_shell_carries_tones_over_loopback() {
    use callvault_media::shell;
    let (ka, kb) = keys();
    let now = Instant::now();
    let mut a = MediaPeer::new(now, FrameProtection::from_keys(&ka).unwrap()).unwrap();
    let mut b = MediaPeer::new(now, FrameProtection::from_keys(&kb).unwrap()).unwrap();
    let ip = "127.0.0.1".parse().unwrap();
    let sa = shell::bind_host(&mut a, ip).await.unwrap();
    let sb = shell::bind_host(&mut b, ip).await.unwrap();
    let offer = a.create_offer().unwrap();
    let answer = b.accept_offer(&offer).unwrap();
    a.accept_answer(&answer).unwrap();
    let stop = || tokio::time::sleep(Duration::from_secs(3));
    let tone = |f: f64| {
        let mut src = AudioSource::tone(f);
        move || src.next_frame()
    };
    let mut heard_a = Vec::new();
    let mut heard_b = Vec::new();
    let (ea, eb) = tokio::join!(
        shell::run(a, sa, tone(440.0), stop(), |pcm| heard_a.extend_from_slice(pcm), shell::no_candidates()),
        shell::run(b, sb, tone(880.0), stop(), |pcm| heard_b.extend_from_slice(pcm), shell::no_candidates()),
    );
    let (ea, eb) = (ea.unwrap(), eb.unwrap());
    assert!(ea.stats.frames_decoded > 50 && eb.stats.frames_decoded > 50, "{ea:?} {eb:?}");
    let tail = |v: &[i16]| v[v.len().min(24_000)..].to_vec();
    assert!(tone_share(&tail(&heard_b), 440.0) > 0.5);
    assert!(tone_share(&tail(&heard_a), 880.0) > 0.5);
}

#[test]
fn a_thousand_hostile_datagrams_do_not_disturb_a_call() {
    let start = Instant::now();
    let (ka, kb) = keys();
    let mut a = Side::new(start, FrameProtection::from_keys(&ka).unwrap(), "10.0.0.1:5000", 440.0);
    let mut b = Side::new(start, FrameProtection::from_keys(&kb).unwrap(), "10.0.0.2:6000", 880.0);
    negotiate(&mut a, &mut b);
    run(&mut a, &mut b, start, 1);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let stranger: SocketAddr = "10.6.6.6:666".parse().unwrap();
    for i in 0..1_000u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 300) as usize;
        let mut d: Vec<u8> = (0..len).map(|k| (seed >> (k % 56)) as u8).collect();
        // Lead with the first bytes of STUN (0-1), DTLS (20-63) and RTP/RTCP (128-191) too.
        if let Some(first) = d.first_mut() {
            *first = [0u8, 1, 22, 23, 128, 144, 200, (seed % 256) as u8][(i % 8) as usize];
        }
        // From a stranger, and forged as if from the peer.
        let from = if i % 2 == 0 { stranger } else { a.addr };
        b.peer.handle_receive(start + Duration::from_secs(1), from, b.addr, &d).unwrap();
    }
    let before = b.heard.len();
    run(&mut a, &mut b, start + Duration::from_secs(1), 2);
    assert!(b.peer.is_connected());
    assert!(b.heard.len() > before + 48_000, "audio kept flowing");
    assert!(tone_share(&b.heard[before..], 440.0) > 0.5);
}

//! The I/O around a [`MediaPeer`]: one UDP socket, the peer's timers, and a 20 ms audio clock.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::peer::{MediaError, MediaPeer, MediaState, MediaStats, PeerOutput};

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Counters at the end.
    pub stats: MediaStats,
    /// The state at the end.
    pub state: MediaState,
}

/// Binds a UDP socket on `ip` (port chosen by the system) and adds it as a host candidate.
pub async fn bind_host(peer: &mut MediaPeer, ip: std::net::IpAddr) -> Result<UdpSocket, MediaError> {
    let socket = UdpSocket::bind((ip, 0)).await.map_err(|e| MediaError::Rtc(e.to_string()))?;
    let addr = socket.local_addr().map_err(|e| MediaError::Rtc(e.to_string()))?;
    peer.add_host_candidate(addr)?;
    Ok(socket)
}

/// Candidates for a session whose peer trickles none (every candidate in its SDP).
pub fn no_candidates() -> mpsc::Receiver<String> {
    mpsc::channel(1).1
}

/// Adds a remote candidate the peer trickled during the session; a bad one is dropped.
pub(crate) fn add_trickled(peer: &mut MediaPeer, line: &str) {
    if let Err(e) = peer.add_remote_candidate(line) {
        tracing::debug!(error = %e, "a trickled candidate refused");
    }
}

async fn flush(peer: &mut MediaPeer, socket: &UdpSocket, on_audio: &mut impl FnMut(&[i16])) -> bool {
    while let Some(o) = peer.poll_output() {
        match o {
            PeerOutput::Transmit { destination, contents, .. } => {
                if let Err(e) = socket.send_to(&contents, destination).await {
                    tracing::debug!(error = %e, "media datagram not sent");
                }
            }
            PeerOutput::Audio(pcm) => on_audio(&pcm),
            PeerOutput::Connected => tracing::debug!("media connected"),
            PeerOutput::Closed => return false,
        }
    }
    true
}

/// Runs the session until `stop` completes or the connection closes: once connected, sends the
/// frame `next_frame` gives every 20 ms; hands decoded far-end audio to `on_audio`; adds the
/// remote candidates that come on `candidates` (trickled by the peer after its SDP).
pub async fn run(
    mut peer: MediaPeer,
    socket: UdpSocket,
    mut next_frame: impl FnMut() -> Vec<i16>,
    stop: impl Future<Output = ()>,
    mut on_audio: impl FnMut(&[i16]),
    mut candidates: mpsc::Receiver<String>,
) -> Result<Ended, MediaError> {
    let local = socket.local_addr().map_err(|e| MediaError::Rtc(e.to_string()))?;
    let mut buf = vec![0u8; 2_048];
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut stop = std::pin::pin!(stop);
    let mut open = flush(&mut peer, &socket, &mut on_audio).await;
    while open {
        let wake = tokio::time::Instant::from_std(peer.next_timeout());
        tokio::select! {
            () = &mut stop => break,
            Some(line) = candidates.recv() => add_trickled(&mut peer, &line),
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    peer.handle_receive(Instant::now(), from, local, buf.get(..n).unwrap_or_default())?;
                }
            }
            () = tokio::time::sleep_until(wake) => peer.handle_timeout(Instant::now())?,
            _ = clock.tick() => {
                if peer.is_connected() {
                    let frame = next_frame();
                    peer.send_audio(Instant::now(), &frame)?;
                }
            }
        }
        open = flush(&mut peer, &socket, &mut on_audio).await;
    }
    peer.close();
    flush(&mut peer, &socket, &mut on_audio).await;
    Ok(Ended { stats: peer.stats(), state: peer.state() })
}

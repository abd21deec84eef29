//! Media benchmarks (`cargo bench -p callvault-media --bench media`): two peers in this process
//! over loopback UDP (real sockets, real timers, Opus, DTLS-SRTP):
//!
//! - mouth-to-ear latency: the sender marks one 20 ms frame a second with a loud 1 kHz burst in
//!   silence; the latency is from handing that frame to the encoder to the receiver decoding a
//!   frame whose energy crosses the threshold; with SFrame E2EE, without, and through a TURN relay
//!   (coturn on loopback);
//! - CPU per 1:1 audio call: process CPU time (user + system) over a 10 s call of both ends, per
//!   call (one end each side);
//! - setup to first decoded audio: from creating the offer to the first decoded far-end frame.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    missing_docs
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callvault_crypto::callkeys::{CallKeys, EphemeralKey, Role};
use callvault_gateway::TurnConfig;
use callvault_media::audio::FRAME_SAMPLES;
use callvault_media::peer::{FrameProtection, MediaPeer};
use callvault_media::shell;
use callvault_media::turn::{Relay, RelayConfig};
use callvault_protocol::{CallId, Guid};
use callvault_testkit::Coturn;

fn keys() -> (CallKeys, CallKeys) {
    let call = CallId::from_bytes([9; 16]);
    let (a, b) = (Guid::from_public_key(&[1; 32]), Guid::from_public_key(&[2; 32]));
    let (ka, kb) = (EphemeralKey::generate(), EphemeralKey::generate());
    let (pa, pb) = (ka.public(), kb.public());
    (ka.agree(Role::Caller, &call, &a, &b, &pb).unwrap(), kb.agree(Role::Callee, &call, &a, &b, &pa).unwrap())
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    E2ee,
    Plain,
    Relay,
}

fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

struct Run {
    latencies: Vec<Duration>,
    first_audio: Duration,
    cpu_per_call: f64,
}

async fn run(mode: Mode, secs: u64, coturn: Option<&Coturn>) -> Run {
    let (ka, kb) = keys();
    let protect = |k: &CallKeys| {
        if mode == Mode::Plain { FrameProtection::Plain } else { FrameProtection::from_keys(k).unwrap() }
    };
    let now = Instant::now();
    let mut a = MediaPeer::new(now, protect(&ka)).unwrap();
    let mut b = MediaPeer::new(now, protect(&kb)).unwrap();
    let started = Instant::now();
    let marks: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let heard: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let mut first: Option<Duration> = None;
    let mut n = 0u64;
    let sent = marks.clone();
    let source = move || {
        n += 1;
        if n.is_multiple_of(50) {
            sent.lock().unwrap().push(Instant::now());
            (0..FRAME_SAMPLES)
                .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI / 48.0).sin() * 20_000.0) as i16)
                .collect()
        } else {
            vec![0; FRAME_SAMPLES]
        }
    };
    let got = heard.clone();
    let mut loud = false;
    let on_audio = |pcm: &[i16]| {
        first.get_or_insert_with(|| started.elapsed());
        let rms = (pcm.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / pcm.len().max(1) as f64).sqrt();
        if rms > 3_000.0 && !loud {
            got.lock().unwrap().push(Instant::now());
        }
        loud = rms > 3_000.0;
    };
    let quiet = |_: &[i16]| {};
    let silence = || vec![0i16; FRAME_SAMPLES];
    let stop = || tokio::time::sleep(Duration::from_secs(secs));
    let cpu0 = cpu_secs();
    match (mode, coturn) {
        (Mode::Relay, Some(c)) => {
            let turn = TurnConfig {
                stun_urls: vec![],
                turn_urls: c.urls(),
                secrets: vec!["bench-secret-0123456789".into()],
                ttl_secs: 600,
                relay_only: true,
            };
            let g = Guid::from_public_key(&[3; 32]);
            let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let config = || RelayConfig::from_credentials(&turn.credentials(&g, unix, true).unwrap()).unwrap();
            let (ra, rb) = (Relay::allocate(config()).await.unwrap(), Relay::allocate(config()).await.unwrap());
            a.add_relay_candidate(ra.relayed(), ra.local()).unwrap();
            b.add_relay_candidate(rb.relayed(), rb.local()).unwrap();
            let offer = a.create_offer().unwrap();
            let answer = b.accept_offer(&offer).unwrap();
            a.accept_answer(&answer).unwrap();
            let (x, y) = tokio::join!(
                callvault_media::turn::run_relayed(a, ra, source, stop(), quiet, shell::no_candidates()),
                callvault_media::turn::run_relayed(b, rb, silence, stop(), on_audio, shell::no_candidates()),
            );
            x.unwrap();
            y.unwrap();
        }
        _ => {
            let ip = "127.0.0.1".parse().unwrap();
            let (sa, sb) = (shell::bind_host(&mut a, ip).await.unwrap(), shell::bind_host(&mut b, ip).await.unwrap());
            let offer = a.create_offer().unwrap();
            let answer = b.accept_offer(&offer).unwrap();
            a.accept_answer(&answer).unwrap();
            let (x, y) = tokio::join!(
                shell::run(a, sa, source, stop(), quiet, shell::no_candidates()),
                shell::run(b, sb, silence, stop(), on_audio, shell::no_candidates())
            );
            x.unwrap();
            y.unwrap();
        }
    }
    let cpu = cpu_secs() - cpu0;
    let marks = marks.lock().unwrap().clone();
    let heard = heard.lock().unwrap().clone();
    let latencies: Vec<Duration> =
        marks.iter().zip(heard.iter()).map(|(s, r)| r.saturating_duration_since(*s)).collect();
    Run { latencies, first_audio: first.unwrap_or_default(), cpu_per_call: cpu / secs as f64 }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let coturn = Coturn::start(&["bench-secret-0123456789"]);
    rt.block_on(async {
        for (mode, name) in [(Mode::E2ee, "SFrame E2EE"), (Mode::Plain, "no E2EE"), (Mode::Relay, "E2EE via TURN")] {
            let r = run(mode, 10, Some(&coturn)).await;
            let mut l = r.latencies.clone();
            l.sort();
            assert!(l.len() >= 5, "{name}: only {} markers detected", l.len());
            let mut setups = Vec::new();
            for _ in 0..9 {
                setups.push(run(mode, 1, Some(&coturn)).await.first_audio);
            }
            setups.sort();
            println!(
                "{name:<14} mouth-to-ear p50 {:.1} ms max {:.1} ms ({} markers) | setup to first audio p50 {:.0} ms max {:.0} ms (9 calls) | CPU {:.2}% of a core per end",
                ms(l[l.len() / 2]),
                ms(*l.last().unwrap()),
                l.len(),
                ms(setups[4]),
                ms(setups[8]),
                r.cpu_per_call * 100.0 / 2.0,
            );
        }
    });
}

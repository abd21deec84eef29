//! Crypto costs: `cargo bench -p callvault-crypto --bench crypto`.
//!
//! - gift wrap and unwrap of one 512-byte call message; app-to-app seal and open of a 1 KB body;
//! - SFrame encrypt/decrypt throughput at 100 B, 1 KB and 10 KB next to raw AES-128-GCM of the same
//!   backend (the `aes-gcm` crate sframe's rust-crypto backend uses), with the ratio;
//! - MLS: the commit that adds the n-th member, and that member's join, for groups of 2, 8, 32.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use callvault_crypto::frame::{FrameDecryptor, FrameEncryptor};
use callvault_crypto::mls::MlsParticipant;
use callvault_crypto::{SecretIdentity, giftwrap, seal};
use callvault_protocol::CallId;
use callvault_protocol::fields::SignalType;

fn per_op(n: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..n.min(100) {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed() / n
}

fn mib_s(bytes: usize, per: Duration) -> f64 {
    bytes as f64 / per.as_secs_f64() / (1024.0 * 1024.0)
}

fn envelopes() {
    let (a, b) = (SecretIdentity::generate(), SecretIdentity::generate());
    let now = 1_790_000_000;
    let msg = format!(r#"{{"type":"call.incoming","pad":"{}"}}"#, "x".repeat(480));
    let w = giftwrap::wrap(&a, &b.public(), &msg, now).unwrap();
    let wrap = per_op(300, || {
        black_box(giftwrap::wrap(&a, &b.public(), &msg, now).unwrap());
    });
    let unwrap = per_op(300, || {
        black_box(giftwrap::unwrap(&b, w.as_bytes(), now).unwrap());
    });
    println!("gift wrap   512 B message   wrap {:>8.1?}   unwrap {:>8.1?}", wrap, unwrap);
    // As a vault does it: the seal layer's conversation key kept per peer.
    let (ka, kb) = (giftwrap::SealKeys::new(), giftwrap::SealKeys::new());
    let wrap = per_op(300, || {
        black_box(giftwrap::wrap_with(&ka, &a, &b.public(), &msg, now).unwrap());
    });
    let unwrap = per_op(300, || {
        black_box(giftwrap::unwrap_with(&kb, &b, w.as_bytes(), now).unwrap());
    });
    println!("gift wrap   512 B, seal keys kept   wrap {:>8.1?}   unwrap {:>8.1?}", wrap, unwrap);
    let call = CallId::from_bytes([1; 16]);
    let body = vec![7u8; 1024];
    let p = seal::seal_signal(&a, &b.public(), &call, SignalType::Offer, &body).unwrap();
    let s = per_op(500, || {
        black_box(seal::seal_signal(&a, &b.public(), &call, SignalType::Offer, &body).unwrap());
    });
    let o = per_op(500, || {
        black_box(seal::open_signal(&b, &a.public(), &call, SignalType::Offer, &p).unwrap());
    });
    println!("app seal    1 KB body       seal {:>8.1?}   open   {:>8.1?}", s, o);
}

fn frames() {
    let aead = Aes128Gcm::new_from_slice(&[3u8; 16]).unwrap();
    for size in [100usize, 1024, 10 * 1024] {
        let n = (20_000_000 / size.max(100)) as u32;
        let payload = vec![0x5au8; size];
        let mut enc = FrameEncryptor::new(&[1; 32], 0).unwrap();
        let frame = enc.encrypt(&payload).unwrap();
        let mut dec = FrameDecryptor::default();
        dec.add_key(Duration::ZERO, &[1; 32], 0, |_| false).unwrap();
        let mut out = Vec::with_capacity(size + 64);
        let sf_enc = per_op(n, || {
            enc.encrypt_into(&payload, &mut out).unwrap();
            black_box(&out);
        });
        let sf_dec = per_op(n, || {
            dec.decrypt_into(Duration::ZERO, &frame, &mut out).unwrap();
            black_box(&out);
        });
        let mut counter = 0u64;
        let mut buf = Vec::with_capacity(size + 16);
        let raw_enc = per_op(n, || {
            counter += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&counter.to_be_bytes());
            buf.clear();
            buf.extend_from_slice(&payload);
            aead.encrypt_in_place(&Nonce::from(nonce), b"hdr", &mut buf).unwrap();
            black_box(&buf);
        });
        let mut sealed = payload.clone();
        aead.encrypt_in_place(&Nonce::from([0u8; 12]), b"hdr", &mut sealed).unwrap();
        let raw_dec = per_op(n, || {
            buf.clear();
            buf.extend_from_slice(&sealed);
            aead.decrypt_in_place(&Nonce::from([0u8; 12]), b"hdr", &mut buf).unwrap();
            black_box(&buf);
        });
        // The sframe crate's own path (it keys AES for every frame), for comparison.
        let crate_key =
            sframe::key::EncryptionKey::derive_from(callvault_crypto::frame::SUITE, 0u64, [1u8; 32]).unwrap();
        let mut crate_counter = sframe::frame::MonotonicCounter::default();
        let crate_enc = per_op(n, || {
            let m = sframe::frame::MediaFrameView::try_new(&mut crate_counter, &payload).unwrap();
            m.encrypt_into(&crate_key, &mut out).unwrap();
            black_box(&out);
        });
        println!(
            "sframe {size:>6} B   sframe crate encrypt {:>7.1} MiB/s (ratio to raw {:.2})",
            mib_s(size, crate_enc),
            raw_enc.as_secs_f64() / crate_enc.as_secs_f64()
        );
        println!(
            "sframe {size:>6} B   encrypt {:>7.1} MiB/s (raw AES-GCM {:>7.1}, ratio {:.2})   decrypt {:>7.1} MiB/s (raw {:>7.1}, ratio {:.2})",
            mib_s(size, sf_enc),
            mib_s(size, raw_enc),
            raw_enc.as_secs_f64() / sf_enc.as_secs_f64(),
            mib_s(size, sf_dec),
            mib_s(size, raw_dec),
            raw_dec.as_secs_f64() / sf_dec.as_secs_f64(),
        );
    }
}

fn mls() {
    for size in [2usize, 8, 32] {
        let mut creator = MlsParticipant::new(b"member-0").unwrap();
        creator.create_group(b"bench").unwrap();
        let mut others = Vec::new();
        for i in 1..size - 1 {
            let mut m = MlsParticipant::new(format!("member-{i}").as_bytes()).unwrap();
            let c = creator.add(&[m.key_package().unwrap()]).unwrap();
            for o in &mut others {
                let o: &mut MlsParticipant = o;
                o.process(&c.commit).unwrap();
            }
            m.join(c.welcome.as_ref().unwrap()).unwrap();
            others.push(m);
        }
        let mut last = MlsParticipant::new(format!("member-{}", size - 1).as_bytes()).unwrap();
        let kp = last.key_package().unwrap();
        let t = Instant::now();
        let c = creator.add(&[kp]).unwrap();
        let commit = t.elapsed();
        let t = Instant::now();
        last.join(c.welcome.as_ref().unwrap()).unwrap();
        let join = t.elapsed();
        let process = others.first_mut().map(|o| {
            let t = Instant::now();
            o.process(&c.commit).unwrap();
            format!("{:.2?}", t.elapsed())
        });
        assert_eq!(last.member_count(), size);
        println!(
            "mls group of {size:>2}   add-member commit {commit:>9.2?}   join {join:>9.2?}   others process the commit {}",
            process.unwrap_or_else(|| "(no other member)".into())
        );
    }
}

fn main() {
    envelopes();
    frames();
    mls();
}

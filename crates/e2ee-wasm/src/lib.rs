//! End-to-end encryption for the browser client, compiled to `wasm32-unknown-unknown` and run in
//! the page's E2EE worker (`web/src/e2ee-worker.js`): the 1:1 call keys (X25519 + HKDF + SAS) and
//! SFrame on every encoded frame, from the same `callvault-crypto` code the Rust client runs.
//!
//! ABI (i32 everywhere; no imports, so the module needs no JS glue):
//!
//! 1. `cv_in(len)` returns the address of an input buffer of `len` bytes; the host writes there;
//! 2. an operation (`cv_keys`, `cv_encrypt`, `cv_decrypt`) reads it and returns the output's length
//!    (negative: failed);
//! 3. `cv_out()` returns the output's address.
//!
//! `cv_keys` takes and gives JSON: `{"op":"new","random":"<64 hex>"}` makes this side's ephemeral
//! key from 32 bytes of `crypto.getRandomValues` and answers `{"public":"<base64>"}`;
//! `{"op":"agree","role":"caller"|"callee","peer":"<base64>","call_id","caller","callee"}` derives
//! the call keys and answers `{"sas":"..."}`. `"tamper":true` corrupts the receive key (tests of
//! the "cannot decrypt" state).
//!
//! `cv_identity` takes and gives JSON too, for the page's identity (see [`identity`]), each with
//! `"secret"` (64 hex): `{"op":"public"}` answers `{"public","guid"}`; `{"op":"sign","aux",
//! "created_at","kind","tags","content"}` answers the signed event; `{"op":"encrypt","peer",
//! "nonce","plaintext"}` answers `{"payload"}` (NIP-44 v2); `{"op":"decrypt","peer","payload"}`
//! answers `{"plaintext"}`. `aux` and `nonce` are 32 fresh random bytes (64 hex) from the page.
//! Key files (the CLI's `id export` format, [`callvault_crypto::keyfile`]): `{"op":"seal_key",
//! "secret","passphrase","salt","nonce"}` (16 and 24 fresh random bytes in hex) answers
//! `{"file"}` (base64); `{"op":"open_key","file","passphrase"}` (no secret) answers `{"secret",
//! "public","guid"}`.
//!
//! Frames: `kind` 0 is audio (all of it encrypted), 1 a video key frame and 2 a video delta frame,
//! whose first 10 and 3 bytes (the VP8 payload header the browser's packetizer reads) stay in clear
//! and are authenticated as SFrame metadata.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use callvault_crypto::callkeys::{CallKeys, EphemeralKey, Role};
use callvault_crypto::frame::{DEFAULT_GRACE, FrameDecryptor, FrameEncryptor};
use callvault_crypto::keyfile::{self, KdfParams, KeyKind};
use callvault_protocol::{CallId, Guid};
use serde_json::{Value, json};

pub mod identity;

/// The shortest passphrase a key file is sealed under (the CLI's `id export` asks the same).
pub const MIN_PASSPHRASE_CHARS: usize = 8;

struct State {
    pending: Option<EphemeralKey>,
    sender: Option<FrameEncryptor>,
    receiver: Option<FrameDecryptor>,
}

static INPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static OUTPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static STATE: Mutex<State> = Mutex::new(State { pending: None, sender: None, receiver: None });

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn address(buf: &mut [u8]) -> i32 {
    buf.as_mut_ptr().addr() as i32
}

fn answer(bytes: Vec<u8>) -> i32 {
    let mut out = lock(&OUTPUT);
    *out = bytes;
    i32::try_from(out.len()).unwrap_or(-1)
}

fn input(len: i32) -> Vec<u8> {
    let input = lock(&INPUT);
    let used = usize::try_from(len).unwrap_or(0).min(input.len());
    input.get(..used).unwrap_or_default().to_vec()
}

/// Makes the input buffer `len` bytes long; returns its address.
#[allow(unsafe_code)] // the export needs its symbol name; no unsafe block anywhere
#[unsafe(no_mangle)]
pub extern "C" fn cv_in(len: i32) -> i32 {
    let mut input = lock(&INPUT);
    input.clear();
    input.resize(usize::try_from(len).unwrap_or(0), 0);
    address(&mut input)
}

/// The address of the last output.
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_out() -> i32 {
    address(&mut lock(&OUTPUT))
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    hex_n(s)
}

fn hex_n<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N.checked_mul(2)? {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i.checked_mul(2)?..i.checked_mul(2)?.checked_add(2)?)?, 16).ok()?;
    }
    Some(out)
}

/// Key operations on JSON (see the crate documentation).
pub fn keys(request: &Value) -> Result<Value, String> {
    let text = |f: &str| request.get(f).and_then(Value::as_str).ok_or_else(|| format!("missing {f}"));
    let mut state = lock(&STATE);
    match text("op")? {
        "new" => {
            let random = hex32(text("random")?).ok_or("random: 64 hex characters")?;
            let key = EphemeralKey::from_random_bytes(random);
            let public = STANDARD.encode(key.public());
            state.pending = Some(key);
            Ok(json!({"public": public}))
        }
        "agree" => {
            let role = match text("role")? {
                "caller" => Role::Caller,
                "callee" => Role::Callee,
                _ => return Err("role: caller or callee".into()),
            };
            let peer: [u8; 32] = STANDARD
                .decode(text("peer")?)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or("peer: 32 bytes of base64")?;
            let call = CallId::parse(text("call_id")?).map_err(|e| e.to_string())?;
            let caller = Guid::parse(text("caller")?).map_err(|e| e.to_string())?;
            let callee = Guid::parse(text("callee")?).map_err(|e| e.to_string())?;
            let key = state.pending.take().ok_or("no key: run op new first")?;
            let keys: CallKeys = key.agree(role, &call, &caller, &callee, &peer).map_err(|e| e.to_string())?;
            let mut recv_key = *keys.recv_base_key();
            if request.get("tamper").and_then(Value::as_bool) == Some(true) {
                recv_key[0] ^= 0xff;
            }
            state.sender =
                Some(FrameEncryptor::new(keys.send_base_key(), keys.send_key_id()).map_err(|e| e.to_string())?);
            let mut receiver = FrameDecryptor::new(DEFAULT_GRACE);
            receiver.add_key(Duration::ZERO, &recv_key, keys.recv_key_id(), |_| false).map_err(|e| e.to_string())?;
            state.receiver = Some(receiver);
            Ok(json!({"sas": keys.sas().to_string()}))
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

/// Runs a key operation; the output is JSON (`{"error":...}` on failure).
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_keys(len: i32) -> i32 {
    let out = serde_json::from_slice::<Value>(&input(len))
        .map_err(|e| e.to_string())
        .and_then(|v| keys(&v))
        .unwrap_or_else(|e| json!({"error": e}));
    answer(out.to_string().into_bytes())
}

/// Identity operations on JSON (see the crate documentation).
pub fn identity_op(request: &Value) -> Result<Value, String> {
    let text = |f: &str| request.get(f).and_then(Value::as_str).ok_or_else(|| format!("missing {f}"));
    let key =
        |f: &str| -> Result<[u8; 32], String> { hex32(text(f)?).ok_or_else(|| format!("{f}: 64 hex characters")) };
    let e = |e: identity::IdentityError| e.to_string();
    if text("op")? == "open_key" {
        let file = STANDARD.decode(text("file")?).map_err(|_| "file: base64")?;
        let secret = keyfile::open_secret(&file, KeyKind::User, text("passphrase")?).map_err(|e| e.to_string())?;
        let public = identity::public_key(&secret).map_err(e)?;
        return Ok(json!({
            "secret": identity::hex(secret.as_slice()),
            "public": identity::hex(&public),
            "guid": Guid::from_public_key(&public).to_string(),
        }));
    }
    let secret = zeroize::Zeroizing::new(key("secret")?);
    match text("op")? {
        "seal_key" => {
            let passphrase = text("passphrase")?;
            if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
                return Err(format!("the passphrase needs {MIN_PASSPHRASE_CHARS} characters or more"));
            }
            identity::public_key(&secret).map_err(e)?;
            let salt: [u8; 16] = hex_n(text("salt")?).ok_or("salt: 32 hex characters")?;
            let nonce: [u8; 24] = hex_n(text("nonce")?).ok_or("nonce: 48 hex characters")?;
            let file = keyfile::seal_secret(&secret, KeyKind::User, passphrase, KdfParams::RECOMMENDED, &salt, &nonce)
                .map_err(|e| e.to_string())?;
            Ok(json!({"file": STANDARD.encode(file)}))
        }
        "public" => {
            let public = identity::public_key(&secret).map_err(e)?;
            Ok(json!({"public": identity::hex(&public), "guid": Guid::from_public_key(&public).to_string()}))
        }
        "sign" => {
            let created_at = request.get("created_at").and_then(Value::as_u64).ok_or("created_at: seconds")?;
            let kind = request
                .get("kind")
                .and_then(Value::as_u64)
                .and_then(|k| u16::try_from(k).ok())
                .ok_or("kind: 0..=65535")?;
            let tags: Vec<Vec<String>> = serde_json::from_value(request.get("tags").cloned().unwrap_or(json!([])))
                .map_err(|_| "tags: an array of arrays of strings")?;
            identity::sign_event(&secret, created_at, kind, &tags, text("content")?, &key("aux")?).map_err(e)
        }
        "encrypt" => {
            let ck = identity::conversation_key(&secret, &key("peer")?).map_err(e)?;
            Ok(json!({"payload": identity::encrypt(&ck, &key("nonce")?, text("plaintext")?).map_err(e)?}))
        }
        "decrypt" => {
            let ck = identity::conversation_key(&secret, &key("peer")?).map_err(e)?;
            Ok(json!({"plaintext": identity::decrypt(&ck, text("payload")?).map_err(e)?}))
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

/// Runs an identity operation; the output is JSON (`{"error":...}` on failure).
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_identity(len: i32) -> i32 {
    let input = zeroize::Zeroizing::new(input(len));
    let out = serde_json::from_slice::<Value>(&input)
        .map_err(|e| e.to_string())
        .and_then(|v| identity_op(&v))
        .unwrap_or_else(|e| json!({"error": e}));
    answer(out.to_string().into_bytes())
}

fn clear_len(kind: i32, len: usize) -> usize {
    match kind {
        1 => 10usize.min(len),
        2 => 3usize.min(len),
        _ => 0,
    }
}

/// Encrypts a frame of `kind`.
pub fn encrypt(frame: &[u8], kind: i32) -> Option<Vec<u8>> {
    let mut state = lock(&STATE);
    let sender = state.sender.as_mut()?;
    let (clear, rest) = frame.split_at(clear_len(kind, frame.len()));
    let sealed = sender.encrypt_with_metadata(rest, clear).ok()?;
    let mut out = Vec::with_capacity(clear.len().saturating_add(sealed.len()));
    out.extend_from_slice(clear);
    out.extend_from_slice(&sealed);
    Some(out)
}

/// Decrypts a frame of `kind`.
pub fn decrypt(frame: &[u8], kind: i32) -> Option<Vec<u8>> {
    let mut state = lock(&STATE);
    let receiver = state.receiver.as_mut()?;
    let (clear, rest) = frame.split_at(clear_len(kind, frame.len()));
    let plain = receiver.decrypt_with_metadata(Duration::ZERO, rest, clear).ok()?;
    let mut out = Vec::with_capacity(clear.len().saturating_add(plain.len()));
    out.extend_from_slice(clear);
    out.extend_from_slice(&plain);
    Some(out)
}

/// Encrypts the input frame; -1 without keys.
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_encrypt(len: i32, kind: i32) -> i32 {
    encrypt(&input(len), kind).map_or(-1, answer)
}

/// Decrypts the input frame; -1 when it does not authenticate (or without keys).
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_decrypt(len: i32, kind: i32) -> i32 {
    decrypt(&input(len), kind).map_or(-1, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(role: &str, peer: &str, tamper: bool) -> Value {
        keys(&json!({"op": "agree", "role": role, "peer": peer, "call_id": CallId::from_bytes([1; 16]).to_string(),
            "caller": Guid::from_public_key(&[1; 32]).to_string(), "callee": Guid::from_public_key(&[2; 32]).to_string(),
            "tamper": tamper}))
        .unwrap()
    }

    #[test]
    fn a_browser_side_interoperates_with_the_rust_media_keys() {
        // This module plays the callee; the Rust code (as the media crate runs it) the caller.
        let mine = keys(&json!({"op": "new", "random": "11".repeat(32)})).unwrap();
        let mine: [u8; 32] = STANDARD.decode(mine["public"].as_str().unwrap()).unwrap().try_into().unwrap();
        let rust = EphemeralKey::generate();
        let rust_public = STANDARD.encode(rust.public());
        let call = CallId::from_bytes([1; 16]);
        let (a, b) = (Guid::from_public_key(&[1; 32]), Guid::from_public_key(&[2; 32]));
        let rust_keys = rust.agree(Role::Caller, &call, &a, &b, &mine).unwrap();
        let got = agree("callee", &rust_public, false);
        assert_eq!(got["sas"], rust_keys.sas().to_string());
        // Rust encrypts audio, the module decrypts; and back.
        let mut enc = FrameEncryptor::new(rust_keys.send_base_key(), rust_keys.send_key_id()).unwrap();
        let frame = enc.encrypt_with_metadata(b"opus frame", b"").unwrap();
        assert_eq!(decrypt(&frame, 0).unwrap(), b"opus frame");
        let back = encrypt(b"opus answer", 0).unwrap();
        let mut dec = FrameDecryptor::new(DEFAULT_GRACE);
        dec.add_key(Duration::ZERO, rust_keys.recv_base_key(), rust_keys.recv_key_id(), |_| false).unwrap();
        assert_eq!(dec.decrypt(Duration::ZERO, &back).unwrap(), b"opus answer");
        // Video: the header stays readable and is authenticated.
        let video = encrypt(b"0123456789-payload", 1).unwrap();
        assert_eq!(&video[..10], b"0123456789");
        let mut tampered = video.clone();
        tampered[0] ^= 1;
        assert!(decrypt(&tampered, 1).is_none(), "the clear header is authenticated");
        // A tampered receive key: nothing decrypts.
        keys(&json!({"op": "new", "random": "22".repeat(32)})).unwrap();
        agree("callee", &rust_public, true);
        let frame = enc.encrypt_with_metadata(b"opus frame", b"").unwrap();
        assert!(decrypt(&frame, 0).is_none());
        // Bad requests are errors, not panics.
        assert!(keys(&json!({"op": "agree"})).is_err());
        assert!(keys(&json!({"op": "new", "random": "zz"})).is_err());
        assert!(keys(&json!({"op": "steal"})).is_err());
    }
}

//! Checking an app's signed challenge and signed HTTP requests.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use callvault_crypto::{PublicIdentity, verify_note};
use callvault_protocol::app::{AUTH_KIND, HTTP_AUTH_KIND};

/// How far a signed note's time may be from the server's.
pub const MAX_SKEW_SECS: u64 = 60;
/// Largest signed note taken.
pub const MAX_NOTE_BYTES: usize = 4 * 1024;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a verifiable note of the right kind.
    #[error("the note does not verify")]
    BadNote,
    /// Signed for another challenge (or request).
    #[error("the note answers another challenge")]
    WrongChallenge,
    /// Too old or from the future.
    #[error("the note's time is too far from the server's")]
    Stale,
    /// No or malformed `Authorization` header.
    #[error("no `Authorization: Nostr` header")]
    NoHeader,
}

fn fresh(created_at: u64, now: u64) -> bool {
    created_at.abs_diff(now) <= MAX_SKEW_SECS
}

/// A fresh random challenge: 32 bytes as hex.
pub fn new_challenge() -> String {
    let mut b = [0u8; 32];
    // The OS RNG failing is not survivable for a server: fall back to nothing would be worse.
    if getrandom::fill(&mut b).is_err() {
        tracing::error!("OS random number generator failed");
    }
    callvault_protocol::ids::lower_hex(&b)
}

/// Checks the app's answer to `challenge`; returns the signer.
pub fn verify_challenge(note: &str, challenge: &str, now: u64) -> Result<PublicIdentity, AuthError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(AuthError::BadNote);
    }
    let v = verify_note(note.as_bytes(), AUTH_KIND).map_err(|_| AuthError::BadNote)?;
    if v.content != challenge {
        return Err(AuthError::WrongChallenge);
    }
    if !fresh(v.created_at, now) {
        return Err(AuthError::Stale);
    }
    Ok(v.signer)
}

/// Signs a request for `Authorization: Nostr <base64 note>` as NIP-98 does: a note of kind
/// 27235 with tags `u` (the absolute URL, query included) and `method` (and a `nonce`), empty
/// content. Returns the header value.
pub fn http_authorization(
    id: &callvault_crypto::SecretIdentity,
    method: &str,
    url: &str,
    now: u64,
) -> Result<String, callvault_crypto::IdentityError> {
    // A nonce makes every note unique, so two requests within one second are not replays.
    let nonce = new_challenge();
    let note = id.sign_tagged_note(HTTP_AUTH_KIND, "", &[("u", url), ("method", method), ("nonce", &nonce)], now)?;
    Ok(format!("Nostr {}", STANDARD.encode(note)))
}

/// A checked signed HTTP request: who signed it, and the note's id and time (for the replay
/// check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The signer.
    pub signer: PublicIdentity,
    /// The note's id.
    pub note_id: String,
    /// When it was signed (Unix seconds).
    pub created_at: u64,
}

/// `http://` or `https://` stripped: the scheme is not compared (a TLS proxy in front changes
/// it); host, port, path and query are.
fn without_scheme(url: &str) -> Option<&str> {
    url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))
}

/// Checks `Authorization: Nostr <base64 note>` for a request of `method` to `target`
/// (`host[:port]/path?query` as the request named them): a note of kind 27235 whose `method`
/// tag is the method and whose `u` tag is the URL with that host, path and query, within
/// [`MAX_SKEW_SECS`]. The caller refuses a note id it has seen (replays).
pub fn verify_http(header: Option<&str>, method: &str, target: &str, now: u64) -> Result<SignedRequest, AuthError> {
    let b64 = header.and_then(|h| h.strip_prefix("Nostr ")).ok_or(AuthError::NoHeader)?;
    if b64.len() > MAX_NOTE_BYTES * 2 {
        return Err(AuthError::BadNote);
    }
    let json = STANDARD.decode(b64.trim()).map_err(|_| AuthError::NoHeader)?;
    let v = verify_note(&json, HTTP_AUTH_KIND).map_err(|_| AuthError::BadNote)?;
    if v.tag("method") != Some(method) || v.tag("u").and_then(without_scheme) != Some(target) {
        return Err(AuthError::WrongChallenge);
    }
    if !fresh(v.created_at, now) {
        return Err(AuthError::Stale);
    }
    Ok(SignedRequest { signer: v.signer, note_id: v.id, created_at: v.created_at })
}

/// Note ids of signed HTTP requests seen within the freshness window, to refuse a replay. Holds
/// at most `max` ids; when full of unexpired ones it refuses new requests rather than forget.
#[derive(Debug)]
pub struct SeenNotes {
    max: usize,
    seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// Why [`SeenNotes::first_use`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The note was used before.
    #[error("the signed request was used before")]
    Replayed,
    /// Too many signed requests within the window.
    #[error("too many signed requests; try again shortly")]
    Full,
}

impl SeenNotes {
    /// Remembers up to `max` notes.
    pub fn new(max: usize) -> Self {
        Self { max, seen: std::sync::Mutex::new(std::collections::HashMap::new()) }
    }

    /// Records the first use of a note; refuses any later one while it would still be fresh.
    pub fn first_use(&self, request: &SignedRequest, now: u64) -> Result<(), ReplayError> {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains_key(&request.note_id) {
            return Err(ReplayError::Replayed);
        }
        if seen.len() >= self.max {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.max {
                return Err(ReplayError::Full);
            }
        }
        seen.insert(request.note_id.clone(), request.created_at.saturating_add(MAX_SKEW_SECS));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callvault_crypto::SecretIdentity;

    #[test]
    fn a_challenge_answer_must_match_be_fresh_and_verify() {
        let id = SecretIdentity::generate();
        let c = new_challenge();
        assert_eq!(c.len(), 64);
        assert_ne!(c, new_challenge());
        let note = id.sign_note(AUTH_KIND, &c, 1_000).unwrap();
        assert_eq!(verify_challenge(&note, &c, 1_030), Ok(id.public()));
        assert_eq!(verify_challenge(&note, &new_challenge(), 1_000), Err(AuthError::WrongChallenge));
        assert_eq!(verify_challenge(&note, &c, 1_061), Err(AuthError::Stale));
        let wrong_kind = id.sign_note(1, &c, 1_000).unwrap();
        assert_eq!(verify_challenge(&wrong_kind, &c, 1_000), Err(AuthError::BadNote));
        let forged = note.replace(&c[..8], "00000000");
        assert_eq!(verify_challenge(&forged, &c, 1_000), Err(AuthError::BadNote));
    }

    #[test]
    fn http_requests_are_signed_for_their_method_and_full_url() {
        let id = SecretIdentity::generate();
        let url = "http://127.0.0.1:7700/calls/turn-credentials?relay_only=true";
        let h = http_authorization(&id, "GET", url, 500).unwrap();
        let target = "127.0.0.1:7700/calls/turn-credentials?relay_only=true";
        let ok = verify_http(Some(&h), "GET", target, 500).unwrap();
        assert_eq!(ok.signer, id.public());
        // Another query (relay_only flipped), path, host or method: refused.
        for other in [
            "127.0.0.1:7700/calls/turn-credentials?relay_only=false",
            "127.0.0.1:7700/calls/turn-credentials",
            "127.0.0.1:7700/metrics?relay_only=true",
            "evil.example:7700/calls/turn-credentials?relay_only=true",
        ] {
            assert_eq!(verify_http(Some(&h), "GET", other, 500), Err(AuthError::WrongChallenge), "{other}");
        }
        assert_eq!(verify_http(Some(&h), "POST", target, 500), Err(AuthError::WrongChallenge));
        assert_eq!(verify_http(Some(&h), "GET", target, 600), Err(AuthError::Stale));
        assert_eq!(verify_http(None, "GET", "/x", 500), Err(AuthError::NoHeader));
        assert_eq!(verify_http(Some("Bearer x"), "GET", "/x", 500), Err(AuthError::NoHeader));
        // https in the note is the same request (a TLS proxy in front).
        let tls = http_authorization(&id, "GET", &format!("https://{target}"), 500).unwrap();
        assert!(verify_http(Some(&tls), "GET", target, 500).is_ok());
        // A note is taken once.
        let seen = SeenNotes::new(2);
        assert_eq!(seen.first_use(&ok, 500), Ok(()));
        assert_eq!(seen.first_use(&ok, 510), Err(ReplayError::Replayed));
        let other = verify_http(Some(&tls), "GET", target, 500).unwrap();
        assert_eq!(seen.first_use(&other, 500), Ok(()));
        let third = verify_http(Some(&http_authorization(&id, "GET", url, 501).unwrap()), "GET", target, 501).unwrap();
        assert_eq!(seen.first_use(&third, 501), Err(ReplayError::Full));
        // Once the first ones are stale they are forgotten and room is made.
        assert_eq!(seen.first_use(&third, 600), Ok(()));
    }
}

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

/// The content an app signs for an HTTP request (NIP-98 in spirit: method and path, fresh).
pub fn http_request_content(method: &str, path: &str) -> String {
    format!("{method} {path}")
}

/// Checks `Authorization: Nostr <base64 note>` for `method path`; returns the signer.
pub fn verify_http(header: Option<&str>, method: &str, path: &str, now: u64) -> Result<PublicIdentity, AuthError> {
    let b64 = header.and_then(|h| h.strip_prefix("Nostr ")).ok_or(AuthError::NoHeader)?;
    if b64.len() > MAX_NOTE_BYTES * 2 {
        return Err(AuthError::BadNote);
    }
    let json = STANDARD.decode(b64.trim()).map_err(|_| AuthError::NoHeader)?;
    let v = verify_note(&json, HTTP_AUTH_KIND).map_err(|_| AuthError::BadNote)?;
    if v.content != http_request_content(method, path) {
        return Err(AuthError::WrongChallenge);
    }
    if !fresh(v.created_at, now) {
        return Err(AuthError::Stale);
    }
    Ok(v.signer)
}

/// The header value an app sends (used by the client SDK and tests).
pub fn http_header(signed_note: &str) -> String {
    format!("Nostr {}", STANDARD.encode(signed_note))
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
    fn http_requests_are_signed_for_their_method_and_path() {
        let id = SecretIdentity::generate();
        let content = http_request_content("GET", "/calls/turn-credentials");
        let h = http_header(&id.sign_note(HTTP_AUTH_KIND, &content, 500).unwrap());
        assert_eq!(verify_http(Some(&h), "GET", "/calls/turn-credentials", 500), Ok(id.public()));
        assert_eq!(verify_http(Some(&h), "GET", "/metrics", 500), Err(AuthError::WrongChallenge));
        assert_eq!(verify_http(Some(&h), "GET", "/calls/turn-credentials", 600), Err(AuthError::Stale));
        assert_eq!(verify_http(None, "GET", "/x", 500), Err(AuthError::NoHeader));
        assert_eq!(verify_http(Some("Bearer x"), "GET", "/x", 500), Err(AuthError::NoHeader));
    }
}

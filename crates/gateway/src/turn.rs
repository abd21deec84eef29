//! TURN credentials by the TURN REST scheme (draft-uberti-behave-turn-rest, as coturn's
//! `use-auth-secret` takes them): username `expiry:guid`, password base64 HMAC-SHA1 of the
//! username under a shared secret.
//!
//! Several secrets may be configured for rotation: credentials are made with the first, and
//! [`TurnConfig::verify`] (what a TURN server does) takes any of them. Configure the TURN server
//! with every secret while rotating.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use callvault_protocol::Guid;
use callvault_protocol::app::{IceServer, TurnCredentials};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// What `/calls/turn-credentials` hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// `stun:` URLs (left out in relay-only answers).
    pub stun_urls: Vec<String>,
    /// `turn:`/`turns:` URLs.
    pub turn_urls: Vec<String>,
    /// Shared secrets; the first signs.
    pub secrets: Vec<String>,
    /// Lifetime of credentials, seconds.
    pub ttl_secs: u64,
    /// Every answer is relay-only (for deployments whose users all hide their addresses).
    pub relay_only: bool,
}

/// Why credentials could not be made or do not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    /// No TURN server is configured.
    #[error("no TURN server is configured")]
    NotConfigured,
    /// The username is not `expiry:id`.
    #[error("malformed TURN username")]
    Malformed,
    /// The expiry has passed.
    #[error("TURN credentials expired")]
    Expired,
    /// No secret makes this password.
    #[error("TURN password does not match")]
    BadPassword,
}

fn password(secret: &str, username: &str) -> String {
    // HMAC takes keys of any length; the error arm cannot happen.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

impl TurnConfig {
    /// Credentials for `guid` at `now` (Unix seconds).
    pub fn credentials(&self, guid: &Guid, now: u64, relay_only: bool) -> Result<TurnCredentials, TurnError> {
        let secret = self.secrets.first().ok_or(TurnError::NotConfigured)?;
        if self.turn_urls.is_empty() {
            return Err(TurnError::NotConfigured);
        }
        let expiry = now.saturating_add(self.ttl_secs);
        let username = format!("{expiry}:{guid}");
        let credential = password(secret, &username);
        let relay_only = relay_only || self.relay_only;
        let mut ice_servers = Vec::new();
        if !relay_only && !self.stun_urls.is_empty() {
            ice_servers.push(IceServer { urls: self.stun_urls.clone(), username: None, credential: None });
        }
        ice_servers.push(IceServer {
            urls: self.turn_urls.clone(),
            username: Some(username),
            credential: Some(credential),
        });
        let expires_at = i64::try_from(expiry)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        Ok(TurnCredentials {
            ice_servers,
            expires_at,
            ice_transport_policy: if relay_only { "relay" } else { "all" }.to_owned(),
        })
    }

    /// Checks credentials as a TURN server with these secrets would.
    pub fn verify(&self, username: &str, pass: &str, now: u64) -> Result<(), TurnError> {
        let (expiry, _) = username.split_once(':').ok_or(TurnError::Malformed)?;
        let expiry: u64 = expiry.parse().map_err(|_| TurnError::Malformed)?;
        if expiry < now {
            return Err(TurnError::Expired);
        }
        if self.secrets.iter().any(|s| password(s, username) == pass) { Ok(()) } else { Err(TurnError::BadPassword) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TurnConfig {
        TurnConfig {
            stun_urls: vec!["stun:127.0.0.1:3478".into()],
            turn_urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            secrets: vec!["new".into(), "old".into()],
            ttl_secs: 3600,
            relay_only: false,
        }
    }

    #[test]
    fn password_is_base64_hmac_sha1_of_the_username() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        assert_eq!(password("Jefe", "what do ya want for nothing?"), "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    }

    #[test]
    fn credentials_follow_the_rest_scheme_and_rotate() {
        let g = Guid::from_public_key(&[3; 32]);
        let c = config().credentials(&g, 1_000, false).unwrap();
        assert_eq!(c.ice_servers.len(), 2);
        assert_eq!(c.ice_transport_policy, "all");
        let turn = &c.ice_servers[1];
        let user = turn.username.clone().unwrap();
        assert_eq!(user, format!("4600:{g}"));
        assert_eq!(c.expires_at, "1970-01-01T01:16:40Z");
        let pass = turn.credential.clone().unwrap();
        assert_eq!(config().verify(&user, &pass, 4_600), Ok(()));
        assert_eq!(config().verify(&user, &pass, 4_601), Err(TurnError::Expired));
        assert_eq!(config().verify(&user, "AAAA", 10), Err(TurnError::BadPassword));
        assert_eq!(config().verify("nocolon", &pass, 10), Err(TurnError::Malformed));
        // Made with the old secret: still taken while rotating.
        let old = password("old", &user);
        assert_eq!(config().verify(&user, &old, 10), Ok(()));
        let retired = TurnConfig { secrets: vec!["new".into()], ..config() };
        assert_eq!(retired.verify(&user, &old, 10), Err(TurnError::BadPassword));
    }

    #[test]
    fn relay_only_leaves_out_stun() {
        let g = Guid::from_public_key(&[3; 32]);
        let c = config().credentials(&g, 0, true).unwrap();
        assert_eq!(c.ice_servers.len(), 1);
        assert!(c.ice_servers[0].urls.iter().all(|u| u.starts_with("turn")));
        assert_eq!(c.ice_transport_policy, "relay");
        let forced = TurnConfig { relay_only: true, ..config() };
        assert_eq!(forced.credentials(&g, 0, false).unwrap().ice_transport_policy, "relay");
        let none = TurnConfig { secrets: vec![], ..config() };
        assert_eq!(none.credentials(&g, 0, false), Err(TurnError::NotConfigured));
    }
}

//! Invite tokens: how a user offers to become someone's connection (see the vault's invite flow,
//! `crates/vault/src/invite.rs`). A token is a Nostr note of kind [`INVITE_KIND`] signed by the
//! inviter's identity key, carrying the delegation of the inviter's vault key, a display name, where
//! the vault is reached, a one-time nonce and an expiry; shared out of band as `cvinv1_` + base64url.
//! Apps make them; vaults check them ([`InviteToken::open`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use callvault_protocol::fields::DisplayName;
use serde::{Deserialize, Serialize};

use crate::{Delegation, IdentityError, SecretIdentity, VerifiedDelegation, verify_note};

const TOKEN_PREFIX: &str = "cvinv1_";
/// Nostr kind of an invite token event.
pub const INVITE_KIND: u16 = 9_471;
/// Largest token accepted.
pub const MAX_TOKEN: usize = 16 * 1024;

/// What an invite says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// The delegation of the inviter's vault key (event JSON).
    pub delegation: String,
    /// How the inviter wants to be shown.
    pub display_name: DisplayName,
    /// Where the inviter's vault is reached.
    pub reach: String,
    /// One-time nonce (hex, 32 characters).
    pub nonce: String,
    /// Unix seconds after which the invite is void.
    pub expires_at: u64,
}

/// Why an invite was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Not a token, or a malformed one.
    #[error("malformed invite token")]
    Malformed,
    /// The signature or the delegation does not verify, or they disagree.
    #[error("invite signature or delegation does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("invite expired")]
    Expired,
    /// Not a pending invite of this vault (unknown, already used).
    #[error("no such pending invite")]
    NotPending,
    /// Signing failed.
    #[error("signing failed")]
    Signing,
}

/// A signed invite, shared out of band (a link, a QR code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteToken(String);

/// What a checked token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedInvite {
    /// The body.
    pub body: InviteBody,
    /// The inviter's delegation of its vault key.
    pub delegation: Delegation,
    /// What the delegation says (signer = the token's signer).
    pub verified: VerifiedDelegation,
}

impl InviteToken {
    /// The inviter's app signs an invite for its vault key (with `delegation`), valid `ttl_secs`.
    pub fn create(
        user: &SecretIdentity,
        delegation: &Delegation,
        display_name: DisplayName,
        reach: &str,
        nonce: [u8; 16],
        now: u64,
        ttl_secs: u64,
    ) -> Result<Self, InviteError> {
        let body = InviteBody {
            delegation: delegation.to_json(),
            display_name,
            reach: reach.to_owned(),
            nonce: callvault_protocol::ids::lower_hex(&nonce),
            expires_at: now.saturating_add(ttl_secs),
        };
        let content = serde_json::to_string(&body).map_err(|_| InviteError::Malformed)?;
        let note = user.sign_note(INVITE_KIND, &content, now).map_err(|_| InviteError::Signing)?;
        Ok(Self(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(note))))
    }

    /// Wraps a token string received out of band.
    pub fn parse(s: &str) -> Result<Self, InviteError> {
        if s.len() > MAX_TOKEN || !s.starts_with(TOKEN_PREFIX) {
            return Err(InviteError::Malformed);
        }
        Ok(Self(s.trim().to_owned()))
    }

    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks signature, delegation (same user, guid) and expiry at `now`.
    pub fn open(&self, now: u64) -> Result<OpenedInvite, InviteError> {
        let raw = self.0.strip_prefix(TOKEN_PREFIX).ok_or(InviteError::Malformed)?;
        let json = URL_SAFE_NO_PAD.decode(raw).map_err(|_| InviteError::Malformed)?;
        let note = verify_note(&json, INVITE_KIND).map_err(|e| match e {
            IdentityError::BadDelegationSignature => InviteError::BadSignature,
            _ => InviteError::Malformed,
        })?;
        let body: InviteBody = serde_json::from_str(&note.content).map_err(|_| InviteError::Malformed)?;
        if body.nonce.len() != 32 || !body.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InviteError::Malformed);
        }
        let delegation = Delegation::from_json(&body.delegation).map_err(|_| InviteError::Malformed)?;
        let verified = delegation.verify().map_err(|_| InviteError::BadSignature)?;
        if verified.user != note.signer {
            return Err(InviteError::BadSignature);
        }
        if now > body.expires_at {
            return Err(InviteError::Expired);
        }
        Ok(OpenedInvite { body, delegation, verified })
    }
}

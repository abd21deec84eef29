//! Invites: how two users become connections.
//!
//! 1. The inviter's app makes an [`InviteToken`] (signed by the inviter's identity key: guid, vault
//!    key with its delegation, display name, where the vault is reached, a one-time nonce, an
//!    expiry) and the inviter's vault records the pending nonce (`connections` bucket, key
//!    `invite.<nonce>`).
//! 2. The invitee's vault accepts the token: it verifies signature, delegation and expiry, stores
//!    the inviter as a connection, and sends the invitee's own token back to the inviter's vault,
//!    gift-wrapped to the vault key the token names, on `MessageSpace.{inviter}.connection.accept`,
//!    with the nonce.
//! 3. The inviter's vault accepts that message only for a pending, unexpired nonce (once), checks
//!    the returned token and that the seal is its vault key, stores the invitee as a connection
//!    and tells its app (`OwnerSpace.{guid}.forApp.connection.accepted`).

use callvault_crypto::PublicIdentity;
pub use callvault_crypto::invite::{INVITE_KIND, InviteBody, InviteError, InviteToken, MAX_TOKEN};
use callvault_protocol::Guid;
use serde::{Deserialize, Serialize};

use crate::connections::Connection;

/// A verified invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInvite {
    /// The inviter as a connection entry.
    pub connection: Connection,
    /// The inviter's vault key.
    pub vault_key: PublicIdentity,
    /// The one-time nonce.
    pub nonce: String,
    /// Expiry (Unix seconds).
    pub expires_at: u64,
}

/// Checking a token into the connection it offers.
pub trait Verify {
    /// Checks signature, delegation (same user, guid) and expiry at `now`.
    fn verify(&self, now: u64) -> Result<VerifiedInvite, InviteError>;
}

impl Verify for InviteToken {
    fn verify(&self, now: u64) -> Result<VerifiedInvite, InviteError> {
        let o = self.open(now)?;
        let connection = Connection::from_delegation(&o.delegation, o.body.display_name.clone(), &o.body.reach)
            .map_err(|_| InviteError::BadSignature)?;
        Ok(VerifiedInvite {
            vault_key: o.verified.vault,
            nonce: o.body.nonce,
            expires_at: o.body.expires_at,
            connection,
        })
    }
}

/// The message an invitee's vault sends back (inside a gift wrap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteAccepted {
    /// `connection.accept`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The nonce of the invite being accepted.
    pub nonce: String,
    /// The invitee's own signed token (its keys and name).
    pub token: String,
    /// The invitee's guid.
    pub from_guid: Guid,
}

/// A pending invite as the inviter's vault keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingInvite {
    /// Unix seconds after which it is void.
    pub expires_at: u64,
}

/// The `connections` key of a pending invite.
pub fn pending_key(nonce: &str) -> String {
    format!("invite.{nonce}")
}

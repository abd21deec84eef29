//! Invites: how two users become connections.
//!
//! 1. The inviter's app makes an [`InviteToken`] (signed by the inviter's identity key: guid, vault
//!    key with its delegation, display name, where the vault is reached, a one-time nonce, an
//!    expiry) and the inviter's vault records the pending invite (`connection.invite`: the
//!    `connection` family's entity `invite-<nonce>`, with a timer at its expiry).
//! 2. The invitee's vault accepts the token (`connection.connect`): the kernel checks signature,
//!    delegation and expiry, the family stores the inviter as a connection and sends the
//!    invitee's own token back to the inviter's vault, gift-wrapped to the vault key the token
//!    names, on `MessageSpace.{inviter}.connection.accept`, with the nonce.
//! 3. The inviter's vault takes that message from a vault that is no connection yet only when
//!    its token holds and names the vault key that sealed it (the `introduced` peer policy),
//!    and the family only for a pending, unexpired nonce (once): it stores the invitee as a
//!    connection and tells its app (`OwnerSpace.{guid}.forApp.connection.accepted`).
//!
//! The family is `crates/connection`; this module keeps the checks the vault's own code makes.

use callvault_crypto::PublicIdentity;
pub use callvault_crypto::invite::{INVITE_KIND, InviteBody, InviteError, InviteToken, MAX_TOKEN};

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

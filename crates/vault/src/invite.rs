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

pub use callvault_crypto::invite::{INVITE_KIND, InviteBody, InviteError, InviteToken, MAX_TOKEN};
use callvault_kernel::VerifiedToken;
use callvault_protocol::Timestamp;
use callvault_protocol::fields::{DelegationText, InviteNonce, KeyHex, Reach};

/// The latest expiry a token may name: 9999-12-31, the last time a timestamp can name.
const MAX_EXPIRY: u64 = 253_402_300_799;

/// What a token says, once its signature, delegation and expiry hold at `now` (Unix seconds):
/// what the kernel gives a handler that has it checked.
pub fn checked(token: &InviteToken, now: u64) -> Result<VerifiedToken, InviteError> {
    let o = token.open(now)?;
    if o.body.expires_at > MAX_EXPIRY {
        return Err(InviteError::Malformed);
    }
    let malformed = |_| InviteError::Malformed;
    Ok(VerifiedToken {
        guid: o.verified.guid.clone(),
        user_key: KeyHex::new(o.verified.user.to_hex()).map_err(malformed)?,
        vault_key: KeyHex::new(o.verified.vault.to_hex()).map_err(malformed)?,
        delegation: DelegationText::new(o.delegation.to_json()).map_err(malformed)?,
        display_name: o.body.display_name,
        reach: Reach::new(o.body.reach).map_err(malformed)?,
        nonce: InviteNonce::new(o.body.nonce).map_err(malformed)?,
        expires_at: Timestamp::from_unix_millis(
            i64::try_from(o.body.expires_at).unwrap_or(i64::MAX / 1000).saturating_mul(1000),
        ),
    })
}

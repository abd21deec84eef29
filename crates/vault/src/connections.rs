//! A vault's connections (`connections` bucket, key = the peer's guid): who may call, and how to
//! recognise and reach their vault.
//!
//! An entry holds the peer's guid, identity key, vault key with the delegation that authorizes it,
//! display name, and where their vault is reached. Calls are accepted only from `Active` entries
//! whose delegation verifies; revoking an entry stops calls both ways.

use bytes::Bytes;
use callvault_crypto::{Delegation, PublicIdentity};
use callvault_kernel::ConnectionInfo;
use callvault_protocol::Guid;
use callvault_protocol::fields::{DisplayName, PeerProfile};
use callvault_store::{Kv, KvError};
use serde::{Deserialize, Serialize};

pub use callvault_protocol::app::ConnectionState;

/// One connection as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// The peer's guid.
    pub guid: Guid,
    /// The peer's identity key (hex).
    pub user_key: String,
    /// The peer's vault key (hex).
    pub vault_key: String,
    /// The peer's delegation of that vault key (Nostr event JSON).
    pub delegation: String,
    /// How to show the peer (read leniently: a connection stored by an earlier callvault loads).
    #[serde(deserialize_with = "callvault_protocol::fields::stored_display_name")]
    pub display_name: DisplayName,
    /// Where the peer's vault is reached (a bus URL, or `local` for the same deployment).
    pub reach: String,
    /// The peer's avatar, as their profile last shared it (not stored: read from the profile
    /// bucket).
    #[serde(skip)]
    pub avatar_url: Option<callvault_protocol::fields::AvatarUrl>,
    /// Active or revoked.
    pub state: ConnectionState,
}

/// Why a connection is unusable or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The bucket failed.
    #[error("connections bucket: {0}")]
    Store(#[from] KvError),
    /// A stored entry does not parse (never expected: entries are written by the vault).
    #[error("corrupt connection entry")]
    Corrupt,
    /// The delegation does not verify, or names other keys or another guid.
    #[error("the connection's delegation does not hold")]
    BadDelegation,
}

impl Connection {
    /// Builds an entry from a peer's delegation (which names their identity, guid and vault key).
    pub fn from_delegation(
        delegation: &Delegation,
        display_name: DisplayName,
        reach: &str,
    ) -> Result<Self, ConnectionError> {
        let v = delegation.verify().map_err(|_| ConnectionError::BadDelegation)?;
        Ok(Self {
            guid: v.guid,
            user_key: v.user.to_hex(),
            vault_key: v.vault.to_hex(),
            delegation: delegation.to_json(),
            display_name,
            reach: reach.to_owned(),
            avatar_url: None,
            state: ConnectionState::Active,
        })
    }

    /// The entry a checked token offers (its delegation held when the token was checked).
    pub fn from_token(t: &callvault_kernel::VerifiedToken) -> Self {
        Self {
            guid: t.guid.clone(),
            user_key: t.user_key.as_str().to_owned(),
            vault_key: t.vault_key.as_str().to_owned(),
            delegation: t.delegation.as_str().to_owned(),
            display_name: t.display_name.clone(),
            reach: t.reach.as_str().to_owned(),
            avatar_url: None,
            state: ConnectionState::Active,
        }
    }

    /// The peer's vault key. The delegation that authorizes it was verified when the entry was
    /// made ([`Connection::from_delegation`]), which checked the key too; entries live in the
    /// vault's own bucket, so this only parses it (it runs for every message to or from the peer).
    pub fn vault_key(&self) -> Result<PublicIdentity, ConnectionError> {
        PublicIdentity::parse_stored(&self.vault_key).map_err(|_| ConnectionError::BadDelegation)
    }

    /// What a handler needs to know.
    pub fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            guid: self.guid.clone(),
            profile: PeerProfile { display_name: self.display_name.clone(), avatar_url: self.avatar_url.clone() },
            user_key: None,
            revoked: false,
        }
    }
}

/// The bucket connections are kept in (the `connection` family writes it; the kernel reads it).
pub const BUCKET: &str = "connections";

/// Whether `bytes`, written under `key` in the connections bucket, is a connection entry whose
/// delegation holds and names its keys and guid. The kernel checks every such write: a family's
/// record is what later messages are accepted by.
pub fn holds(key: &str, bytes: &[u8]) -> bool {
    // Read as the kernel reads connections (a name an earlier callvault stored is taken as it is).
    let Ok(c) = serde_json::from_slice::<Connection>(bytes) else { return false };
    let Ok(d) = Delegation::from_json(&c.delegation) else { return false };
    let Ok(v) = d.verify() else { return false };
    c.guid.as_str() == key && v.guid == c.guid && v.user.to_hex() == c.user_key && v.vault.to_hex() == c.vault_key
}

/// Reads the entry of `guid`, if any.
pub async fn get(bucket: &impl Kv, guid: &Guid) -> Result<Option<Connection>, ConnectionError> {
    match bucket.get(guid.as_str()).await? {
        Some(e) => serde_json::from_slice(&e.value).map(Some).map_err(|_| ConnectionError::Corrupt),
        None => Ok(None),
    }
}

/// Writes an entry.
pub async fn put(bucket: &impl Kv, c: &Connection) -> Result<(), ConnectionError> {
    let bytes = serde_json::to_vec(c).map_err(|_| ConnectionError::Corrupt)?;
    bucket.put(c.guid.as_str(), Bytes::from(bytes)).await?;
    Ok(())
}

/// Marks an entry revoked; calls with that peer are refused from then on.
pub async fn revoke(bucket: &impl Kv, guid: &Guid) -> Result<bool, ConnectionError> {
    let Some(mut c) = get(bucket, guid).await? else { return Ok(false) };
    c.state = ConnectionState::Revoked;
    put(bucket, &c).await?;
    Ok(true)
}

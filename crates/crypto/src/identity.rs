//! Identities: the user's key (secp256k1, Nostr-compatible) and its guid, the vault's key, and the
//! delegation by which a user authorizes a vault key.
//!
//! A [`Delegation`] is a Nostr event signed by the user key (kind [`DELEGATION_KIND`], tags `vault`
//! and `guid`), so anyone, including a Nostr client, can verify it without callvault code.

use std::fmt;

use callvault_protocol::Guid;
use nostr::prelude::*;
use zeroize::Zeroizing;

/// Nostr kind of a vault delegation event.
pub const DELEGATION_KIND: u16 = 9_470;
const DELEGATION_CONTENT: &str = "callvault vault delegation v1";

/// Why a key or delegation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not an `nsec`/`npub`/hex key, or not a valid curve point or scalar.
    #[error("invalid key")]
    InvalidKey,
    /// Not a delegation event, or a field is missing or wrong.
    #[error("invalid delegation: {0}")]
    InvalidDelegation(&'static str),
    /// The delegation's signature or id does not verify.
    #[error("delegation signature does not verify")]
    BadDelegationSignature,
    /// Signing failed.
    #[error("signing failed")]
    Signing,
}

/// A user's public key, checked to be a valid x-only secp256k1 point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicIdentity(PublicKey);

impl PublicIdentity {
    /// Parses `npub1…` or 64 hex characters and checks the point.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let pk = PublicKey::parse(s).map_err(|_| IdentityError::InvalidKey)?;
        Self::checked(pk)
    }

    /// Parses a key this process checked before storing it (a connection's vault key), without
    /// checking the point again: that costs a square root on the curve, and every use of the key
    /// (an ECDH, a signature check) fails on a bad point anyway.
    pub fn parse_stored(s: &str) -> Result<Self, IdentityError> {
        PublicKey::parse(s).map(Self).map_err(|_| IdentityError::InvalidKey)
    }

    /// From 32 x-only bytes, checking the point.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, IdentityError> {
        Self::checked(PublicKey::from_byte_array(bytes))
    }

    pub(crate) fn checked(pk: PublicKey) -> Result<Self, IdentityError> {
        pk.xonly().map_err(|_| IdentityError::InvalidKey)?;
        Ok(Self(pk))
    }

    /// A key that has just verified a signature, so is a valid point: checking it again would
    /// cost another square root on the curve (nostr keeps keys as bytes and lifts them each use).
    pub(crate) fn verified_signer(pk: PublicKey) -> Self {
        Self(pk)
    }

    /// The user's guid (see `callvault_protocol::ids`).
    pub fn guid(&self) -> Guid {
        Guid::from_public_key(&self.0.to_bytes())
    }

    /// `npub1…`.
    pub fn npub(&self) -> String {
        match self.0.to_bech32() {
            Ok(s) => s,
            Err(never) => match never {},
        }
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// The 32 x-only bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub(crate) fn nostr(&self) -> &PublicKey {
        &self.0
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity({})", callvault_protocol::redact::Redacted(&self.to_hex()))
    }
}

/// A secp256k1 key pair. The secret is erased on drop (nostr does) and never printed.
pub struct SecretIdentity {
    keys: Keys,
}

impl SecretIdentity {
    /// A new random key.
    pub fn generate() -> Self {
        Self { keys: Keys::generate() }
    }

    /// Parses `nsec1…` or 64 hex characters.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        Keys::parse(s).map(|keys| Self { keys }).map_err(|_| IdentityError::InvalidKey)
    }

    /// From 32 secret bytes.
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<Self, IdentityError> {
        SecretKey::from_slice(bytes).map(|sk| Self { keys: Keys::new(sk) }).map_err(|_| IdentityError::InvalidKey)
    }

    /// The secret as `nsec1…` (for export; the string is erased on drop).
    pub fn to_nsec(&self) -> Zeroizing<String> {
        Zeroizing::new(match self.keys.secret_key().to_bech32() {
            Ok(s) => s,
            Err(never) => match never {},
        })
    }

    /// The 32 secret bytes (for the key file; erased on drop).
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.keys.secret_key().to_secret_bytes())
    }

    /// The public half.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity(self.keys.public_key())
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Signs `content` as a Nostr event of `kind` created at `created_at` (Unix seconds); returns
    /// the event JSON. For statements others verify with [`verify_note`] or any Nostr client.
    pub fn sign_note(&self, kind: u16, content: &str, created_at: u64) -> Result<String, IdentityError> {
        self.sign_tagged_note(kind, content, &[], created_at)
    }

    /// Signs a note of `kind` with `tags` (each a name and one value, e.g. NIP-98's `u` and
    /// `method`).
    pub fn sign_tagged_note(
        &self,
        kind: u16,
        content: &str,
        tags: &[(&str, &str)],
        created_at: u64,
    ) -> Result<String, IdentityError> {
        let tags = tags
            .iter()
            .map(|(name, value)| Tag::parse([*name, *value]).map_err(|_| IdentityError::Signing))
            .collect::<Result<Vec<_>, _>>()?;
        EventBuilder::new(Kind::Custom(kind), content)
            .tags(tags)
            .custom_created_at(Timestamp::from_secs(created_at))
            .finalize(&self.keys)
            .map_err(|_| IdentityError::Signing)?
            .try_as_json()
            .map_err(|_| IdentityError::Signing)
    }
}

/// A verified note: who signed it, what it says, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    /// The signer.
    pub signer: PublicIdentity,
    /// The content.
    pub content: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The note's id (hex): unique per note, for refusing replays.
    pub id: String,
    /// Its tags, each as its strings.
    pub tags: Vec<Vec<String>>,
}

impl VerifiedNote {
    /// The first value of the first tag called `name`.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.first().is_some_and(|n| n == name)).and_then(|t| t.get(1)).map(String::as_str)
    }
}

/// Verifies a note made by [`SecretIdentity::sign_note`]: id, signature and kind.
pub fn verify_note(json: &[u8], kind: u16) -> Result<VerifiedNote, IdentityError> {
    let event = Event::from_json(json).map_err(|_| IdentityError::InvalidDelegation("not an event"))?;
    event.verify().map_err(|_| IdentityError::BadDelegationSignature)?;
    if event.kind != Kind::Custom(kind) {
        return Err(IdentityError::InvalidDelegation("unexpected kind"));
    }
    Ok(VerifiedNote {
        signer: PublicIdentity::checked(event.pubkey)?,
        id: event.id.to_hex(),
        tags: event.tags.iter().map(|t| t.as_slice().to_vec()).collect(),
        content: event.content,
        created_at: event.created_at.as_secs(),
    })
}

impl fmt::Debug for SecretIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretIdentity({:?}, secret hidden)", self.public())
    }
}

/// The user's identity key: it names the user (guid), seals app-to-app payloads, and signs the
/// delegation of the user's vault key. It lives on the user's device only.
pub type UserIdentity = SecretIdentity;

/// A vault's own key: it signs the seals of vault-to-vault gift wraps and receives them.
pub type VaultKey = SecretIdentity;

/// A vault's public key.
pub type VaultPublicKey = PublicIdentity;

/// A user's signed statement that a vault key acts for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    event: Event,
}

/// What a verified delegation says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDelegation {
    /// The delegating user.
    pub user: PublicIdentity,
    /// The user's guid.
    pub guid: Guid,
    /// The authorized vault key.
    pub vault: VaultPublicKey,
    /// When it was signed (Unix seconds).
    pub created_at: u64,
}

impl Delegation {
    /// The user signs that `vault` is their vault key, at `now` (Unix seconds).
    pub fn sign(user: &UserIdentity, vault: &VaultPublicKey, now: u64) -> Result<Self, IdentityError> {
        let guid = user.public().guid();
        let event = EventBuilder::new(Kind::Custom(DELEGATION_KIND), DELEGATION_CONTENT)
            .tags([Tag::custom("vault", [vault.to_hex()]), Tag::custom("guid", [guid.to_string()])])
            .custom_created_at(Timestamp::from_secs(now))
            .finalize(user.keys())
            .map_err(|_| IdentityError::Signing)?;
        Ok(Self { event })
    }

    /// Parses the event JSON (untrusted; call [`Delegation::verify`]).
    pub fn from_json(json: &str) -> Result<Self, IdentityError> {
        if json.len() > 8 * 1024 {
            return Err(IdentityError::InvalidDelegation("too large"));
        }
        Event::from_json(json).map(|event| Self { event }).map_err(|_| IdentityError::InvalidDelegation("not an event"))
    }

    /// The event JSON.
    pub fn to_json(&self) -> String {
        self.event.as_json()
    }

    /// Checks id, signature, kind, content and that the guid is the signer's.
    pub fn verify(&self) -> Result<VerifiedDelegation, IdentityError> {
        let e = &self.event;
        e.verify().map_err(|_| IdentityError::BadDelegationSignature)?;
        if e.kind != Kind::Custom(DELEGATION_KIND) || e.content != DELEGATION_CONTENT {
            return Err(IdentityError::InvalidDelegation("not a callvault delegation"));
        }
        let tag = |name: &str| e.tags.iter().find(|t| t.kind() == name).and_then(|t| t.content()).map(str::to_owned);
        let user = PublicIdentity::checked(e.pubkey)?;
        let vault = PublicIdentity::parse(&tag("vault").ok_or(IdentityError::InvalidDelegation("no vault tag"))?)?;
        let guid = user.guid();
        if tag("guid").as_deref() != Some(guid.as_str()) {
            return Err(IdentityError::InvalidDelegation("guid is not the signer's"));
        }
        Ok(VerifiedDelegation { user, guid, vault, created_at: e.created_at.as_secs() })
    }
}

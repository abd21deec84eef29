//! Cryptography of callvault, behind small typed APIs. Builds for `wasm32-unknown-unknown` too, so
//! the browser client runs the same code.
//!
//! - [`identity`]: user identity keys (Nostr-compatible `npub`/`nsec`), guids, vault keys and the
//!   user-signed [`Delegation`] of a vault key.
//! - [`keyfile`]: a secret key at rest under a passphrase (argon2id + XChaCha20-Poly1305).
//! - [`giftwrap`]: vault-to-vault envelopes (NIP-59 gift wrap, NIP-17 style rumor).
//! - [`seal`]: app-to-app sealing of `call.signal` payloads, bound to the call.
//! - [`callkeys`]: 1:1 call keys (ephemeral X25519 + HKDF over the transcript) and the short
//!   authentication string.
//! - [`frame`]: SFrame (RFC 9605) frame encryption with key ids per sender and epoch and rotation.
//! - [`mls`]: MLS (RFC 9420) groups whose exporter keys SFrame per epoch.
//! - [`nip44`]: NIP-44 v2, held to the spec's limits.
//!
//! Secrets are erased on drop and never appear in `Debug` output. Errors are enums whose messages
//! carry no secret and no plaintext.
#![forbid(unsafe_code)]

pub mod callkeys;
pub mod frame;
#[cfg(feature = "identity")]
pub mod giftwrap;
#[cfg(feature = "identity")]
pub mod identity;
#[cfg(feature = "identity")]
pub mod invite;
#[cfg(feature = "keyfile")]
pub mod keyfile;
#[cfg(feature = "mls")]
pub mod mls;
#[cfg(feature = "identity")]
pub mod nip44;
#[cfg(feature = "identity")]
pub mod seal;

#[cfg(feature = "identity")]
pub use identity::{
    Delegation, IdentityError, PublicIdentity, SecretIdentity, UserIdentity, VaultKey, VaultPublicKey,
    VerifiedDelegation, VerifiedNote, verify_note,
};

//! 1:1 call keys.
//!
//! Each side makes an ephemeral X25519 key for the call and sends its public half in a sealed
//! `key_exchange` signal (the callee's also rides in `call.accept`). Both then compute, from the
//! shared secret and the transcript (call_id, caller guid, callee guid, caller key, callee key):
//!
//! - one SFrame base key per direction (caller -> callee, callee -> caller),
//! - a short authentication string (SAS) of 6 digits that both users can read aloud: a man in the
//!   middle would have to run two exchanges, whose transcripts differ, so the digits would differ.
//!
//! The ephemeral secret is consumed by the agreement (x25519-dalek's `EphemeralSecret`), so it is
//! gone once keys exist: recording the call and stealing the identity keys later does not reveal
//! them. [`CallKeys::next_epoch`] ratchets both base keys forward (the old ones are erased), and the
//! SFrame key id carries the epoch and the direction.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use callvault_protocol::fields::PublicKey as PublicKeyField;
use callvault_protocol::{CallId, Guid};
use hkdf::Hkdf;
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey};
use zeroize::Zeroizing;

/// Which side of the call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Placed the call.
    Caller,
    /// Answered it.
    Callee,
}

/// Why key agreement failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyAgreementError {
    /// The peer's public key is not 32 bytes of base64.
    #[error("peer public key is not a 32-byte X25519 key")]
    InvalidPublicKey,
    /// The peer's key is a low-order point: the shared secret would be predictable.
    #[error("peer public key is a low-order point")]
    NonContributory,
}

/// Hands out 32 given random bytes once (then zeros: never reached, the secret takes 32).
struct Given(Option<[u8; 32]>);

impl rand_core::RngCore for Given {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let bytes = self.0.take().unwrap_or([0; 32]);
        for (d, b) in dest.iter_mut().zip(bytes.iter().cycle()) {
            *d = *b;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// The bytes come from a cryptographic source by this type's contract.
impl rand_core::CryptoRng for Given {}

/// The ephemeral X25519 key of one side of one call.
pub struct EphemeralKey {
    secret: EphemeralSecret,
    public: PublicKey,
}

impl fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EphemeralKey({}, secret hidden)", STANDARD.encode(self.public.as_bytes()))
    }
}

impl Default for EphemeralKey {
    fn default() -> Self {
        Self::generate()
    }
}

impl EphemeralKey {
    /// A fresh key from the OS random source.
    pub fn generate() -> Self {
        let secret = EphemeralSecret::random_from_rng(OsRng);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// A key from 32 random bytes the caller got from a random source of its own (a browser's
    /// `crypto.getRandomValues`, where this crate has no OS random source). Never reuse them.
    pub fn from_random_bytes(bytes: [u8; 32]) -> Self {
        let secret = EphemeralSecret::random_from_rng(Given(Some(bytes)));
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> [u8; 32] {
        *self.public.as_bytes()
    }

    /// The public half as the protocol's base64 `public_key` field (32 bytes always encode to 44
    /// valid characters, so this does not fail in practice).
    pub fn public_field(&self) -> Result<PublicKeyField, KeyAgreementError> {
        PublicKeyField::new(STANDARD.encode(self.public.as_bytes())).map_err(|_| KeyAgreementError::InvalidPublicKey)
    }

    /// Agrees on the call's keys with the peer's public key; consumes the secret.
    pub fn agree(
        self,
        role: Role,
        call_id: &CallId,
        caller: &Guid,
        callee: &Guid,
        peer: &[u8; 32],
    ) -> Result<CallKeys, KeyAgreementError> {
        let peer_pk = PublicKey::from(*peer);
        let own = self.public();
        let shared = self.secret.diffie_hellman(&peer_pk);
        if !shared.was_contributory() {
            return Err(KeyAgreementError::NonContributory);
        }
        let (caller_pk, callee_pk) = match role {
            Role::Caller => (own, *peer),
            Role::Callee => (*peer, own),
        };
        let transcript = transcript_hash(call_id, caller, callee, &caller_pk, &callee_pk);
        let hk = Hkdf::<Sha256>::new(Some(&transcript), shared.as_bytes());
        let expand = |label: &[u8]| {
            let mut k = Zeroizing::new([0u8; 32]);
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
            let _ = hk.expand(label, k.as_mut());
            k
        };
        let to_callee = expand(b"callvault 1:1 sframe caller->callee");
        let to_caller = expand(b"callvault 1:1 sframe callee->caller");
        let sas_bytes = expand(b"callvault 1:1 short authentication string");
        let (send, recv) = match role {
            Role::Caller => (to_callee, to_caller),
            Role::Callee => (to_caller, to_callee),
        };
        Ok(CallKeys { role, epoch: 0, send, recv, sas: Sas::from_bytes(&sas_bytes), transcript })
    }
}

/// Decodes the protocol's base64 `public_key` field into an X25519 key.
pub fn parse_public(field: &PublicKeyField) -> Result<[u8; 32], KeyAgreementError> {
    let raw = STANDARD.decode(field.as_str()).map_err(|_| KeyAgreementError::InvalidPublicKey)?;
    raw.try_into().map_err(|_| KeyAgreementError::InvalidPublicKey)
}

fn transcript_hash(
    call_id: &CallId,
    caller: &Guid,
    callee: &Guid,
    caller_pk: &[u8; 32],
    callee_pk: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"callvault 1:1 transcript v1");
    for part in
        [call_id.as_str().as_bytes(), caller.as_str().as_bytes(), callee.as_str().as_bytes(), caller_pk, callee_pk]
    {
        h.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// A short authentication string: 6 digits, shown as `123 456`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sas(String);

impl Sas {
    fn from_bytes(b: &[u8; 32]) -> Self {
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % 1_000_000;
        let digits = format!("{n:06}");
        let (a, c) = digits.split_at(3);
        Self(format!("{a} {c}"))
    }

    /// The digits, `123 456`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sas({})", self.0)
    }
}

/// The keys of one side of a 1:1 call.
pub struct CallKeys {
    role: Role,
    epoch: u64,
    send: Zeroizing<[u8; 32]>,
    recv: Zeroizing<[u8; 32]>,
    sas: Sas,
    transcript: [u8; 32],
}

impl fmt::Debug for CallKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallKeys")
            .field("role", &self.role)
            .field("epoch", &self.epoch)
            .field("sas", &self.sas)
            .finish_non_exhaustive()
    }
}

impl CallKeys {
    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current epoch (0 after agreement).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The SFrame base key for frames this side sends.
    pub fn send_base_key(&self) -> &[u8; 32] {
        &self.send
    }

    /// The SFrame base key for frames this side receives.
    pub fn recv_base_key(&self) -> &[u8; 32] {
        &self.recv
    }

    /// The SFrame key id of frames this side sends in the current epoch.
    pub fn send_key_id(&self) -> u64 {
        key_id(self.epoch, self.role)
    }

    /// The SFrame key id of frames the peer sends in the current epoch.
    pub fn recv_key_id(&self) -> u64 {
        key_id(
            self.epoch,
            match self.role {
                Role::Caller => Role::Callee,
                Role::Callee => Role::Caller,
            },
        )
    }

    /// The short authentication string both users should see.
    pub fn sas(&self) -> &Sas {
        &self.sas
    }

    /// Ratchets both base keys to the next epoch; the previous ones are erased.
    pub fn next_epoch(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
        for key in [&mut self.send, &mut self.recv] {
            let hk = Hkdf::<Sha256>::new(Some(&self.transcript), key.as_ref());
            let mut next = Zeroizing::new([0u8; 32]);
            let _ = hk.expand(&self.epoch.to_be_bytes(), next.as_mut());
            *key = next;
        }
    }
}

/// Key id layout for 1:1 calls: the epoch shifted left by one, the low bit the sender's role.
pub fn key_id(epoch: u64, sender: Role) -> u64 {
    (epoch << 1) | u64::from(sender == Role::Callee)
}

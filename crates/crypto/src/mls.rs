//! MLS (RFC 9420) for group calls: a participant creates or joins a group, adds and removes
//! members with KeyPackages, Welcomes and Commits, updates its own leaf, and derives each epoch's
//! SFrame base key from the MLS exporter (label `"SFrame 1.0 Base Key"`, RFC 9605 §5.2). The SFrame
//! key id carries the sender's leaf index and the epoch's low bits, so a frame names the key it
//! needs. A removed member is not given the next epoch's secrets; a new member never had the
//! previous epochs'.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use zeroize::Zeroizing;

/// The MLS cipher suite: X25519, AES-128-GCM, SHA-256, Ed25519.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
/// The exporter label of SFrame base keys (RFC 9605 §5.2).
pub const SFRAME_EXPORTER_LABEL: &str = "SFrame 1.0 Base Key";
/// Bits of the key id that carry the epoch; the leaf index sits above them.
pub const EPOCH_BITS: u32 = 8;
/// Largest message accepted by [`MlsParticipant::process`] and [`MlsParticipant::join`].
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// Why an MLS operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MlsError {
    /// The bytes are not the expected MLS message.
    #[error("malformed MLS message: {0}")]
    Malformed(&'static str),
    /// No group yet (create or join first), or the group is no longer active (removed).
    #[error("not in an active group")]
    NoGroup,
    /// No member with that identity.
    #[error("no such member")]
    UnknownMember,
    /// openmls refused the operation.
    #[error("MLS: {0}")]
    Protocol(String),
}

fn protocol(e: impl std::fmt::Display) -> MlsError {
    MlsError::Protocol(e.to_string())
}

/// A commit to send to the group, and a welcome for new members when there are any.
#[derive(Debug, Clone)]
pub struct Commit {
    /// For existing members ([`MlsParticipant::process`]).
    pub commit: Vec<u8>,
    /// For added members ([`MlsParticipant::join`]).
    pub welcome: Option<Vec<u8>>,
}

/// One participant of one group call.
pub struct MlsParticipant {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
    identity: Vec<u8>,
    group: Option<MlsGroup>,
}

impl std::fmt::Debug for MlsParticipant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlsParticipant")
            .field("epoch", &self.epoch())
            .field("index", &self.own_index())
            .finish_non_exhaustive()
    }
}

impl MlsParticipant {
    /// A participant named `identity` (e.g. its guid) with a fresh signature key.
    pub fn new(identity: &[u8]) -> Result<Self, MlsError> {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(protocol)?;
        signer.store(provider.storage()).map_err(protocol)?;
        let credential = CredentialWithKey {
            credential: BasicCredential::new(identity.to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Ok(Self { provider, signer, credential, identity: identity.to_vec(), group: None })
    }

    /// This participant's identity.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// A KeyPackage that others can add to a group (single use).
    pub fn key_package(&self) -> Result<Vec<u8>, MlsError> {
        let kp = KeyPackage::builder()
            .build(CIPHERSUITE, &self.provider, &self.signer, self.credential.clone())
            .map_err(protocol)?;
        MlsMessageOut::from(kp.key_package().clone()).to_bytes().map_err(protocol)
    }

    /// Creates a group with this participant as its only member.
    pub fn create_group(&mut self, group_id: &[u8]) -> Result<(), MlsError> {
        let cfg = MlsGroupCreateConfig::builder().ciphersuite(CIPHERSUITE).use_ratchet_tree_extension(true).build();
        let group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &cfg,
            GroupId::from_slice(group_id),
            self.credential.clone(),
        )
        .map_err(protocol)?;
        self.group = Some(group);
        Ok(())
    }

    fn group(&self) -> Result<&MlsGroup, MlsError> {
        self.group.as_ref().filter(|g| g.is_active()).ok_or(MlsError::NoGroup)
    }

    /// Adds members from their KeyPackages; the commit is already merged here.
    pub fn add(&mut self, key_packages: &[Vec<u8>]) -> Result<Commit, MlsError> {
        let mut kps = Vec::with_capacity(key_packages.len());
        for bytes in key_packages {
            let body = MlsMessageIn::tls_deserialize_exact(bytes.as_slice())
                .map_err(|_| MlsError::Malformed("key package"))?
                .extract();
            let MlsMessageBodyIn::KeyPackage(kp) = body else { return Err(MlsError::Malformed("not a key package")) };
            kps.push(kp.validate(self.provider.crypto(), ProtocolVersion::Mls10).map_err(protocol)?);
        }
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().filter(|g| g.is_active()).ok_or(MlsError::NoGroup)?;
        let (commit, welcome, _) = group.add_members(provider, signer, &kps).map_err(protocol)?;
        group.merge_pending_commit(provider).map_err(protocol)?;
        Ok(Commit {
            commit: commit.to_bytes().map_err(protocol)?,
            welcome: Some(welcome.to_bytes().map_err(protocol)?),
        })
    }

    /// Removes the members with these identities; the commit is already merged here.
    pub fn remove(&mut self, identities: &[&[u8]]) -> Result<Commit, MlsError> {
        let indexes = identities
            .iter()
            .map(|id| self.member_index(id).ok_or(MlsError::UnknownMember))
            .collect::<Result<Vec<_>, _>>()?;
        let leaves: Vec<LeafNodeIndex> = indexes.into_iter().map(LeafNodeIndex::new).collect();
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().filter(|g| g.is_active()).ok_or(MlsError::NoGroup)?;
        let (commit, _, _) = group.remove_members(provider, signer, &leaves).map_err(protocol)?;
        group.merge_pending_commit(provider).map_err(protocol)?;
        Ok(Commit { commit: commit.to_bytes().map_err(protocol)?, welcome: None })
    }

    /// Replaces this participant's leaf keys (post-compromise security); already merged here.
    pub fn self_update(&mut self) -> Result<Commit, MlsError> {
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().filter(|g| g.is_active()).ok_or(MlsError::NoGroup)?;
        let bundle = group.self_update(provider, signer, LeafNodeParameters::default()).map_err(protocol)?;
        let (commit, _, _) = bundle.into_contents();
        group.merge_pending_commit(provider).map_err(protocol)?;
        Ok(Commit { commit: commit.to_bytes().map_err(protocol)?, welcome: None })
    }

    /// Joins the group a Welcome invites this participant to.
    pub fn join(&mut self, welcome: &[u8]) -> Result<(), MlsError> {
        if welcome.len() > MAX_MESSAGE {
            return Err(MlsError::Malformed("too large"));
        }
        let body = MlsMessageIn::tls_deserialize_exact(welcome).map_err(|_| MlsError::Malformed("welcome"))?.extract();
        let MlsMessageBodyIn::Welcome(w) = body else { return Err(MlsError::Malformed("not a welcome")) };
        let cfg = MlsGroupJoinConfig::builder().use_ratchet_tree_extension(true).build();
        let group = StagedWelcome::new_from_welcome(&self.provider, &cfg, w, None)
            .map_err(protocol)?
            .into_group(&self.provider)
            .map_err(protocol)?;
        self.group = Some(group);
        Ok(())
    }

    /// Applies a commit from another member. Returns the new epoch, or `None` when the commit
    /// removed this participant (the group is then inactive).
    pub fn process(&mut self, message: &[u8]) -> Result<Option<u64>, MlsError> {
        if message.len() > MAX_MESSAGE {
            return Err(MlsError::Malformed("too large"));
        }
        let pm = MlsMessageIn::tls_deserialize_exact(message)
            .map_err(|_| MlsError::Malformed("MLS message"))?
            .try_into_protocol_message()
            .map_err(|_| MlsError::Malformed("not a protocol message"))?;
        let provider = &self.provider;
        let group = self.group.as_mut().filter(|g| g.is_active()).ok_or(MlsError::NoGroup)?;
        let processed = group.process_message(provider, pm).map_err(protocol)?;
        match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let removed = staged.self_removed();
                group.merge_staged_commit(provider, *staged).map_err(protocol)?;
                Ok(if removed { None } else { Some(group.epoch().as_u64()) })
            }
            _ => Err(MlsError::Malformed("not a commit")),
        }
    }

    /// Whether this participant is in an active group.
    pub fn is_active(&self) -> bool {
        self.group().is_ok()
    }

    /// The current epoch.
    pub fn epoch(&self) -> Option<u64> {
        self.group().ok().map(|g| g.epoch().as_u64())
    }

    /// This participant's leaf index.
    pub fn own_index(&self) -> Option<u32> {
        self.group().ok().map(|g| g.own_leaf_index().u32())
    }

    /// The leaf index of the member with `identity`.
    pub fn member_index(&self, identity: &[u8]) -> Option<u32> {
        self.group().ok()?.members().find(|m| m.credential.serialized_content() == identity).map(|m| m.index.u32())
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.group().map_or(0, |g| g.members().count())
    }

    /// This epoch's SFrame base key (the MLS exporter, RFC 9605 §5.2).
    pub fn sframe_base_key(&self) -> Result<Zeroizing<Vec<u8>>, MlsError> {
        let g = self.group()?;
        g.export_secret(self.provider.crypto(), SFRAME_EXPORTER_LABEL, b"", crate::frame::SUITE.key_len())
            .map(Zeroizing::new)
            .map_err(protocol)
    }

    /// The SFrame key id of frames sent by the member at `index` in `epoch`.
    pub fn sframe_key_id(index: u32, epoch: u64) -> u64 {
        (u64::from(index) << EPOCH_BITS) | (epoch & ((1 << EPOCH_BITS) - 1))
    }
}

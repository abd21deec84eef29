//! Hosting many users' vaults in one server process.
//!
//! A host keeps:
//!
//! - the `accounts` bucket (key = guid): each registered user's identity key, vault key, the
//!   delegation that binds them, and display name. On NATS this bucket is shared by every `serve`
//!   process, so any gateway can tell whether a user exists;
//! - the vault keys of the users it hosts, one file per user under `<data dir>/vault-keys/`
//!   (mode 0600, the nsec). A user's vault runs in the process whose data directory holds its key;
//!   the vault's buckets live in the store (`{guid}_calls`, ...), so the process can be replaced by
//!   any other with the same key file.
//!
//! Registration verifies the user's delegation of the new vault key, writes the key file, then
//! creates the account (compare-and-set: a guid registers once), then starts the vault.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use callvault_bus::Bus;
use callvault_crypto::{Delegation, PublicIdentity, SecretIdentity};
use callvault_protocol::Guid;
use callvault_protocol::fields::DisplayName;
use callvault_protocol::redact::Redacted;
use callvault_store::{BucketConfig, BucketNaming, Kv, KvError, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::manager::{Vault, VaultError, VaultOptions};

/// The accounts bucket's name.
pub const ACCOUNTS_BUCKET: &str = "accounts";

/// One registered user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The user's guid.
    pub guid: Guid,
    /// Their identity key (hex).
    pub user_key: String,
    /// Their vault's key (hex).
    pub vault_key: String,
    /// The user's delegation of the vault key (event JSON).
    pub delegation: String,
    /// How the user is shown.
    pub display_name: DisplayName,
    /// When the account was made (Unix seconds).
    pub created_at: u64,
}

/// Why hosting failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The accounts bucket failed.
    #[error("accounts: {0}")]
    Store(#[from] KvError),
    /// A vault failed to open.
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    /// A key file could not be read or written.
    #[error("vault key file {path}: {source}")]
    KeyFile {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file does not hold a key.
    #[error("vault key file {0} is corrupt")]
    CorruptKey(PathBuf),
    /// The delegation does not verify or names other keys.
    #[error("the delegation does not bind this user to this vault key")]
    BadDelegation,
    /// The guid is registered already.
    #[error("already registered")]
    AlreadyRegistered,
    /// A stored account does not parse.
    #[error("corrupt account entry")]
    CorruptAccount,
}

struct Hosted<B: Bus + Clone, K: Kv + Clone> {
    vault: Arc<Vault<B, K>>,
    task: tokio::task::JoinHandle<Result<(), VaultError>>,
}

/// The vaults one process hosts.
pub struct VaultHost<B: Bus + Clone, S: Store> {
    store: S,
    bus: B,
    accounts: S::Kv,
    keys_dir: PathBuf,
    options: VaultOptions,
    hosted: Mutex<HashMap<Guid, Hosted<B, S::Kv>>>,
    stop: watch::Sender<bool>,
}

fn key_path(dir: &Path, guid: &Guid) -> PathBuf {
    dir.join(format!("{guid}.key"))
}

fn write_key(path: &Path, nsec: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("key.tmp");
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    open.mode(0o600);
    let mut f = open.open(&tmp)?;
    f.write_all(nsec.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl<B: Bus + Clone, S: Store> VaultHost<B, S> {
    /// Opens the accounts bucket and starts the vault of every key file under
    /// `data_dir/vault-keys`.
    pub async fn open(store: S, bus: B, data_dir: &Path, options: VaultOptions) -> Result<Arc<Self>, HostError> {
        let keys_dir = data_dir.join("vault-keys");
        std::fs::create_dir_all(&keys_dir).map_err(|source| HostError::KeyFile { path: keys_dir.clone(), source })?;
        let config = BucketConfig::new(ACCOUNTS_BUCKET, 1, 64 * 1024, None)?;
        let accounts = store.bucket(&config).await?;
        let (stop, _) = watch::channel(false);
        let host = Arc::new(Self { store, bus, accounts, keys_dir, options, hosted: Mutex::new(HashMap::new()), stop });
        let entries = std::fs::read_dir(&host.keys_dir)
            .map_err(|source| HostError::KeyFile { path: host.keys_dir.clone(), source })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(guid) = path
                .extension()
                .filter(|e| *e == "key")
                .and_then(|_| path.file_stem())
                .and_then(|s| s.to_str())
                .and_then(|s| Guid::parse(s).ok())
            else {
                continue;
            };
            let nsec =
                std::fs::read_to_string(&path).map_err(|source| HostError::KeyFile { path: path.clone(), source })?;
            let key = SecretIdentity::parse(nsec.trim()).map_err(|_| HostError::CorruptKey(path.clone()))?;
            if host.account(&guid).await?.is_none() {
                tracing::warn!(user = %Redacted(&guid), "vault key without an account skipped");
                continue;
            }
            host.start(guid, key).await?;
        }
        Ok(host)
    }

    /// The account of `guid`, if registered (with any host sharing the store).
    pub async fn account(&self, guid: &Guid) -> Result<Option<Account>, HostError> {
        match self.accounts.get(guid.as_str()).await? {
            Some(e) => serde_json::from_slice(&e.value).map(Some).map_err(|_| HostError::CorruptAccount),
            None => Ok(None),
        }
    }

    /// Registers `user` with the vault key `vault_key` (made by [`VaultHost::new_vault_key`]),
    /// which the user delegated with `delegation`, and starts its vault here.
    pub async fn register(
        &self,
        user: &PublicIdentity,
        vault_key: SecretIdentity,
        delegation: &Delegation,
        display_name: DisplayName,
        now: u64,
    ) -> Result<Account, HostError> {
        let v = delegation.verify().map_err(|_| HostError::BadDelegation)?;
        if v.user != *user || v.vault != vault_key.public() {
            return Err(HostError::BadDelegation);
        }
        let guid = user.guid();
        if self.account(&guid).await?.is_some() {
            return Err(HostError::AlreadyRegistered);
        }
        let path = key_path(&self.keys_dir, &guid);
        write_key(&path, &vault_key.to_nsec()).map_err(|source| HostError::KeyFile { path: path.clone(), source })?;
        let account = Account {
            guid: guid.clone(),
            user_key: user.to_hex(),
            vault_key: vault_key.public().to_hex(),
            delegation: delegation.to_json(),
            display_name,
            created_at: now,
        };
        let json = serde_json::to_vec(&account).map_err(|_| HostError::CorruptAccount)?;
        match self.accounts.create(guid.as_str(), Bytes::from(json)).await {
            Ok(_) => {}
            Err(KvError::AlreadyExists) => {
                let _ = std::fs::remove_file(&path);
                return Err(HostError::AlreadyRegistered);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e.into());
            }
        }
        self.start(guid, vault_key).await?;
        tracing::info!(user = %Redacted(&account.guid), "user registered");
        Ok(account)
    }

    /// A fresh vault key for a registration.
    pub fn new_vault_key() -> SecretIdentity {
        SecretIdentity::generate()
    }

    async fn start(&self, guid: Guid, key: SecretIdentity) -> Result<(), HostError> {
        let options = VaultOptions { naming: BucketNaming::Shared { guid: guid.to_string() }, ..self.options.clone() };
        let vault = Arc::new(Vault::open(&self.store, self.bus.clone(), guid.clone(), key, options).await?);
        let running = vault.clone();
        let mut stop = self.stop.subscribe();
        let task = tokio::spawn(async move {
            running
                .run_until(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
        // The vault's subscriptions are live once its first sweep ran; wait for them so that a
        // registration answered "ready" can be called at once.
        if tokio::time::timeout(Duration::from_secs(30), vault.wait_serving()).await.is_err() {
            tracing::warn!(user = %Redacted(&guid), "vault slow to start serving");
        }
        self.hosted.lock().await.insert(guid, Hosted { vault, task });
        Ok(())
    }

    /// Whether this process hosts the vault of `guid`.
    pub async fn hosts(&self, guid: &Guid) -> bool {
        self.hosted.lock().await.contains_key(guid)
    }

    /// The hosted vaults.
    pub async fn vaults(&self) -> Vec<Arc<Vault<B, S::Kv>>> {
        self.hosted.lock().await.values().map(|h| h.vault.clone()).collect()
    }

    /// Stops every vault after the event it is handling, waiting up to `grace`; flushes the bus.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.stop.send(true);
        let hosted: Vec<_> = self.hosted.lock().await.drain().map(|(_, h)| h).collect();
        let all = futures_util::future::join_all(hosted.into_iter().map(|h| h.task));
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("vaults did not stop within the grace period");
        }
        if let Err(e) = self.bus.flush().await {
            tracing::warn!(error = %e, "bus flush at shutdown failed");
        }
    }
}

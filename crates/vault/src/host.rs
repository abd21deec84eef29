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
//! Registration is atomic per identity: registrations of one guid in this process take turns,
//! and across processes sharing the accounts bucket the account's compare-and-set picks one
//! winner. A registration verifies the user's delegation of the new vault key, writes the key to
//! a temporary file of its own, creates the account, and only then moves the key file into place
//! and starts the vault; the loser removes only its own temporary file. So the key file under
//! `vault-keys/` always holds the key its account names. A crash between the account and the
//! move leaves the temporary file, which the next start moves into place if the account names
//! its key (and removes otherwise).
//!
//! At start, a key file whose key is not the one its account names is reported (an error log
//! line, `/metrics`) and that vault is not served: never a vault that half works.

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
use callvault_protocol::redact::Scrubbed;
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
    /// How the user is shown (read leniently: an account of an earlier callvault still loads).
    #[serde(deserialize_with = "callvault_protocol::fields::stored_display_name")]
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
    /// A key file could not be read or written (the path is shown without the guid).
    #[error("vault key file {}: {source}", callvault_protocol::redact::Scrubbed(&path.display()))]
    KeyFile {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file does not hold a key.
    #[error("vault key file {} is corrupt", callvault_protocol::redact::Scrubbed(&.0.display()))]
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

/// Registrations in progress, one lock per guid (entries go when nobody holds or waits).
#[derive(Default)]
struct RegistrationLocks(std::sync::Mutex<HashMap<Guid, Arc<Mutex<()>>>>);

/// Holds one guid's registration turn; gives the entry back when it is the last one.
struct RegistrationTurn<'a> {
    locks: &'a RegistrationLocks,
    guid: Guid,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl RegistrationLocks {
    async fn turn(&self, guid: &Guid) -> RegistrationTurn<'_> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(guid.clone()).or_default().clone()
        };
        RegistrationTurn { locks: self, guid: guid.clone(), guard: Some(lock.lock_owned().await) }
    }
}

impl Drop for RegistrationTurn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.get(&self.guid).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&self.guid);
        }
    }
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
    registering: RegistrationLocks,
    /// Key files found at start that are not served: their key is not their account's.
    unserved: std::sync::atomic::AtomicU64,
    stop: watch::Sender<bool>,
}

fn key_path(dir: &Path, guid: &Guid) -> PathBuf {
    dir.join(format!("{guid}.key"))
}

/// Creates `dir` (0700 whatever the umask) or narrows it to 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// A temporary key file no other registration uses: `<guid>.<unique>.key-tmp` (registrations
/// of one guid in this process take turns; the counter and clock keep even those apart).
fn temp_key_path(dir: &Path, guid: &Guid) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    dir.join(format!("{guid}.{}-{n}-{t}.key-tmp", std::process::id()))
}

/// Writes `nsec` to a new file at `path` (mode 0600, synced); fails if the file exists.
fn write_new_key(path: &Path, nsec: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    open.mode(0o600);
    let mut f = open.open(path)?;
    f.write_all(nsec.as_bytes())?;
    f.sync_all()
}

/// Moves a synced temporary key file into place and syncs the directory.
fn install_key(tmp: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_key(path: &Path) -> Result<SecretIdentity, HostError> {
    let nsec = std::fs::read_to_string(path).map_err(|source| HostError::KeyFile { path: path.to_owned(), source })?;
    SecretIdentity::parse(nsec.trim()).map_err(|_| HostError::CorruptKey(path.to_owned()))
}

/// The guid a key file (`<guid>.key`) or temporary key file (`<guid>.<nonce>.key-tmp`) is for.
fn key_file_guid(path: &Path, temp: bool) -> Option<Guid> {
    let name = path.file_name()?.to_str()?;
    let stem = if temp { name.strip_suffix(".key-tmp")?.split('.').next()? } else { name.strip_suffix(".key")? };
    Guid::parse(stem).ok()
}

impl<B: Bus + Clone, S: Store> VaultHost<B, S> {
    /// Opens the accounts bucket and starts the vault of every key file under
    /// `data_dir/vault-keys`.
    pub async fn open(store: S, bus: B, data_dir: &Path, options: VaultOptions) -> Result<Arc<Self>, HostError> {
        let keys_dir = data_dir.join("vault-keys");
        private_dir(&keys_dir).map_err(|source| HostError::KeyFile { path: keys_dir.clone(), source })?;
        let config = BucketConfig::new(ACCOUNTS_BUCKET, 1, 64 * 1024, None)?;
        let accounts = store.bucket(&config).await?;
        let (stop, _) = watch::channel(false);
        let host = Arc::new(Self {
            store,
            bus,
            accounts,
            keys_dir,
            options,
            hosted: Mutex::new(HashMap::new()),
            registering: RegistrationLocks::default(),
            unserved: std::sync::atomic::AtomicU64::new(0),
            stop,
        });
        host.finish_interrupted_registrations().await?;
        let entries = std::fs::read_dir(&host.keys_dir)
            .map_err(|source| HostError::KeyFile { path: host.keys_dir.clone(), source })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(guid) = key_file_guid(&path, false) else { continue };
            let key = read_key(&path)?;
            let account = match host.account(&guid).await {
                Ok(a) => a,
                // One unreadable account must not keep every other user offline.
                Err(e) => {
                    host.unserved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(user = %Redacted(&guid), error = %Scrubbed(&e), "account unreadable: this vault is not served");
                    continue;
                }
            };
            match account {
                None => {
                    tracing::warn!(user = %Redacted(&guid), "vault key without an account skipped");
                }
                Some(a) if a.vault_key != key.public().to_hex() => {
                    host.unserved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(
                        user = %Redacted(&guid),
                        "vault key file does not hold the key its account names: this vault is not served"
                    );
                }
                Some(_) => host.start(guid, key).await?,
            }
        }
        Ok(host)
    }

    /// Temporary key files left by a registration that stopped after creating its account: moved
    /// into place when the account names their key, removed otherwise.
    async fn finish_interrupted_registrations(&self) -> Result<(), HostError> {
        let entries = std::fs::read_dir(&self.keys_dir)
            .map_err(|source| HostError::KeyFile { path: self.keys_dir.clone(), source })?;
        for entry in entries.flatten() {
            let tmp = entry.path();
            let Some(guid) = key_file_guid(&tmp, true) else { continue };
            let path = key_path(&self.keys_dir, &guid);
            let theirs = read_key(&tmp).ok().map(|k| k.public().to_hex());
            let named = self.account(&guid).await.ok().flatten().map(|a| a.vault_key);
            let in_place = read_key(&path).ok().map(|k| k.public().to_hex());
            if theirs.is_some() && theirs == named && in_place != named {
                // The temporary file holds the account's key and the key file (if any) does not:
                // the temporary one is the right one (a wrong key file is kept aside, not lost).
                if path.exists() {
                    let _ = std::fs::rename(&path, path.with_extension("key-mismatched"));
                }
                install_key(&tmp, &path).map_err(|source| HostError::KeyFile { path: path.clone(), source })?;
                tracing::info!(user = %Redacted(&guid), "an interrupted registration's vault key moved into place");
            } else {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        // Temporary files of the earlier layout (`<guid>.key.tmp`): never a finished registration.
        for entry in std::fs::read_dir(&self.keys_dir).into_iter().flatten().flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.ends_with(".key.tmp")) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Key files found at start and not served, because their key is not the one their account
    /// names.
    pub fn unserved(&self) -> u64 {
        self.unserved.load(std::sync::atomic::Ordering::Relaxed)
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
        let _turn = self.registering.turn(&guid).await;
        if self.account(&guid).await?.is_some() {
            return Err(HostError::AlreadyRegistered);
        }
        let path = key_path(&self.keys_dir, &guid);
        let tmp = temp_key_path(&self.keys_dir, &guid);
        write_new_key(&tmp, &vault_key.to_nsec()).map_err(|source| HostError::KeyFile { path: tmp.clone(), source })?;
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
                let _ = std::fs::remove_file(&tmp);
                return Err(HostError::AlreadyRegistered);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
        }
        // The account exists now: its vault runs from the key in hand even if the move fails (the
        // temporary file is moved into place at the next start).
        if let Err(e) = install_key(&tmp, &path) {
            tracing::error!(user = %Redacted(&guid), error = %Scrubbed(&e), "vault key file not moved into place yet");
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
            tracing::warn!(error = %Scrubbed(&e), "bus flush at shutdown failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_stored_under_the_earlier_name_rule_still_loads() {
        let account = |name: &str| {
            serde_json::json!({"guid": Guid::from_public_key(&[7; 32]), "user_key": "ab", "vault_key": "cd",
                "delegation": "{}", "display_name": name, "created_at": 1})
        };
        let a: Account = serde_json::from_value(account("Ada\u{200b} \u{202e}L")).unwrap();
        assert_eq!(a.display_name.as_str(), "Ada L");
        let blank: Account = serde_json::from_value(account("  \u{feff}")).unwrap();
        assert_eq!(blank.display_name.as_str(), "unnamed");
    }

    #[test]
    fn key_file_errors_name_no_guid() {
        let guid = Guid::from_public_key(&[7; 32]);
        let path = key_path(Path::new("/srv/callvault/vault-keys"), &guid);
        let errors = [
            HostError::KeyFile { path: path.clone(), source: std::io::Error::other("disk full") },
            HostError::CorruptKey(path),
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains(guid.as_str()), "{text}");
            assert!(text.contains("vault-keys/") && text.contains(&guid.as_str()[..6]), "{text}");
        }
    }
}

//! Handler modules in the vault's `handlers` bucket.
//!
//! Keys are `call.<handler>` (`call.initiate`, ... `call.timeout`), values the WASM module bytes,
//! and [`BUILTIN_MARKER`]. On start the vault writes the built-in module under every key the bucket
//! lacks and over copies of an earlier built-in ([`install_builtins`]), then loads every key into
//! the runtime ([`load_all`]).
//!
//! **Installing a newer version without a restart**: write the new module bytes to the handler's
//! key (e.g. `call.initiate`) in the vault's `handlers` bucket. [`watch_and_reload`] sees the
//! change, compiles the module and swaps it in; events already running finish on the old module,
//! the next one runs the new. A module that does not compile or lacks the ABI's exports is
//! refused with a log line and the previous module stays in place. Deleting the key falls back to
//! the built-in module.

use bytes::Bytes;
use callvault_call::abi::HandlerName;
use callvault_store::{Kv, KvError, Operation};

use callvault_protocol::ids::lower_hex;
use callvault_protocol::redact::Scrubbed;
use sha2::{Digest, Sha256};

use crate::runtime::{BUILTIN_MODULE, HandlerError, HandlerRuntime};

/// The bucket key of a handler's module.
pub fn key(name: HandlerName) -> String {
    format!("call.{}", name.as_str())
}

fn name_of(key: &str) -> Option<HandlerName> {
    HandlerName::ALL.into_iter().find(|n| self::key(*n) == key)
}

/// Why modules could not be installed or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    /// The bucket failed.
    #[error("handlers bucket: {0}")]
    Store(#[from] KvError),
    /// A stored module was refused.
    #[error("handler {name}: {error}")]
    Module {
        /// Which handler.
        name: &'static str,
        /// Why.
        error: HandlerError,
    },
}

/// The key that records which built-in module this vault last installed (its SHA-256, hex).
pub const BUILTIN_MARKER: &str = "builtin.sha256";

/// Writes the built-in module under every handler key the bucket lacks, and replaces the copies
/// of an earlier built-in module (after an upgrade of callvault) with the current one; a module
/// installed by hand (any other bytes) stays. Returns how many keys were written.
///
/// Which stored modules are built-in copies is known from [`BUILTIN_MARKER`], written after the
/// modules: a start interrupted in between finishes the upgrade at the next start. A vault made
/// before the marker existed keeps what it stored (delete a key to return it to the built-in).
pub async fn install_builtins(bucket: &impl Kv) -> Result<usize, ModulesError> {
    let current = lower_hex(&crate::runtime::builtin_digest());
    let previous = bucket.get(BUILTIN_MARKER).await?.map(|e| e.value);
    let mut written = 0usize;
    for name in HandlerName::ALL {
        let result = match bucket.get(&key(name)).await? {
            None => bucket.create(&key(name), Bytes::from_static(BUILTIN_MODULE)).await,
            Some(e) if e.value == BUILTIN_MODULE => continue,
            Some(e) if previous.as_deref() == Some(lower_hex(&Sha256::digest(&e.value)).as_bytes()) => {
                tracing::info!(handler = name.as_str(), "built-in handler module upgraded");
                bucket.update(&key(name), Bytes::from_static(BUILTIN_MODULE), e.revision).await
            }
            Some(_) => continue,
        };
        match result {
            Ok(_) => written = written.saturating_add(1),
            // Someone else wrote the key meanwhile: theirs stands.
            Err(KvError::AlreadyExists | KvError::WrongRevision { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if previous.as_deref() != Some(current.as_bytes()) {
        bucket.put(BUILTIN_MARKER, Bytes::from(current)).await?;
    }
    Ok(written)
}

/// Loads every handler's module from the bucket into the runtime.
pub async fn load_all(bucket: &impl Kv, runtime: &HandlerRuntime) -> Result<(), ModulesError> {
    for name in HandlerName::ALL {
        let bytes = match bucket.get(&key(name)).await? {
            Some(e) => e.value,
            None => Bytes::from_static(BUILTIN_MODULE),
        };
        runtime.install(name, &bytes).map_err(|error| ModulesError::Module { name: name.as_str(), error })?;
    }
    Ok(())
}

/// Applies every later change of the bucket to the runtime until the bucket's watch ends.
pub async fn watch_and_reload(bucket: impl Kv, runtime: std::sync::Arc<HandlerRuntime>) -> Result<(), ModulesError> {
    let mut changes = bucket.watch("call.*").await?;
    while let Some(change) = changes.next().await {
        let entry = match change {
            Ok(e) => e,
            Err(e) => {
                // Changes were missed (a lagging watch): load the whole bucket again.
                tracing::warn!(error = %Scrubbed(&e), "handlers watch lagged; reloading every module");
                if let Err(e) = load_all(&bucket, &runtime).await {
                    tracing::warn!(error = %Scrubbed(&e), "handler modules reload failed");
                }
                continue;
            }
        };
        let Some(name) = name_of(&entry.key) else { continue };
        let bytes: &[u8] = match entry.operation {
            Operation::Put => &entry.value,
            Operation::Delete => BUILTIN_MODULE,
        };
        match runtime.install(name, bytes) {
            Ok(()) => tracing::info!(handler = name.as_str(), revision = entry.revision, "handler module installed"),
            Err(e) => {
                tracing::warn!(handler = name.as_str(), error = %Scrubbed(&e), "handler module refused; the previous one stays")
            }
        }
    }
    Ok(())
}

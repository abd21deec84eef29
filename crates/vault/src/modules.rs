//! Handler modules in the vault's `handlers` bucket.
//!
//! Keys:
//!
//! - `call.<handler>` (`call.initiate`, ... `call.timeout`): which module runs the handler:
//!   [`BUILTIN`] (the module built into this callvault: it follows the binary's version, so an
//!   upgrade of callvault upgrades every vault's handlers) or `sha256:<hex>` (a module installed
//!   for this vault);
//! - `module.<hex>`: an installed module's bytes, stored once however many handlers use it,
//!   keyed by their SHA-256.
//!
//! So an idle vault's bucket holds seven short references, not seven copies of a module of half
//! a megabyte (issue 12, point 13: 3.6 MB per registered user before).
//!
//! **Installing a newer version without a restart**: [`install`] stores the module and points the
//! handler's key at it; writing WASM bytes straight to the handler's key works too (as it did
//! before references) and is moved to `module.<hex>` at the next start. [`watch_and_reload`] sees
//! the key change, compiles the module and swaps it in; events already running finish on the old
//! module, the next one runs the new. A module that does not compile, lacks the ABI's exports, or
//! is named but missing is refused with a log line and the previous module stays in place.
//! Deleting the key falls back to the built-in module.
//!
//! [`install_builtins`] (at every start) points missing keys at the built-in, and migrates what an
//! earlier callvault stored: copies of a built-in module (its own, or an earlier one its
//! `builtin.sha256` marker names) become [`BUILTIN`], other module bytes are stored once under
//! `module.<hex>`, and the marker goes.

use bytes::Bytes;
use callvault_call::abi::HandlerName;
use callvault_store::{Kv, KvError, Operation};

use callvault_protocol::ids::lower_hex;
use callvault_protocol::redact::Scrubbed;
use sha2::{Digest, Sha256};

use crate::runtime::{BUILTIN_MODULE, HandlerError, HandlerRuntime};

/// The bucket key naming a handler's module.
pub fn key(name: HandlerName) -> String {
    format!("call.{}", name.as_str())
}

fn name_of(key: &str) -> Option<HandlerName> {
    HandlerName::ALL.into_iter().find(|n| self::key(*n) == key)
}

/// A handler key's value naming the built-in module.
pub const BUILTIN: &[u8] = b"builtin";

/// The bucket key of an installed module's bytes.
pub fn module_key(digest_hex: &str) -> String {
    format!("module.{digest_hex}")
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
    /// A handler's key names a module the bucket does not hold (or holds other bytes under).
    #[error("handler {name}: the module it names is missing or does not match its digest")]
    MissingModule {
        /// Which handler.
        name: &'static str,
    },
}

/// The key an earlier callvault wrote to record which built-in module it copied (its SHA-256).
pub const BUILTIN_MARKER: &str = "builtin.sha256";

fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

/// Stores `wasm` once (under its digest) and points `name`'s key at it; returns the reference.
pub async fn install(bucket: &impl Kv, name: HandlerName, wasm: &[u8]) -> Result<String, ModulesError> {
    let digest = lower_hex(&Sha256::digest(wasm));
    match bucket.create(&module_key(&digest), Bytes::copy_from_slice(wasm)).await {
        Ok(_) | Err(KvError::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    let reference = format!("sha256:{digest}");
    bucket.put(&key(name), Bytes::from(reference.clone())).await?;
    Ok(reference)
}

/// Points every missing handler key at the built-in module and migrates module bytes stored under
/// handler keys (see the module documentation); returns how many keys were written.
pub async fn install_builtins(bucket: &impl Kv) -> Result<usize, ModulesError> {
    let previous = bucket.get(BUILTIN_MARKER).await?.map(|e| e.value);
    let mut written = 0usize;
    for name in HandlerName::ALL {
        let result = match bucket.get(&key(name)).await? {
            None => bucket.create(&key(name), Bytes::from_static(BUILTIN)).await,
            Some(e) if !is_wasm(&e.value) => continue,
            Some(e) => {
                let digest = lower_hex(&Sha256::digest(&e.value));
                let copy_of_a_builtin = e.value == BUILTIN_MODULE || previous.as_deref() == Some(digest.as_bytes());
                let value = if copy_of_a_builtin {
                    Bytes::from_static(BUILTIN)
                } else {
                    match bucket.create(&module_key(&digest), e.value.clone()).await {
                        Ok(_) | Err(KvError::AlreadyExists) => {}
                        Err(e) => return Err(e.into()),
                    }
                    Bytes::from(format!("sha256:{digest}"))
                };
                tracing::info!(
                    handler = name.as_str(),
                    builtin = copy_of_a_builtin,
                    "handler module stored by reference"
                );
                bucket.update(&key(name), value, e.revision).await
            }
        };
        match result {
            Ok(_) => written = written.saturating_add(1),
            // Someone else wrote the key meanwhile: theirs stands.
            Err(KvError::AlreadyExists | KvError::WrongRevision { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if previous.is_some() {
        bucket.delete(BUILTIN_MARKER).await?;
    }
    Ok(written)
}

/// The module a handler key's value names: the built-in, an installed module (checked against
/// its digest), or WASM bytes written to the key itself.
async fn resolve(bucket: &impl Kv, name: HandlerName, value: &Bytes) -> Result<Bytes, ModulesError> {
    if value.as_ref() == BUILTIN {
        return Ok(Bytes::from_static(BUILTIN_MODULE));
    }
    if is_wasm(value) {
        return Ok(value.clone());
    }
    let missing = ModulesError::MissingModule { name: name.as_str() };
    let digest = std::str::from_utf8(value).ok().and_then(|v| v.strip_prefix("sha256:")).ok_or_else(|| {
        ModulesError::Module {
            name: name.as_str(),
            error: HandlerError::InvalidModule("not a module reference".into()),
        }
    })?;
    let Some(entry) = bucket.get(&module_key(digest)).await? else { return Err(missing) };
    if lower_hex(&Sha256::digest(&entry.value)) != digest {
        return Err(missing);
    }
    Ok(entry.value)
}

/// Loads every handler's module from the bucket into the runtime. A handler whose key names a
/// module that is missing or does not load runs the built-in module, with a warning.
pub async fn load_all(bucket: &impl Kv, runtime: &HandlerRuntime) -> Result<(), ModulesError> {
    for name in HandlerName::ALL {
        let bytes = match bucket.get(&key(name)).await? {
            Some(e) => resolve(bucket, name, &e.value).await,
            None => Ok(Bytes::from_static(BUILTIN_MODULE)),
        };
        let installed = bytes.and_then(|b| {
            runtime.install(name, &b).map_err(|error| ModulesError::Module { name: name.as_str(), error })
        });
        if let Err(e) = installed {
            tracing::warn!(error = %Scrubbed(&e), "the handler runs the built-in module instead");
            runtime
                .install(name, BUILTIN_MODULE)
                .map_err(|error| ModulesError::Module { name: name.as_str(), error })?;
        }
    }
    Ok(())
}

/// Applies every later change of the bucket's handler keys to the runtime until the bucket's
/// watch ends.
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
        let bytes = match entry.operation {
            Operation::Put => resolve(&bucket, name, &entry.value).await,
            Operation::Delete => Ok(Bytes::from_static(BUILTIN_MODULE)),
        };
        let installed = bytes.and_then(|b| {
            runtime.install(name, &b).map_err(|error| ModulesError::Module { name: name.as_str(), error })
        });
        match installed {
            Ok(()) => tracing::info!(handler = name.as_str(), revision = entry.revision, "handler module installed"),
            Err(e) => tracing::warn!(error = %Scrubbed(&e), "handler module refused; the previous one stays"),
        }
    }
    Ok(())
}

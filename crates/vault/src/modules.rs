//! Handler modules in the vault's `handlers` bucket.
//!
//! Keys:
//!
//! - `<family>.<handler>` (`call.initiate`, ... `call.timeout`): which module runs the handler:
//!   [`BUILTIN`] (the module built into this callvault: it follows the binary's version, so an
//!   upgrade of callvault upgrades every vault's handlers) or `sha256:<hex>` (a module installed
//!   for this vault);
//! - `module.<hex>`: an installed module's bytes, stored once however many handlers use it,
//!   keyed by their SHA-256;
//! - `family.<name>`: `sha256:<hex>`, a family installed at run time ([`install_family`]): the
//!   module carries its manifest, and the vault takes the family's subjects as soon as the key is
//!   written, with no change to the kernel.
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
use callvault_kernel::{HandlerId, Manifest};
use callvault_store::{Kv, KvError, Operation};

use callvault_protocol::ids::lower_hex;
use callvault_protocol::redact::Scrubbed;
use sha2::{Digest, Sha256};

use crate::runtime::{BUILTIN_MODULE, HandlerError, HandlerRuntime, builtin_for, builtin_manifests};

/// A handler key's value naming the built-in module.
pub const BUILTIN: &[u8] = b"builtin";

/// The bucket key of an installed module's bytes.
pub fn module_key(digest_hex: &str) -> String {
    format!("module.{digest_hex}")
}

/// The bucket key of a family installed at run time.
pub fn family_key(family: &str) -> String {
    format!("family.{family}")
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
        name: String,
        /// Why.
        error: HandlerError,
    },
    /// A handler's key names a module the bucket does not hold (or holds other bytes under).
    #[error("handler {name}: the module it names is missing or does not match its digest")]
    MissingModule {
        /// Which handler.
        name: String,
    },
    /// A family module was refused (no valid manifest, or the name of a built-in family).
    #[error("family: {0}")]
    Family(String),
}

/// The key an earlier callvault wrote to record which built-in module it copied (its SHA-256).
pub const BUILTIN_MARKER: &str = "builtin.sha256";

fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

async fn store_module(bucket: &impl Kv, wasm: &[u8]) -> Result<String, ModulesError> {
    let digest = lower_hex(&Sha256::digest(wasm));
    match bucket.create(&module_key(&digest), Bytes::copy_from_slice(wasm)).await {
        Ok(_) | Err(KvError::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(format!("sha256:{digest}"))
}

/// Stores `wasm` once (under its digest) and points handler `id`'s key at it; returns the reference.
pub async fn install(bucket: &impl Kv, id: impl Into<HandlerId>, wasm: &[u8]) -> Result<String, ModulesError> {
    let reference = store_module(bucket, wasm).await?;
    bucket.put(&id.into().key(), Bytes::from(reference.clone())).await?;
    Ok(reference)
}

/// Installs a family module: reads its manifest, stores the module once, points every handler's
/// key at it and records the family under `family.<name>` (which a running vault watches).
/// Installing a newer version of a family is the same call with the newer module.
pub async fn install_family(bucket: &impl Kv, runtime: &HandlerRuntime, wasm: &[u8]) -> Result<Manifest, ModulesError> {
    let manifest = runtime.manifest_of(wasm).map_err(|e| ModulesError::Family(e.to_string()))?;
    if builtin_manifests().iter().any(|(m, _)| m.family == manifest.family) {
        return Err(ModulesError::Family(format!("{} is a built-in family", manifest.family)));
    }
    let reference = store_module(bucket, wasm).await?;
    for h in &manifest.handlers {
        let id = HandlerId::new(manifest.family.as_str(), h.name.as_str());
        bucket.put(&id.key(), Bytes::from(reference.clone())).await?;
    }
    bucket.put(&family_key(manifest.family.as_str()), Bytes::from(reference)).await?;
    Ok(manifest)
}

/// Points every missing handler key of the built-in families at the built-in module and migrates
/// module bytes stored under handler keys (see the module documentation); returns how many keys
/// were written.
pub async fn install_builtins(bucket: &impl Kv) -> Result<usize, ModulesError> {
    let previous = bucket.get(BUILTIN_MARKER).await?.map(|e| e.value);
    let mut written = 0usize;
    let ids = builtin_manifests().iter().flat_map(|(m, _)| {
        m.handlers.iter().map(|h| HandlerId::new(m.family.as_str(), h.name.as_str())).collect::<Vec<_>>()
    });
    for id in ids {
        let result = match bucket.get(&id.key()).await? {
            None => bucket.create(&id.key(), Bytes::from_static(BUILTIN)).await,
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
                tracing::info!(handler = %id, builtin = copy_of_a_builtin, "handler module stored by reference");
                bucket.update(&id.key(), value, e.revision).await
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

/// The module a reference names: an installed module (checked against its digest), or WASM
/// bytes written to the key itself. `builtin` is resolved by the caller.
async fn resolve_reference(bucket: &impl Kv, name: &str, value: &Bytes) -> Result<Bytes, ModulesError> {
    if is_wasm(value) {
        return Ok(value.clone());
    }
    let missing = ModulesError::MissingModule { name: name.to_owned() };
    let digest = std::str::from_utf8(value).ok().and_then(|v| v.strip_prefix("sha256:")).ok_or_else(|| {
        ModulesError::Module {
            name: name.to_owned(),
            error: HandlerError::InvalidModule("not a module reference".into()),
        }
    })?;
    let Some(entry) = bucket.get(&module_key(digest)).await? else { return Err(missing) };
    if lower_hex(&Sha256::digest(&entry.value)) != digest {
        return Err(missing);
    }
    Ok(entry.value)
}

/// The module handler `id`'s key value names.
async fn resolve(bucket: &impl Kv, id: &HandlerId, value: &Bytes) -> Result<Bytes, ModulesError> {
    if value.as_ref() == BUILTIN {
        return builtin_for(id)
            .map(Bytes::from_static)
            .ok_or_else(|| ModulesError::MissingModule { name: id.to_string() });
    }
    resolve_reference(bucket, &id.to_string(), value).await
}

/// The module a handler falls back to: its built-in family's, or its installed family's.
async fn fallback(bucket: &impl Kv, id: &HandlerId) -> Result<Bytes, ModulesError> {
    if let Some(wasm) = builtin_for(id) {
        return Ok(Bytes::from_static(wasm));
    }
    match bucket.get(&family_key(&id.family)).await? {
        Some(e) => resolve_reference(bucket, &id.to_string(), &e.value).await,
        None => Err(ModulesError::MissingModule { name: id.to_string() }),
    }
}

async fn load_handler(bucket: &impl Kv, runtime: &HandlerRuntime, id: &HandlerId) -> Result<(), ModulesError> {
    let bytes = match bucket.get(&id.key()).await? {
        Some(e) => resolve(bucket, id, &e.value).await,
        None => fallback(bucket, id).await,
    };
    let installed = bytes.and_then(|b| {
        runtime.install(id.clone(), &b).map_err(|error| ModulesError::Module { name: id.to_string(), error })
    });
    if let Err(e) = installed {
        tracing::warn!(error = %Scrubbed(&e), "the handler runs its family's module instead");
        let b = fallback(bucket, id).await?;
        runtime.install(id.clone(), &b).map_err(|error| ModulesError::Module { name: id.to_string(), error })?;
    }
    Ok(())
}

/// A family installed at run time, from its `family.<name>` key's value.
async fn load_family(bucket: &impl Kv, runtime: &HandlerRuntime, value: &Bytes) -> Result<Manifest, ModulesError> {
    let wasm = resolve_reference(bucket, "family", value).await?;
    let manifest = runtime.manifest_of(&wasm).map_err(|e| ModulesError::Family(e.to_string()))?;
    for h in &manifest.handlers {
        load_handler(bucket, runtime, &HandlerId::new(manifest.family.as_str(), h.name.as_str())).await?;
    }
    Ok(manifest)
}

/// Loads every handler of every family (built in, and installed under `family.*`) from the bucket
/// into the runtime; returns the families' manifests. A handler whose key names a module that is
/// missing or does not load runs its family's module, with a warning; a family whose module is
/// refused is left out, with a warning.
pub async fn load_all(bucket: &impl Kv, runtime: &HandlerRuntime) -> Result<Vec<Manifest>, ModulesError> {
    let mut families = Vec::new();
    for (manifest, _) in builtin_manifests() {
        for h in &manifest.handlers {
            load_handler(bucket, runtime, &HandlerId::new(manifest.family.as_str(), h.name.as_str())).await?;
        }
        families.push(manifest.clone());
    }
    for key in bucket.keys().await? {
        if !key.starts_with("family.") {
            continue;
        }
        let Some(entry) = bucket.get(&key).await? else { continue };
        match load_family(bucket, runtime, &entry.value).await {
            Ok(m) if !families.iter().any(|f: &Manifest| f.family == m.family) => families.push(m),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %Scrubbed(&e), "an installed family was refused"),
        }
    }
    Ok(families)
}

/// Applies every later change of the bucket's handler keys to the runtime until the bucket's
/// watch ends.
pub async fn watch_and_reload(bucket: impl Kv, runtime: std::sync::Arc<HandlerRuntime>) -> Result<(), ModulesError> {
    watch_and_reload_families(bucket, runtime, None).await
}

/// [`watch_and_reload`], and families installed under `family.*` are loaded and sent to
/// `families` (the vault then takes their subjects).
pub async fn watch_and_reload_families(
    bucket: impl Kv,
    runtime: std::sync::Arc<HandlerRuntime>,
    families: Option<tokio::sync::mpsc::Sender<Manifest>>,
) -> Result<(), ModulesError> {
    let mut changes = bucket.watch(">").await?;
    while let Some(change) = changes.next().await {
        let entry = match change {
            Ok(e) => e,
            Err(e) => {
                // Changes were missed (a lagging watch): load the whole bucket again.
                tracing::warn!(error = %Scrubbed(&e), "handlers watch lagged; reloading every module");
                match load_all(&bucket, &runtime).await {
                    Ok(all) => {
                        if let Some(tx) = &families {
                            for m in all {
                                let _ = tx.send(m).await;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %Scrubbed(&e), "handler modules reload failed"),
                }
                continue;
            }
        };
        if let Some(family) = entry.key.strip_prefix("family.") {
            if entry.operation == Operation::Delete {
                continue;
            }
            match load_family(&bucket, &runtime, &entry.value).await {
                Ok(m) if m.family.as_str() == family => {
                    tracing::info!(family = m.family.as_str(), state_version = m.state_version, "family installed");
                    if let Some(tx) = &families {
                        let _ = tx.send(m).await;
                    }
                }
                Ok(_) => tracing::warn!("a family module installed under another family's name was refused"),
                Err(e) => tracing::warn!(error = %Scrubbed(&e), "family module refused"),
            }
            continue;
        }
        let Some(id) = HandlerId::from_key(&entry.key) else { continue };
        if !runtime.has(&id) {
            continue;
        }
        let bytes = match entry.operation {
            Operation::Put => resolve(&bucket, &id, &entry.value).await,
            Operation::Delete => fallback(&bucket, &id).await,
        };
        let installed = bytes.and_then(|b| {
            runtime.install(id.clone(), &b).map_err(|error| ModulesError::Module { name: id.to_string(), error })
        });
        match installed {
            Ok(()) => tracing::info!(handler = %id, revision = entry.revision, "handler module installed"),
            Err(e) => tracing::warn!(error = %Scrubbed(&e), "handler module refused; the previous one stays"),
        }
    }
    Ok(())
}

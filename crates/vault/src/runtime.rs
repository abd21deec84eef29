//! Runs handler families' WASM modules under wasmi with fuel and memory limits.
//!
//! Each invocation gets a fresh instance (fresh memory, no state carried between events), a fuel
//! budget and a memory cap. A handler that traps, runs out of fuel or outgrows its memory fails
//! that one event with a [`HandlerError`]; the runtime keeps serving. The only import a module may
//! use is `callvault.log(level, ptr, len)`.
//!
//! Modules are compiled once and swapped atomically by [`HandlerRuntime::install`]: an invocation
//! that already started finishes on the module it started with; the next one uses the new module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use sha2::{Digest, Sha256};

use callvault_kernel::{HandlerId, Input, Manifest, Output};
use wasmi::errors::{ErrorKind, MemoryError};
use wasmi::{Caller, Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, TrapCode};

/// The built-in `call` family's module, built from `crates/handlers` by this crate's build script.
pub const BUILTIN_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/callvault_handlers.wasm"));

/// The built-in `message` family's module, built from `crates/message` by this crate's build
/// script.
pub const MESSAGE_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/callvault_message.wasm"));

/// The built-in `profile` family's module, built from `crates/profile` by this crate's build
/// script.
pub const PROFILE_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/callvault_profile.wasm"));

/// The built-in `connection` family's module, built from `crates/connection` by this crate's
/// build script.
pub const CONNECTION_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/callvault_connection.wasm"));

/// The modules of the families built into this callvault.
pub const BUILTIN_FAMILIES: &[&[u8]] = &[BUILTIN_MODULE, MESSAGE_MODULE, PROFILE_MODULE, CONNECTION_MODULE];

/// The built-in families' manifests (read from their modules once).
pub fn builtin_manifests() -> &'static [(Manifest, &'static [u8])] {
    static MANIFESTS: OnceLock<Vec<(Manifest, &'static [u8])>> = OnceLock::new();
    MANIFESTS.get_or_init(|| {
        let rt = HandlerRuntime::new(HandlerLimits::default());
        BUILTIN_FAMILIES
            .iter()
            .filter_map(|wasm| match rt.manifest_of(wasm) {
                Ok(m) => Some((m, *wasm)),
                Err(e) => {
                    tracing::error!(error = %e, "a built-in family's module has no valid manifest");
                    None
                }
            })
            .collect()
    })
}

/// The built-in family module that runs handler `id`, if any.
pub fn builtin_for(id: &HandlerId) -> Option<&'static [u8]> {
    builtin_manifests()
        .iter()
        .find(|(m, _)| m.family.as_str() == id.family && m.handler(&id.handler).is_some())
        .map(|(_, wasm)| *wasm)
}

/// SHA-256 of [`BUILTIN_MODULE`] (computed once).
pub fn builtin_digest() -> [u8; 32] {
    static DIGEST: OnceLock<[u8; 32]> = OnceLock::new();
    *DIGEST.get_or_init(|| Sha256::digest(BUILTIN_MODULE).into())
}

/// Budgets of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerLimits {
    /// Fuel (about one unit per WASM instruction).
    pub fuel: u64,
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Largest input, in bytes.
    pub max_input: usize,
    /// Largest output, in bytes.
    pub max_output: usize,
}

impl Default for HandlerLimits {
    fn default() -> Self {
        Self {
            fuel: 200_000_000,
            memory_bytes: 32 * 1024 * 1024,
            max_input: 4 * 1024 * 1024,
            max_output: 4 * 1024 * 1024,
        }
    }
}

/// Why a handler invocation failed. The event fails; the runtime goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// No module is installed for this handler.
    #[error("no module installed for handler {0}")]
    NotInstalled(String),
    /// The bytes are not a valid module, or it imports something the host does not offer.
    #[error("invalid handler module: {0}")]
    InvalidModule(String),
    /// The module lacks an export the ABI needs.
    #[error("handler module has no export {0}")]
    MissingExport(String),
    /// The fuel budget ran out (e.g. an endless loop).
    #[error("handler ran out of fuel")]
    OutOfFuel,
    /// The handler tried to grow its memory past the cap.
    #[error("handler exceeded its memory limit")]
    MemoryLimit,
    /// The handler trapped.
    #[error("handler trapped: {0}")]
    Trap(String),
    /// Input or output too large, or the output is not a handler output.
    #[error("bad handler data: {0}")]
    BadData(String),
}

/// The process's one wasmi engine (fuel metering on).
fn shared_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::default();
        config.consume_fuel(true);
        Engine::new(&config)
    })
}

/// Compiled modules by SHA-256 of their bytes, held while some runtime uses them.
fn compiled_cache() -> &'static Mutex<HashMap<[u8; 32], std::sync::Weak<Module>>> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], std::sync::Weak<Module>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Compiled handler modules and the engine that runs them.
pub struct HandlerRuntime {
    engine: Engine,
    linker: Linker<StoreLimits>,
    modules: RwLock<HashMap<HandlerId, Arc<Module>>>,
    limits: HandlerLimits,
}

impl std::fmt::Debug for HandlerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerRuntime").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// What one run cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Input bytes.
    pub input_bytes: usize,
    /// Fuel consumed.
    pub fuel: u64,
}

impl HandlerRuntime {
    /// A runtime with no modules installed. Every runtime of the process shares one engine and
    /// one cache of compiled modules (by SHA-256 of the bytes), so a server hosting many vaults
    /// compiles the built-in module once and keeps one copy; fuel and memory limits stay per run.
    pub fn new(limits: HandlerLimits) -> Self {
        let engine = shared_engine().clone();
        let mut linker = Linker::<StoreLimits>::new(&engine);
        // The module's only import: a bounded log line.
        let _ =
            linker.func_wrap("callvault", "log", |caller: Caller<'_, StoreLimits>, level: i32, ptr: i32, len: i32| {
                let Some(memory) = caller.get_export("memory").and_then(wasmi::Extern::into_memory) else { return };
                let len = usize::try_from(len).unwrap_or(0).min(1024);
                let mut buf = vec![0u8; len];
                if memory.read(&caller, usize::try_from(ptr).unwrap_or(usize::MAX), &mut buf).is_ok() {
                    let text = String::from_utf8_lossy(&buf);
                    match level {
                        0 => tracing::warn!(handler_log = %text),
                        _ => tracing::debug!(handler_log = %text),
                    }
                }
            });
        Self { engine, linker, modules: RwLock::new(HashMap::new()), limits }
    }

    /// A runtime with every built-in family's module (compiled once) installed for its handlers.
    pub fn with_builtins(limits: HandlerLimits) -> Result<Self, HandlerError> {
        let rt = Self::new(limits);
        for (manifest, wasm) in builtin_manifests() {
            rt.install_family(manifest, wasm)?;
        }
        Ok(rt)
    }

    /// Installs `wasm` for every handler of `manifest`.
    pub fn install_family(&self, manifest: &Manifest, wasm: &[u8]) -> Result<(), HandlerError> {
        let module = self.compile(wasm)?;
        for h in &manifest.handlers {
            self.install_compiled(HandlerId::new(manifest.family.as_str(), h.name.as_str()), module.clone())?;
        }
        Ok(())
    }

    /// Compiles `wasm` and makes it the module of handler `id` (replacing any previous one).
    pub fn install(&self, id: impl Into<HandlerId>, wasm: &[u8]) -> Result<(), HandlerError> {
        let module = self.compile(wasm)?;
        self.install_compiled(id.into(), module)
    }

    /// Whether a module runs handler `id`.
    pub fn has(&self, id: &HandlerId) -> bool {
        self.modules.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(id)
    }

    /// The manifest a family module carries (its `cv_manifest` export), validated.
    pub fn manifest_of(&self, wasm: &[u8]) -> Result<Manifest, HandlerError> {
        let module = self.compile(wasm)?;
        Self::check_imports(&module)?;
        let (mut store, instance) = self.instantiate(&module)?;
        let memory =
            instance.get_memory(&store, "memory").ok_or_else(|| HandlerError::MissingExport("memory".into()))?;
        let manifest = instance
            .get_typed_func::<(), i32>(&store, "cv_manifest")
            .map_err(|_| HandlerError::MissingExport("cv_manifest".into()))?;
        let cv_output = instance
            .get_typed_func::<(), i32>(&store, "cv_output")
            .map_err(|_| HandlerError::MissingExport("cv_output".into()))?;
        let len = manifest.call(&mut store, ()).map_err(|e| Self::classify(&e))?;
        let len = usize::try_from(len).map_err(|_| HandlerError::BadData("manifest length".into()))?;
        if len > 64 * 1024 {
            return Err(HandlerError::BadData("manifest too large".into()));
        }
        let at = cv_output.call(&mut store, ()).map_err(|e| Self::classify(&e))?;
        let mut out = vec![0u8; len];
        memory
            .read(&store, usize::try_from(at).map_err(|_| HandlerError::BadData("manifest address".into()))?, &mut out)
            .map_err(|e| HandlerError::BadData(e.to_string()))?;
        Manifest::parse(&out).map_err(|e| HandlerError::BadData(format!("manifest: {e}")))
    }

    fn compile(&self, wasm: &[u8]) -> Result<Arc<Module>, HandlerError> {
        // Every vault loads its modules from its own bucket; most are the built-in module, which a
        // byte comparison recognises far faster than hashing half a megabyte again.
        let digest = if wasm == BUILTIN_MODULE { builtin_digest() } else { Sha256::digest(wasm).into() };
        let mut cache = compiled_cache().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = cache.get(&digest).and_then(std::sync::Weak::upgrade) {
            return Ok(m);
        }
        let module = Arc::new(Module::new(&self.engine, wasm).map_err(|e| HandlerError::InvalidModule(e.to_string()))?);
        cache.retain(|_, w| w.strong_count() > 0);
        cache.insert(digest, Arc::downgrade(&module));
        Ok(module)
    }

    fn check_imports(module: &Module) -> Result<(), HandlerError> {
        for import in module.imports() {
            if (import.module(), import.name()) != ("callvault", "log") {
                return Err(HandlerError::InvalidModule(format!("imports {}.{}", import.module(), import.name())));
            }
        }
        Ok(())
    }

    fn install_compiled(&self, id: HandlerId, module: Arc<Module>) -> Result<(), HandlerError> {
        for needed in [id.export(), "cv_input".to_owned(), "cv_output".to_owned(), "memory".to_owned()] {
            if module.get_export(&needed).is_none() {
                return Err(HandlerError::MissingExport(needed));
            }
        }
        Self::check_imports(&module)?;
        let mut modules = self.modules.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        modules.insert(id, module);
        Ok(())
    }

    /// Runs handler `id` on `input`.
    pub fn invoke(&self, id: impl Into<HandlerId>, input: &Input) -> Result<Output, HandlerError> {
        self.invoke_measured(&id.into(), input).map(|(o, _)| o)
    }

    /// Runs handler `id` on `input`; also says what the run cost.
    pub fn invoke_measured(&self, id: &HandlerId, input: &Input) -> Result<(Output, Usage), HandlerError> {
        let bytes = serde_json::to_vec(input).map_err(|e| HandlerError::BadData(e.to_string()))?;
        let (out, fuel) = self.run(id, &bytes)?;
        let output = serde_json::from_slice(&out).map_err(|e| HandlerError::BadData(format!("output: {e}")))?;
        Ok((output, Usage { input_bytes: bytes.len(), fuel }))
    }

    /// Runs handler `id` on raw input bytes; returns raw output bytes.
    pub fn invoke_raw(&self, id: impl Into<HandlerId>, input: &[u8]) -> Result<Vec<u8>, HandlerError> {
        self.run(&id.into(), input).map(|(o, _)| o)
    }

    fn classify(e: &wasmi::Error) -> HandlerError {
        if e.as_trap_code() == Some(TrapCode::OutOfFuel) {
            HandlerError::OutOfFuel
        } else if e.as_trap_code() == Some(TrapCode::GrowthOperationLimited)
            || matches!(e.kind(), ErrorKind::Memory(MemoryError::ResourceLimiterDeniedAllocation))
        {
            HandlerError::MemoryLimit
        } else {
            HandlerError::Trap(e.to_string())
        }
    }

    fn instantiate(&self, module: &Module) -> Result<(Store<StoreLimits>, wasmi::Instance), HandlerError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .instances(1)
            .memories(1)
            .tables(4)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, limits);
        store.limiter(|l| l);
        store.set_fuel(self.limits.fuel).map_err(|e| HandlerError::Trap(e.to_string()))?;
        let instance = self.linker.instantiate_and_start(&mut store, module).map_err(|e| Self::classify(&e))?;
        Ok((store, instance))
    }

    fn run(&self, id: &HandlerId, input: &[u8]) -> Result<(Vec<u8>, u64), HandlerError> {
        if input.len() > self.limits.max_input {
            return Err(HandlerError::BadData("input too large".into()));
        }
        let module = {
            let modules = self.modules.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            modules.get(id).cloned().ok_or_else(|| HandlerError::NotInstalled(id.to_string()))?
        };
        let (mut store, instance) = self.instantiate(&module)?;
        let memory =
            instance.get_memory(&store, "memory").ok_or_else(|| HandlerError::MissingExport("memory".into()))?;
        let len = i32::try_from(input.len()).map_err(|_| HandlerError::BadData("input too large".into()))?;
        let cv_input = instance
            .get_typed_func::<i32, i32>(&store, "cv_input")
            .map_err(|e| HandlerError::MissingExport(e.to_string()))?;
        let handle = instance
            .get_typed_func::<i32, i32>(&store, &id.export())
            .map_err(|e| HandlerError::MissingExport(e.to_string()))?;
        let cv_output = instance
            .get_typed_func::<(), i32>(&store, "cv_output")
            .map_err(|e| HandlerError::MissingExport(e.to_string()))?;
        let at = cv_input.call(&mut store, len).map_err(|e| Self::classify(&e))?;
        memory
            .write(&mut store, usize::try_from(at).map_err(|_| HandlerError::BadData("input address".into()))?, input)
            .map_err(|e| HandlerError::BadData(e.to_string()))?;
        let out_len = handle.call(&mut store, len).map_err(|e| Self::classify(&e))?;
        let out_len = usize::try_from(out_len).map_err(|_| HandlerError::BadData("output length".into()))?;
        if out_len > self.limits.max_output {
            return Err(HandlerError::BadData("output too large".into()));
        }
        let out_at = cv_output.call(&mut store, ()).map_err(|e| Self::classify(&e))?;
        let mut out = vec![0u8; out_len];
        memory
            .read(
                &store,
                usize::try_from(out_at).map_err(|_| HandlerError::BadData("output address".into()))?,
                &mut out,
            )
            .map_err(|e| HandlerError::BadData(e.to_string()))?;
        let fuel = self.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        Ok((out, fuel))
    }
}

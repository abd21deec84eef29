//! Runs call handlers (WASM modules) under wasmi with fuel and memory limits.
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

use callvault_call::abi::{HandlerInput, HandlerName, HandlerOutput};
use wasmi::errors::{ErrorKind, MemoryError};
use wasmi::{Caller, Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, TrapCode};

/// The built-in handlers module, built from `crates/handlers` by this crate's build script.
pub const BUILTIN_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/callvault_handlers.wasm"));

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
    NotInstalled(&'static str),
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
    modules: RwLock<HashMap<HandlerName, Arc<Module>>>,
    limits: HandlerLimits,
}

impl std::fmt::Debug for HandlerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerRuntime").field("limits", &self.limits).finish_non_exhaustive()
    }
}

fn export_name(name: HandlerName) -> String {
    format!("cv_handle_{}", name.as_str())
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

    /// A runtime with the built-in module (compiled once) installed for all seven handlers.
    pub fn with_builtins(limits: HandlerLimits) -> Result<Self, HandlerError> {
        let rt = Self::new(limits);
        let module = rt.compile(BUILTIN_MODULE)?;
        for name in HandlerName::ALL {
            rt.install_compiled(name, module.clone())?;
        }
        Ok(rt)
    }

    /// Compiles `wasm` and makes it the module of handler `name` (replacing any previous one).
    pub fn install(&self, name: HandlerName, wasm: &[u8]) -> Result<(), HandlerError> {
        let module = self.compile(wasm)?;
        self.install_compiled(name, module)
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

    fn install_compiled(&self, name: HandlerName, module: Arc<Module>) -> Result<(), HandlerError> {
        for needed in [export_name(name), "cv_input".to_owned(), "cv_output".to_owned(), "memory".to_owned()] {
            if module.get_export(&needed).is_none() {
                return Err(HandlerError::MissingExport(needed));
            }
        }
        for import in module.imports() {
            if (import.module(), import.name()) != ("callvault", "log") {
                return Err(HandlerError::InvalidModule(format!("imports {}.{}", import.module(), import.name())));
            }
        }
        let mut modules = self.modules.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        modules.insert(name, module);
        Ok(())
    }

    /// Runs handler `name` on `input`.
    pub fn invoke(&self, name: HandlerName, input: &HandlerInput) -> Result<HandlerOutput, HandlerError> {
        let bytes = serde_json::to_vec(input).map_err(|e| HandlerError::BadData(e.to_string()))?;
        let out = self.invoke_raw(name, &bytes)?;
        serde_json::from_slice(&out).map_err(|e| HandlerError::BadData(format!("output: {e}")))
    }

    /// Runs handler `name` on raw input bytes; returns raw output bytes.
    pub fn invoke_raw(&self, name: HandlerName, input: &[u8]) -> Result<Vec<u8>, HandlerError> {
        if input.len() > self.limits.max_input {
            return Err(HandlerError::BadData("input too large".into()));
        }
        let module = {
            let modules = self.modules.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            modules.get(&name).cloned().ok_or(HandlerError::NotInstalled(name.as_str()))?
        };
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
        let classify = |_: &Store<StoreLimits>, e: wasmi::Error| {
            if e.as_trap_code() == Some(TrapCode::OutOfFuel) {
                HandlerError::OutOfFuel
            } else if e.as_trap_code() == Some(TrapCode::GrowthOperationLimited)
                || matches!(e.kind(), ErrorKind::Memory(MemoryError::ResourceLimiterDeniedAllocation))
            {
                HandlerError::MemoryLimit
            } else {
                HandlerError::Trap(e.to_string())
            }
        };
        let instance = self.linker.instantiate_and_start(&mut store, &module).map_err(|e| classify(&store, e))?;
        let memory =
            instance.get_memory(&store, "memory").ok_or_else(|| HandlerError::MissingExport("memory".into()))?;
        let len = i32::try_from(input.len()).map_err(|_| HandlerError::BadData("input too large".into()))?;
        let cv_input = instance
            .get_typed_func::<i32, i32>(&store, "cv_input")
            .map_err(|e| HandlerError::MissingExport(e.to_string()))?;
        let handle = instance
            .get_typed_func::<i32, i32>(&store, &export_name(name))
            .map_err(|e| HandlerError::MissingExport(e.to_string()))?;
        let cv_output = instance
            .get_typed_func::<(), i32>(&store, "cv_output")
            .map_err(|e| HandlerError::MissingExport(e.to_string()))?;
        let at = cv_input.call(&mut store, len).map_err(|e| classify(&store, e))?;
        memory
            .write(&mut store, usize::try_from(at).map_err(|_| HandlerError::BadData("input address".into()))?, input)
            .map_err(|e| HandlerError::BadData(e.to_string()))?;
        let out_len = handle.call(&mut store, len).map_err(|e| classify(&store, e))?;
        let out_len = usize::try_from(out_len).map_err(|_| HandlerError::BadData("output length".into()))?;
        if out_len > self.limits.max_output {
            return Err(HandlerError::BadData("output too large".into()));
        }
        let out_at = cv_output.call(&mut store, ()).map_err(|e| classify(&store, e))?;
        let mut out = vec![0u8; out_len];
        memory
            .read(
                &store,
                usize::try_from(out_at).map_err(|_| HandlerError::BadData("output address".into()))?,
                &mut out,
            )
            .map_err(|e| HandlerError::BadData(e.to_string()))?;
        Ok(out)
    }
}

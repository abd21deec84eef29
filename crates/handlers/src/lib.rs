//! The `call` family: the seven call handlers of the vault plan (initiate, incoming, accept,
//! reject, end, signal, timeout), compiled to one WASM module that the vault runs under wasmi
//! with fuel and memory limits. Each handler is a thin shell over `callvault_call::abi::run`: the seed's "Logic" steps
//! live there and in the `callvault-call` state machine.
//!
//! ABI (all integers i32, all data JSON, no imports but `callvault.log`), the vault kernel's
//! (`callvault_kernel::abi`):
//!
//! 1. the host calls `cv_input(len)`, which returns the address of an input buffer of `len` bytes,
//!    and writes the [`Input`](callvault_call::abi::Input) there;
//! 2. the host calls `cv_handle_<name>(len)`, which returns the output's length;
//! 3. the host calls `cv_output()` for the output's address and reads the
//!    [`Output`](callvault_call::abi::Output).
//!
//! `cv_manifest()` puts the family's manifest in the output buffer and returns its length.
//!
//! The buffers are statics inside the module, so the ABI needs no `unsafe`: handing the host an
//! address is a plain integer, and the host writes through wasmi's memory API. The module's heap
//! is a bump allocator (`heap`, wasm32 only), the crate's one piece of unsafe code: every event
//! runs in a fresh instance, so freeing memory would buy nothing.

use std::sync::Mutex;

#[cfg(target_arch = "wasm32")]
mod heap;

use callvault_call::abi::{self, HandlerName};

static INPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static OUTPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn address(buf: &mut [u8]) -> i32 {
    // wasm32 addresses fit in 32 bits; the host reads them as unsigned.
    buf.as_mut_ptr().addr() as i32
}

/// Makes the input buffer `len` bytes long and returns its address.
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_input(len: i32) -> i32 {
    let mut input = INPUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    input.clear();
    input.resize(usize::try_from(len).unwrap_or(0), 0);
    address(&mut input)
}

/// The address of the last output.
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_output() -> i32 {
    let mut output = OUTPUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    address(&mut output)
}

fn handle(name: HandlerName, len: i32) -> i32 {
    let input = INPUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let used = usize::try_from(len).unwrap_or(0).min(input.len());
    let bytes = abi::run_json_as(name, input.get(..used).unwrap_or_default());
    let mut output = OUTPUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *output = bytes;
    i32::try_from(output.len()).unwrap_or(0)
}

/// Puts the family's manifest in the output buffer; returns its length.
#[allow(unsafe_code)] // the export needs its symbol name
#[unsafe(no_mangle)]
pub extern "C" fn cv_manifest() -> i32 {
    let mut output = OUTPUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *output = abi::manifest_json();
    i32::try_from(output.len()).unwrap_or(0)
}

macro_rules! handlers {
    ($($export:ident => $name:ident),+ $(,)?) => {$(
        #[doc = concat!("The `", stringify!($name), "` handler.")]
        #[allow(unsafe_code)] // the export needs its symbol name
        #[unsafe(no_mangle)]
        pub extern "C" fn $export(len: i32) -> i32 {
            handle(HandlerName::$name, len)
        }
    )+};
}

handlers! {
    cv_handle_initiate => Initiate,
    cv_handle_incoming => Incoming,
    cv_handle_accept => Accept,
    cv_handle_reject => Reject,
    cv_handle_end => End,
    cv_handle_signal => Signal,
    cv_handle_timeout => Timeout,
}

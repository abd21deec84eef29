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
//! The buffers and what the exports do are `callvault_kernel::guest`'s; this crate holds the
//! exports themselves. The module's heap is a bump allocator (`heap`, wasm32 only), the crate's
//! one piece of unsafe code: every event runs in a fresh instance, so freeing memory would buy
//! nothing.

#[cfg(target_arch = "wasm32")]
mod heap;

use callvault_call::abi::{self, HandlerName};
use callvault_kernel::guest;

callvault_kernel::guest_exports!(abi::manifest_json());

macro_rules! handlers {
    ($($export:ident => $name:ident),+ $(,)?) => {$(
        #[doc = concat!("The `", stringify!($name), "` handler.")]
        #[allow(unsafe_code)] // the export needs its symbol name
        #[unsafe(no_mangle)]
        pub extern "C" fn $export(len: i32) -> i32 {
            guest::handle(len, |input| abi::run_json_as(HandlerName::$name, input))
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

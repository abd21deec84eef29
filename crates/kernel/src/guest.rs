//! The guest side of the handler ABI, for family modules (wasm32): the input and output buffers
//! and what the exports do with them. A module's exports are one-line wrappers around these
//! (`cv_input`, `cv_output`, `cv_manifest`, `cv_handle_<name>`), since an export needs
//! `#[unsafe(no_mangle)]`, which this crate does not allow.
//!
//! The buffers are statics, so the ABI needs no `unsafe`: handing the host an address is a plain
//! integer, and the host writes and reads through wasmi's memory API.

use std::sync::Mutex;

static INPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static OUTPUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn address(buf: &mut [u8]) -> i32 {
    // wasm32 addresses fit in 32 bits; the host reads them as unsigned.
    buf.as_mut_ptr().addr() as i32
}

/// `cv_input(len)`: makes the input buffer `len` bytes long and returns its address.
pub fn input(len: i32) -> i32 {
    let mut input = INPUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    input.clear();
    input.resize(usize::try_from(len).unwrap_or(0), 0);
    address(&mut input)
}

/// `cv_output()`: the address of the last output.
pub fn output() -> i32 {
    let mut output = OUTPUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    address(&mut output)
}

/// Makes `bytes` the output; returns its length (`cv_manifest`).
pub fn put_output(bytes: Vec<u8>) -> i32 {
    let mut output = OUTPUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *output = bytes;
    i32::try_from(output.len()).unwrap_or(0)
}

/// `cv_handle_<name>(len)`: runs `handler` on the first `len` input bytes and makes its answer
/// the output; returns the output's length.
pub fn handle(len: i32, handler: impl FnOnce(&[u8]) -> Vec<u8>) -> i32 {
    let input = INPUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let used = usize::try_from(len).unwrap_or(0).min(input.len());
    let bytes = handler(input.get(..used).unwrap_or_default());
    drop(input);
    put_output(bytes)
}

/// Defines a family module's common exports in the calling crate: `cv_input`, `cv_output`, and
/// `cv_manifest` returning the bytes `$manifest` makes. (The crate allows `unsafe_code` on them
/// alone: an export needs `#[unsafe(no_mangle)]`.)
#[macro_export]
macro_rules! guest_exports {
    ($manifest:expr) => {
        /// Makes the input buffer `len` bytes long and returns its address.
        #[allow(unsafe_code)] // the export needs its symbol name
        #[unsafe(no_mangle)]
        pub extern "C" fn cv_input(len: i32) -> i32 {
            $crate::guest::input(len)
        }

        /// The address of the last output.
        #[allow(unsafe_code)] // the export needs its symbol name
        #[unsafe(no_mangle)]
        pub extern "C" fn cv_output() -> i32 {
            $crate::guest::output()
        }

        /// Puts the family's manifest in the output buffer; returns its length.
        #[allow(unsafe_code)] // the export needs its symbol name
        #[unsafe(no_mangle)]
        pub extern "C" fn cv_manifest() -> i32 {
            $crate::guest::put_output($manifest)
        }
    };
}

/// Defines a family module's handler exports in the calling crate: `cv_handle_<name>` for each
/// `export => "name"`, each running `$run(name, input bytes) -> output bytes`.
#[macro_export]
macro_rules! handler_exports {
    ($run:path; $($export:ident => $name:literal),+ $(,)?) => {$(
        #[doc = concat!("The `", $name, "` handler.")]
        #[allow(unsafe_code)] // the export needs its symbol name
        #[unsafe(no_mangle)]
        pub extern "C" fn $export(len: i32) -> i32 {
            $crate::guest::handle(len, |input| $run($name, input))
        }
    )+};
}

/// A family's JSON entry point around its `run`: parses the [`crate::Input`], runs handler
/// `name` on it, and serializes the [`crate::Output`] (an input that does not parse is refused
/// as internal).
pub fn run_json(run: fn(&str, &crate::Input) -> crate::Output, name: &str, input: &[u8]) -> Vec<u8> {
    let output = match serde_json::from_slice::<crate::Input>(input) {
        Ok(i) => run(name, &i),
        Err(e) => crate::Output::refused(callvault_protocol::fields::ErrorCode::Internal, format!("input: {e}")),
    };
    serde_json::to_vec(&output).unwrap_or_default()
}

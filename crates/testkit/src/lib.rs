//! Real servers for tests, started on free loopback ports in temporary directories and killed on
//! drop. A missing binary fails the test with a message saying how to install it: never a skip.
//!
//! - [`NatsServer`]: nats-server >= 2.14 with JetStream, optionally with users and permissions,
//!   restartable in place (same port, same JetStream store).
//! - [`ServeProcess`]: `callvault serve` as a process (for the binary's tests and benches).
//! - [`Coturn`]: coturn with TURN REST credentials, and its `turnutils_uclient` to allocate relays.
//! - [`CuttingProxy`]: a TCP proxy that drops every connection through it on demand.
#![forbid(unsafe_code)]
// A harness for tests: failing loudly is its job.
#![allow(clippy::panic, clippy::expect_used, clippy::arithmetic_side_effects)]

mod coturn;
mod nats;
mod process;
mod proxy;
mod serve;

pub use coturn::Coturn;
pub use nats::{MAX_PAYLOAD, NatsServer, NatsUser, Permissions};
pub use process::free_port;
pub use proxy::CuttingProxy;
pub use serve::{ServeProcess, http_get, series};

/// The directory of the crate under test: `CARGO_MANIFEST_DIR` as cargo sets it when it runs the
/// test, else `compiled` (the test's `env!("CARGO_MANIFEST_DIR")`). Two checkouts that share a
/// target directory can each be handed a test binary the other compiled, with the other's path
/// baked in; the path cargo gives at run time is this checkout's.
pub fn manifest_dir(compiled: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| compiled.into(), std::path::PathBuf::from)
}

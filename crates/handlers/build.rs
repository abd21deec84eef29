//! Sizes the module's stack. The Rust default for wasm32 is 1 MiB, all of it in the initial linear
//! memory that the vault allocates and zeroes for every event (a fresh instance each time). The
//! handlers' deepest path (serde_json's 128-level recursion limit on hostile input) fits in far
//! less; the stack sits first in memory, so an overflow traps instead of corrupting data.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-arg-cdylib=-zstack-size=131072");
    }
}

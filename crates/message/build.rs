//! Sizes the module's stack as the call family's (`crates/handlers/build.rs`): 128 KiB instead of
//! wasm32's 1 MiB default, which the vault would allocate and zero for every event.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-arg-cdylib=-zstack-size=131072");
    }
}

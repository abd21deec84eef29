//! Builds the browser client's E2EE module (`crates/e2ee-wasm`) for wasm32-unknown-unknown, so the
//! gateway serves a module made from the same sources as the Rust client's crypto: no committed
//! binaries; stripped, and gzipped for the browsers that take it. The nested cargo uses its own target directory (a shared one would deadlock on cargo's
//! lock) and the workspace's lockfile.

// A build script fails the build by panicking, with the reason.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest.join("../..");
    for dir in ["crates/e2ee-wasm", "crates/crypto/src", "crates/protocol/src"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    let target_dir = out.join("e2ee-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--release", "--locked", "-p", "callvault-e2ee-wasm", "--target", "wasm32-unknown-unknown"])
        // Without its symbol names: 1.01 MB -> 0.86 MB, nothing a browser uses.
        .args(["--config", "profile.release.strip=true"])
        .arg("--target-dir")
        .arg(&target_dir);
    // Whatever wraps this build (clippy, coverage) must not wrap the guest build.
    for var in ["RUSTC_WORKSPACE_WRAPPER", "RUSTC_WRAPPER", "CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_TARGET_DIR"]
    {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the E2EE module");
    assert!(
        status.success(),
        "building the browser E2EE module failed (is the wasm32-unknown-unknown target installed? rust-toolchain.toml lists it)"
    );
    let wasm = target_dir.join("wasm32-unknown-unknown/release/callvault_e2ee_wasm.wasm");
    std::fs::copy(&wasm, out.join("e2ee.wasm")).expect("copy the E2EE module");
    // Gzipped once here, served to every browser that takes gzip (all do): a third of the bytes.
    let module = std::fs::read(&wasm).expect("read the E2EE module");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &module).expect("gzip the E2EE module");
    std::fs::write(out.join("e2ee.wasm.gz"), gz.finish().expect("gzip the E2EE module")).expect("write e2ee.wasm.gz");
}

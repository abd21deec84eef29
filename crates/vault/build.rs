//! Builds the WASM modules the vault embeds or tests with, for wasm32-unknown-unknown, from the
//! same sources (no committed binaries):
//!
//! - the built-in `call` family (`crates/handlers`): `callvault_handlers.wasm`;
//! - the built-in `message` family (`crates/message`): `callvault_message.wasm`;
//! - the built-in `profile` family (`crates/profile`): `callvault_profile.wasm`;
//! - the built-in `connection` family (`crates/connection`): `callvault_connection.wasm`;
//! - the test family `probe` (`crates/probe-family`) in its two versions, for the kernel's
//!   tests: `probe_family_v1.wasm`, `probe_family_v2.wasm`.
//!
//! The nested cargo uses its own target directory (a shared one would deadlock on cargo's lock)
//! and the workspace's lockfile.

// A build script fails the build by panicking, with the reason.
#![allow(clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `package` (with `features`) and copies its module to `out/<name>`.
fn build(workspace: &Path, out: &Path, package: &str, features: &[&str], name: &str) {
    let target_dir = out.join("handlers-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--locked", "-p", package, "--target", "wasm32-unknown-unknown"])
        .arg("--target-dir")
        .arg(&target_dir);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    // Whatever wraps this build (clippy, coverage) must not wrap the guest build.
    for var in ["RUSTC_WORKSPACE_WRAPPER", "RUSTC_WRAPPER", "CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_TARGET_DIR"]
    {
        cmd.env_remove(var);
    }
    // The module runs under an interpreter: whole-program optimisation pays (fewer calls, smaller
    // code). Cargo's own profile variables, so no profile section is needed in the manifest.
    cmd.env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort");
    let status = cmd.status().expect("run cargo for a WASM module");
    assert!(
        status.success(),
        "building the WASM module {package} failed (is the wasm32-unknown-unknown target installed? rust-toolchain.toml lists it)"
    );
    let built = target_dir.join("wasm32-unknown-unknown/release").join(format!("{}.wasm", package.replace('-', "_")));
    std::fs::copy(&built, out.join(name)).expect("copy a WASM module");
}

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest.join("../..");
    for dir in [
        "crates/handlers",
        "crates/message",
        "crates/profile",
        "crates/connection",
        "crates/probe-family",
        "crates/call/src",
        "crates/kernel/src",
        "crates/protocol/src",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    build(&workspace, &out, "callvault-handlers", &[], "callvault_handlers.wasm");
    build(&workspace, &out, "callvault-message", &[], "callvault_message.wasm");
    build(&workspace, &out, "callvault-profile", &[], "callvault_profile.wasm");
    build(&workspace, &out, "callvault-connection", &[], "callvault_connection.wasm");
    build(&workspace, &out, "callvault-probe-family", &[], "probe_family_v1.wasm");
    build(&workspace, &out, "callvault-probe-family", &["v2"], "probe_family_v2.wasm");
}

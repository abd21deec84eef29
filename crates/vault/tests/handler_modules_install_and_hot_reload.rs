//! Handler modules live in the `handlers` bucket: handler keys name the built-in module (by
//! reference: it follows the binary's version) or an installed one, stored once by its SHA-256;
//! a newer module takes over without a restart; a bad one is refused and the previous one stays;
//! deleting the key falls back to the built-in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::arithmetic_side_effects)]

mod common_inputs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callvault_call::abi::{HandlerName, Outcome};
use callvault_store::{BucketConfig, EmbeddedStore, Kv, Store};
use callvault_vault::modules;
use callvault_vault::runtime::{BUILTIN_MODULE, HandlerLimits, HandlerRuntime};
use common_inputs::*;

fn ignoring_module() -> Vec<u8> {
    let answer = r#"{"outcome":"ignored","outputs":[]}"#;
    wat::parse_str(format!(
        r#"(module (memory (export "memory") 1)
             (data (i32.const 1024) "{}")
             (func (export "cv_input") (param i32) (result i32) (i32.const 4096))
             (func (export "cv_output") (result i32) (i32.const 1024))
             (func (export "cv_handle_initiate") (param i32) (result i32) (i32.const {})))"#,
        answer.replace('"', "\\\""),
        answer.len()
    ))
    .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    callvault_protocol::ids::lower_hex(&sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn an_upgrade_replaces_builtin_copies_and_keeps_modules_installed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("vault.redb")).unwrap();
    let bucket = store.bucket(&BucketConfig::seed("handlers").unwrap()).await.unwrap();
    // What an earlier callvault left: its built-in module (here: another module) under two keys,
    // with the marker naming it, and a module installed by hand under a third.
    let old_builtin = ignoring_module();
    bucket.put(modules::BUILTIN_MARKER, Bytes::from(sha256_hex(&old_builtin))).await.unwrap();
    bucket.put("call.end", Bytes::from(old_builtin.clone())).await.unwrap();
    bucket.put("call.timeout", Bytes::from(old_builtin.clone())).await.unwrap();
    let mut by_hand = old_builtin.clone();
    by_hand.extend_from_slice(&[0, 5, 4, b'n', b'o', b't', b'e']); // a custom section: other bytes
    bucket.put("call.initiate", Bytes::from(by_hand.clone())).await.unwrap();

    // Four of the call family's keys were missing (and the message, profile and connection families' sixteen), two held
    // the old built-in, one a module installed by hand: all twenty-three now hold references; the
    // hand-installed module is stored once, by its digest.
    assert_eq!(modules::install_builtins(&bucket).await.unwrap(), 23);
    for k in ["call.end", "call.timeout", "call.accept", "call.signal"] {
        assert_eq!(bucket.get(k).await.unwrap().unwrap().value, Bytes::from_static(modules::BUILTIN), "{k}");
    }
    let digest = sha256_hex(&by_hand);
    assert_eq!(bucket.get("call.initiate").await.unwrap().unwrap().value, Bytes::from(format!("sha256:{digest}")));
    assert_eq!(bucket.get(&modules::module_key(&digest)).await.unwrap().unwrap().value, Bytes::from(by_hand));
    assert!(bucket.get(modules::BUILTIN_MARKER).await.unwrap().is_none(), "the marker is no longer needed");
    // The module installed by hand is the one that runs.
    let rt = HandlerRuntime::new(HandlerLimits::default());
    modules::load_all(&bucket, &rt).await.unwrap();
    assert_eq!(rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap().outcome, Outcome::Ignored);
    assert_eq!(modules::install_builtins(&bucket).await.unwrap(), 0, "nothing more to do at the next start");
}

async fn eventually(rt: &HandlerRuntime, expected: Outcome) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap().outcome == expected {
            return;
        }
        assert!(Instant::now() < deadline, "the runtime never switched to a module answering {expected:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn builtins_are_installed_and_a_new_version_takes_over_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("vault.redb")).unwrap();
    let bucket = store.bucket(&BucketConfig::seed("handlers").unwrap()).await.unwrap();

    assert_eq!(modules::install_builtins(&bucket).await.unwrap(), 23);
    assert_eq!(modules::install_builtins(&bucket).await.unwrap(), 0, "a second start installs nothing");
    let keys = bucket.keys().await.unwrap();
    assert_eq!(
        keys.len(),
        23,
        "references to the built-ins (call 7, message 7, profile 3, connection 6), no module bytes: {keys:?}"
    );
    let mut stored = 0;
    for k in &keys {
        let value = bucket.get(k).await.unwrap().unwrap().value;
        assert_eq!(value, Bytes::from_static(modules::BUILTIN), "{k}");
        stored += value.len();
    }
    assert_eq!(
        stored,
        keys.len() * modules::BUILTIN.len(),
        "only references: {stored} bytes for a new vault's handlers"
    );

    let rt = Arc::new(HandlerRuntime::new(HandlerLimits::default()));
    modules::load_all(&bucket, &rt).await.unwrap();
    assert_eq!(rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap().outcome, Outcome::Applied);

    let watcher = tokio::spawn(modules::watch_and_reload(bucket.clone(), rt.clone()));
    // Give the watch its subscription before writing (the embedded watch starts synchronously,
    // but the task may not have run yet): write until the change is seen.
    bucket.put("call.initiate", Bytes::from(ignoring_module())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rt.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap().outcome != Outcome::Ignored {
        assert!(Instant::now() < deadline, "the new module was not picked up");
        bucket.put("call.initiate", Bytes::from(ignoring_module())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A broken module is refused; the last good one keeps running.
    bucket.put("call.initiate", Bytes::from_static(b"\0asm broken")).await.unwrap();
    bucket.put("call.timeout", Bytes::from_static(BUILTIN_MODULE)).await.unwrap(); // a marker change after it
    eventually(&rt, Outcome::Ignored).await;

    // Deleting the key falls back to the built-in module.
    bucket.delete("call.initiate").await.unwrap();
    eventually(&rt, Outcome::Applied).await;

    // Installed by reference: stored once, however many handlers use it, and taken at once.
    let reference = modules::install(&bucket, HandlerName::Initiate, &ignoring_module()).await.unwrap();
    assert_eq!(reference, format!("sha256:{}", sha256_hex(&ignoring_module())));
    eventually(&rt, Outcome::Ignored).await;
    modules::install(&bucket, HandlerName::Accept, &ignoring_module()).await.unwrap();
    let modules_held = bucket.keys().await.unwrap().into_iter().filter(|k| k.starts_with("module.")).count();
    assert_eq!(modules_held, 1);
    // A reference to a module the bucket does not hold is refused; the running one stays.
    bucket.put("call.initiate", Bytes::from(format!("sha256:{}", "0".repeat(64)))).await.unwrap();
    bucket.put("call.timeout", Bytes::from_static(modules::BUILTIN)).await.unwrap(); // a change after it
    eventually(&rt, Outcome::Ignored).await;
    // At the next start such a handler runs the built-in.
    let fresh = HandlerRuntime::new(HandlerLimits::default());
    modules::load_all(&bucket, &fresh).await.unwrap();
    assert_eq!(
        fresh.invoke(HandlerName::Initiate, &initiate_input(1, 2, true, at(0))).unwrap().outcome,
        Outcome::Applied
    );
    watcher.abort();
}

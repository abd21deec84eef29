//! Gift-wrap interop with an independent implementation, npm nostr-tools (pinned in
//! tests/interop/package.json, installed by `.ci/run` with `npm ci`): a rumor wrapped by
//! nostr-tools is unwrapped by callvault-crypto, and the reverse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use callvault_crypto::SecretIdentity;
use callvault_crypto::giftwrap::{self, CALL_RUMOR_KIND};

fn interop_dir() -> PathBuf {
    let dir = callvault_testkit::manifest_dir(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/nostr-tools").is_dir(),
        "nostr-tools is not installed: run `npm ci --prefix {}` (.ci/run does)",
        dir.display()
    );
    dir
}

fn node(script: &str, args: &[&str], stdin: &str) -> String {
    let dir = interop_dir();
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node is needed for this test: {e}"));
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn secret_hex(k: &SecretIdentity) -> String {
    k.secret_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

const MESSAGE: &str = r#"{"type":"call.incoming","call_type":"video","note":"ünïcödé \" quotes"}"#;

#[test]
fn nostr_tools_wraps_and_callvault_unwraps() {
    let (js_sender, rust_receiver) = (SecretIdentity::generate(), SecretIdentity::generate());
    let t = now();
    let wrap = node(
        "wrap.mjs",
        &[&secret_hex(&js_sender), &rust_receiver.public().to_hex(), &CALL_RUMOR_KIND.to_string(), &t.to_string()],
        MESSAGE,
    );
    let u = giftwrap::unwrap(&rust_receiver, wrap.as_bytes(), t).unwrap();
    assert_eq!(u.content, MESSAGE);
    assert_eq!(u.sender, js_sender.public());
    assert_eq!(u.created_at, t);
    // And someone else cannot.
    assert!(giftwrap::unwrap(&SecretIdentity::generate(), wrap.as_bytes(), t).is_err());
}

#[test]
fn callvault_wraps_and_nostr_tools_unwraps() {
    let (rust_sender, js_receiver) = (SecretIdentity::generate(), SecretIdentity::generate());
    let t = now();
    let wrap = giftwrap::wrap(&rust_sender, &js_receiver.public(), MESSAGE, t).unwrap();
    let rumor: serde_json::Value =
        serde_json::from_str(&node("unwrap.mjs", &[&secret_hex(&js_receiver)], &wrap)).unwrap();
    assert_eq!(rumor["content"], MESSAGE);
    assert_eq!(rumor["pubkey"], rust_sender.public().to_hex());
    assert_eq!(rumor["kind"], CALL_RUMOR_KIND);
    assert_eq!(rumor["created_at"], t);
}

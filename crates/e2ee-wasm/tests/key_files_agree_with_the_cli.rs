//! The browser's key files are the CLI's (issue 17, point 2): a file the page's module seals
//! (`seal_key`) opens with `callvault_crypto::keyfile::open_key`, which `callvault id import`
//! uses, and a file `seal_key` writes (what `callvault id export` writes) opens in the page's
//! module (`open_key`), to the same secret and guid. A wrong passphrase, a changed byte and a
//! short passphrase are refused with their reasons.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use callvault_crypto::SecretIdentity;
use callvault_crypto::keyfile::{self, KdfParams, KeyKind};
use callvault_e2ee_wasm::identity_op;
use serde_json::json;

const PASSPHRASE: &str = "correct horse battery";

#[test]
fn a_key_file_sealed_in_the_page_opens_in_the_cli() {
    let id = SecretIdentity::generate();
    let secret = hex::encode(id.secret_bytes().as_slice());
    let sealed = identity_op(&json!({
        "op": "seal_key", "secret": secret, "passphrase": PASSPHRASE,
        "salt": hex::encode([7u8; 16]), "nonce": hex::encode([9u8; 24]),
    }))
    .unwrap();
    let file = STANDARD.decode(sealed["file"].as_str().unwrap()).unwrap();
    assert_eq!(file.len(), keyfile::KEY_FILE_LEN);
    let opened = keyfile::open_key(&file, KeyKind::User, PASSPHRASE).unwrap();
    assert_eq!(opened.public().guid(), id.public().guid());
    assert!(matches!(
        keyfile::open_key(&file, KeyKind::User, "not the passphrase"),
        Err(keyfile::KeyFileError::WrongPassphrase)
    ));

    // The page refuses a short passphrase, as `id export` does, and a secret that is no key.
    let short = identity_op(&json!({"op": "seal_key", "secret": secret, "passphrase": "short",
        "salt": hex::encode([7u8; 16]), "nonce": hex::encode([9u8; 24])}));
    assert!(short.unwrap_err().contains("8 characters"));
    let zero = identity_op(&json!({"op": "seal_key", "secret": "00".repeat(32), "passphrase": PASSPHRASE,
        "salt": hex::encode([7u8; 16]), "nonce": hex::encode([9u8; 24])}));
    assert!(zero.is_err());
}

#[test]
fn a_key_file_the_cli_writes_opens_in_the_page() {
    let id = SecretIdentity::generate();
    let file = keyfile::seal_key(&id, KeyKind::User, PASSPHRASE, KdfParams::RECOMMENDED).unwrap();
    let opened =
        identity_op(&json!({"op": "open_key", "file": STANDARD.encode(&file), "passphrase": PASSPHRASE})).unwrap();
    assert_eq!(opened["guid"], json!(id.public().guid().to_string()));
    assert_eq!(opened["secret"], json!(hex::encode(id.secret_bytes().as_slice())));

    let wrong =
        identity_op(&json!({"op": "open_key", "file": STANDARD.encode(&file), "passphrase": "not the passphrase"}));
    assert_eq!(wrong.unwrap_err(), "wrong passphrase");
    let mut changed = file.clone();
    changed[40] ^= 1;
    let tampered = identity_op(&json!({"op": "open_key", "file": STANDARD.encode(&changed), "passphrase": PASSPHRASE}));
    assert!(tampered.unwrap_err().contains("damaged"));
    let vault = keyfile::seal_key(&id, KeyKind::Vault, PASSPHRASE, KdfParams::RECOMMENDED).unwrap();
    let other = identity_op(&json!({"op": "open_key", "file": STANDARD.encode(&vault), "passphrase": PASSPHRASE}));
    assert!(other.unwrap_err().contains("Vault"));
    let junk = identity_op(&json!({"op": "open_key", "file": "bm90IGEga2V5", "passphrase": PASSPHRASE}));
    assert_eq!(junk.unwrap_err(), "not a callvault key file");
}

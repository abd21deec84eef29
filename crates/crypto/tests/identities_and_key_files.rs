//! Identities are Nostr-compatible and name a guid; delegations verify for anyone and refuse
//! forgeries; key files open only with the right passphrase and tell damage from a wrong one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use callvault_crypto::keyfile::{self, KdfParams, KeyFileError, KeyKind};
use callvault_crypto::{Delegation, IdentityError, PublicIdentity, SecretIdentity};

const FAST: KdfParams = KdfParams { memory_kib: 64, iterations: 1, lanes: 1 };

#[test]
fn npub_nsec_round_trip_and_the_guid_follows_the_key() {
    let user = SecretIdentity::generate();
    let npub = user.public().npub();
    assert!(npub.starts_with("npub1"));
    let parsed = PublicIdentity::parse(&npub).unwrap();
    assert_eq!(parsed, user.public());
    assert_eq!(PublicIdentity::parse(&user.public().to_hex()).unwrap(), parsed);
    let nsec = user.to_nsec();
    assert!(nsec.starts_with("nsec1"));
    let again = SecretIdentity::parse(&nsec).unwrap();
    assert_eq!(again.public(), user.public());
    assert_eq!(again.public().guid(), callvault_protocol::Guid::from_public_key(&user.public().to_bytes()));
    assert_ne!(SecretIdentity::generate().public().guid(), user.public().guid());
    assert_eq!(PublicIdentity::parse("npub1garbage"), Err(IdentityError::InvalidKey));
    // 32 bytes that are not an x coordinate on the curve.
    assert_eq!(PublicIdentity::from_bytes([0xff; 32]), Err(IdentityError::InvalidKey));
}

#[test]
fn debug_output_never_shows_the_secret() {
    let user = SecretIdentity::generate();
    let shown = format!("{user:?} {:?}", user.public());
    let secret_hex: String = user.secret_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!shown.contains(&secret_hex[..16]), "{shown}");
    assert!(!shown.contains(&*user.to_nsec()), "{shown}");
    assert!(!shown.contains(&user.public().to_hex()), "the public key is redacted too: {shown}");
}

#[test]
fn a_delegation_verifies_and_forgeries_do_not() {
    let user = SecretIdentity::generate();
    let vault = SecretIdentity::generate();
    let d = Delegation::sign(&user, &vault.public(), 1_790_000_000).unwrap();
    let v = Delegation::from_json(&d.to_json()).unwrap().verify().unwrap();
    assert_eq!(
        (v.user, v.vault, v.guid.clone(), v.created_at),
        (user.public(), vault.public(), user.public().guid(), 1_790_000_000)
    );

    // Pointing the delegation at another vault breaks the signature.
    let other = SecretIdentity::generate().public().to_hex();
    let forged = d.to_json().replace(&vault.public().to_hex(), &other);
    assert_eq!(Delegation::from_json(&forged).unwrap().verify(), Err(IdentityError::BadDelegationSignature));
    // A validly signed event that is not a delegation.
    let json = d.to_json().replace("\"kind\":9470", "\"kind\":1");
    assert!(Delegation::from_json(&json).unwrap().verify().is_err());
    assert!(Delegation::from_json("{}").is_err());
    assert!(Delegation::from_json(&"x".repeat(20_000)).is_err());
}

#[test]
fn key_files_open_with_the_passphrase_only() {
    let key = SecretIdentity::generate();
    let file = keyfile::seal_key(&key, KeyKind::User, "correct horse", FAST).unwrap();
    assert_eq!(file.len(), keyfile::KEY_FILE_LEN);
    assert_eq!(file[5], 1, "version byte");
    let opened = keyfile::open_key(&file, KeyKind::User, "correct horse").unwrap();
    assert_eq!(opened.public(), key.public());
    assert_eq!(keyfile::open_key(&file, KeyKind::User, "wrong horse").unwrap_err(), KeyFileError::WrongPassphrase);
    assert_eq!(
        keyfile::open_key(&file, KeyKind::Vault, "correct horse").unwrap_err(),
        KeyFileError::WrongKind { expected: KeyKind::Vault, found: KeyKind::User }
    );
}

#[test]
fn damaged_or_tampered_key_files_are_told_apart_from_a_wrong_passphrase() {
    let key = SecretIdentity::generate();
    let file = keyfile::seal_key(&key, KeyKind::Vault, "pw", FAST).unwrap();
    for i in 6..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x01;
        assert_eq!(keyfile::open_key(&bad, KeyKind::Vault, "pw").unwrap_err(), KeyFileError::Tampered, "byte {i}");
    }
    assert_eq!(keyfile::open_key(&file[..40], KeyKind::Vault, "pw").unwrap_err(), KeyFileError::NotAKeyFile);
    assert_eq!(keyfile::open_key(b"not a key", KeyKind::Vault, "pw").unwrap_err(), KeyFileError::NotAKeyFile);
    let mut v2 = file.clone();
    v2[5] = 2;
    assert_eq!(keyfile::open_key(&v2, KeyKind::Vault, "pw").unwrap_err(), KeyFileError::UnsupportedVersion(2));
}

#[test]
fn a_hostile_file_cannot_demand_absurd_kdf_costs() {
    let key = SecretIdentity::generate();
    let huge = KdfParams { memory_kib: 4 * 1024 * 1024, iterations: 1, lanes: 1 };
    assert_eq!(keyfile::seal_key(&key, KeyKind::User, "pw", huge).unwrap_err(), KeyFileError::UnreasonableParams);
    // A file whose header was edited to 4 GiB (checksum recomputed by the attacker) is refused
    // before any allocation.
    let mut file = keyfile::seal_key(&key, KeyKind::User, "pw", FAST).unwrap();
    file[7..11].copy_from_slice(&(4u32 * 1024 * 1024).to_be_bytes());
    let body_len = file.len() - 16;
    let sum = sha256_16(&file[..body_len]);
    file[body_len..].copy_from_slice(&sum);
    assert_eq!(keyfile::open_key(&file, KeyKind::User, "pw").unwrap_err(), KeyFileError::UnreasonableParams);
}

fn sha256_16(bytes: &[u8]) -> [u8; 16] {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d[..16].try_into().unwrap()
}

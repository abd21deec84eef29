//! Registration is atomic per identity: 20 new identities, each registering on two sockets at
//! the same moment, each end with one account; both sockets get `ready` for it; the key file on
//! disk holds the vault key the account names; after a restart every vault is served. A key file that does not match its account is reported and not served.
//!
//! Regression (issue 12, point 2): on the earlier `main` both registrations wrote one shared
//! temporary path and the loser deleted the key file, so most of the 20 ended with their key file
//! gone or holding a key that was not their account's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use std::sync::Arc;

use callvault_bus::MemoryBus;
use callvault_client::Client;
use callvault_crypto::SecretIdentity;
use callvault_gateway::GatewayConfig;
use callvault_store::EmbeddedStore;
use callvault_vault::host::VaultHost;
use callvault_vault::manager::VaultOptions;

const USERS: usize = 20;

fn key_file(dir: &std::path::Path, guid: &str) -> SecretIdentity {
    let nsec = std::fs::read_to_string(dir.join("vault-keys").join(format!("{guid}.key")))
        .unwrap_or_else(|e| panic!("the key file of {guid}: {e}"));
    SecretIdentity::parse(nsec.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sockets_registering_one_identity_agree_on_one_account() {
    // All 40 sockets come from 127.0.0.1: room for them under the per-source login limits.
    let config = GatewayConfig { max_unauthenticated_per_source: 64, login_burst: 64, ..GatewayConfig::default() };
    let s = common::start(config).await;
    let ids: Vec<Arc<SecretIdentity>> = (0..USERS).map(|_| Arc::new(SecretIdentity::generate())).collect();
    let mut racing = Vec::new();
    for id in &ids {
        for _ in 0..2 {
            let (url, id) = (s.url(), id.clone());
            racing.push(tokio::spawn(async move { Client::connect(&url, id, "Racer").await }));
        }
    }
    let mut clients = Vec::new();
    for r in racing {
        clients.push(r.await.unwrap().expect("both sockets get ready"));
    }
    for (i, id) in ids.iter().enumerate() {
        let (a, b) = (&clients[2 * i], &clients[2 * i + 1]);
        let guid = id.public().guid();
        assert_eq!(a.session().guid, guid);
        assert_eq!(a.session().vault_key, b.session().vault_key, "one account for both sockets");
        let account = s.host.account(&guid).await.unwrap().expect("an account");
        assert_eq!(account.vault_key, a.session().vault_key);
        assert_eq!(key_file(s.dir.path(), guid.as_str()).public().to_hex(), account.vault_key);
        assert!(s.host.hosts(&guid).await);
    }
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path().join("vault-keys"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".key"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary key files left: {leftovers:?}");
    for c in clients {
        c.close().await;
    }

    // After a restart every vault is served.
    let keep = s.stop().await;
    let dir = keep.path();
    let store = reopen(dir).await;
    let host = VaultHost::open(store, MemoryBus::new(), dir, VaultOptions::default()).await.unwrap();
    assert_eq!(host.vaults().await.len(), USERS);
    assert_eq!(host.unserved(), 0);
    for id in &ids {
        assert!(host.hosts(&id.public().guid()).await);
    }
}

/// The embedded store of `dir`, once the previous server has let go of it.
async fn reopen(dir: &std::path::Path) -> EmbeddedStore {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match EmbeddedStore::open(dir.join("callvault.redb")) {
            Ok(s) => return s,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "cannot reopen the store: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_key_file_that_is_not_the_accounts_is_reported_and_not_served() {
    let s = common::start(GatewayConfig::default()).await;
    let (alice, bob) = (Arc::new(SecretIdentity::generate()), Arc::new(SecretIdentity::generate()));
    for id in [&alice, &bob] {
        Client::connect(&s.url(), id.clone(), "Someone").await.unwrap().close().await;
    }
    let keep = s.stop().await;
    let dir = keep.path();
    // Alice's key file now holds some other key.
    let path = dir.join("vault-keys").join(format!("{}.key", alice.public().guid()));
    std::fs::write(&path, SecretIdentity::generate().to_nsec().as_bytes()).unwrap();
    let store = reopen(dir).await;
    let host = VaultHost::open(store, MemoryBus::new(), dir, VaultOptions::default()).await.unwrap();
    assert!(!host.hosts(&alice.public().guid()).await, "a mismatched vault is not served");
    assert!(host.hosts(&bob.public().guid()).await);
    assert_eq!(host.unserved(), 1);
}

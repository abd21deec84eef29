//! Disk per idle registered user on the embedded store stays under 64 KiB: the store file's growth
//! over 100 registrations (account, vault buckets, seven references to the built-in handler
//! module) plus the vault key files' allocated blocks, per user. Prints users per GB.
//!
//! Regression (issue 12, point 13): on the earlier `main` every vault held seven copies of the
//! built-in module, 3.6-7.2 MB per registered user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::cast_precision_loss
)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use callvault_client::Client;
use callvault_crypto::SecretIdentity;
use callvault_gateway::GatewayConfig;

const USERS: u64 = 100;

fn on_disk(s: &common::Server) -> u64 {
    let store = std::fs::metadata(s.dir.path().join("callvault.redb")).unwrap().len();
    let keys: u64 = std::fs::read_dir(s.dir.path().join("vault-keys"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().blocks() * 512)
        .sum();
    store + keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_registered_user_costs_under_64_kib_of_disk() {
    let config = GatewayConfig { login_burst: 1_000, logins_per_second: 1_000, ..GatewayConfig::default() };
    let s = common::start(config).await;
    // One user first, so the store's fixed part is not counted against the others.
    Client::connect(&s.url(), Arc::new(SecretIdentity::generate()), "First").await.unwrap().close().await;
    let before = on_disk(&s);
    for n in 0..USERS {
        let c = Client::connect(&s.url(), Arc::new(SecretIdentity::generate()), &format!("User {n}")).await.unwrap();
        c.close().await;
    }
    let per_user = (on_disk(&s) - before) / USERS;
    eprintln!("disk per idle registered user: {per_user} bytes ({} users per GB)", 1_000_000_000 / per_user.max(1));
    assert!(per_user < 64 * 1024, "{per_user} bytes of disk per registered user");
    assert_eq!(s.host.vaults().await.len() as u64, USERS + 1);
}

//! Memory and disk per idle vault with the kernel: 200 vaults opened and running in one process
//! on one embedded store file (as `callvault serve` runs them, buckets named per user), each with
//! its families loaded, subscribed and waiting; the resident memory and the store file's growth,
//! divided by the number of vaults. `cargo bench -p callvault-vault --bench idle_vaults`
//! (`-- --smoke`: 20 vaults).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::Arc;
use std::time::Duration;

use callvault_bus::MemoryBus;
use callvault_crypto::SecretIdentity;
use callvault_store::{BucketNaming, EmbeddedStore};
use callvault_vault::manager::{Vault, VaultOptions};

/// Resident memory of this process, bytes (`/proc/self/statm`, pages of 4 KiB).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// Allocated bytes of a file (its blocks, not its length).
fn allocated(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = if std::env::args().any(|a| a == "--smoke") { 20 } else { 200 };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callvault.redb");
    let store = EmbeddedStore::open(&path).unwrap();
    let bus = MemoryBus::new();
    let mut vaults = Vec::new();
    // A first vault warms what every vault shares (the wasmi engine, the built-in modules).
    let open = |store: EmbeddedStore, bus: MemoryBus| async move {
        let guid = SecretIdentity::generate().public().guid();
        let options =
            VaultOptions { naming: BucketNaming::Shared { guid: guid.to_string() }, ..VaultOptions::default() };
        let v = Arc::new(Vault::open(&store, bus, guid, SecretIdentity::generate(), options).await.unwrap());
        tokio::spawn(v.clone().run());
        v
    };
    vaults.push(open(store.clone(), bus.clone()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mem0, disk0) = (rss(), allocated(&path));
    for _ in 0..n {
        vaults.push(open(store.clone(), bus.clone()).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mem1, disk1) = (rss(), allocated(&path));
    let handled: u64 = vaults.iter().map(|v| v.stats().handled.load(std::sync::atomic::Ordering::Relaxed)).sum();
    println!(
        "{n} idle vaults: {:.1} KiB of memory and {:.1} KiB of store file each; {} families each; {handled} events handled while idle",
        (mem1.saturating_sub(mem0)) as f64 / n as f64 / 1024.0,
        (disk1.saturating_sub(disk0)) as f64 / n as f64 / 1024.0,
        vaults[0].families().len(),
    );
}

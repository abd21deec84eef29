//! Acknowledged writes survive: the embedded store after its process is killed (SIGKILL), and
//! JetStream KV after the nats-server is killed and restarted (the client reconnects on its own).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use callvault_store::{BucketConfig, EmbeddedStore, Kv, NatsStore, Store};
use callvault_testkit::NatsServer;

const CHILD_DIR: &str = "CALLVAULT_CRASH_PROBE_DIR";
const WRITES: u32 = 200;

async fn write_all(store: &EmbeddedStore) -> callvault_store::EmbeddedKv {
    let kv = store.bucket(&BucketConfig::seed("calls").unwrap()).await.unwrap();
    for i in 0..WRITES {
        kv.put(&format!("call-{i}"), Bytes::from(format!("record {i}"))).await.unwrap();
    }
    kv
}

async fn check_all(kv: &impl Kv) {
    assert_eq!(kv.keys().await.unwrap().len(), usize::try_from(WRITES).unwrap());
    for i in 0..WRITES {
        let e = kv.get(&format!("call-{i}")).await.unwrap().unwrap_or_else(|| panic!("call-{i} lost"));
        assert_eq!(e.value, Bytes::from(format!("record {i}")));
    }
}

/// In a child process (when `CALLVAULT_CRASH_PROBE_DIR` is set): write, report, and wait to be
/// killed. On its own: write and read back in one process.
#[tokio::test]
async fn crash_probe_writer() {
    match std::env::var(CHILD_DIR) {
        Ok(dir) => {
            let store = EmbeddedStore::open(std::path::Path::new(&dir).join("vault.redb")).unwrap();
            let _kv = write_all(&store).await;
            println!("WRITTEN");
            std::thread::sleep(Duration::from_secs(600));
            panic!("the parent should have killed this process");
        }
        Err(_) => {
            let dir = tempfile::tempdir().unwrap();
            let store = EmbeddedStore::open(dir.path().join("vault.redb")).unwrap();
            let kv = write_all(&store).await;
            check_all(&kv).await;
        }
    }
}

#[tokio::test]
async fn embedded_writes_survive_a_process_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_probe_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let written = lines.any(|l| l.is_ok_and(|l| l.contains("WRITTEN")));
    assert!(written, "the child did not finish writing");
    child.kill().unwrap(); // SIGKILL: no destructor, no flush
    let status = child.wait().unwrap();
    assert!(!status.success());
    let store = EmbeddedStore::open(dir.path().join("vault.redb")).expect("reopen after the kill");
    let kv = store.bucket(&BucketConfig::seed("calls").unwrap()).await.unwrap();
    check_all(&kv).await;
    // And the store keeps working: revisions continue after the last acknowledged one.
    let last = kv.history("call-199").await.unwrap().last().unwrap().revision;
    assert!(kv.put("after", Bytes::from_static(b"x")).await.unwrap() > last);
}

#[tokio::test]
async fn jetstream_values_survive_a_server_restart_and_the_client_reconnects() {
    let mut server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let store = NatsStore::new(client);
    let kv = store.bucket(&BucketConfig::seed("calls").unwrap()).await.unwrap();
    let rev = kv.put("call-1", Bytes::from_static(b"ringing")).await.unwrap();

    server.restart();

    // The same client handle works again once it has reconnected.
    let deadline = Instant::now() + Duration::from_secs(20);
    let value = loop {
        match kv.get("call-1").await {
            Ok(v) => break v,
            Err(e) => assert!(Instant::now() < deadline, "no reconnect: {e}\n{}", server.log()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let e = value.expect("the value was lost");
    assert_eq!((e.value, e.revision), (Bytes::from_static(b"ringing"), rev));
    let r2 = kv.update("call-1", Bytes::from_static(b"active"), rev).await.unwrap();
    assert!(r2 > rev);
}

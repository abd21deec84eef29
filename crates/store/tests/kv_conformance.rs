//! The KV conformance suite against the embedded store and against JetStream on a real nats-server.

#![allow(clippy::expect_used)]

use callvault_store::conformance::run_all;
use callvault_store::{EmbeddedStore, NatsStore};
use callvault_testkit::NatsServer;

#[tokio::test]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path().join("vault.redb")).expect("open");
    run_all(&store).await;
}

#[tokio::test]
async fn jetstream_store_conforms() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    run_all(&NatsStore::new(client)).await;
}

//! The bus conformance suite against the in-process backend and against a real nats-server.

#![allow(clippy::expect_used)]

use callvault_bus::conformance::{Connect, run_all};
use callvault_bus::{MemoryBus, NatsBus, NatsOptions};
use callvault_testkit::NatsServer;

struct Memory(MemoryBus);

impl Connect for Memory {
    type Bus = MemoryBus;
    async fn connect(&self) -> MemoryBus {
        self.0.clone()
    }
}

struct Nats(String);

impl Connect for Nats {
    type Bus = NatsBus;
    async fn connect(&self) -> NatsBus {
        NatsBus::connect(NatsOptions { url: self.0.clone(), ..NatsOptions::default() }).await.expect("connect")
    }
}

#[tokio::test]
async fn in_process_bus_conforms() {
    run_all(&Memory(MemoryBus::new())).await;
}

#[tokio::test]
async fn nats_bus_conforms() {
    let server = NatsServer::start();
    run_all(&Nats(server.url())).await;
}

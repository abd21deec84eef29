//! `callvault serve`: the vault host and the gateway in one process.

use anyhow::Context;
use callvault_bus::{Bus, MemoryBus, NatsBus, NatsOptions};
use callvault_gateway::Gateway;
use callvault_store::{EmbeddedStore, NatsStore, Store};
use callvault_vault::host::VaultHost;
use callvault_vault::manager::VaultOptions;
use tokio::net::TcpListener;

use crate::config::ServeConfig;

/// What a running server reports when it listens.
#[derive(Debug, Clone)]
pub(crate) struct Listening {
    /// The bound address.
    pub(crate) addr: std::net::SocketAddr,
    /// `embedded` or `nats`.
    pub(crate) backend: &'static str,
}

/// Runs until `stop` completes (SIGTERM, Ctrl-C, or a test's signal), then shuts down gracefully:
/// app sessions are told and closed, each vault finishes the event in hand, the bus is flushed.
pub(crate) async fn run(
    config: ServeConfig,
    stop: impl Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(Listening) + Send,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    match config.nats.clone() {
        Some(url) => {
            let bus = NatsBus::connect(NatsOptions { url: url.clone(), ..NatsOptions::default() })
                .await
                .with_context(|| "cannot reach the NATS server named by `nats`")?;
            let store = NatsStore::new(bus.client().clone());
            run_with(config, bus, store, "nats", stop, on_listen).await
        }
        None => {
            let path = config.data_dir.join("callvault.redb");
            let store = EmbeddedStore::open(&path)
                .with_context(|| format!("cannot open the embedded store {}", path.display()))?;
            run_with(config, MemoryBus::new(), store, "embedded", stop, on_listen).await
        }
    }
}

async fn run_with<B: Bus + Clone, S: Store>(
    config: ServeConfig,
    bus: B,
    store: S,
    backend: &'static str,
    stop: impl Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(Listening) + Send,
) -> anyhow::Result<()> {
    let options =
        VaultOptions { ring_timeout: config.ring_timeout, sweep_every: config.sweep_every, ..VaultOptions::default() };
    let host =
        VaultHost::open(store, bus.clone(), &config.data_dir, options).await.context("cannot start the vaults")?;
    let gateway = Gateway::new(host.clone(), bus, config.gateway.clone());
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend, hosted = host.vaults().await.len(), "listening");
    on_listen(Listening { addr, backend });
    let app = gateway.router();
    let gw = gateway.clone();
    axum::serve(callvault_gateway::nodelay(listener), app)
        .with_graceful_shutdown(async move {
            stop.await;
            tracing::info!("shutting down");
            gw.begin_shutdown();
        })
        .await?;
    host.shutdown(config.shutdown_grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
pub(crate) async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

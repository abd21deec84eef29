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
    private_dir(&config.data_dir)?;
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
    let stopping = async move {
        stop.await;
        tracing::info!("shutting down");
        gw.begin_shutdown();
    };
    callvault_gateway::serve(
        listener,
        app,
        config.listen_limits.clone(),
        gateway.metrics(),
        stopping,
        config.shutdown_grace,
    )
    .await;
    host.shutdown(config.shutdown_grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// Makes `dir` the server's private data directory: created 0700 if missing (whatever the
/// umask), refused if others may write to it (they could swap the store or the vault keys), and
/// otherwise narrowed to 0700 (file names hold guids).
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create data_dir {}", dir.display()))?;
        }
        let meta = std::fs::metadata(dir).with_context(|| format!("cannot read data_dir {}", dir.display()))?;
        anyhow::ensure!(meta.is_dir(), "data_dir {} is not a directory", dir.display());
        let mode = meta.permissions().mode() & 0o777;
        anyhow::ensure!(
            mode & 0o022 == 0,
            "data_dir {} is writable by other users (mode {mode:03o}); it holds the vault keys and the store, \
             so callvault refuses it: run `chmod 700 {}` or choose another data_dir",
            dir.display(),
            dir.display()
        );
        if mode != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make data_dir {} private (chmod 700)", dir.display()))?;
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data_dir {}", dir.display()))?;
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

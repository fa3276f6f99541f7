//! `bramble serve`: load the config, set up logging and signals, run the node.

use std::path::PathBuf;

use tokio::sync::watch;

use crate::config::Config;

/// Options of `bramble serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The TOML config file; without it, the embedded single-node default.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

/// Run the daemon until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<()> {
    init_tracing();
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default(),
    };
    let node_id = node_id(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bramble")
        .build()?;
    runtime.block_on(async move {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop.send(true);
        });
        crate::server::run(config, node_id, stopped).await
    })
}

/// `[node] id`, else `<coordinator.data_dir>/myid` as ZooKeeper has it, else 1 (a single
/// node needs no id).
fn node_id(config: &Config) -> anyhow::Result<u32> {
    if let Some(id) = config.node.id {
        return Ok(id);
    }
    let myid =
        crate::coordinator::persist::read_myid(std::path::Path::new(&config.coordinator.data_dir))
            .map_err(anyhow::Error::msg)?;
    Ok(myid.map(u32::from).unwrap_or(1))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

/// Log through tracing to stderr, filtered by `$BRAMBLE_LOG` (default `info`).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BRAMBLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

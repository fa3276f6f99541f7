//! Listeners, background tasks and shutdown: the only place that touches sockets.

pub mod kafka;
pub mod mqtt;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::broker::{now_ms, Broker};
use crate::config::{parse_listener, Config};

/// Open the broker, bind every listener, and serve until `shutdown` turns true; then close
/// the logs cleanly.
pub async fn run(config: Config, node_id: u32, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let broker_config = config.broker.clone();
    let broker = Arc::new(tokio::task::block_in_place(|| Broker::open(broker_config, node_id as i32))?);
    let ctx = crate::kafka::Context { broker: broker.clone() };
    let limits = kafka::Limits {
        max_connections: config.broker.max_connections,
        request_max_bytes: config.broker.socket_request_max_bytes,
    };
    let request_bytes = Arc::new(Semaphore::new(
        usize::try_from(config.broker.queued_max_request_bytes).unwrap_or(usize::MAX >> 4),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for entry in &config.broker.listeners {
        let addr = parse_listener(entry).map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (broker.listeners): {e}"))?;
        tracing::info!(addr = %listener.local_addr()?, "Kafka listener up");
        tasks.spawn(kafka::serve(listener, ctx.clone(), limits, request_bytes.clone(), shutdown.clone()));
    }
    if let Some(mqtt_config) = config.mqtt.clone() {
        start_mqtt(mqtt_config, broker.clone(), node_id, &mut tasks, &shutdown).await?;
    }
    tasks.spawn(retention_loop(broker.clone(), shutdown.clone()));
    tasks.spawn(checkpoint_loop(broker.clone(), shutdown.clone()));
    if !config.broker.log_flush_on_ack {
        tasks.spawn(flush_loop(broker.clone(), config.broker.log_flush_interval_ms, shutdown.clone()));
    }
    tracing::info!(node = node_id, cluster = %broker.cluster_id, "bramble serving");
    let _ = shutdown.changed().await;
    tracing::info!("shutting down");
    tasks.shutdown().await;
    broker.flush_all().await;
    tokio::task::block_in_place(|| broker.close());
    tracing::info!("logs closed cleanly");
    Ok(())
}

/// Start the MQTT listener (when `mqtt.listen` is set) and one task per bridge.
async fn start_mqtt(
    config: crate::mqtt::MqttConfig,
    broker: Arc<Broker>,
    node_id: u32,
    tasks: &mut tokio::task::JoinSet<()>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let ingest = crate::mqtt::Ingest::new(config, broker, node_id)?;
    if let Some(listen) = &ingest.config.listen {
        let addr = parse_listener(listen).map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (mqtt.listen): {e}"))?;
        tracing::info!(addr = %listener.local_addr()?, "MQTT listener up");
        tasks.spawn(mqtt::serve(listener, ingest.clone(), shutdown.clone()));
    }
    for index in 0..ingest.config.bridges.len() {
        tasks.spawn(crate::mqtt::bridge::run(ingest.clone(), index, shutdown.clone()));
    }
    Ok(())
}

async fn retention_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.log_retention_check_interval_ms.max(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        let broker = broker.clone();
        let _ = tokio::task::spawn_blocking(move || broker.run_retention(now_ms())).await;
    }
}

/// Kafka writes its high-watermark checkpoint every 5 s; so does bramble.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

async fn checkpoint_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let broker = broker.clone();
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || broker.write_checkpoints()).await {
            tracing::error!(%error, "writing checkpoints failed");
        }
    }
}

async fn flush_loop(broker: Arc<Broker>, interval_ms: u64, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => return,
        }
        broker.flush_all().await;
    }
}

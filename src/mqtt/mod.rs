//! MQTT ingest: sensor data published over MQTT lands in log topics, at least once.
//!
//! Two ways in, one mapping. The built-in listener (its sockets live in
//! `server::mqtt`) accepts MQTT 3.1, 3.1.1 and 5 publishers, Mosquitto/EMQX bridges
//! included; the [`bridge`] subscribes to external brokers. Both hand publishes to the
//! [`sink`], which routes them ([`routes`]), appends records and says what to wait for
//! before acknowledging: PUBACK (and PUBREC) go out only once the records are committed,
//! in the order the publishes arrived.
//!
//! - [`codec`] — MQTT packets, framing, encode/decode (no I/O)
//! - [`session`] — CONNECT admission, persistent sessions, per-connection protocol rules
//! - [`routes`] — topic filters, first-match routing, key templates
//! - [`sink`] — messages → v2 record batches → `Partition::append` → commit to wait on
//! - [`bridge`] — rumqttc client subscribing to an external broker, manual acks
//! - [`config`] — `[mqtt]`, `[[mqtt.route]]`, `[[mqtt.bridge]]`
//! - [`metrics`] — counters, rendered into the admin listener's `/metrics`
//!
//! Memory: every publish waiting for its commit holds bytes of the memory budget's
//! `mqtt_inflight` pool and, per client, one of `mqtt.max_inflight_messages` slots. When
//! either is exhausted the socket (or the bridge's event loop) is not read, so publishers'
//! in-flight windows fill instead of bramble buffering without bound.

pub mod bridge;
pub mod codec;
pub mod config;
pub mod metrics;
pub mod routes;
pub mod session;
pub mod sink;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::broker::Broker;
use crate::memory::Pool;
pub use config::MqttConfig;
use metrics::MqttMetrics;
use routes::{Route, Routes};
use session::Sessions;
use sink::Sink;

/// Everything the listener and the bridges share.
#[derive(Debug)]
pub struct Ingest {
    /// The `[mqtt]` settings.
    pub config: MqttConfig,
    /// Where messages go.
    pub sink: Sink,
    /// Sessions of listener clients.
    pub sessions: Sessions,
    /// Counters.
    pub metrics: Arc<MqttMetrics>,
    /// The budget's MQTT pool: bytes of publishes waiting for their commit.
    pub pool: Arc<Pool>,
    /// This node's id (bridge client ids default to include it).
    pub node_id: u32,
    /// The shared user store, for `require_auth`.
    pub security: Arc<crate::security::Security>,
    next_client: AtomicU64,
}

impl Ingest {
    /// Build the shared state from a validated config.
    pub fn new(
        config: MqttConfig,
        broker: Arc<Broker>,
        replication: Option<Arc<crate::replication::Replication>>,
        node_id: u32,
        pool: Arc<Pool>,
        security: Arc<crate::security::Security>,
    ) -> anyhow::Result<Arc<Ingest>> {
        let routes = config
            .routes
            .iter()
            .map(Route::from_config)
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        let bridge_names = (0..config.bridges.len())
            .map(|i| config.bridge_name(i))
            .collect();
        let labels = routes
            .iter()
            .map(|r| (r.filter_text.clone(), r.topic.clone()))
            .collect();
        let metrics = Arc::new(MqttMetrics::new(labels, bridge_names));
        metrics::register(metrics.clone());
        let batch_bytes_max = config.batch_bytes_max(broker.config.message_max_bytes);
        let sink = Sink::new(
            broker,
            replication,
            Routes::new(routes),
            metrics.clone(),
            batch_bytes_max,
        );
        Ok(Arc::new(Ingest {
            sessions: Sessions::new(config.max_sessions),
            pool,
            sink,
            metrics,
            node_id,
            security,
            next_client: AtomicU64::new(0),
            config,
        }))
    }

    /// A client id for a client that sent none: unique within this process run.
    pub fn assign_client_id(&self) -> String {
        let n = self.next_client.fetch_add(1, Ordering::Relaxed);
        format!("bramble-auto-{}-{n}", crate::broker::now_ms())
    }
}

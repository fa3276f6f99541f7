//! Counters of MQTT ingest. The node's set is registered once ([`register`]) and rendered
//! into the admin listener's `/metrics` by [`render`], like the Kafka counters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use crate::health::metrics::{escape, header};

/// Messages and bytes that went one way.
#[derive(Debug, Default)]
pub struct Flow {
    /// Messages counted.
    pub messages: AtomicU64,
    /// Payload bytes counted.
    pub bytes: AtomicU64,
}

impl Flow {
    /// Count one message of `bytes` payload bytes.
    pub fn add(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// (messages, bytes) now.
    pub fn get(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A bridge's connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BridgeState {
    /// Not connected (starting, or waiting to reconnect).
    Disconnected = 0,
    /// Connected and subscribed.
    Connected = 1,
}

/// One bridge's counters.
#[derive(Debug)]
pub struct BridgeMetrics {
    /// The bridge's name.
    pub name: String,
    state: AtomicU8,
    /// Successful connections (the first, then reconnects).
    pub connects: AtomicU64,
    /// Messages received from the external broker.
    pub received: Flow,
}

impl BridgeMetrics {
    fn new(name: String) -> BridgeMetrics {
        BridgeMetrics {
            name,
            state: AtomicU8::new(BridgeState::Disconnected as u8),
            connects: AtomicU64::new(0),
            received: Flow::default(),
        }
    }

    /// The connection state now.
    pub fn state(&self) -> BridgeState {
        if self.state.load(Ordering::Relaxed) == BridgeState::Connected as u8 {
            BridgeState::Connected
        } else {
            BridgeState::Disconnected
        }
    }

    /// Record a state change.
    pub fn set_state(&self, state: BridgeState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }
}

/// Every MQTT counter of the node.
#[derive(Debug)]
pub struct MqttMetrics {
    /// Messages written to the log, over all routes.
    pub ingested: Flow,
    /// Per route, in config order: messages written to the log.
    pub routes: Vec<Flow>,
    /// Per route, in config order: (filter, log topic), the labels of `routes`.
    pub route_labels: Vec<(String, String)>,
    /// Messages that matched no route (acknowledged and dropped).
    pub unrouted: Flow,
    /// Clients connected to the listener now.
    pub connected_clients: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections closed for a malformed or oversize packet or a protocol error.
    pub protocol_errors: AtomicU64,
    /// Per bridge, in config order.
    pub bridges: Vec<BridgeMetrics>,
}

impl MqttMetrics {
    /// Counters for routes labelled (filter, log topic) and the named bridges.
    pub fn new(route_labels: Vec<(String, String)>, bridge_names: Vec<String>) -> MqttMetrics {
        MqttMetrics {
            ingested: Flow::default(),
            routes: route_labels.iter().map(|_| Flow::default()).collect(),
            route_labels,
            unrouted: Flow::default(),
            connected_clients: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            bridges: bridge_names.into_iter().map(BridgeMetrics::new).collect(),
        }
    }
}

static REGISTERED: OnceLock<Arc<MqttMetrics>> = OnceLock::new();

/// Make `metrics` the node's MQTT counters for [`render`] (the first registration wins).
pub fn register(metrics: Arc<MqttMetrics>) {
    let _ = REGISTERED.set(metrics);
}

/// Append the Prometheus text of the registered MQTT counters to `out` (nothing when MQTT
/// is not configured).
pub fn render(out: &mut String) {
    if let Some(metrics) = REGISTERED.get() {
        metrics.render(out);
    }
}

impl MqttMetrics {
    /// Append these counters as Prometheus text.
    pub fn render(&self, out: &mut String) {
        let (messages, bytes) = self.ingested.get();
        header(
            out,
            "bramble_mqtt_messages_in_total",
            "MQTT messages written to the log, per route.",
            "counter",
        );
        for ((filter, topic), flow) in self.route_labels.iter().zip(&self.routes) {
            let _ = writeln!(
                out,
                "bramble_mqtt_messages_in_total{{route=\"{}\",topic=\"{}\"}} {}",
                escape(filter),
                escape(topic),
                flow.get().0
            );
        }
        header(
            out,
            "bramble_mqtt_bytes_in_total",
            "MQTT payload bytes written to the log, per route.",
            "counter",
        );
        for ((filter, topic), flow) in self.route_labels.iter().zip(&self.routes) {
            let _ = writeln!(
                out,
                "bramble_mqtt_bytes_in_total{{route=\"{}\",topic=\"{}\"}} {}",
                escape(filter),
                escape(topic),
                flow.get().1
            );
        }
        let counters = [
            (
                "bramble_mqtt_ingested_messages_total",
                "MQTT messages written to the log, listener and bridges.",
                messages,
            ),
            (
                "bramble_mqtt_ingested_bytes_total",
                "MQTT payload bytes written to the log.",
                bytes,
            ),
            (
                "bramble_mqtt_unrouted_messages_total",
                "MQTT messages no route matched (acknowledged, dropped).",
                self.unrouted.get().0,
            ),
            (
                "bramble_mqtt_connections_total",
                "MQTT connections accepted since start.",
                self.connections_total.load(Ordering::Relaxed),
            ),
            (
                "bramble_mqtt_protocol_errors_total",
                "MQTT connections closed for bad input.",
                self.protocol_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            header(out, name, help, "counter");
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            out,
            "bramble_mqtt_connected_clients",
            "MQTT clients connected to the listener.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "bramble_mqtt_connected_clients {}",
            self.connected_clients.load(Ordering::Relaxed)
        );
        header(
            out,
            "bramble_mqtt_bridge_up",
            "1 while the bridge is connected.",
            "gauge",
        );
        for bridge in &self.bridges {
            let _ = writeln!(
                out,
                "bramble_mqtt_bridge_up{{bridge=\"{}\"}} {}",
                escape(&bridge.name),
                u8::from(bridge.state() == BridgeState::Connected)
            );
        }
        header(
            out,
            "bramble_mqtt_bridge_connects_total",
            "Bridge connections made (first and reconnects).",
            "counter",
        );
        for bridge in &self.bridges {
            let _ = writeln!(
                out,
                "bramble_mqtt_bridge_connects_total{{bridge=\"{}\"}} {}",
                escape(&bridge.name),
                bridge.connects.load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "bramble_mqtt_bridge_messages_total",
            "Messages a bridge received.",
            "counter",
        );
        for bridge in &self.bridges {
            let _ = writeln!(
                out,
                "bramble_mqtt_bridge_messages_total{{bridge=\"{}\"}} {}",
                escape(&bridge.name),
                bridge.received.get().0
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = MqttMetrics::new(
            vec![("sensors/#".into(), "sensors".into())],
            vec!["edge".into()],
        );
        metrics.routes[0].add(10);
        metrics.ingested.add(10);
        metrics.bridges[0].set_state(BridgeState::Connected);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("bramble_mqtt_messages_in_total{route=\"sensors/#\",topic=\"sensors\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("bramble_mqtt_bytes_in_total{route=\"sensors/#\",topic=\"sensors\"} 10"),
            "{out}"
        );
        assert!(
            out.contains("bramble_mqtt_bridge_up{bridge=\"edge\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE bramble_mqtt_connected_clients gauge"),
            "{out}"
        );
    }
}

//! Counters of MQTT ingest, kept for the health module to export (no HTTP here).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

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
        (self.messages.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
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
    /// Counters for `routes` routes and the named bridges.
    pub fn new(routes: usize, bridge_names: Vec<String>) -> MqttMetrics {
        MqttMetrics {
            ingested: Flow::default(),
            routes: (0..routes).map(|_| Flow::default()).collect(),
            unrouted: Flow::default(),
            connected_clients: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            bridges: bridge_names.into_iter().map(BridgeMetrics::new).collect(),
        }
    }
}

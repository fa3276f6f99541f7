//! bramble: Kafka and ZooKeeper for a Raspberry Pi cluster, as one memory-budgeted daemon.
//!
//! How a produce flows: [`server`] accepts a connection and reads a frame; [`kafka`]
//! decodes it (after [`kafka::wire_guard`] has checked it cannot make the decoder
//! over-allocate) and calls the API's handler; the handler works on the [`broker`]'s topics
//! and partitions, each backed by a [`log`] of Kafka v2 record batches on disk; the answer
//! goes back through [`kafka::frame`]. MQTT publishes take a parallel path: [`server`]
//! reads MQTT frames, [`mqtt`] turns them into record batches appended to the same
//! partitions, and acknowledges once the append is committed. [`config`] holds every setting
//! and its limit; [`cli`] is the command line, both the daemon and the client commands.
//!
//! How a znode write flows: [`server`]'s ZooKeeper listener reads a jute frame; [`zk`]
//! decodes it and turns it into a call on the [`coordinator`], a pure state machine that
//! validates the request into a transaction (zxid and time handed in), persists it through
//! its transaction sink (a group-committed log with snapshots), applies it to the tree, and
//! yields the reply and the watch notifications, which go out before the reply.
//!
//! - [`config`] — TOML schema, defaults, validation
//! - [`log`] — segments, indexes, recovery, retention, compaction (knows nothing of Kafka
//!   requests)
//! - [`broker`] — topics, partitions, group commit, topic metadata files, idempotent producer
//!   state and producer ids
//! - [`group`] — consumer groups (classic rebalance protocol) and committed offsets, stored in
//!   the compacted internal topic `__consumer_offsets`
//! - [`kafka`] — Kafka wire handling, one file per API, no socket I/O
//! - [`mqtt`] — MQTT ingest: listener protocol, bridge, routes, and the sink into the log
//! - [`server`] — listeners, connections, background tasks, shutdown
//! - [`cli`] — subcommands
//! - [`zk`] — ZooKeeper wire handling: jute codec, one file per operation family, no I/O
//! - [`coordinator`] — znode tree, sessions, watches, ACLs; transaction log and snapshots
//! - [`memory`] — the budget, its pools and grants, resident/allocator statistics
//! - [`health`] — the health state machine and what shows it: LEDs, systemd notify, the
//!   counters behind `/metrics` (the admin HTTP listener itself is in [`server`])
//! - [`ids`] — Kafka-style random ids
//! - [`tls`] — `[tls]` certificates and keys, rustls configurations, plain-or-TLS streams, and
//!   the cluster CA behind `bramble certs`
//! - [`security`] — SASL logins (PLAIN, SCRAM) on Kafka listeners, the shared user store,
//!   failed-login back-off
//! - [`health`] — systemd notification (READY, STATUS, WATCHDOG, STOPPING)

pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod coordinator;
pub mod group;
pub mod health;
pub mod ids;
pub mod kafka;
pub mod log;
pub mod memory;
pub mod mqtt;
pub mod replication;
pub mod security;
pub mod server;
pub mod tls;
pub mod zk;

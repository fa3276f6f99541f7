//! bramble: Kafka and ZooKeeper for a Raspberry Pi cluster, as one memory-budgeted daemon.
//!
//! How a produce flows: [`server`] accepts a connection and reads a frame; [`kafka`]
//! decodes it (after [`kafka::wire_guard`] has checked it cannot make the decoder
//! over-allocate) and calls the API's handler; the handler works on the [`broker`]'s topics
//! and partitions, each backed by a [`log`] of Kafka v2 record batches on disk; the answer
//! goes back through [`kafka::frame`]. MQTT publishes take a parallel path: [`server`]
//! reads MQTT frames, [`mqtt`] turns them into record batches appended to the same
//! partitions, and acknowledges once the append is committed. [`config`] holds every setting and its limit; [`cli`]
//! is the command line, both the daemon and the client commands.
//!
//! - [`config`] — TOML schema, defaults, validation
//! - [`log`] — segments, indexes, recovery, retention (knows nothing of Kafka requests)
//! - [`broker`] — topics, partitions, group commit, topic metadata files
//! - [`kafka`] — Kafka wire handling, one file per API, no socket I/O
//! - [`mqtt`] — MQTT ingest: listener protocol, bridge, routes, and the sink into the log
//! - [`server`] — listeners, connections, background tasks, shutdown
//! - [`cli`] — subcommands
//! - [`ids`] — Kafka-style random ids

pub mod broker;
pub mod cli;
pub mod config;
pub mod ids;
pub mod kafka;
pub mod log;
pub mod mqtt;
pub mod server;

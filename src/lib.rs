//! bramble: Kafka and ZooKeeper for a Raspberry Pi cluster, as one memory-budgeted daemon.
pub mod coordinator;
pub mod zk;
pub mod server;

//! bramble: Kafka and ZooKeeper for a Raspberry Pi cluster, as one memory-budgeted daemon.

pub mod kafka;

//! The TOML configuration: schema, defaults and validation.
//!
//! Keys follow Kafka's and ZooKeeper's names in snake case where the meaning is the same, so the
//! recipes users already know still map (`log.segment.bytes` is `log_segment_bytes`). Every key
//! has a default; unknown keys and bad values are refused with a message that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Problems found while reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not match the schema (unknown key, wrong type).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file asked for.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("config key `{key}`: {message}")]
    Invalid {
        /// The full key, e.g. `broker.num_partitions`.
        key: &'static str,
        /// What is allowed.
        message: String,
    },
}

/// The whole configuration of one node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`: who this node is.
    pub node: NodeConfig,
    /// `[broker]`: the Kafka side.
    pub broker: BrokerConfig,
    /// `[coordinator]`: the ZooKeeper side (keys in `coordinator::config`).
    pub coordinator: crate::coordinator::CoordinatorConfig,
    /// `[cluster]`: the quorum's members (keys in `cluster::config`); absent = a single node.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `[memory]`: the budget the process stays within.
    pub memory: crate::memory::MemoryConfig,
    /// `[led]`: the status LEDs (keys in `health::config`).
    pub led: crate::health::config::LedConfig,
    /// `[admin]`: the HTTP admin listener and the degraded thresholds.
    pub admin: crate::health::config::AdminConfig,
    /// `[mqtt]`: MQTT ingest (listener, routes, bridges); absent = none.
    pub mqtt: Option<crate::mqtt::MqttConfig>,
    /// `[tls]`: the certificate, key and CA of every TLS listener and of the peer port.
    pub tls: crate::tls::TlsConfig,
    /// `[security]`: SASL mechanisms, super users, failed-login back-off.
    pub security: crate::security::SecurityConfig,
}

/// `[node]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The node id; when absent it is read from `<coordinator.data_dir>/myid`, as ZooKeeper does.
    pub id: Option<u32>,
}

/// `[broker]`: Kafka settings, named after Kafka's broker configs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Addresses the Kafka listener binds (`host:port`).
    pub listeners: Vec<String>,
    /// Addresses given to clients in Metadata; defaults to `listeners`.
    pub advertised_listeners: Vec<String>,
    /// Where partition logs live; the first directory is used for new partitions.
    pub log_dirs: Vec<PathBuf>,
    /// Partitions of an auto-created topic, or of a CreateTopics that asks for the default.
    pub num_partitions: u32,
    /// Replicas of a new topic when the request asks for the default.
    pub default_replication_factor: u16,
    /// Replicas that must have a write before `acks=all` is answered. Unset: 1, except in
    /// a cluster for topics with 3 or more replicas, where it is 2 (see
    /// [`BrokerConfig::min_insync_for`]).
    pub min_insync_replicas: Option<u16>,
    /// Cluster mode: a follower that has not caught up with its leader's log end for this
    /// long leaves the in-sync replicas (Kafka's `replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: u64,
    /// Cluster mode: the controller moves leadership back to each partition's preferred
    /// replica (the first in its assignment) when a broker leads too few of its own
    /// (Kafka's `auto.leader.rebalance.enable`).
    pub auto_leader_rebalance_enable: bool,
    /// How often the controller checks the leaders' balance, in seconds.
    pub leader_imbalance_check_interval_seconds: u64,
    /// A broker is out of balance when more than this share of the partitions it is the
    /// preferred replica of are led by another broker.
    pub leader_imbalance_per_broker_percentage: u32,
    /// Create a topic when a client asks for metadata of or produces to an unknown one.
    pub auto_create_topics_enable: bool,
    /// Largest record batch accepted (Kafka's `message.max.bytes`).
    pub message_max_bytes: u32,
    /// Roll a new segment when the active one would pass this size.
    pub log_segment_bytes: u64,
    /// Roll a new segment when the active one is this old.
    pub log_roll_hours: u32,
    /// Delete segments whose newest record is older than this (-1: never).
    pub log_retention_hours: i64,
    /// Delete the oldest segments while a partition is larger than this (-1: no limit).
    pub log_retention_bytes: i64,
    /// How often retention runs.
    pub log_retention_check_interval_ms: u64,
    /// Bytes between two sparse offset-index entries.
    pub log_index_interval_bytes: u32,
    /// `true` (the default): a produce is acknowledged only once its data is fsynced (group
    /// commit). `false`: acknowledged once written to the page cache, fsynced every
    /// `log_flush_interval_ms`; a power cut can then lose the last interval.
    pub log_flush_on_ack: bool,
    /// Background fsync period when `log_flush_on_ack` is false.
    pub log_flush_interval_ms: u64,
    /// Most client connections open at once; further ones are closed at accept.
    pub max_connections: u32,
    /// Most connections open at once from one client address, over every Kafka listener
    /// (Kafka's `max.connections.per.ip`); further ones are closed at accept.
    pub max_connections_per_ip: u32,
    /// Largest request frame; a larger frame closes its connection (`socket.request.max.bytes`).
    pub socket_request_max_bytes: u32,
    /// Largest Fetch response, whatever the client asks (`fetch.max.bytes`).
    pub fetch_max_bytes: u32,
    /// Longest a Fetch may wait for data, whatever the client asks.
    pub fetch_max_wait_ms: u32,
    /// Most partitions the broker will hold.
    pub max_partitions: u32,
    /// Partitions of the internal `__consumer_offsets` topic, fixed when it is first created
    /// (Kafka's default is 50; 8 keeps a Pi's file count and startup replay small while
    /// still spreading groups over a 3-node cluster). A group's partition is the Java
    /// hashCode of its id modulo this, as in Kafka.
    pub offsets_topic_num_partitions: u32,
    /// Replicas of `__consumer_offsets` when it is created (Kafka's default is 3; a single
    /// node can only give 1, and creation fails with fewer brokers than this, as in Kafka).
    pub offsets_topic_replication_factor: u16,
    /// Segment size of `__consumer_offsets` (Kafka: 100 MiB); smaller segments close, and so
    /// compact, sooner.
    pub offsets_topic_segment_bytes: u64,
    /// Committed offsets of a group that has been empty this long are deleted (Kafka's
    /// default: 7 days).
    pub offsets_retention_minutes: u64,
    /// How often expired offsets are looked for.
    pub offsets_retention_check_interval_ms: u64,
    /// Longest metadata string a consumer may commit with an offset.
    pub offset_metadata_max_bytes: u32,
    /// How long a new group waits for more members before its first rebalance completes
    /// (Kafka: 3000 ms). Short, so a lone consumer's first join is prompt.
    pub group_initial_rebalance_delay_ms: u32,
    /// Smallest session timeout a member may ask for.
    pub group_min_session_timeout_ms: u32,
    /// Largest session timeout a member may ask for.
    pub group_max_session_timeout_ms: u32,
    /// Most members of one group; further joins get GROUP_MAX_SIZE_REACHED.
    pub group_max_size: u32,
    /// Most groups this coordinator holds (members or committed offsets); a new group past it
    /// is refused.
    pub max_groups: u32,
    /// Largest protocol metadata (subscription) or assignment of one member.
    pub group_member_metadata_max_bytes: u32,
    /// An idempotent producer idle this long is forgotten by each partition (Kafka's
    /// `producer.id.expiration.ms`).
    pub producer_id_expiration_ms: i64,
    /// Most idempotent producers each partition remembers; past it the longest idle goes.
    pub max_producers_per_partition: u32,
    /// Compact topics with `cleanup.policy=compact` (and `__consumer_offsets`).
    pub log_cleaner_enable: bool,
    /// Memory for the key map of one compaction pass (Kafka: 128 MiB for all cleaner
    /// threads); a pass over more keys cleans up to where the map filled.
    pub log_cleaner_dedupe_buffer_size: u64,
    /// How often compacted partitions are checked for work.
    pub log_cleaner_backoff_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listeners: vec!["0.0.0.0:9092".into()],
            advertised_listeners: Vec::new(),
            log_dirs: vec![PathBuf::from("/var/lib/kafka-logs")],
            num_partitions: 1,
            default_replication_factor: 1,
            min_insync_replicas: None,
            replica_lag_time_max_ms: 30_000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            auto_create_topics_enable: true,
            message_max_bytes: 1_048_588,
            log_segment_bytes: 1 << 30,
            log_roll_hours: 168,
            log_retention_hours: 168,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            log_index_interval_bytes: 4096,
            log_flush_on_ack: true,
            log_flush_interval_ms: 1000,
            max_connections: 1000,
            max_connections_per_ip: 1000,
            // Clients' own default request limit is about 1 MB (librdkafka message.max.bytes,
            // Java max.request.size); 2 MiB leaves room while keeping small budgets possible.
            socket_request_max_bytes: 2 << 20,
            fetch_max_bytes: 16 << 20,
            fetch_max_wait_ms: 30_000,
            max_partitions: 4096,
            offsets_topic_num_partitions: 8,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 16 << 20,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            group_initial_rebalance_delay_ms: 300,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 100,
            max_groups: 1000,
            group_member_metadata_max_bytes: 64 << 10,
            producer_id_expiration_ms: 86_400_000,
            max_producers_per_partition: 256,
            log_cleaner_enable: true,
            log_cleaner_dedupe_buffer_size: 8 << 20,
            log_cleaner_backoff_ms: 15_000,
        }
    }
}

impl Config {
    /// The configuration `bramble serve` uses with no file: one node, every port on
    /// 127.0.0.1, data under `./data`.
    pub fn embedded_default() -> Config {
        let mut config = Config::default();
        config.broker.listeners = vec!["127.0.0.1:9092".into()];
        config.broker.log_dirs = vec![PathBuf::from("data/kafka-logs")];
        config.coordinator.data_dir = "data/zookeeper".into();
        config
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Config::parse(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parse and validate TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: PathBuf::new(),
            message: error.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Check every value against its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.broker.validate()?;
        self.validate_tls()?;
        self.security.validate()?;
        let invalid =
            |(key, message): (&'static str, String)| ConfigError::Invalid { key, message };
        self.led.validate().map_err(invalid)?;
        self.admin.validate().map_err(invalid)?;
        self.coordinator
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "coordinator",
                message,
            })?;
        if let Some(cluster) = &self.cluster {
            // Whether this node is a member is checked at start, once `myid` is known.
            cluster.members().map_err(|message| ConfigError::Invalid {
                key: "cluster.servers",
                message,
            })?;
            parse_listener(&cluster.listen).map_err(|message| ConfigError::Invalid {
                key: "cluster.listen",
                message,
            })?;
        }
        let budget = self.budget()?;
        if let Some(mqtt) = &self.mqtt {
            mqtt.validate(self.broker.message_max_bytes)?;
            // Two packets must fit the MQTT pool at once, or a client could never progress.
            let pool = budget.mqtt_inflight.limit_bytes();
            if 2 * u64::from(mqtt.max_packet_bytes) > pool {
                return Err(ConfigError::Invalid {
                    key: "mqtt.max_packet_bytes",
                    message: format!(
                        "the MQTT pool of memory.budget is {} KiB; at most half of it ({} KiB) per packet, \
                         or raise memory.budget",
                        pool >> 10,
                        pool >> 11
                    ),
                });
            }
        }
        Ok(())
    }

    /// Every TLS listener needs `[tls] cert_file` and `key_file` (and `ca_file` when clients or
    /// peers must present certificates).
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str| {
            move |error: crate::tls::TlsError| ConfigError::Invalid {
                key,
                message: error.to_string(),
            }
        };
        for entry in &self.broker.listeners {
            if split_protocol(entry).is_ok_and(|(p, _)| p.uses_tls()) {
                self.tls
                    .check(&format!("listener `{entry}`"), false)
                    .map_err(invalid("broker.listeners"))?;
            }
        }
        if self.coordinator.secure_listen.is_some() {
            self.tls
                .check("coordinator.secure_listen", false)
                .map_err(invalid("coordinator.secure_listen"))?;
        }
        if self.mqtt.as_ref().is_some_and(|m| m.tls_listen.is_some()) {
            self.tls
                .check("mqtt.tls_listen", false)
                .map_err(invalid("mqtt.tls_listen"))?;
        }
        if self.admin.tls && !self.admin.listen.is_empty() {
            self.tls
                .check("admin.tls", false)
                .map_err(invalid("admin.tls"))?;
        }
        if self.cluster.as_ref().is_some_and(|c| c.tls) {
            self.tls
                .check("[cluster] tls", true)
                .map_err(invalid("cluster.tls"))?;
        }
        Ok(())
    }

    /// Listeners reachable from beyond this machine (not bound to loopback) that have neither
    /// TLS nor authentication, each as `what (key) addr`; startup warns about them.
    pub fn exposed_listeners(&self) -> Vec<String> {
        let exposed = |entry: &str| parse_listener(entry).is_ok_and(|a| !a.ip().is_loopback());
        let mut out = Vec::new();
        for entry in &self.broker.listeners {
            // SSL is encrypted; SASL listeners authenticate every client.
            if split_protocol(entry).is_ok_and(|(p, _)| p == SecurityProtocol::Plaintext)
                && exposed(entry)
            {
                out.push(format!("Kafka (broker.listeners) {entry}"));
            }
        }
        if exposed(&self.coordinator.listen) {
            out.push(format!(
                "ZooKeeper (coordinator.listen) {}",
                self.coordinator.listen
            ));
        }
        if let Some(mqtt) = &self.mqtt {
            let authenticated = !mqtt.users.is_empty() && mqtt.allow_anonymous != Some(true);
            if let Some(listen) = mqtt.listen.as_deref().filter(|l| exposed(l)) {
                if !authenticated {
                    out.push(format!("MQTT (mqtt.listen) {listen}"));
                }
            }
        }
        if !self.admin.tls && !self.admin.listen.is_empty() && exposed(&self.admin.listen) {
            out.push(format!("admin HTTP (admin.listen) {}", self.admin.listen));
        }
        if let Some(cluster) = self.cluster.as_ref().filter(|c| !c.tls) {
            if exposed(&cluster.listen) {
                out.push(format!("peer port (cluster.listen) {}", cluster.listen));
            }
        }
        out
    }

    /// The memory budget split into pools, checked against the limits it must hold.
    pub fn budget(&self) -> Result<crate::memory::Budget, ConfigError> {
        let needs = crate::memory::Needs {
            request_max_bytes: u64::from(self.broker.socket_request_max_bytes),
            message_max_bytes: u64::from(self.broker.message_max_bytes),
            jute_maxbuffer: u64::from(self.coordinator.jute_maxbuffer),
            clustered: self.cluster.is_some(),
        };
        crate::memory::Budget::new(&self.memory, needs).map_err(|message| ConfigError::Invalid {
            key: "memory.budget",
            message,
        })
    }
}

impl BrokerConfig {
    /// The broker's `min_insync_replicas` for a topic with `replicas` replicas: as set, or
    /// by default 2 in a cluster when a topic has 3 or more replicas, else 1.
    pub fn min_insync_for(&self, replicas: usize, clustered: bool) -> u16 {
        match self.min_insync_replicas {
            Some(n) => n,
            None if clustered && replicas >= 3 => 2,
            None => 1,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| ConfigError::Invalid {
            key,
            message: message.to_string(),
        };
        if self.listeners.is_empty() {
            return Err(invalid("broker.listeners", "give at least one host:port"));
        }
        for listener in &self.listeners {
            parse_kafka_listener(listener).map_err(|message| ConfigError::Invalid {
                key: "broker.listeners",
                message,
            })?;
        }
        for advertised in &self.advertised_listeners {
            split_host_port(advertised).map_err(|message| ConfigError::Invalid {
                key: "broker.advertised_listeners",
                message,
            })?;
        }
        if self.log_dirs.is_empty() {
            return Err(invalid("broker.log_dirs", "give at least one directory"));
        }
        if self.num_partitions == 0 || self.num_partitions > self.max_partitions {
            return Err(invalid(
                "broker.num_partitions",
                "must be between 1 and broker.max_partitions",
            ));
        }
        if self.default_replication_factor == 0 {
            return Err(invalid(
                "broker.default_replication_factor",
                "must be at least 1",
            ));
        }
        if self.min_insync_replicas == Some(0) {
            return Err(invalid("broker.min_insync_replicas", "must be at least 1"));
        }
        if self.leader_imbalance_check_interval_seconds == 0 {
            return Err(invalid(
                "broker.leader_imbalance_check_interval_seconds",
                "must be at least 1",
            ));
        }
        if self.leader_imbalance_per_broker_percentage > 100 {
            return Err(invalid(
                "broker.leader_imbalance_per_broker_percentage",
                "is a percentage: 0 to 100",
            ));
        }
        if self.replica_lag_time_max_ms < 1000 {
            return Err(invalid(
                "broker.replica_lag_time_max_ms",
                "must be at least 1000",
            ));
        }
        if self.message_max_bytes < 1024 {
            return Err(invalid("broker.message_max_bytes", "must be at least 1024"));
        }
        // Segment positions are stored as u32 in the offset index.
        if self.log_segment_bytes < 14 * 1024 || self.log_segment_bytes > i32::MAX as u64 {
            return Err(invalid(
                "broker.log_segment_bytes",
                "must be between 14336 and 2147483647",
            ));
        }
        if self.log_segment_bytes < u64::from(self.message_max_bytes) {
            return Err(invalid(
                "broker.log_segment_bytes",
                "must be at least broker.message_max_bytes",
            ));
        }
        if self.log_roll_hours == 0 {
            return Err(invalid("broker.log_roll_hours", "must be at least 1"));
        }
        if self.log_retention_hours == 0 || self.log_retention_hours < -1 {
            return Err(invalid(
                "broker.log_retention_hours",
                "must be -1 (forever) or at least 1",
            ));
        }
        if self.log_retention_bytes < -1 {
            return Err(invalid(
                "broker.log_retention_bytes",
                "must be -1 (no limit) or a size",
            ));
        }
        if self.socket_request_max_bytes < self.message_max_bytes {
            return Err(invalid(
                "broker.socket_request_max_bytes",
                "must be at least broker.message_max_bytes",
            ));
        }
        if self.fetch_max_bytes < 1024 {
            return Err(invalid("broker.fetch_max_bytes", "must be at least 1024"));
        }
        if self.max_connections == 0 {
            return Err(invalid("broker.max_connections", "must be at least 1"));
        }
        if self.max_connections_per_ip == 0 {
            return Err(invalid(
                "broker.max_connections_per_ip",
                "must be at least 1",
            ));
        }
        if self.log_flush_interval_ms == 0 {
            return Err(invalid(
                "broker.log_flush_interval_ms",
                "must be at least 1",
            ));
        }
        self.validate_groups()
    }

    fn validate_groups(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| ConfigError::Invalid {
            key,
            message: message.to_string(),
        };
        if !(1..=1000).contains(&self.offsets_topic_num_partitions) {
            return Err(invalid(
                "broker.offsets_topic_num_partitions",
                "must be between 1 and 1000",
            ));
        }
        if self.offsets_topic_replication_factor == 0 {
            return Err(invalid(
                "broker.offsets_topic_replication_factor",
                "must be at least 1",
            ));
        }
        if self.offsets_topic_segment_bytes < 14 * 1024
            || self.offsets_topic_segment_bytes > i32::MAX as u64
        {
            return Err(invalid(
                "broker.offsets_topic_segment_bytes",
                "must be between 14336 and 2147483647",
            ));
        }
        if self.offsets_retention_minutes == 0 {
            return Err(invalid(
                "broker.offsets_retention_minutes",
                "must be at least 1",
            ));
        }
        if self.offsets_retention_check_interval_ms == 0 {
            return Err(invalid(
                "broker.offsets_retention_check_interval_ms",
                "must be at least 1",
            ));
        }
        if self.group_initial_rebalance_delay_ms > 60_000 {
            return Err(invalid(
                "broker.group_initial_rebalance_delay_ms",
                "must be at most 60000",
            ));
        }
        if self.group_min_session_timeout_ms == 0
            || self.group_min_session_timeout_ms > self.group_max_session_timeout_ms
        {
            return Err(invalid(
                "broker.group_min_session_timeout_ms",
                "must be at least 1 and at most broker.group_max_session_timeout_ms",
            ));
        }
        if self.group_max_size == 0 {
            return Err(invalid("broker.group_max_size", "must be at least 1"));
        }
        if self.max_groups == 0 {
            return Err(invalid("broker.max_groups", "must be at least 1"));
        }
        if self.group_member_metadata_max_bytes < 1024 {
            return Err(invalid(
                "broker.group_member_metadata_max_bytes",
                "must be at least 1024",
            ));
        }
        if self.producer_id_expiration_ms < 1 {
            return Err(invalid(
                "broker.producer_id_expiration_ms",
                "must be at least 1",
            ));
        }
        if self.max_producers_per_partition == 0 {
            return Err(invalid(
                "broker.max_producers_per_partition",
                "must be at least 1",
            ));
        }
        if self.log_cleaner_dedupe_buffer_size < 64 * 1024 {
            return Err(invalid(
                "broker.log_cleaner_dedupe_buffer_size",
                "must be at least 65536",
            ));
        }
        if self.log_cleaner_backoff_ms == 0 {
            return Err(invalid(
                "broker.log_cleaner_backoff_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The address given to a client of listener number `listener` (the first advertised
    /// one when there are fewer advertised listeners than listeners).
    pub fn advertised_for(&self, listener: usize) -> Option<(String, u16)> {
        let advertised = self.advertised();
        advertised
            .get(listener)
            .or_else(|| advertised.first())
            .cloned()
    }

    /// The `host:port` pairs clients are told to connect to, in listener order.
    pub fn advertised(&self) -> Vec<(String, u16)> {
        let source = if self.advertised_listeners.is_empty() {
            &self.listeners
        } else {
            &self.advertised_listeners
        };
        source
            .iter()
            .filter_map(|entry| split_host_port(entry).ok())
            .collect()
    }
}

/// How a Kafka listener's connections are secured, named as in Kafka's `listeners`
/// (`SASL_SSL://0.0.0.0:9093`); a bare `host:port` is `PLAINTEXT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name for it, as written before `://`.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections are wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before any other request.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// Split a listener entry into its security protocol and the `host:port` after it.
pub fn split_protocol(entry: &str) -> Result<(SecurityProtocol, &str), String> {
    let Some((name, rest)) = entry.split_once("://") else {
        return Ok((SecurityProtocol::Plaintext, entry));
    };
    SecurityProtocol::ALL
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
        .map(|p| (p, rest))
        .ok_or_else(|| {
            format!("`{entry}`: unknown security protocol `{name}` (use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")
        })
}

/// Parse a listener entry into its security protocol and socket address.
pub fn parse_kafka_listener(entry: &str) -> Result<(SecurityProtocol, SocketAddr), String> {
    let (protocol, _) = split_protocol(entry)?;
    Ok((protocol, parse_listener(entry)?))
}

/// Parse a listener entry into a socket address. Accepts `host:port` and Kafka's
/// `PROTOCOL://host:port`.
pub fn parse_listener(entry: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(entry)?;
    let host = if host.is_empty() {
        "0.0.0.0"
    } else {
        host.as_str()
    };
    format!("{host}:{port}")
        .parse::<SocketAddr>()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            (host, port)
                .to_socket_addrs()
                .map_err(|e| e.to_string())?
                .next()
                .ok_or_else(|| "no address".to_string())
        })
        .map_err(|e| format!("`{entry}` is not a usable host:port ({e})"))
}

/// Split `host:port` (optionally `PROTOCOL://host:port`) into its parts.
pub fn split_host_port(entry: &str) -> Result<(String, u16), String> {
    let (_, bare) = split_protocol(entry)?;
    let (host, port) = bare
        .rsplit_once(':')
        .ok_or_else(|| format!("`{entry}` must be host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{entry}`: port must be a number from 0 to 65535"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_insync_replicas_defaults_to_two_only_for_replicated_topics_in_a_cluster() {
        let c = BrokerConfig::default();
        assert_eq!(c.min_insync_for(1, false), 1);
        assert_eq!(c.min_insync_for(3, false), 1);
        assert_eq!(c.min_insync_for(2, true), 1);
        assert_eq!(c.min_insync_for(3, true), 2);
        let set = BrokerConfig {
            min_insync_replicas: Some(3),
            ..BrokerConfig::default()
        };
        assert_eq!(set.min_insync_for(3, true), 3);
        assert_eq!(set.min_insync_for(1, false), 3);
    }

    #[test]
    fn listener_entries_name_their_security_protocol() {
        let (protocol, addr) = parse_kafka_listener("SASL_SSL://127.0.0.1:9093").unwrap();
        assert_eq!(protocol, SecurityProtocol::SaslSsl);
        assert_eq!(addr.port(), 9093);
        let (protocol, _) = parse_kafka_listener("127.0.0.1:9092").unwrap();
        assert_eq!(protocol, SecurityProtocol::Plaintext);
        let error = parse_kafka_listener("TLS://127.0.0.1:9092").unwrap_err();
        assert!(error.contains("SASL_PLAINTEXT"), "{error}");
        assert_eq!(
            split_host_port("SSL://broker:9093").unwrap(),
            ("broker".to_string(), 9093)
        );
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.broker.num_partitions, 1);
        assert!(config.broker.log_flush_on_ack);
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let error = Config::parse("[broker]\nnum_partition = 3\n").unwrap_err();
        assert!(error.to_string().contains("num_partition"), "{error}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let error = Config::parse("[broker]\nnum_partitions = 0\n").unwrap_err();
        assert!(
            error.to_string().contains("broker.num_partitions"),
            "{error}"
        );
        let error = Config::parse("[broker]\nlisteners = [\"nonsense\"]\n").unwrap_err();
        assert!(error.to_string().contains("broker.listeners"), "{error}");
    }

    #[test]
    fn group_and_producer_settings_have_defaults_and_checks() {
        let config = Config::parse("").unwrap().broker;
        assert_eq!(config.offsets_topic_num_partitions, 8);
        assert_eq!(config.offsets_retention_minutes, 7 * 24 * 60);
        assert!(config.group_initial_rebalance_delay_ms <= 300);
        for (text, key) in [
            (
                "offsets_topic_num_partitions = 0",
                "broker.offsets_topic_num_partitions",
            ),
            (
                "group_min_session_timeout_ms = 9000\ngroup_max_session_timeout_ms = 8000",
                "broker.group_min_session_timeout_ms",
            ),
            ("group_max_size = 0", "broker.group_max_size"),
            (
                "log_cleaner_dedupe_buffer_size = 10",
                "broker.log_cleaner_dedupe_buffer_size",
            ),
        ] {
            let error = Config::parse(&format!("[broker]\n{text}\n")).unwrap_err();
            assert!(error.to_string().contains(key), "{error}");
        }
    }

    #[test]
    fn tls_listeners_need_a_certificate_and_key() {
        let error = Config::parse("[broker]\nlisteners = [\"SSL://127.0.0.1:9093\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cert_file and key_file") && error.contains("SSL://127.0.0.1:9093"),
            "{error}"
        );
        let error = Config::parse(
            "[broker]\nlisteners = [\"SSL://127.0.0.1:9093\"]\n\
             [tls]\ncert_file = \"n.pem\"\nkey_file = \"n.key\"\nclient_auth = \"required\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("ca_file"), "{error}");
        let error = Config::parse("[coordinator]\nsecure_listen = \"127.0.0.1:2281\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("coordinator.secure_listen"), "{error}");
        let config = Config::parse(
            "[broker]\nlisteners = [\"SSL://127.0.0.1:9093\"]\n\
             [tls]\ncert_file = \"n.pem\"\nkey_file = \"n.key\"\n",
        )
        .unwrap();
        assert_eq!(config.broker.advertised()[0].1, 9093);
    }

    #[test]
    fn listeners_open_to_the_network_without_tls_or_auth_are_named() {
        let config = Config::embedded_default();
        assert!(config.exposed_listeners().is_empty());
        let config = Config::parse(
            "[broker]\nlisteners = [\"0.0.0.0:9092\", \"SSL://0.0.0.0:9093\"]\n\
             [coordinator]\nlisten = \"0.0.0.0:2181\"\n\
             [tls]\ncert_file = \"n.pem\"\nkey_file = \"n.key\"\n",
        )
        .unwrap();
        let exposed = config.exposed_listeners();
        assert_eq!(exposed.len(), 2, "{exposed:?}");
        assert!(exposed[0].contains("0.0.0.0:9092"), "{exposed:?}");
        assert!(exposed[1].contains("coordinator.listen"), "{exposed:?}");
    }

    #[test]
    fn kafka_style_listener_is_accepted() {
        let config =
            Config::parse("[broker]\nlisteners = [\"PLAINTEXT://127.0.0.1:9999\"]\n").unwrap();
        assert_eq!(
            config.broker.advertised(),
            vec![("127.0.0.1".to_string(), 9999)]
        );
    }
}

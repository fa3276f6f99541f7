//! Topics: names, ids, per-topic config overrides and the log settings they produce.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::ids::Uuid;
use crate::log::LogConfig;

use super::partition::Partition;

/// Longest topic name Kafka allows (a partition directory name must stay under 255 bytes).
pub const TOPIC_NAME_MAX_BYTES: usize = 249;

/// Why a topic name is refused.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'".into());
    }
    if name.len() > TOPIC_NAME_MAX_BYTES {
        return Err(format!(
            "topic name is longer than {TOPIC_NAME_MAX_BYTES} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name contains '{bad}'; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// The topic-level settings a client may set, with how each is checked.
const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "min.insync.replicas",
    "message.timestamp.type",
    "delete.retention.ms",
];

/// Kafka's `delete.retention.ms` default: tombstones stay a day after compaction reaches them.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 86_400_000;

/// Per-topic overrides of the broker defaults, kept as Kafka's string key/values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicConfig {
    /// Only keys that were set for this topic.
    pub overrides: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Check one key/value pair; the message says what is allowed.
    pub fn validate_entry(key: &str, value: &str) -> Result<(), String> {
        let number = |min: i64| -> Result<(), String> {
            let parsed: i64 = value
                .parse()
                .map_err(|_| format!("{key} must be a number, got '{value}'"))?;
            if parsed < min {
                return Err(format!("{key} must be at least {min}"));
            }
            Ok(())
        };
        match key {
            "cleanup.policy" => match value {
                "delete" | "compact" | "compact,delete" | "delete,compact" => Ok(()),
                _ => Err("cleanup.policy must be delete, compact or compact,delete".into()),
            },
            "retention.ms" | "retention.bytes" => number(-1),
            "delete.retention.ms" => number(0),
            "segment.bytes" => {
                number(14 * 1024)?;
                if value.parse::<i64>().unwrap_or(0) > i64::from(i32::MAX) {
                    return Err("segment.bytes must be below 2 GiB".into());
                }
                Ok(())
            }
            "segment.ms" => number(1),
            "max.message.bytes" => number(0),
            "min.insync.replicas" => number(1),
            "message.timestamp.type" => match value {
                "CreateTime" => Ok(()),
                _ => Err("message.timestamp.type must be CreateTime".into()),
            },
            _ => Err(format!(
                "unknown topic config '{key}'; known: {}",
                TOPIC_CONFIG_KEYS.join(", ")
            )),
        }
    }

    /// All the settings of a topic as DescribeConfigs shows them: (key, value, is_default).
    /// `replicas` is the topic's replication factor when it is replicated across a cluster,
    /// `None` on a single node: the default `min.insync.replicas` depends on it.
    pub fn describe(
        &self,
        broker: &BrokerConfig,
        replicas: Option<usize>,
    ) -> Vec<(String, String, bool)> {
        TOPIC_CONFIG_KEYS
            .iter()
            .map(|&key| match self.overrides.get(key) {
                Some(value) => (key.to_string(), value.clone(), false),
                None => (key.to_string(), broker_default(broker, key, replicas), true),
            })
            .collect()
    }

    fn get_i64(&self, key: &str) -> Option<i64> {
        self.overrides.get(key).and_then(|v| v.parse().ok())
    }

    /// Largest batch this topic accepts.
    pub fn max_message_bytes(&self, broker: &BrokerConfig) -> u32 {
        self.get_i64("max.message.bytes")
            .map(|v| v.clamp(0, i64::from(u32::MAX)) as u32)
            .unwrap_or(broker.message_max_bytes)
    }

    /// Whether `cleanup.policy` includes `compact`, and whether it includes `delete`.
    pub fn cleanup_policy(&self) -> (bool, bool) {
        match self.overrides.get("cleanup.policy").map(String::as_str) {
            None | Some("delete") => (false, true),
            Some("compact") => (true, false),
            Some(_) => (true, true),
        }
    }

    /// The log settings for this topic's partitions.
    pub fn log_config(&self, broker: &BrokerConfig) -> LogConfig {
        let (compact, delete) = self.cleanup_policy();
        let retention_ms = self
            .get_i64("retention.ms")
            .unwrap_or(broker.log_retention_hours.saturating_mul(3_600_000));
        let retention_bytes = self
            .get_i64("retention.bytes")
            .unwrap_or(broker.log_retention_bytes);
        // A compact-only topic keeps every key's latest value however old (Kafka's rule).
        let (retention_ms, retention_bytes) = if delete {
            (retention_ms, retention_bytes)
        } else {
            (-1, -1)
        };
        LogConfig {
            compact,
            delete_retention_ms: self
                .get_i64("delete.retention.ms")
                .unwrap_or(DEFAULT_DELETE_RETENTION_MS),
            segment_bytes: self
                .get_i64("segment.bytes")
                .map(|v| v as u64)
                .unwrap_or(broker.log_segment_bytes),
            segment_ms: self
                .get_i64("segment.ms")
                .unwrap_or(i64::from(broker.log_roll_hours) * 3_600_000),
            retention_ms: (retention_ms >= 0).then_some(retention_ms),
            retention_bytes: (retention_bytes >= 0).then_some(retention_bytes as u64),
            index_interval_bytes: broker.log_index_interval_bytes,
            max_batch_bytes: self.max_message_bytes(broker),
        }
    }
}

fn broker_default(broker: &BrokerConfig, key: &str, replicas: Option<usize>) -> String {
    match key {
        "cleanup.policy" => "delete".into(),
        "retention.ms" => {
            if broker.log_retention_hours < 0 {
                "-1".into()
            } else {
                (broker.log_retention_hours * 3_600_000).to_string()
            }
        }
        "retention.bytes" => broker.log_retention_bytes.to_string(),
        "segment.bytes" => broker.log_segment_bytes.to_string(),
        "segment.ms" => (u64::from(broker.log_roll_hours) * 3_600_000).to_string(),
        "max.message.bytes" => broker.message_max_bytes.to_string(),
        "min.insync.replicas" => broker
            .min_insync_for(replicas.unwrap_or(1), replicas.is_some())
            .to_string(),
        "message.timestamp.type" => "CreateTime".into(),
        "delete.retention.ms" => DEFAULT_DELETE_RETENTION_MS.to_string(),
        _ => String::new(),
    }
}

/// A topic and its partitions on this node.
#[derive(Debug)]
pub struct Topic {
    /// The name clients use.
    pub name: String,
    /// Kafka's topic id.
    pub id: Uuid,
    /// Per-topic overrides.
    pub config: TopicConfig,
    /// Partitions, indexed by partition number.
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// Topics whose name starts with `__` are the broker's own (`__consumer_offsets`).
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("sensors.temp_1-a").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name("with space").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn overrides_change_the_log_config() {
        let broker = BrokerConfig::default();
        let mut config = TopicConfig::default();
        config
            .overrides
            .insert("retention.ms".into(), "1000".into());
        config
            .overrides
            .insert("segment.bytes".into(), "20000".into());
        let log = config.log_config(&broker);
        assert_eq!(log.retention_ms, Some(1000));
        assert_eq!(log.segment_bytes, 20000);
        assert!(TopicConfig::validate_entry("retention.ms", "abc").is_err());
        assert!(TopicConfig::validate_entry("no.such.key", "1").is_err());
    }
}

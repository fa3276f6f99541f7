//! The broker's small metadata files in the log directories, in Kafka's formats where Kafka
//! has one: `meta.properties`, `<topic>-<p>/partition.metadata`; and bramble's own
//! `topic-configs/<topic>.properties` for per-topic overrides (written atomically).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::ids::Uuid;
use crate::log::checkpoint::{self, MetaProperties};

/// Read a Java-properties style file (`key=value`, `#` comments) into a map.
pub fn read_properties(path: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let text = fs::read_to_string(path)?;
    Ok(parse_properties(&text))
}

/// Parse `key=value` lines; blank lines and `#` comments are skipped.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// Write a file so that a crash leaves either the old or the new content.
pub fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    checkpoint::write_atomically(path, content).map_err(std::io::Error::other)
}

/// Read `meta.properties` from a log dir, or write a fresh one if absent. A directory that
/// belongs to another broker id is refused: mixing two nodes' logs would lose data.
pub fn load_or_init_meta(
    dir: &Path,
    broker_id: i32,
    cluster_id: Option<&str>,
) -> anyhow::Result<MetaProperties> {
    let path = dir.join("meta.properties");
    if let Some(meta) = checkpoint::read_meta_properties(&path)? {
        anyhow::ensure!(
            meta.broker_id == broker_id,
            "{} belongs to broker.id={} but this node is {broker_id}; \
             point log_dirs elsewhere or set node.id = {}",
            path.display(),
            meta.broker_id,
            meta.broker_id
        );
        return Ok(meta);
    }
    let cluster_id = match cluster_id {
        Some(id) => id.to_string(),
        None => Uuid::random()?.to_base64(),
    };
    let meta = MetaProperties {
        version: 0,
        broker_id,
        cluster_id,
    };
    checkpoint::write_meta_properties(&path, &meta)?;
    Ok(meta)
}

/// Split a partition directory name `<topic>-<n>` into its parts; `None` for anything
/// else (including directories being deleted, `<topic>-<n>.<id>-delete`).
pub fn parse_partition_dir(name: &str) -> Option<(String, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    if topic.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic.to_string(), index.parse().ok()?))
}

/// The directory of one partition.
pub fn partition_dir(log_dir: &Path, topic: &str, index: i32) -> PathBuf {
    log_dir.join(format!("{topic}-{index}"))
}

/// Read `partition.metadata` (`version: 0` / `topic_id: <base64>`).
pub fn read_partition_metadata(dir: &Path) -> Option<Uuid> {
    let text = fs::read_to_string(dir.join("partition.metadata")).ok()?;
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "topic_id")
        .and_then(|(_, value)| Uuid::from_base64(value.trim()))
}

/// Write `partition.metadata` for a partition directory.
pub fn write_partition_metadata(dir: &Path, topic_id: Uuid) -> std::io::Result<()> {
    let text = format!("version: 0\ntopic_id: {}\n", topic_id.to_base64());
    write_atomically(&dir.join("partition.metadata"), text.as_bytes())
}

fn topic_config_path(log_dir: &Path, topic: &str) -> PathBuf {
    log_dir
        .join("topic-configs")
        .join(format!("{topic}.properties"))
}

/// Per-topic overrides, empty if none were ever set.
pub fn read_topic_config(log_dir: &Path, topic: &str) -> BTreeMap<String, String> {
    read_properties(&topic_config_path(log_dir, topic)).unwrap_or_default()
}

/// Persist per-topic overrides (removes the file when there are none).
pub fn write_topic_config(
    log_dir: &Path,
    topic: &str,
    overrides: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let path = topic_config_path(log_dir, topic);
    if overrides.is_empty() {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    fs::create_dir_all(path.parent().unwrap_or(log_dir))?;
    let text: String = overrides
        .iter()
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect();
    write_atomically(&path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dir_names_parse_like_kafka() {
        assert_eq!(parse_partition_dir("orders-0"), Some(("orders".into(), 0)));
        assert_eq!(parse_partition_dir("a-b-12"), Some(("a-b".into(), 12)));
        assert_eq!(parse_partition_dir("orders-0.abc-delete"), None);
        assert_eq!(parse_partition_dir("topic-configs"), None);
        assert_eq!(parse_partition_dir("-1"), None);
    }

    #[test]
    fn meta_properties_refuse_another_broker() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_init_meta(dir.path(), 1, None).unwrap();
        let again = load_or_init_meta(dir.path(), 1, None).unwrap();
        assert_eq!(first, again);
        assert!(load_or_init_meta(dir.path(), 2, None).is_err());
    }

    #[test]
    fn topic_config_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "5".to_string());
        write_topic_config(dir.path(), "t", &overrides).unwrap();
        assert_eq!(read_topic_config(dir.path(), "t"), overrides);
        write_topic_config(dir.path(), "t", &BTreeMap::new()).unwrap();
        assert!(read_topic_config(dir.path(), "t").is_empty());
    }
}

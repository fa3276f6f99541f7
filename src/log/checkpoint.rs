//! The broker's small text files, in Kafka's formats so an operator's habits still apply:
//! offset checkpoints (`recovery-point-offset-checkpoint`, `replication-offset-checkpoint`,
//! `log-start-offset-checkpoint`) and `meta.properties`. Every write is atomic: a temporary
//! file is written and fsynced, renamed over the old one, and the directory fsynced, so a
//! power cut leaves either the old or the new file, never a mix.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::{io_context, LogError};

/// The only checkpoint format version Kafka has written.
const CHECKPOINT_VERSION: &str = "0";

/// A partition's offset keyed by (topic, partition).
pub type PartitionOffsets = BTreeMap<(String, i32), i64>;

fn invalid(path: &Path, why: impl Into<String>) -> LogError {
    LogError::io(
        format!("reading {}", path.display()),
        std::io::Error::new(std::io::ErrorKind::InvalidData, why.into()),
    )
}

/// Writes `contents` to `path` atomically (tmp file, fsync, rename, fsync the directory).
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), LogError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut file = File::create(&tmp).map_err(io_context("creating", &tmp))?;
    file.write_all(contents)
        .map_err(io_context("writing", &tmp))?;
    file.sync_all().map_err(io_context("syncing", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_context("renaming a new version over", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Fsyncs a directory so entries created, renamed or removed in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let d = File::open(dir).map_err(io_context("opening directory", dir))?;
    d.sync_all().map_err(io_context("syncing directory", dir))
}

/// Reads a file, or None if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, LogError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(format!("reading {}", path.display()), e)),
    }
}

/// Parses Kafka's checkpoint framing: line `0`, a count line, then exactly `count` entry
/// lines, each handed to `entry`. Used for offset and leader-epoch checkpoints.
pub(crate) fn parse_checkpoint<T>(
    path: &Path,
    text: &str,
    mut entry: impl FnMut(&str) -> Option<T>,
) -> Result<Vec<T>, LogError> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(CHECKPOINT_VERSION) {
        return Err(invalid(path, "first line is not checkpoint version 0"));
    }
    let count: u64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| invalid(path, "second line is not an entry count"))?;
    // The count is only compared, never used to size anything: it came from disk.
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let value =
            entry(line.trim()).ok_or_else(|| invalid(path, format!("malformed entry {line:?}")))?;
        out.push(value);
    }
    if out.len() as u64 != count {
        return Err(invalid(
            path,
            format!("says {count} entries but holds {}", out.len()),
        ));
    }
    Ok(out)
}

/// Renders Kafka's checkpoint framing around pre-rendered entry lines.
pub(crate) fn render_checkpoint(entries: &[String]) -> String {
    let mut s = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for e in entries {
        s.push_str(e);
        s.push('\n');
    }
    s
}

/// Reads a `<topic> <partition> <offset>` checkpoint; a missing file is empty.
pub fn read_offset_checkpoint(path: &Path) -> Result<PartitionOffsets, LogError> {
    let Some(text) = read_optional(path)? else {
        return Ok(PartitionOffsets::new());
    };
    let entries = parse_checkpoint(path, &text, |line| {
        let mut parts = line.split_whitespace();
        let topic = parts.next()?.to_string();
        let partition = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        parts
            .next()
            .is_none()
            .then_some(((topic, partition), offset))
    })?;
    Ok(entries.into_iter().collect())
}

/// Atomically writes a `<topic> <partition> <offset>` checkpoint.
pub fn write_offset_checkpoint(path: &Path, offsets: &PartitionOffsets) -> Result<(), LogError> {
    for (topic, _) in offsets.keys() {
        // Kafka topic names never hold whitespace; one that did would corrupt the file.
        assert!(
            !topic.is_empty() && !topic.contains(char::is_whitespace),
            "bad topic name {topic:?}"
        );
    }
    let lines: Vec<String> = offsets
        .iter()
        .map(|((t, p), o)| format!("{t} {p} {o}"))
        .collect();
    write_atomically(path, render_checkpoint(&lines).as_bytes())
}

/// The identity file at the root of each log directory, as Kafka writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// Format version (`version=1`).
    pub version: u32,
    /// This node's id (`broker.id`; `node.id` is accepted when reading).
    pub broker_id: i32,
    /// The cluster's id (`cluster.id`).
    pub cluster_id: String,
}

/// Reads `meta.properties` (Java properties: `key=value` lines, `#`/`!` comments); None if
/// the file does not exist.
pub fn read_meta_properties(path: &Path) -> Result<Option<MetaProperties>, LogError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    let mut props = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| invalid(path, format!("line {line:?} has no '='")))?;
        props.insert(key.trim().to_string(), value.trim().to_string());
    }
    let get = |key: &str| {
        props
            .get(key)
            .ok_or_else(|| invalid(path, format!("missing {key}")))
    };
    let version = get("version")?
        .parse()
        .map_err(|_| invalid(path, "version is not a number"))?;
    let id = props
        .get("broker.id")
        .or_else(|| props.get("node.id"))
        .ok_or_else(|| invalid(path, "missing broker.id"))?;
    let broker_id = id
        .parse()
        .map_err(|_| invalid(path, "broker.id is not a number"))?;
    let cluster_id = get("cluster.id")?.clone();
    Ok(Some(MetaProperties {
        version,
        broker_id,
        cluster_id,
    }))
}

/// Atomically writes `meta.properties`.
pub fn write_meta_properties(path: &Path, meta: &MetaProperties) -> Result<(), LogError> {
    let text = format!(
        "#\n# Written by bramble; same format as Kafka's meta.properties.\nversion={}\nbroker.id={}\ncluster.id={}\n",
        meta.version, meta.broker_id, meta.cluster_id
    );
    write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoint_round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert!(read_offset_checkpoint(&path).unwrap().is_empty());
        let mut offsets = PartitionOffsets::new();
        offsets.insert(("sensors".into(), 0), 42);
        offsets.insert(("sensors".into(), 2), 7);
        offsets.insert(("__consumer_offsets".into(), 13), 0);
        write_offset_checkpoint(&path, &offsets).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "0\n3\n__consumer_offsets 13 0\nsensors 0 42\nsensors 2 7\n"
        );
        assert_eq!(read_offset_checkpoint(&path).unwrap(), offsets);
        assert!(!dir
            .path()
            .join("recovery-point-offset-checkpoint.tmp")
            .exists());
    }

    #[test]
    fn malformed_checkpoints_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        for bad in [
            "1\n0\n",
            "0\n2\nt 0 1\n",
            "0\n1\nt x 1\n",
            "0\nmany\n",
            "0\n1\nt 0 1 9\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(read_offset_checkpoint(&path).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn meta_properties_round_trip_and_accept_kafka_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.properties");
        assert_eq!(read_meta_properties(&path).unwrap(), None);
        let meta = MetaProperties {
            version: 1,
            broker_id: 3,
            cluster_id: "q1Sh-9_ISia5gxAWaxLHwg".into(),
        };
        write_meta_properties(&path, &meta).unwrap();
        assert_eq!(read_meta_properties(&path).unwrap(), Some(meta));

        std::fs::write(
            &path,
            "#Tue Mar 05 10:00:00 UTC 2024\ncluster.id=abc\nnode.id=2\nversion=1\n",
        )
        .unwrap();
        let read = read_meta_properties(&path).unwrap().unwrap();
        assert_eq!((read.broker_id, read.cluster_id.as_str()), (2, "abc"));

        std::fs::write(&path, "version=1\ncluster.id=abc\n").unwrap();
        assert!(read_meta_properties(&path).is_err());
    }
}

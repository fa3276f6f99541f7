//! Helpers for this module's unit tests: configs, a log in a temp dir, file surgery.

use std::path::Path;

use super::testing;
use super::{Log, LogConfig};

/// A config with small segments and a dense index so a few batches exercise rolls and
/// index lookups; retention off.
pub fn small_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: i64::MAX / 2,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 100,
        max_batch_bytes: 1 << 20,
        compact: false,
        delete_retention_ms: 86_400_000,
    }
}

/// A fresh log in a new temp dir (keep the dir alive as long as the log).
pub fn temp_log(config: LogConfig) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(&dir.path().join("topic-0"), config, 0).unwrap();
    (dir, log)
}

/// A batch of `n` records with `value_len`-byte values, timestamps from `ts`.
pub fn records(n: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let value = vec![b'x'; value_len];
    let recs: Vec<(&[u8], &[u8])> = (0..n).map(|_| (&b"key"[..], &value[..])).collect();
    testing::batch(&recs, ts)
}

/// Appends one batch of `n` records at epoch 0 and returns its base offset.
pub fn append_n(log: &mut Log, n: usize, value_len: usize, ts: i64) -> i64 {
    let mut b = records(n, value_len, ts);
    log.append(&mut b, 0, ts).unwrap().base_offset
}

/// Appends raw bytes to the end of a file (simulating a torn write).
pub fn append_raw(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// File length.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

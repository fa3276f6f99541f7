//! Kafka's on-disk partition log: segments, sparse indexes, recovery, retention and the
//! leader epoch cache, byte for byte in Kafka's formats so a produce is an append and a
//! fetch is a read of the same bytes.
//!
//! Layout of one partition directory `<log_dir>/<topic>-<partition>/`:
//! - `<base offset, 20 digits>.log`: v2 record batches exactly as producers sent them
//!   (offsets and leader epoch rewritten, both outside the CRC);
//! - `.index` (relative offset u32 | position u32) and `.timeindex` (timestamp i64 |
//!   relative offset u32): sparse, appended, never preallocated;
//! - `leader-epoch-checkpoint`: Kafka's text format.
//!
//! Module map: [`batch`] parses and validates batches (never decompresses), `scan` walks a
//! segment file in bounded chunks, `index_file`/`offset_index`/`time_index` hold the sparse
//! indexes, `segment` is one `.log` with its indexes, `epoch` is the leader epoch cache,
//! `partition` is [`Log`] (open/recover, append, read), `retention` deletes and truncates,
//! `sync` is the group-commit handshake, [`checkpoint`] holds the broker's checkpoint files,
//! [`builder`] builds batches for data that arrives without a Kafka producer (MQTT).
//!
//! This module knows nothing of Kafka requests and never reads a clock: callers pass
//! `now_ms`.

pub mod batch;
pub mod builder;
pub mod checkpoint;
mod cleaner;
mod epoch;
mod index_file;
mod offset_index;
mod partition;
pub mod records;
mod retention;
mod scan;
mod segment;
mod sync;
pub mod testing;
mod time_index;

#[cfg(test)]
mod test_support;

pub use batch::{scan_valid_prefix, validate_batches};
pub use cleaner::{CleanJob, CleanOutcome, CleanReport};
pub use partition::Log;
pub use sync::PendingSync;

/// The largest `segment_bytes` accepted: file positions in the indexes are u32, and an
/// append may overshoot a segment by one request, so a segment must stay below 2 GiB.
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// Per-partition settings, named after Kafka's topic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll before an append would push the active segment past this (`segment.bytes`).
    pub segment_bytes: u64,
    /// Roll when the active segment's first append is older than this (`segment.ms`).
    pub segment_ms: i64,
    /// Delete segments whose newest timestamp is older than this; None keeps forever.
    pub retention_ms: Option<i64>,
    /// Keep at most about this many bytes per partition; None is unlimited.
    pub retention_bytes: Option<u64>,
    /// Add a sparse index entry every this many bytes of log (`index.interval.bytes`).
    pub index_interval_bytes: u32,
    /// Reject a single batch larger than this (`max.message.bytes`).
    pub max_batch_bytes: u32,
    /// Compact closed segments, keeping the latest record of each key (`cleanup.policy`
    /// includes `compact`).
    pub compact: bool,
    /// How long the cleaner keeps a tombstone (a null value) before dropping it
    /// (`delete.retention.ms`), so consumers that are behind still see the delete.
    pub delete_retention_ms: i64,
}

impl Default for LogConfig {
    /// Kafka's defaults: 1 GiB segments, 7 day rolls, 168 h retention, 4 KiB index interval.
    fn default() -> Self {
        const DAY_MS: i64 = 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            index_interval_bytes: 4096,
            max_batch_bytes: 1 << 20,
            compact: false,
            delete_retention_ms: DAY_MS,
        }
    }
}

impl LogConfig {
    /// Checks the settings a log relies on; the config layer (and AlterConfigs) should call
    /// this on user input, since [`Log::open`] and [`Log::set_config`] assert it.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(format!(
                "segment_bytes {} must be in 1..={MAX_SEGMENT_BYTES}",
                self.segment_bytes
            ));
        }
        if self.segment_ms < 1 {
            return Err(format!("segment_ms {} must be positive", self.segment_ms));
        }
        if self.delete_retention_ms < 0 {
            return Err(format!(
                "delete_retention_ms {} must not be negative",
                self.delete_retention_ms
            ));
        }
        if self.max_batch_bytes < batch::HEADER_BYTES as u32 {
            return Err(format!(
                "max_batch_bytes {} is smaller than a batch header",
                self.max_batch_bytes
            ));
        }
        Ok(())
    }

    /// Asserts what the config layer must already have enforced.
    fn assert_valid(&self) {
        if let Err(why) = self.validate() {
            panic!("invalid log config: {why}");
        }
    }
}

/// Everything that can go wrong in the log; each variant maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed; `context` says what and where.
    #[error("while {context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// CRC mismatch, bad magic or bad length (CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    /// Structurally fine but not acceptable (INVALID_RECORD).
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// One batch is larger than `max_batch_bytes` (MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge {
        /// The batch's size in bytes, header included.
        size: u64,
        /// The configured limit.
        max: u32,
    },
    /// The offset is outside `[log_start, log_end]` (OFFSET_OUT_OF_RANGE).
    #[error("offset {requested} is outside the log's range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: i64,
        /// The first offset still in the log.
        log_start: i64,
        /// The next offset to be assigned.
        log_end: i64,
    },
}

impl LogError {
    /// Wraps an I/O error with what was being done and where.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> LogError {
        LogError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Builds a closure for `map_err` that wraps an I/O error with context.
pub(crate) fn io_context(
    what: &str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> LogError {
    let context = format!("{what} {}", path.display());
    move |source| LogError::Io { context, source }
}

/// Summary of one validated batch, taken from its header only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// The batch's first offset (as found in the bytes; rewritten on a leader append).
    pub base_offset: i64,
    /// Last offset minus base offset.
    pub last_offset_delta: i32,
    /// Number of records in the batch.
    pub record_count: i32,
    /// The largest record timestamp (or the log append time), -1 if none.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 if none.
    pub base_sequence: i32,
    /// The leader epoch stamped into the batch when it was appended.
    pub partition_leader_epoch: i32,
    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub compression: u8,
    /// Part of a transaction.
    pub is_transactional: bool,
    /// A control batch (transaction marker).
    pub is_control: bool,
    /// Whole batch size in bytes, including the 12-byte offset and length prefix.
    pub size_bytes: u32,
}

impl BatchInfo {
    /// The batch's last offset.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
}

/// What one append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record written.
    pub base_offset: i64,
    /// Offset of the last record written.
    pub last_offset: i64,
    /// Largest batch max timestamp among the appended batches.
    pub max_timestamp: i64,
    /// Number of batches written.
    pub batch_count: u32,
}

#[cfg(test)]
mod cleaner_tests;
#[cfg(test)]
mod partition_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod retention_tests;

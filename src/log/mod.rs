//! TEMPORARY stub of the partition log API (replaced by the real module on merge).
#![allow(missing_docs, unused_variables, dead_code)]
use std::path::Path;

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: Option<i64>,
    pub retention_bytes: Option<u64>,
    pub index_interval_bytes: u32,
    pub max_batch_bytes: u32,
}
impl Default for LogConfig {
    fn default() -> Self { todo!() }
}
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("io {context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("corrupt batch: {0}")]
    CorruptBatch(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("batch too large {size} > {max}")]
    BatchTooLarge { size: u64, max: u32 },
    #[error("offset {requested} out of range {log_start}..{log_end}")]
    OffsetOutOfRange { requested: i64, log_start: i64, log_end: i64 },
}
#[derive(Debug, Clone)]
pub struct BatchInfo { pub base_offset: i64, pub last_offset_delta: i32, pub record_count: i32,
    pub max_timestamp: i64, pub producer_id: i64, pub producer_epoch: i16, pub base_sequence: i32,
    pub partition_leader_epoch: i32, pub compression: u8, pub is_transactional: bool, pub is_control: bool,
    pub size_bytes: u32 }
pub mod batch {
    use super::*;
    pub fn validate_batches(buf: &[u8], max_batch_bytes: u32) -> Result<Vec<BatchInfo>, LogError> { todo!() }
    pub fn scan_valid_prefix(buf: &[u8]) -> (Vec<BatchInfo>, usize) { todo!() }
}
pub mod checkpoint {}
#[derive(Debug)]
pub struct AppendInfo { pub base_offset: i64, pub last_offset: i64, pub max_timestamp: i64, pub batch_count: u32 }
#[derive(Debug)]
pub struct Log;
#[derive(Debug)]
pub struct PendingSync;
impl PendingSync { pub fn offset(&self) -> i64 { todo!() } pub fn run(self) -> std::io::Result<i64> { todo!() } }
impl Log {
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> { todo!() }
    pub fn append(&mut self, batches: &mut [u8], partition_leader_epoch: i32, now_ms: i64) -> Result<AppendInfo, LogError> { todo!() }
    pub fn append_as_follower(&mut self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> { todo!() }
    pub fn read(&self, offset: i64, max_bytes: u32, max_offset: i64) -> Result<Vec<u8>, LogError> { todo!() }
    pub fn log_start_offset(&self) -> i64 { todo!() }
    pub fn log_end_offset(&self) -> i64 { todo!() }
    pub fn size_bytes(&self) -> u64 { todo!() }
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> { todo!() }
    pub fn max_timestamp_and_offset(&self) -> Option<(i64, i64)> { todo!() }
    pub fn prepare_sync(&mut self) -> Option<PendingSync> { todo!() }
    pub fn mark_flushed(&mut self, offset: i64) { todo!() }
    pub fn flushed_offset(&self) -> i64 { todo!() }
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> { todo!() }
    pub fn maybe_roll(&mut self, now_ms: i64) -> Result<(), LogError> { todo!() }
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> { todo!() }
    pub fn delete_records_before(&mut self, offset: i64) -> Result<(), LogError> { todo!() }
    pub fn set_config(&mut self, config: LogConfig) { todo!() }
    pub fn config(&self) -> &LogConfig { todo!() }
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> { todo!() }
    pub fn latest_epoch(&self) -> Option<i32> { todo!() }
    pub fn close(&mut self) -> Result<(), LogError> { todo!() }
    pub fn delete(self) -> Result<(), LogError> { todo!() }
}

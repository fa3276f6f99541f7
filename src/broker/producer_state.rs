//! Idempotent producers on one partition, as Kafka keeps them: per producer id, its epoch and
//! the metadata of its last [`BATCHES_KEPT`] batches. A retried batch that matches one of them
//! is a duplicate and is acknowledged with its original offsets without a second append; a
//! sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is INVALID_PRODUCER_EPOCH; a
//! producer this partition does not know that starts past sequence 0 is UNKNOWN_PRODUCER_ID.
//!
//! The state survives restarts through snapshot files (`<offset>.snapshot` in the partition
//! directory, like Kafka's, in bramble's own CRC-checked format) plus a walk over the batch
//! headers appended after the snapshot. No clock is read here: callers pass `now_ms`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::log::BatchInfo;

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`, which is also the most
/// requests a producer may have in flight with idempotence).
pub const BATCHES_KEPT: usize = 5;

/// Snapshots kept per partition; the older one covers a crash while writing the newer.
const SNAPSHOTS_KEPT: usize = 2;
const SNAPSHOT_MAGIC: &[u8; 4] = b"BRPS";
const SNAPSHOT_VERSION: u16 = 1;

/// What is remembered of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub max_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    /// When this producer last appended (wall clock ms), for expiry.
    last_append_ms: i64,
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
}

/// Why a producer's batch was refused; each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// The batch does not continue the producer's sequence.
    #[error("producer {producer_id}: sequence {got} where {expected} was expected")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The batch's first sequence.
        got: i32,
        /// The sequence that would continue.
        expected: i32,
    },
    /// The batch's epoch is older than the producer's current one (a fenced zombie).
    #[error("producer {producer_id}: epoch {got} is older than the current epoch {current}")]
    InvalidEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        got: i16,
        /// The epoch this partition knows.
        current: i16,
    },
    /// A producer this partition has no state for starts past sequence 0.
    #[error(
        "producer {producer_id} is not known to this partition and starts at sequence {first_seq}"
    )]
    UnknownProducer {
        /// The producer.
        producer_id: i64,
        /// The batch's first sequence.
        first_seq: i32,
    },
    /// Not an acceptable idempotent batch (transactional, or without a sequence).
    #[error("{0}")]
    InvalidRecord(String),
}

/// What to do with a request's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append them.
    Append,
    /// A retry of a batch already in the log: answer with its offsets, append nothing.
    Duplicate(BatchMeta),
}

/// The sequence after `seq` (sequences wrap from i32::MAX to 0, as Kafka's do).
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The last sequence of a batch.
fn last_seq_of(info: &BatchInfo) -> i32 {
    ((i64::from(info.base_sequence) + i64::from(info.last_offset_delta))
        % (i64::from(i32::MAX) + 1)) as i32
}

fn meta_of(info: &BatchInfo) -> BatchMeta {
    BatchMeta {
        first_seq: info.base_sequence,
        last_seq: last_seq_of(info),
        base_offset: info.base_offset,
        last_offset: info.last_offset(),
        max_timestamp: info.max_timestamp,
    }
}

/// Per-producer state of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Most producers remembered; past it the longest idle one is forgotten.
    max_producers: usize,
    /// A producer idle this long is forgotten (`producer_id_expiration_ms`).
    expiration_ms: i64,
    /// Changed since the last snapshot.
    dirty: bool,
    /// The log offset the last snapshot written or read was taken at.
    snapshot_offset: Option<i64>,
}

impl ProducerStates {
    /// Empty state with its limits.
    pub fn new(max_producers: u32, expiration_ms: i64) -> ProducerStates {
        ProducerStates {
            producers: HashMap::new(),
            max_producers: max_producers.max(1) as usize,
            expiration_ms,
            dirty: false,
            snapshot_offset: None,
        }
    }

    /// Number of producers remembered.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is remembered.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The epoch and last sequence this partition knows for a producer.
    pub fn last(&self, producer_id: i64) -> Option<(i16, Option<i32>)> {
        self.producers
            .get(&producer_id)
            .map(|e| (e.epoch, e.last_seq()))
    }

    /// Judges a request's batches in order, before anything is appended. `infos` come from
    /// the batch headers; non-idempotent batches (producer id -1) pass untouched.
    pub fn check(&self, infos: &[BatchInfo]) -> Result<Check, ProducerError> {
        // Batches earlier in this request, not yet in `producers`.
        let mut pending: HashMap<i64, (i16, i32)> = HashMap::new();
        for info in infos.iter().filter(|i| i.producer_id >= 0) {
            let pid = info.producer_id;
            if info.is_transactional {
                return Err(ProducerError::InvalidRecord(
                    "transactional batches are not supported by bramble".into(),
                ));
            }
            if info.base_sequence < 0 || info.producer_epoch < 0 {
                return Err(ProducerError::InvalidRecord(format!(
                    "producer {pid} sent a batch without a sequence number or epoch"
                )));
            }
            let known = pending.get(&pid).copied().or_else(|| {
                self.producers
                    .get(&pid)
                    .map(|e| (e.epoch, e.last_seq().unwrap_or(-1)))
            });
            match known {
                None if info.base_sequence != 0 => {
                    return Err(ProducerError::UnknownProducer {
                        producer_id: pid,
                        first_seq: info.base_sequence,
                    })
                }
                None => {}
                Some((epoch, _)) if info.producer_epoch < epoch => {
                    return Err(ProducerError::InvalidEpoch {
                        producer_id: pid,
                        got: info.producer_epoch,
                        current: epoch,
                    })
                }
                Some((epoch, _)) if info.producer_epoch > epoch && info.base_sequence != 0 => {
                    return Err(ProducerError::OutOfOrderSequence {
                        producer_id: pid,
                        got: info.base_sequence,
                        expected: 0,
                    });
                }
                Some((epoch, _)) if info.producer_epoch > epoch => {}
                Some((_, last)) => {
                    if let Some(duplicate) = self.duplicate_of(info) {
                        return Ok(Check::Duplicate(duplicate));
                    }
                    let expected = if last < 0 { 0 } else { next_seq(last) };
                    if info.base_sequence != expected {
                        return Err(ProducerError::OutOfOrderSequence {
                            producer_id: pid,
                            got: info.base_sequence,
                            expected,
                        });
                    }
                }
            }
            pending.insert(pid, (info.producer_epoch, last_seq_of(info)));
        }
        Ok(Check::Append)
    }

    fn duplicate_of(&self, info: &BatchInfo) -> Option<BatchMeta> {
        let entry = self.producers.get(&info.producer_id)?;
        if entry.epoch != info.producer_epoch {
            return None;
        }
        let last = last_seq_of(info);
        entry
            .batches
            .iter()
            .find(|b| b.first_seq == info.base_sequence && b.last_seq == last)
            .copied()
    }

    /// Records batches the log accepted (`infos` carry their assigned offsets).
    pub fn record(&mut self, infos: &[BatchInfo], now_ms: i64) {
        for info in infos
            .iter()
            .filter(|i| i.producer_id >= 0 && i.base_sequence >= 0)
        {
            self.record_one(info, now_ms);
        }
    }

    fn record_one(&mut self, info: &BatchInfo, now_ms: i64) {
        if !self.producers.contains_key(&info.producer_id)
            && self.producers.len() >= self.max_producers
        {
            self.evict_idlest();
        }
        let entry = self
            .producers
            .entry(info.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: info.producer_epoch,
                batches: VecDeque::with_capacity(BATCHES_KEPT),
                last_append_ms: now_ms,
            });
        if info.producer_epoch != entry.epoch {
            entry.epoch = info.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(meta_of(info));
        entry.last_append_ms = entry.last_append_ms.max(now_ms);
        self.dirty = true;
    }

    fn evict_idlest(&mut self) {
        let idlest = self
            .producers
            .iter()
            .min_by_key(|(_, e)| e.last_append_ms)
            .map(|(&pid, _)| pid);
        if let Some(pid) = idlest {
            tracing::debug!(
                producer_id = pid,
                max = self.max_producers,
                "forgetting the idlest producer"
            );
            self.producers.remove(&pid);
        }
    }

    /// Forgets producers idle longer than the expiration; returns how many went.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let before = self.producers.len();
        let expiration = self.expiration_ms;
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_append_ms) <= expiration);
        let gone = before - self.producers.len();
        if gone > 0 {
            self.dirty = true;
        }
        gone
    }

    /// Rebuilds from batch headers read back from the log (at open): like [`record`], with the
    /// batch's own max timestamp standing in for the append time.
    ///
    /// [`record`]: ProducerStates::record
    pub fn replay(&mut self, info: &BatchInfo) {
        if info.producer_id >= 0 && info.base_sequence >= 0 && !info.is_control {
            self.record_one(info, info.max_timestamp);
        }
    }

    /// Encodes the state as of log offset `offset`.
    pub fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.producers.len() * 200);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut pids: Vec<&i64> = self.producers.keys().collect();
        pids.sort();
        for pid in pids {
            let entry = &self.producers[pid];
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.extend_from_slice(&entry.last_append_ms.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot into this (empty) state; returns the offset it was taken at.
    pub fn decode_snapshot(&mut self, bytes: &[u8]) -> Result<i64, String> {
        if bytes.len() < 22 {
            return Err("snapshot too short".into());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err("snapshot CRC mismatch".into());
        }
        let mut r = Reader { buf: body, pos: 0 };
        if r.take(4)? != SNAPSHOT_MAGIC {
            return Err("not a producer snapshot".into());
        }
        let version = r.u16()?;
        if version != SNAPSHOT_VERSION {
            return Err(format!("snapshot version {version} is not supported"));
        }
        let offset = r.i64()?;
        let count = r.u32()?;
        let mut producers = HashMap::new();
        for _ in 0..count {
            let pid = r.i64()?;
            let epoch = r.u16()? as i16;
            let last_append_ms = r.i64()?;
            let n = r.take(1)?[0] as usize;
            if n > BATCHES_KEPT {
                return Err(format!("{n} batches for one producer"));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: r.u32()? as i32,
                    last_seq: r.u32()? as i32,
                    base_offset: r.i64()?,
                    last_offset: r.i64()?,
                    max_timestamp: r.i64()?,
                });
            }
            producers.insert(
                pid,
                ProducerEntry {
                    epoch,
                    batches,
                    last_append_ms,
                },
            );
        }
        if r.pos != body.len() {
            return Err("trailing bytes in snapshot".into());
        }
        self.producers = producers;
        self.snapshot_offset = Some(offset);
        Ok(offset)
    }

    /// Whether a snapshot at `log_end` would say something the last one does not: the state
    /// changed, or the log grew past it (a snapshot also bounds the header walk at open, so
    /// even partitions without idempotent producers get one).
    pub fn needs_snapshot(&self, log_end: i64) -> bool {
        self.dirty || self.snapshot_offset != Some(log_end)
    }

    /// Notes that a snapshot at `offset` now covers the state.
    pub fn mark_snapshotted(&mut self, offset: i64) {
        self.dirty = false;
        self.snapshot_offset = Some(offset);
    }

    /// Notes that the last snapshot could not be written.
    pub fn dirty_again(&mut self) {
        self.dirty = true;
    }
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("snapshot truncated")?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }
}

/// Path of the snapshot taken at `offset`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.snapshot"))
}

/// The snapshot offsets present in `dir`, newest first.
pub fn list_snapshots(dir: &Path) -> Vec<i64> {
    let mut offsets: Vec<i64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(".snapshot")?.to_string();
            (stem.len() == 20).then(|| stem.parse().ok()).flatten()
        })
        .collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    offsets
}

/// Deletes all but the newest [`SNAPSHOTS_KEPT`] snapshots, and any newer than `log_end`
/// (taken of appends a crash then cut off).
pub fn prune_snapshots(dir: &Path, log_end: i64) {
    let mut kept = 0;
    for offset in list_snapshots(dir) {
        if offset <= log_end && kept < SNAPSHOTS_KEPT {
            kept += 1;
            continue;
        }
        let path = snapshot_path(dir, offset);
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), %error, "could not remove an old producer snapshot");
        }
    }
}

#[cfg(test)]
mod tests;

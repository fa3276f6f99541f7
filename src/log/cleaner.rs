//! Log compaction (`cleanup.policy=compact`): the closed segments are rewritten keeping only
//! the latest record of each key, and tombstones (null values) older than
//! `delete_retention_ms`. The active segment is never touched.
//!
//! A pass has three steps so the partition lock is held only briefly:
//! 1. [`Log::clean_job`] (under the lock) notes the closed segments and their files;
//! 2. [`CleanJob::run`] (no lock) maps every key of the dirty part (from the first offset not
//!    yet cleaned) to its latest offset, within a memory budget, and writes the cleaned
//!    segments into `<partition>/cleaner-tmp/`, grouping small segments into one of at most
//!    `segment_bytes`;
//! 3. [`Log::finish_clean`] (under the lock) checks the segments are still the ones read and
//!    swaps the new files in.
//!
//! Batches keep their base offset, last offset delta, producer fields and timestamps; only
//! the records inside shrink (copied byte for byte), so offsets never move and producer
//! metadata stays. Compressed batches are kept whole: opening them could make a small stored
//! batch decompress without bound. Records with a null key are always kept.
//!
//! Crash safety of the swap: for a group of input segments A, B, … whose output starts at A,
//! A's indexes are deleted first (a missing index is rebuilt at open), then the output `.log`
//! is renamed over A's, then its indexes are moved in, then B, … are deleted. If the process
//! dies between the rename and the deletions, `Log::open` finds A's content running past B's
//! base and deletes B, … (the output covers them).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{
    check_fields, check_header, field, parse_info, read_i32, stored_crc, Strictness, HEADER_BYTES,
};
use super::checkpoint::sync_dir;
use super::partition::Log;
use super::records::{finish_batch, for_each_record};
use super::segment::{segment_path, Segment};
use super::{io_context, BatchInfo, LogError, MAX_SEGMENT_BYTES};

/// Where a pass writes its output segments.
const TMP_DIR: &str = "cleaner-tmp";

/// Kafka's `min.cleanable.dirty.ratio` default: clean once half the closed bytes are dirty.
const MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;

/// Bytes a key costs in the offset map beyond its own length (hash table entry, Vec header).
const MAP_ENTRY_OVERHEAD: u64 = 48;

/// What the cleaner remembers about a log between passes (in memory: after a restart the
/// first pass simply treats everything as dirty).
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    /// Everything below this offset has been compacted against every key up to it.
    cleaned_until: i64,
    /// When the oldest tombstone the last pass kept becomes droppable.
    tombstone_due_ms: Option<i64>,
}

/// Removes a temporary directory left by a pass that did not finish.
pub(crate) fn remove_leftovers(dir: &Path) -> Result<(), LogError> {
    let tmp = dir.join(TMP_DIR);
    if tmp.exists() {
        tracing::info!(dir = %dir.display(), "removing an unfinished compaction's output");
        std::fs::remove_dir_all(&tmp).map_err(io_context("removing", &tmp))?;
    }
    Ok(())
}

/// A closed segment as a pass reads it outside the lock.
#[derive(Debug)]
struct Input {
    base: i64,
    /// The next segment's base.
    end: i64,
    size: u32,
    file: Arc<File>,
    path: PathBuf,
}

/// The work of one pass, taken from the log under its lock; run it without the lock.
#[derive(Debug)]
pub struct CleanJob {
    dir: PathBuf,
    inputs: Vec<Input>,
    first_dirty: i64,
    segment_bytes: u64,
    index_interval: u32,
    delete_retention_ms: i64,
}

/// One output segment replacing a run of input segments.
#[derive(Debug)]
struct Group {
    /// (base, size) of each input, in order; the output's base is the first.
    inputs: Vec<(i64, u32)>,
    /// The base of the segment after the group.
    end: i64,
    /// Whether the output differs from the inputs (else it is discarded).
    changed: bool,
}

/// A finished pass, to be swapped in by [`Log::finish_clean`].
#[derive(Debug)]
pub struct CleanOutcome {
    dir: PathBuf,
    groups: Vec<Group>,
    map_end: i64,
    tombstone_due_ms: Option<i64>,
    report: CleanReport,
}

/// What a pass did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Closed segments read.
    pub segments_before: usize,
    /// Segments they became.
    pub segments_after: usize,
    /// Bytes of the segments read.
    pub bytes_before: u64,
    /// Bytes after cleaning.
    pub bytes_after: u64,
    /// Records dropped (superseded values and expired tombstones).
    pub records_removed: u64,
    /// Keys in the offset map.
    pub keys: usize,
}

impl Log {
    /// The next pass, if this log is compacted and enough of its closed bytes are dirty (or a
    /// kept tombstone has become droppable).
    pub fn clean_job(&self, now_ms: i64) -> Option<CleanJob> {
        if !self.config.compact || self.segments.len() < 2 {
            return None;
        }
        let closed = &self.segments[..self.segments.len() - 1];
        let total: u64 = closed.iter().map(|s| u64::from(s.size())).sum();
        let dirty: u64 = closed
            .iter()
            .filter(|s| s.next_offset() > self.cleaner.cleaned_until)
            .map(|s| u64::from(s.size()))
            .sum();
        let tombstones_due = self
            .cleaner
            .tombstone_due_ms
            .is_some_and(|due| due <= now_ms);
        if total == 0 || (dirty == 0 && !tombstones_due) {
            return None;
        }
        if (dirty as f64) < MIN_CLEANABLE_DIRTY_RATIO * total as f64 && !tombstones_due {
            return None;
        }
        let inputs = closed
            .iter()
            .map(|s| Input {
                base: s.base_offset(),
                end: s.next_offset(),
                size: s.size(),
                file: s.log_file(),
                path: s.log_path().to_path_buf(),
            })
            .collect();
        Some(CleanJob {
            dir: self.dir.clone(),
            inputs,
            first_dirty: self.cleaner.cleaned_until,
            segment_bytes: self.config.segment_bytes,
            index_interval: self.config.index_interval_bytes,
            delete_retention_ms: self.config.delete_retention_ms,
        })
    }

    /// Swaps in the output of a pass, if the closed segments it read are still there
    /// unchanged (retention or truncation may have run meanwhile: then the output is dropped).
    pub fn finish_clean(&mut self, outcome: CleanOutcome) -> Result<Option<CleanReport>, LogError> {
        assert_eq!(
            outcome.dir, self.dir,
            "a pass is finished on the log it read"
        );
        let count: usize = outcome.groups.iter().map(|g| g.inputs.len()).sum();
        let unchanged = count < self.segments.len()
            && outcome
                .groups
                .iter()
                .flat_map(|g| g.inputs.iter())
                .zip(self.segments.iter())
                .all(|(&(base, size), s)| s.base_offset() == base && s.size() == size);
        if !unchanged {
            tracing::info!(dir = %self.dir.display(), "segments changed during compaction; discarding its output");
            remove_leftovers(&self.dir)?;
            return Ok(None);
        }
        let old: Vec<Segment> = self.segments.drain(..count).collect();
        let mut old = old.into_iter();
        let mut rebuilt = Vec::with_capacity(outcome.groups.len());
        let mut failure = None;
        for group in &outcome.groups {
            let inputs: Vec<Segment> = old.by_ref().take(group.inputs.len()).collect();
            if !group.changed || failure.is_some() {
                rebuilt.extend(inputs);
                continue;
            }
            match self.swap_group(group, inputs) {
                Ok(segment) => rebuilt.push(segment),
                Err(error) => {
                    // The files are in a state Log::open can recover; reopen what is there.
                    failure = Some(error);
                    let reopened = self.reopen_range(group.inputs[0].0, group.end)?;
                    rebuilt.extend(reopened);
                }
            }
        }
        rebuilt.append(&mut self.segments);
        self.segments = rebuilt;
        remove_leftovers(&self.dir)?;
        if let Some(error) = failure {
            return Err(error);
        }
        self.cleaner.cleaned_until = outcome.map_end;
        self.cleaner.tombstone_due_ms = outcome.tombstone_due_ms;
        let report = CleanReport {
            segments_after: self.segments.len() - 1,
            ..outcome.report
        };
        tracing::info!(dir = %self.dir.display(), segments_before = report.segments_before,
            segments_after = report.segments_after, bytes_before = report.bytes_before,
            bytes_after = report.bytes_after, records_removed = report.records_removed, "compacted log");
        Ok(Some(report))
    }

    /// Replaces one group's input segments by the pass's output (see the module doc for the
    /// order of the steps).
    fn swap_group(&self, group: &Group, inputs: Vec<Segment>) -> Result<Segment, LogError> {
        let base = group.inputs[0].0;
        let tmp = self.dir.join(TMP_DIR);
        let mut inputs = inputs.into_iter();
        drop(inputs.next());
        for ext in ["index", "timeindex"] {
            remove_if_present(&segment_path(&self.dir, base, ext))?;
        }
        rename(
            &segment_path(&tmp, base, "log"),
            &segment_path(&self.dir, base, "log"),
        )?;
        sync_dir(&self.dir)?;
        for ext in ["index", "timeindex"] {
            rename(
                &segment_path(&tmp, base, ext),
                &segment_path(&self.dir, base, ext),
            )?;
        }
        for segment in inputs {
            segment.delete_files(&self.dir)?;
        }
        sync_dir(&self.dir)?;
        Segment::open_closed(&self.dir, base, group.end, self.config.index_interval_bytes)
    }

    /// Opens the closed segments on disk in `[from, end)` again after a failed swap.
    fn reopen_range(&self, from: i64, end: i64) -> Result<Vec<Segment>, LogError> {
        let mut bases: Vec<i64> = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_context("listing", &self.dir))? {
            let entry = entry.map_err(io_context("listing", &self.dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            if let Ok(base) = stem.parse::<i64>() {
                if base >= from && base < end {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        bases.push(end);
        (0..bases.len() - 1)
            .map(|i| {
                Segment::open_closed(
                    &self.dir,
                    bases[i],
                    bases[i + 1],
                    self.config.index_interval_bytes,
                )
            })
            .collect()
    }
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(format!("deleting {}", path.display()), e)),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), LogError> {
    std::fs::rename(from, to).map_err(|e| {
        LogError::io(
            format!("renaming {} to {}", from.display(), to.display()),
            e,
        )
    })
}

/// Reads the whole batch at `position` of a segment file of `size` bytes, CRC checked; None
/// at the end.
fn batch_at(input: &Input, position: u32) -> Result<Option<(BatchInfo, Vec<u8>)>, LogError> {
    if position >= input.size {
        return Ok(None);
    }
    let available = input.size - position;
    let mut header = [0u8; HEADER_BYTES];
    let n = (available as usize).min(HEADER_BYTES);
    input
        .file
        .read_exact_at(&mut header[..n], u64::from(position))
        .map_err(io_context("reading a batch header of", &input.path))?;
    let corrupt = |e: LogError| {
        LogError::CorruptBatch(format!("{} at byte {position}: {e}", input.path.display()))
    };
    let size = check_header(&header[..n], u64::from(available), u32::MAX).map_err(corrupt)?;
    let info = parse_info(&header, size);
    check_fields(&info, Strictness::Stored).map_err(corrupt)?;
    let mut batch = vec![0u8; size as usize];
    input
        .file
        .read_exact_at(&mut batch, u64::from(position))
        .map_err(io_context("reading", &input.path))?;
    if crc32c::crc32c(&batch[field::ATTRIBUTES..]) != stored_crc(&batch) {
        return Err(corrupt(LogError::CorruptBatch("CRC-32C mismatch".into())));
    }
    Ok(Some((info, batch)))
}

/// Calls `f` with every batch of `input`, in order.
fn for_each_batch(
    input: &Input,
    mut f: impl FnMut(BatchInfo, Vec<u8>) -> Result<bool, LogError>,
) -> Result<(), LogError> {
    let mut position = 0u32;
    while let Some((info, batch)) = batch_at(input, position)? {
        position += info.size_bytes;
        if !f(info, batch)? {
            break;
        }
    }
    Ok(())
}

/// Whether the records of a batch can be opened (uncompressed, not a control batch).
fn readable(info: &BatchInfo) -> bool {
    info.compression == 0 && !info.is_control
}

impl CleanJob {
    /// Builds the offset map (at most `map_budget_bytes`) and writes the cleaned segments.
    pub fn run(self, now_ms: i64, map_budget_bytes: u64) -> Result<CleanOutcome, LogError> {
        remove_leftovers(&self.dir)?;
        let (map, map_end) = self.build_map(map_budget_bytes)?;
        let mut report = CleanReport {
            keys: map.len(),
            ..CleanReport::default()
        };
        let tmp = self.dir.join(TMP_DIR);
        // Not create_dir_all: a partition deleted meanwhile must not have its directory recreated.
        std::fs::create_dir(&tmp).map_err(io_context("creating", &tmp))?;
        let horizon = now_ms.saturating_sub(self.delete_retention_ms);
        let mut tombstone_due_ms: Option<i64> = None;
        let mut groups = Vec::new();
        // Only segments the map reaches can lose records.
        let cleanable = self.inputs.iter().take_while(|i| i.base < map_end).count();
        let mut start = 0;
        while start < cleanable {
            let end = self.group_end(start, cleanable);
            let group = &self.inputs[start..end];
            let base = group[0].base;
            let mut output = Segment::create(&tmp, base)?;
            let mut changed = group.len() > 1;
            for input in group {
                report.bytes_before += u64::from(input.size);
                for_each_batch(input, |info, batch| {
                    let kept = filter_batch(
                        &info,
                        &batch,
                        &map,
                        horizon,
                        &mut tombstone_due_ms,
                        self.delete_retention_ms,
                    );
                    match kept {
                        Kept::Whole => {
                            output.append_compacted(&batch, &[info], self.index_interval)?
                        }
                        Kept::Nothing(removed) => {
                            changed = true;
                            report.records_removed += removed;
                        }
                        Kept::Some(smaller, removed) => {
                            changed = true;
                            report.records_removed += removed;
                            let info = BatchInfo {
                                size_bytes: smaller.len() as u32,
                                record_count: read_i32(&smaller, field::RECORD_COUNT),
                                ..info
                            };
                            output.append_compacted(&smaller, &[info], self.index_interval)?;
                        }
                    }
                    Ok(true)
                })?;
            }
            report.bytes_after += u64::from(output.size());
            output.seal()?;
            groups.push(Group {
                inputs: group.iter().map(|i| (i.base, i.size)).collect(),
                end: group[group.len() - 1].end,
                changed,
            });
            start = end;
        }
        report.segments_before = self.inputs.len();
        Ok(CleanOutcome {
            dir: self.dir,
            groups,
            map_end,
            tombstone_due_ms,
            report,
        })
    }

    /// Maps each key of the dirty part to its latest offset, stopping (at a batch boundary)
    /// when the map would pass its budget; returns the map and the offset it reaches.
    fn build_map(&self, budget: u64) -> Result<(HashMap<Vec<u8>, i64>, i64), LogError> {
        let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut used = 0u64;
        let mut map_end = self.first_dirty;
        for input in self.inputs.iter().filter(|i| i.end > self.first_dirty) {
            let mut full = false;
            for_each_batch(input, |info, batch| {
                if info.last_offset() < self.first_dirty {
                    return Ok(true);
                }
                if readable(&info) {
                    let mut keys: Vec<(&[u8], i64)> = Vec::new();
                    let parsed = for_each_record(&batch, |r| {
                        if let Some(key) = r.key {
                            keys.push((key, r.offset));
                        }
                    });
                    if parsed.is_ok() {
                        let cost: u64 = keys
                            .iter()
                            .filter(|(k, _)| !map.contains_key(*k))
                            .map(|(k, _)| k.len() as u64 + MAP_ENTRY_OVERHEAD)
                            .sum();
                        if used + cost > budget {
                            full = true;
                            return Ok(false);
                        }
                        used += cost;
                        for (key, offset) in keys {
                            map.insert(key.to_vec(), offset);
                        }
                    }
                }
                map_end = info.next_offset();
                Ok(true)
            })?;
            if full {
                tracing::info!(dir = %self.dir.display(), keys = map.len(), map_end, "compaction offset map is full; cleaning up to it");
                return Ok((map, map_end));
            }
            map_end = input.end;
        }
        Ok((map, map_end))
    }

    /// The end (exclusive index) of the group of inputs starting at `start`: as many as fit
    /// one segment by size and by relative offsets.
    fn group_end(&self, start: usize, limit: usize) -> usize {
        let base = self.inputs[start].base;
        let max_bytes = self.segment_bytes.min(MAX_SEGMENT_BYTES);
        let mut bytes = u64::from(self.inputs[start].size);
        let mut end = start + 1;
        while end < limit {
            let next = &self.inputs[end];
            if bytes + u64::from(next.size) > max_bytes || next.end - base > i64::from(u32::MAX) {
                break;
            }
            bytes += u64::from(next.size);
            end += 1;
        }
        end
    }
}

/// What survives of one batch.
enum Kept {
    Whole,
    Nothing(u64),
    Some(Vec<u8>, u64),
}

/// Keeps the records of `batch` that are the latest for their key (or whose key the map does
/// not know) and tombstones still younger than the horizon.
fn filter_batch(
    info: &BatchInfo,
    batch: &[u8],
    map: &HashMap<Vec<u8>, i64>,
    horizon: i64,
    tombstone_due_ms: &mut Option<i64>,
    delete_retention_ms: i64,
) -> Kept {
    if !readable(info) {
        return Kept::Whole;
    }
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut total = 0u64;
    let parsed = for_each_record(batch, |r| {
        total += 1;
        let latest = match r.key {
            None => true,
            Some(key) => map.get(key).is_none_or(|&latest| r.offset >= latest),
        };
        if !latest {
            return;
        }
        if r.value.is_none() && r.key.is_some() {
            if r.timestamp <= horizon {
                return;
            }
            let due = r.timestamp.saturating_add(delete_retention_ms);
            *tombstone_due_ms = Some(tombstone_due_ms.map_or(due, |d| d.min(due)));
        }
        kept.push(r.raw);
    });
    if parsed.is_err() {
        // Records we cannot read are kept as they are.
        return Kept::Whole;
    }
    let removed = total - kept.len() as u64;
    if removed == 0 {
        return Kept::Whole;
    }
    if kept.is_empty() {
        return Kept::Nothing(removed);
    }
    let mut out = Vec::with_capacity(batch.len());
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    for raw in &kept {
        out.extend_from_slice(raw);
    }
    out[field::RECORD_COUNT..field::RECORD_COUNT + 4]
        .copy_from_slice(&(kept.len() as i32).to_be_bytes());
    finish_batch(&mut out);
    Kept::Some(out, removed)
}

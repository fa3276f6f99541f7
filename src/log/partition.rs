//! [`Log`]: one partition's segments, opened with recovery, appended to and read from.
//! Deletion and truncation live in `retention.rs`.

use std::path::{Path, PathBuf};

use super::batch::{set_base_offset, set_leader_epoch, validate_batches, validate_stored_batches};
use super::checkpoint::sync_dir;
use super::epoch::{EpochCache, EPOCH_CHECKPOINT};
use super::segment::{segment_path, Segment};
use super::sync::{FlushTracker, PendingSync};
use super::{io_context, AppendInfo, BatchInfo, LogConfig, LogError, MAX_SEGMENT_BYTES};

/// One partition's log. Not thread-safe by design: the caller wraps it in a mutex and does
/// slow fsyncs outside that lock through [`Log::prepare_sync`].
pub struct Log {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Ascending by base offset, never empty; the last one is the active segment.
    pub(super) segments: Vec<Segment>,
    pub(super) log_start_offset: i64,
    pub(super) epochs: EpochCache,
    pub(super) flush: FlushTracker,
    /// When the active segment got its first batch (for `segment_ms`); None while empty.
    pub(super) active_first_append_ms: Option<i64>,
    /// What the cleaner has done to this log (compacted topics only).
    pub(super) cleaner: super::cleaner::CleanerState,
}

/// Opens closed segment `bases[i]`. If its content runs past the next segment's base, a
/// cleaner merge was interrupted after its output replaced the group's first segment: the
/// other segments of that group are still on disk, wholly covered by the output, and are
/// deleted here (never the last, active one: the cleaner only merges closed segments).
fn open_closed_segment(
    dir: &Path,
    bases: &mut Vec<i64>,
    i: usize,
    interval: u32,
) -> Result<Segment, LogError> {
    let segment = Segment::open_closed(dir, bases[i], bases[i + 1], interval)?;
    let end = segment.content_end()?;
    let mut covered = i + 1;
    while covered + 1 < bases.len() && bases[covered] < end {
        tracing::warn!(dir = %dir.display(), segment = bases[covered], merged_into = bases[i],
            "removing a segment left behind by an interrupted compaction");
        for ext in ["log", "index", "timeindex"] {
            let path = segment_path(dir, bases[covered], ext);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(format!("deleting {}", path.display()), e)),
            }
        }
        covered += 1;
    }
    if covered == i + 1 {
        return Ok(segment);
    }
    bases.drain(i + 1..covered);
    sync_dir(dir)?;
    drop(segment);
    Segment::open_closed(dir, bases[i], bases[i + 1], interval)
}

/// Base offsets of the `.log` files in `dir`, ascending; removes index files whose log is gone
/// (left by a crash while deleting a segment).
fn list_segments(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_context("listing", dir))? {
        let entry = entry.map_err(io_context("listing", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        match ext {
            "log" => logs.push(base),
            "index" | "timeindex" => indexes.push((base, entry.path())),
            _ => {}
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            tracing::warn!(path = %path.display(), "removing an index whose segment is gone");
            std::fs::remove_file(&path).map_err(io_context("removing orphan index", &path))?;
        }
    }
    Ok(logs)
}

impl Log {
    /// Opens or creates the partition directory `dir`. Recovery scans the active segment
    /// batch by batch verifying CRCs and offsets, cuts a torn or corrupt tail, rebuilds its
    /// indexes; older segments get their indexes rebuilt only if missing or invalid; the
    /// leader epoch cache forgets epochs past the recovered end.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        config.assert_valid();
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(io_context("creating partition directory", dir))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        super::cleaner::remove_leftovers(dir)?;
        let mut bases = list_segments(dir)?;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let mut i = 0;
        while i + 1 < bases.len() {
            segments.push(open_closed_segment(
                dir,
                &mut bases,
                i,
                config.index_interval_bytes,
            )?);
            i += 1;
        }
        let (mut recovered, mut truncated_bytes) = (0u64, 0u64);
        match bases.last() {
            Some(&base) => {
                let (active, report) = Segment::recover(dir, base, config.index_interval_bytes)?;
                if let Some(reason) = &report.reason {
                    tracing::warn!(segment = %active.log_path().display(), reason = %reason,
                        truncated_bytes = report.truncated_bytes, "cut a torn or corrupt tail");
                }
                (recovered, truncated_bytes) = (report.batches, report.truncated_bytes);
                active.sync_all()?;
                segments.push(active);
            }
            None => {
                segments.push(Segment::create(dir, 0)?);
                sync_dir(dir)?;
            }
        }
        let log_start_offset = segments[0].base_offset();
        let log_end = segments.last().expect("at least one segment").next_offset();
        let mut epochs = EpochCache::load(dir)?;
        epochs.truncate_from_end(log_end)?;
        epochs.truncate_from_start(log_start_offset)?;
        let active_non_empty = segments.last().is_some_and(|s| s.size() > 0);
        tracing::info!(dir = %dir.display(), segments = segments.len(), log_start_offset, log_end,
            recovered_batches = recovered, truncated_bytes, latest_epoch = ?epochs.latest().map(|e| e.epoch),
            "opened partition log");
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            epochs,
            flush: FlushTracker::new(log_end),
            // Unknown across a restart; counting from now delays an age roll by at most one period.
            active_first_append_ms: active_non_empty.then_some(now_ms),
            cleaner: super::cleaner::CleanerState::default(),
        })
    }

    pub(super) fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    pub(super) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    /// Validates producer batches, assigns offsets from the log end by rewriting each batch's
    /// baseOffset, stamps `partition_leader_epoch`, and appends them to the active segment
    /// (rolling first if size or age demand it). Does not fsync. All or nothing: on a
    /// validation error nothing is written and `batches` is unchanged.
    pub fn append(
        &mut self,
        batches: &mut [u8],
        partition_leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut infos = validate_batches(batches, self.config.max_batch_bytes)?;
        check_request_size(batches, &infos)?;
        if let Some(latest) = self.epochs.latest() {
            if partition_leader_epoch < latest.epoch {
                return Err(LogError::InvalidRecord(format!(
                    "leader epoch {partition_leader_epoch} is older than the log's latest epoch {}",
                    latest.epoch
                )));
            }
        }
        let last_offset = self.log_end_offset()
            + infos
                .iter()
                .map(|i| i64::from(i.last_offset_delta) + 1)
                .sum::<i64>()
            - 1;
        self.roll_if_needed(batches.len() as u64, last_offset, now_ms)?;
        let mut next = self.log_end_offset();
        let mut pos = 0usize;
        for info in &mut infos {
            let batch = &mut batches[pos..pos + info.size_bytes as usize];
            set_base_offset(batch, next);
            set_leader_epoch(batch, partition_leader_epoch);
            info.base_offset = next;
            info.partition_leader_epoch = partition_leader_epoch;
            next = info.next_offset();
            pos += info.size_bytes as usize;
        }
        self.write(batches, &infos, now_ms)
    }

    /// Appends batches that already carry offsets (a follower copying its leader). They must
    /// continue exactly at the log end, else `InvalidRecord`. Checks structure and CRCs only:
    /// the leader already applied its rules.
    pub fn append_as_follower(
        &mut self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let infos = validate_stored_batches(batches, u32::MAX)?;
        check_request_size(batches, &infos)?;
        let mut expected = self.log_end_offset();
        for info in &infos {
            if info.base_offset != expected {
                return Err(LogError::InvalidRecord(format!(
                    "batch at offset {} does not continue the log at {expected}",
                    info.base_offset
                )));
            }
            expected = info.next_offset();
        }
        self.roll_if_needed(batches.len() as u64, expected - 1, now_ms)?;
        self.write(batches, &infos, now_ms)
    }

    /// Records new epochs, then writes validated, offset-assigned batches to the active segment.
    fn write(
        &mut self,
        bytes: &[u8],
        infos: &[BatchInfo],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let start = self.log_end_offset();
        // Epoch first, as Kafka does: if the write then fails, the entry starts at the log end
        // and is harmless (dropped on reopen, or the start of the next write in that epoch).
        for info in infos {
            self.epochs
                .assign(info.partition_leader_epoch, info.base_offset)?;
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut().append(bytes, infos, interval)?;
        self.active_first_append_ms.get_or_insert(now_ms);
        let end = self.log_end_offset();
        assert!(
            end > start,
            "the log end must grow on append: {start} -> {end}"
        );
        Ok(AppendInfo {
            base_offset: start,
            last_offset: end - 1,
            max_timestamp: infos.iter().map(|i| i.max_timestamp).max().unwrap_or(-1),
            batch_count: infos.len() as u32,
        })
    }

    /// Rolls before an append of `len` bytes ending at `last_offset` if the active segment is
    /// non-empty and would grow past `segment_bytes`, is older than `segment_ms`, or could not
    /// address the new bytes or offsets.
    fn roll_if_needed(&mut self, len: u64, last_offset: i64, now_ms: i64) -> Result<(), LogError> {
        let active = self.active();
        if active.size() > 0 {
            let by_size = u64::from(active.size()) + len > self.config.segment_bytes;
            let by_age = self.is_active_expired(now_ms);
            if by_size || by_age || !active.can_hold(len, last_offset) {
                self.roll()?;
            }
        }
        if !self.active().can_hold(len, last_offset) {
            // Only hostile lastOffsetDelta values get here: no segment can address them.
            return Err(LogError::InvalidRecord(format!(
                "offsets up to {last_offset} cannot fit one segment"
            )));
        }
        Ok(())
    }

    pub(super) fn is_active_expired(&self, now_ms: i64) -> bool {
        self.active_first_append_ms
            .is_some_and(|t| now_ms.saturating_sub(t) > self.config.segment_ms)
    }

    /// Seals the active segment (final time index entry, fsync) and starts a new one at the
    /// log end.
    pub(super) fn roll(&mut self) -> Result<(), LogError> {
        let new_base = self.log_end_offset();
        assert!(
            new_base > self.active().base_offset(),
            "never roll an empty segment"
        );
        self.active_mut().seal()?;
        self.flush.advance(new_base);
        let segment = Segment::create(&self.dir, new_base)?;
        sync_dir(&self.dir)?;
        self.segments.push(segment);
        self.active_first_append_ms = None;
        tracing::debug!(dir = %self.dir.display(), base_offset = new_base, "rolled a new segment");
        Ok(())
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes`, only those whose last
    /// offset is below `max_offset` (the high watermark), but always the first such batch
    /// whole (KIP-74). Empty at the log end; `OffsetOutOfRange` outside `[start, end]`.
    /// Reads within one segment, as Kafka does; the consumer asks again for the rest.
    pub fn read(&self, offset: i64, max_bytes: u32, max_offset: i64) -> Result<Vec<u8>, LogError> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: start,
                log_end: end,
            });
        }
        if offset == end || offset >= max_offset {
            return Ok(Vec::new());
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset() <= offset)
            .max(1)
            - 1;
        for segment in &self.segments[first..] {
            if let Some((position, _)) = segment.find_batch(offset)? {
                return segment.read(position, max_bytes, max_offset);
            }
        }
        Ok(Vec::new())
    }

    /// Calls `f` with the header of every batch whose last offset is at or past `from`, in
    /// offset order. Reads headers only, hopping from batch to batch (rebuilding producer
    /// state at open costs one small read per batch, not a read of the data).
    pub fn for_each_batch_header(
        &self,
        from: i64,
        mut f: impl FnMut(&BatchInfo),
    ) -> Result<(), LogError> {
        let first = self
            .segments
            .partition_point(|s| s.base_offset() <= from)
            .max(1)
            - 1;
        for segment in &self.segments[first..] {
            let Some((mut position, _)) = segment.find_batch(from)? else {
                continue;
            };
            while let Some(info) = segment.header_at(position)? {
                f(&info);
                position += info.size_bytes;
            }
        }
        Ok(())
    }

    /// The first offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Sum of segment sizes.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.size())).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// ListOffsets by time: the base offset of the first batch whose max timestamp is >= `ts`
    /// (not before the log start), with that timestamp; None if no batch is that new.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        for segment in &self.segments {
            if segment.next_offset() <= self.log_start_offset
                || segment.max_timestamp().is_none_or(|(max, _)| max < ts)
            {
                continue;
            }
            if let Some(info) = segment.find_timestamp(ts, self.log_start_offset)? {
                return Ok(Some((
                    info.base_offset.max(self.log_start_offset),
                    info.max_timestamp,
                )));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the largest batch timestamp and the last offset of the batch
    /// that holds it (Kafka's time index convention); None if no batch carries a timestamp.
    pub fn max_timestamp_and_offset(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for (ts, offset) in self.segments.iter().filter_map(Segment::max_timestamp) {
            if best.is_none_or(|(b, _)| ts > b) {
                best = Some((ts, offset));
            }
        }
        best
    }

    /// Captures what needs an fsync (the active segment; rolled ones were synced when they
    /// rolled) and the end offset it covers, without I/O. None if everything is flushed.
    pub fn prepare_sync(&mut self) -> Option<PendingSync> {
        let end = self.log_end_offset();
        if self.flush.flushed() >= end {
            return None;
        }
        let file = self.active().log_file();
        Some(self.flush.prepare(vec![file], end))
    }

    /// Reports that a [`PendingSync`] for `offset` completed.
    pub fn mark_flushed(&mut self, offset: i64) {
        let end = self.log_end_offset();
        self.flush.completed(offset, end);
        assert!(
            self.flush.flushed() <= end,
            "the recovery point never passes the log end"
        );
    }

    /// The recovery point: every offset below it is on disk.
    pub fn flushed_offset(&self) -> i64 {
        self.flush.flushed()
    }

    /// Replaces the config (a topic config change); takes effect on the next append.
    pub fn set_config(&mut self, config: LogConfig) {
        config.assert_valid();
        self.config = config;
    }

    /// The current config.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` and the offset where it ended (the
    /// next epoch's start, or the log end for the latest). None if the cache is empty or
    /// `epoch` is below every known epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The newest leader epoch written to this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest().map(|e| e.epoch)
    }

    /// The leader epoch cache as (epoch, start offset) pairs, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// Clean shutdown: fsyncs the active segment and its indexes and the directory.
    pub fn close(&mut self) -> Result<(), LogError> {
        self.active().sync_all()?;
        self.epochs.persist()?;
        sync_dir(&self.dir)?;
        let end = self.log_end_offset();
        self.flush.advance(end);
        Ok(())
    }

    /// Deletes the whole partition directory (topic deletion).
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(io_context("deleting partition directory", &dir))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// Path of a segment file, for tests and tools.
    pub fn segment_file(&self, base_offset: i64, extension: &str) -> PathBuf {
        segment_path(&self.dir, base_offset, extension)
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(Segment::base_offset).collect()
    }

    /// Path of the leader epoch checkpoint.
    pub fn epoch_checkpoint_path(&self) -> PathBuf {
        self.dir.join(EPOCH_CHECKPOINT)
    }
}

/// Rejects a request too large for any segment (positions are u32) and an empty one.
fn check_request_size(batches: &[u8], infos: &[BatchInfo]) -> Result<(), LogError> {
    if infos.is_empty() {
        return Err(LogError::InvalidRecord(
            "no record batches to append".into(),
        ));
    }
    if batches.len() as u64 > MAX_SEGMENT_BYTES {
        return Err(LogError::BatchTooLarge {
            size: batches.len() as u64,
            max: MAX_SEGMENT_BYTES as u32,
        });
    }
    Ok(())
}

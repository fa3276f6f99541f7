//! One segment: a `.log` of batches starting at `base_offset`, with its `.index` and
//! `.timeindex`. Knows positions and offsets; what to keep and when to roll is decided by
//! the partition.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{check_fields, check_header, parse_info, Strictness, HEADER_BYTES};
use super::offset_index::OffsetIndex;
use super::scan::Scanner;
use super::time_index::TimeIndex;
use super::{io_context, BatchInfo, LogError};

/// File name of a segment file: the base offset as 20 zero-padded digits.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

/// What recovering a segment found.
#[derive(Debug)]
pub(crate) struct Recovery {
    /// Intact batches kept.
    pub batches: u64,
    /// Bytes cut off the end.
    pub truncated_bytes: u64,
    /// Why the scan stopped early, if it did.
    pub reason: Option<String>,
}

/// One segment, open for reading and (if it is the active one) appending.
pub(crate) struct Segment {
    base_offset: i64,
    /// Shared so a group commit can fsync it outside the partition's lock.
    log: Arc<File>,
    log_path: PathBuf,
    size: u32,
    next_offset: i64,
    index: OffsetIndex,
    time_index: TimeIndex,
    /// Bytes appended since the last offset index entry (Kafka's rule for sparse entries).
    bytes_since_index: u32,
    /// Largest batch max timestamp and the last offset of its batch; None if no batch had one.
    max_timestamp: Option<(i64, i64)>,
}

fn open_log(path: &Path) -> Result<(File, u32), LogError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_context("opening segment", path))?;
    let len = file
        .metadata()
        .map_err(io_context("reading the size of", path))?
        .len();
    let size = u32::try_from(len).map_err(|_| {
        LogError::io(
            format!("opening segment {}", path.display()),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{len} bytes is too large for a segment"),
            ),
        )
    })?;
    Ok((file, size))
}

impl Segment {
    fn from_parts(dir: &Path, base_offset: i64, file: File, size: u32) -> Result<Self, LogError> {
        Ok(Segment {
            base_offset,
            log: Arc::new(file),
            log_path: segment_path(dir, base_offset, "log"),
            size,
            next_offset: base_offset,
            index: OffsetIndex::open(&segment_path(dir, base_offset, "index"), base_offset)?,
            time_index: TimeIndex::open(&segment_path(dir, base_offset, "timeindex"), base_offset)?,
            bytes_since_index: 0,
            max_timestamp: None,
        })
    }

    /// Creates a new, empty segment, replacing any leftover files of the same name.
    pub fn create(dir: &Path, base_offset: i64) -> Result<Self, LogError> {
        assert!(
            base_offset >= 0,
            "segment base offset {base_offset} must not be negative"
        );
        for ext in ["log", "index", "timeindex"] {
            let path = segment_path(dir, base_offset, ext);
            File::create(&path).map_err(io_context("creating", &path))?;
        }
        let (file, size) = open_log(&segment_path(dir, base_offset, "log"))?;
        debug_assert_eq!(size, 0);
        Self::from_parts(dir, base_offset, file, 0)
    }

    /// Recovers the active segment: verifies every batch's CRC and offset continuity, cuts a
    /// torn or corrupt tail, and rebuilds both indexes from the scan.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
    ) -> Result<(Self, Recovery), LogError> {
        let (file, size) = open_log(&segment_path(dir, base_offset, "log"))?;
        let mut seg = Self::from_parts(dir, base_offset, file, size)?;
        seg.index.truncate_entries(0)?;
        seg.time_index.truncate_entries(0)?;
        let (batches, valid_end, reason) = seg.reindex(true, index_interval)?;
        let truncated_bytes = u64::from(size - valid_end);
        if valid_end < size {
            seg.log
                .set_len(u64::from(valid_end))
                .map_err(io_context("cutting the torn tail of", &seg.log_path))?;
        }
        seg.size = valid_end;
        Ok((
            seg,
            Recovery {
                batches,
                truncated_bytes,
                reason,
            },
        ))
    }

    /// Opens a closed (older) segment that ends at `end_offset`, rebuilding its indexes from
    /// batch headers if they are missing or fail a sanity check.
    pub fn open_closed(
        dir: &Path,
        base_offset: i64,
        end_offset: i64,
        index_interval: u32,
    ) -> Result<Self, LogError> {
        let missing = ["index", "timeindex"]
            .iter()
            .any(|ext| !segment_path(dir, base_offset, ext).exists());
        let (file, size) = open_log(&segment_path(dir, base_offset, "log"))?;
        let mut seg = Self::from_parts(dir, base_offset, file, size)?;
        seg.next_offset = end_offset;
        let problem = if missing {
            Some("index file missing".to_string())
        } else if let Some(p) = seg.index.sanity_check(size)? {
            Some(p)
        } else if let Some(p) = seg.time_index.sanity_check(end_offset)? {
            Some(p)
        } else if let Some(p) = seg.last_index_entry_problem() {
            Some(p)
        } else if seg.time_index.len() == 0 && size > 0 {
            Some("time index empty".to_string())
        } else {
            None
        };
        match problem {
            None => {
                seg.max_timestamp = seg.time_index.last().map(|e| (e.timestamp, e.offset));
                seg.bytes_since_index = size - seg.index.last().map_or(0, |e| e.position);
            }
            Some(problem) => {
                tracing::warn!(segment = %seg.log_path.display(), problem, "rebuilding the indexes of a closed segment");
                seg.index.truncate_entries(0)?;
                seg.time_index.truncate_entries(0)?;
                seg.reindex(false, index_interval)?;
                if seg.next_offset != end_offset {
                    tracing::warn!(segment = %seg.log_path.display(), found = seg.next_offset, expected = end_offset,
                        "closed segment does not end where the next one starts");
                }
                seg.next_offset = end_offset;
                seg.seal()?;
            }
        }
        Ok(seg)
    }

    /// Whether the last offset index entry fails to name a real batch (a stale index left
    /// from a different incarnation of the file would send reads to a non-batch position).
    fn last_index_entry_problem(&self) -> Option<String> {
        let last = self.index.last()?;
        match self.header_at(last.position) {
            Ok(Some(info)) if info.last_offset() == last.offset => None,
            _ => Some(format!(
                "last entry ({}, {}) does not name a batch",
                last.offset, last.position
            )),
        }
    }

    /// Scans the whole log, appending index entries as an append would; returns the batch
    /// count, the end of the valid prefix and why the scan stopped early.
    fn reindex(
        &mut self,
        verify_crc: bool,
        index_interval: u32,
    ) -> Result<(u64, u32, Option<String>), LogError> {
        let log = Arc::clone(&self.log);
        let path = self.log_path.clone();
        let mut scanner = Scanner::new(&log, &path, 0, self.size, verify_crc);
        let mut batches = 0u64;
        self.next_offset = self.base_offset;
        self.bytes_since_index = 0;
        self.max_timestamp = None;
        while let Some(found) = scanner.next_batch()? {
            // Offsets only grow; a forward gap is normal in a compacted segment.
            if found.info.base_offset < self.next_offset {
                let reason = format!(
                    "batch at offset {} where {} or more was expected",
                    found.info.base_offset, self.next_offset
                );
                scanner.reject(&found, reason);
                break;
            }
            if found.info.last_offset() - self.base_offset > i64::from(u32::MAX) {
                scanner.reject(&found, "offset too far from the segment base".into());
                break;
            }
            self.index_batch(found.position, &found.info, index_interval)?;
            self.next_offset = found.info.next_offset();
            batches += 1;
        }
        Ok((batches, scanner.position(), scanner.stop_reason))
    }

    /// First offset of the segment.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Bytes in the `.log`.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The offset after the segment's last batch.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Largest batch max timestamp and the last offset of its batch.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.max_timestamp
    }

    /// The `.log` file handle, for an fsync outside the partition lock.
    pub fn log_file(&self) -> Arc<File> {
        Arc::clone(&self.log)
    }

    /// Path of the `.log`, for messages.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether `batches_len` more bytes and offsets up to `last_offset` still fit in this
    /// segment's u32 positions and relative offsets.
    pub fn can_hold(&self, batches_len: u64, last_offset: i64) -> bool {
        u64::from(self.size) + batches_len <= u64::from(u32::MAX)
            && last_offset - self.base_offset <= i64::from(u32::MAX)
    }

    /// Updates indexes and timestamps for a batch written at `position` (Kafka's rule: an
    /// index entry once more than `index_interval` bytes have passed since the last one).
    fn index_batch(
        &mut self,
        position: u32,
        info: &BatchInfo,
        index_interval: u32,
    ) -> Result<(), LogError> {
        if info.max_timestamp >= 0
            && self
                .max_timestamp
                .is_none_or(|(ts, _)| info.max_timestamp > ts)
        {
            self.max_timestamp = Some((info.max_timestamp, info.last_offset()));
        }
        if self.bytes_since_index > index_interval {
            self.index.append(info.last_offset(), position)?;
            if let Some((ts, offset)) = self.max_timestamp {
                self.time_index.maybe_append(ts, offset)?;
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index = self.bytes_since_index.saturating_add(info.size_bytes);
        Ok(())
    }

    /// Appends whole batches (offsets already assigned, described by `infos`) at the end of
    /// the log. On error the segment is put back as it was, as far as the disk allows.
    pub fn append(
        &mut self,
        bytes: &[u8],
        infos: &[BatchInfo],
        index_interval: u32,
    ) -> Result<(), LogError> {
        self.append_checked(bytes, infos, index_interval, false)
    }

    /// Like [`Segment::append`], for the cleaner: batches keep their original offsets, so
    /// forward gaps between them are allowed (offsets still only grow).
    pub fn append_compacted(
        &mut self,
        bytes: &[u8],
        infos: &[BatchInfo],
        index_interval: u32,
    ) -> Result<(), LogError> {
        self.append_checked(bytes, infos, index_interval, true)
    }

    fn append_checked(
        &mut self,
        bytes: &[u8],
        infos: &[BatchInfo],
        index_interval: u32,
        gaps: bool,
    ) -> Result<(), LogError> {
        assert!(self.can_hold(
            bytes.len() as u64,
            infos.last().map_or(0, |i| i.last_offset())
        ));
        let first = infos.first().expect("append of at least one batch");
        if gaps {
            assert!(
                first.base_offset >= self.next_offset,
                "segment offsets must grow"
            );
        } else {
            assert_eq!(
                first.base_offset, self.next_offset,
                "segment offsets must continue"
            );
        }
        let before = (
            self.size,
            self.next_offset,
            self.bytes_since_index,
            self.max_timestamp,
        );
        let index_len = (self.index.len(), self.time_index.len());
        let result = self.write_and_index(bytes, infos, index_interval, gaps);
        if result.is_err() {
            // Best effort: if the disk fails here, recovery at the next open still cuts the tail.
            let _ = self.log.set_len(u64::from(before.0));
            let _ = self.index.truncate_entries(index_len.0);
            let _ = self.time_index.truncate_entries(index_len.1);
            (
                self.size,
                self.next_offset,
                self.bytes_since_index,
                self.max_timestamp,
            ) = before;
        }
        result
    }

    fn write_and_index(
        &mut self,
        bytes: &[u8],
        infos: &[BatchInfo],
        index_interval: u32,
        gaps: bool,
    ) -> Result<(), LogError> {
        self.log
            .write_all_at(bytes, u64::from(self.size))
            .map_err(io_context("appending to", &self.log_path))?;
        let mut position = self.size;
        for info in infos {
            if gaps {
                assert!(
                    info.base_offset >= self.next_offset,
                    "offsets must grow batch to batch"
                );
            } else {
                assert_eq!(
                    info.base_offset, self.next_offset,
                    "offsets must continue batch to batch"
                );
            }
            self.index_batch(position, info, index_interval)?;
            position += info.size_bytes;
            self.next_offset = info.next_offset();
        }
        assert_eq!(
            u64::from(position - self.size),
            bytes.len() as u64,
            "infos must describe the bytes"
        );
        self.size = position;
        Ok(())
    }

    /// The header of the batch at `position`, or None at the end of the log.
    pub fn header_at(&self, position: u32) -> Result<Option<BatchInfo>, LogError> {
        if position >= self.size {
            return Ok(None);
        }
        let available = self.size - position;
        let mut header = [0u8; HEADER_BYTES];
        let n = (available as usize).min(HEADER_BYTES);
        self.log
            .read_exact_at(&mut header[..n], u64::from(position))
            .map_err(io_context("reading a batch header of", &self.log_path))?;
        let corrupt = |e: LogError| {
            LogError::CorruptBatch(format!(
                "{} at byte {position}: {e}",
                self.log_path.display()
            ))
        };
        let size = check_header(&header[..n], u64::from(available), u32::MAX).map_err(corrupt)?;
        let info = parse_info(&header, size);
        check_fields(&info, Strictness::Stored).map_err(corrupt)?;
        Ok(Some(info))
    }

    /// The offset after the last batch actually in the file (for a closed segment this can be
    /// below [`Segment::next_offset`], which is the next segment's base). Walks the headers
    /// after the last index entry.
    pub fn content_end(&self) -> Result<i64, LogError> {
        let mut position = self.index.last().map_or(0, |e| e.position);
        let mut end = self.base_offset;
        while let Some(info) = self.header_at(position)? {
            end = info.next_offset();
            position += info.size_bytes;
        }
        Ok(end)
    }

    /// The batch holding `offset` (the first whose last offset is >= it) and its position.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u32, BatchInfo)>, LogError> {
        let mut position = self.index.lookup(offset)?.map_or(0, |e| e.position);
        while let Some(info) = self.header_at(position)? {
            if info.last_offset() >= offset {
                return Ok(Some((position, info)));
            }
            position += info.size_bytes;
        }
        Ok(None)
    }

    /// The first batch whose max timestamp is >= `timestamp`, skipping batches wholly
    /// below `min_offset` (the log start).
    pub fn find_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<BatchInfo>, LogError> {
        // Every batch before the one that first reached an indexed timestamp is older than it.
        let mut position = match self.time_index.lookup(timestamp)? {
            Some(entry) => self.index.lookup(entry.offset)?.map_or(0, |e| e.position),
            None => 0,
        };
        while let Some(info) = self.header_at(position)? {
            if info.max_timestamp >= timestamp && info.last_offset() >= min_offset {
                return Ok(Some(info));
            }
            position += info.size_bytes;
        }
        Ok(None)
    }

    /// Whole batches from `position` whose last offset is below `max_offset`, up to
    /// `max_bytes`, but the first such batch whole even if it is larger (KIP-74).
    pub fn read(
        &self,
        position: u32,
        max_bytes: u32,
        max_offset: i64,
    ) -> Result<Vec<u8>, LogError> {
        let Some(first) = self.header_at(position)? else {
            return Ok(Vec::new());
        };
        if first.last_offset() >= max_offset {
            return Ok(Vec::new());
        }
        if first.size_bytes >= max_bytes {
            // KIP-74: the first batch goes whole. Its size lies within the file and was
            // accepted by this log, which bounds the allocation.
            let mut whole = vec![0u8; first.size_bytes as usize];
            self.log
                .read_exact_at(&mut whole, u64::from(position))
                .map_err(io_context("reading", &self.log_path))?;
            return Ok(whole);
        }
        let available = self.size - position;
        let mut buf = vec![0u8; available.min(max_bytes) as usize];
        self.log
            .read_exact_at(&mut buf, u64::from(position))
            .map_err(io_context("reading", &self.log_path))?;
        let end = self.whole_batches_below(&buf, max_offset, position)?;
        assert!(
            end >= first.size_bytes as usize,
            "the first batch fits max_bytes here"
        );
        buf.truncate(end);
        Ok(buf)
    }

    /// Length of the leading whole batches in `buf` whose last offset is below `max_offset`.
    fn whole_batches_below(
        &self,
        buf: &[u8],
        max_offset: i64,
        position: u32,
    ) -> Result<usize, LogError> {
        let mut pos = 0usize;
        while buf.len() - pos >= HEADER_BYTES {
            let header = &buf[pos..pos + HEADER_BYTES];
            let size = check_header(header, u64::MAX, u32::MAX).map_err(|e| {
                LogError::CorruptBatch(format!(
                    "{} at byte {}: {e}",
                    self.log_path.display(),
                    position as usize + pos
                ))
            })? as usize;
            let info = parse_info(header, size as u32);
            if buf.len() - pos < size || info.last_offset() >= max_offset {
                break;
            }
            pos += size;
        }
        Ok(pos)
    }

    /// Removes the batch holding `offset` and everything after it; returns the new end offset.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64, LogError> {
        let Some((position, info)) = self.find_batch(offset)? else {
            return Ok(self.next_offset);
        };
        self.log
            .set_len(u64::from(position))
            .map_err(io_context("truncating", &self.log_path))?;
        self.size = position;
        self.next_offset = info.base_offset;
        self.index.truncate_to_position(position)?;
        self.time_index.truncate_to_offset(self.next_offset)?;
        self.restore_tail_state()?;
        Ok(self.next_offset)
    }

    /// Recomputes the append bookkeeping after a truncation from the surviving index entries
    /// plus a header walk over the bytes after the last offset index entry.
    fn restore_tail_state(&mut self) -> Result<(), LogError> {
        let from = self.index.last().map_or(0, |e| e.position);
        self.bytes_since_index = self.size - from;
        self.max_timestamp = self.time_index.last().map(|e| (e.timestamp, e.offset));
        let mut position = from;
        while let Some(info) = self.header_at(position)? {
            if info.max_timestamp >= 0
                && self
                    .max_timestamp
                    .is_none_or(|(ts, _)| info.max_timestamp > ts)
            {
                self.max_timestamp = Some((info.max_timestamp, info.last_offset()));
            }
            position += info.size_bytes;
        }
        Ok(())
    }

    /// Closes the segment for appends: records its largest timestamp in the time index (so a
    /// reopen knows it without reading the log) and syncs the log and both indexes.
    pub fn seal(&mut self) -> Result<(), LogError> {
        if let Some((ts, offset)) = self.max_timestamp {
            self.time_index.maybe_append(ts, offset)?;
        }
        self.sync_all()
    }

    /// Syncs the log and both indexes.
    pub fn sync_all(&self) -> Result<(), LogError> {
        self.log
            .sync_data()
            .map_err(io_context("syncing", &self.log_path))?;
        self.index.sync()?;
        self.time_index.sync()
    }

    /// The timestamp retention judges this segment by: its largest batch timestamp, or the
    /// file's modification time if no batch carried one (as Kafka does).
    pub fn retention_timestamp(&self) -> Result<i64, LogError> {
        if let Some((ts, _)) = self.max_timestamp {
            return Ok(ts);
        }
        let modified = self
            .log
            .metadata()
            .and_then(|m| m.modified())
            .map_err(io_context(
                "reading the modification time of",
                &self.log_path,
            ))?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Deletes the segment's files.
    pub fn delete_files(self, dir: &Path) -> Result<(), LogError> {
        let base = self.base_offset;
        drop(self);
        for ext in ["log", "index", "timeindex"] {
            let path = segment_path(dir, base, ext);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(format!("deleting {}", path.display()), e)),
            }
        }
        Ok(())
    }
}

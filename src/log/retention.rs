//! Removing data from a [`Log`]: retention by time and size, DeleteRecords, follower
//! truncation, and rolling by age.

use super::checkpoint::sync_dir;
use super::partition::Log;
use super::segment::Segment;
use super::LogError;

impl Log {
    /// Deletes whole segments, oldest first and never the active one: those whose newest
    /// timestamp is older than `now_ms - retention_ms`, then those whose removal still leaves
    /// at least `retention_bytes` (Kafka's rule). Advances the log start; returns how many
    /// segments went.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        if let Some(retention_ms) = self.config.retention_ms {
            let cutoff = now_ms.saturating_sub(retention_ms);
            let mut n = 0;
            for segment in &self.segments[..self.segments.len() - 1] {
                if segment.retention_timestamp()? >= cutoff {
                    break;
                }
                n += 1;
            }
            deleted += self.delete_oldest_segments(n, "retention.ms")?;
        }
        if let Some(retention_bytes) = self.config.retention_bytes {
            let mut total = self.size_bytes();
            let mut n = 0;
            for segment in &self.segments[..self.segments.len() - 1] {
                let size = u64::from(segment.size());
                if total - size < retention_bytes {
                    break;
                }
                total -= size;
                n += 1;
            }
            deleted += self.delete_oldest_segments(n, "retention.bytes")?;
        }
        Ok(deleted)
    }

    /// DeleteRecords: advances the log start to `offset` and deletes the segments wholly
    /// below it (never the active one). The caller keeps `offset` at or below the high
    /// watermark; past the log end is `OffsetOutOfRange`.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<(), LogError> {
        let end = self.log_end_offset();
        if offset < 0 || offset > end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = offset;
        let n = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.next_offset() <= offset)
            .count();
        self.delete_oldest_segments(n, "delete records")?;
        self.epochs.truncate_from_start(self.log_start_offset)?;
        Ok(())
    }

    /// Removes the `n` oldest segments (the active one excluded) and moves the log start up.
    fn delete_oldest_segments(
        &mut self,
        n: usize,
        reason: &'static str,
    ) -> Result<usize, LogError> {
        if n == 0 {
            return Ok(0);
        }
        assert!(
            n < self.segments.len(),
            "the active segment is never deleted"
        );
        let removed: Vec<Segment> = self.segments.drain(..n).collect();
        let new_start = self.segments[0].base_offset();
        assert!(
            new_start <= self.log_end_offset(),
            "segments never start past the log end"
        );
        self.log_start_offset = self.log_start_offset.max(new_start);
        self.epochs.truncate_from_start(self.log_start_offset)?;
        let bytes: u64 = removed.iter().map(|s| u64::from(s.size())).sum();
        for segment in removed {
            segment.delete_files(&self.dir)?;
        }
        tracing::info!(dir = %self.dir.display(), segments = n, bytes, reason,
            log_start_offset = self.log_start_offset, "deleted old segments");
        Ok(n)
    }

    /// Rolls the active segment if it is non-empty and older than `segment_ms`, so time-based
    /// retention can reach it even when no more appends come.
    pub fn maybe_roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        if self.active().size() > 0 && self.is_active_expired(now_ms) {
            self.roll()?;
        }
        Ok(())
    }

    /// Follower truncation: removes the batch holding `offset` and everything after it (so
    /// the new log end is that batch's base offset, which is `offset` itself whenever `offset`
    /// is a batch boundary, as epoch-based truncation points are). A no-op at or past the log
    /// end; at or below the log start the log is emptied and restarted at `offset`. Fixes
    /// indexes, the epoch cache and the recovery point.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        assert!(
            offset >= 0,
            "truncation offset {offset} must not be negative"
        );
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset <= self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        while self.segments.len() > 1 && self.active().base_offset() >= offset {
            let segment = self.segments.pop().expect("more than one segment");
            segment.delete_files(&self.dir)?;
        }
        let new_end = self.active_mut().truncate_to(offset)?;
        assert!(
            new_end <= offset,
            "truncation never keeps offsets at or past its target"
        );
        // A batch straddling the log start took the start with it: the log is now empty there.
        self.log_start_offset = self.log_start_offset.min(new_end);
        if self.active().size() == 0 {
            self.active_first_append_ms = None;
        }
        self.epochs.truncate_from_end(new_end)?;
        self.flush.truncated(new_end);
        tracing::info!(dir = %self.dir.display(), requested = offset, log_end = new_end, "truncated log");
        Ok(())
    }

    /// Deletes every segment and restarts the log empty at `offset` (a follower whose log is
    /// entirely behind or diverged from its leader's log start). Clears the epoch cache.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        assert!(
            offset >= 0,
            "log start offset {offset} must not be negative"
        );
        let old: Vec<Segment> = self.segments.drain(..).collect();
        let mut deleted = Ok(());
        for segment in old {
            // Keep going: the log needs its new segment even if an old file resists.
            deleted = deleted.and(segment.delete_files(&self.dir));
        }
        self.segments.push(Segment::create(&self.dir, offset)?);
        deleted?;
        sync_dir(&self.dir)?;
        self.log_start_offset = offset;
        self.active_first_append_ms = None;
        self.epochs.truncate_from_end(i64::MIN)?;
        self.flush.truncated(offset);
        self.flush.advance(offset);
        tracing::info!(dir = %self.dir.display(), offset, "emptied log and restarted it");
        Ok(())
    }
}

//! Group commit: the partition hands out what needs an fsync (file handles and the end offset
//! they cover) under the caller's lock, the caller fsyncs outside it, then reports back.
//!
//! A truncation between the hand-out and the report would make the report lie: the bytes it
//! synced below its offset may since have been replaced. So each hand-out is remembered with
//! the truncation generation it was made in, and reports from an older generation are ignored.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;

/// Hand-outs remembered at most; older ones are forgotten (their reports then change nothing,
/// which is safe: the flushed offset only ever lags).
const MAX_OUTSTANDING: usize = 256;

/// Files to fsync and the end offset that becomes durable once they are.
#[derive(Debug)]
pub struct PendingSync {
    files: Vec<Arc<File>>,
    offset: i64,
}

impl PendingSync {
    /// The log end offset this sync covers (exclusive).
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Fsyncs (data only) every captured file; returns the offset to pass to `mark_flushed`.
    pub fn run(self) -> std::io::Result<i64> {
        for f in &self.files {
            f.sync_data()?;
        }
        Ok(self.offset)
    }
}

/// The partition's view of what is durable.
#[derive(Debug)]
pub(crate) struct FlushTracker {
    flushed: i64,
    generation: u64,
    outstanding: VecDeque<(i64, u64)>,
}

impl FlushTracker {
    /// Everything below `flushed` is on disk.
    pub fn new(flushed: i64) -> Self {
        FlushTracker {
            flushed,
            generation: 0,
            outstanding: VecDeque::new(),
        }
    }

    /// The recovery point.
    pub fn flushed(&self) -> i64 {
        self.flushed
    }

    /// Builds a hand-out covering `offset` and remembers it.
    pub fn prepare(&mut self, files: Vec<Arc<File>>, offset: i64) -> PendingSync {
        if self.outstanding.len() == MAX_OUTSTANDING {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((offset, self.generation));
        PendingSync { files, offset }
    }

    /// A hand-out for `offset` completed; advance unless it predates a truncation.
    pub fn completed(&mut self, offset: i64, log_end: i64) {
        // If a stale and a current hand-out share this offset, consume the stale one: if the
        // current one is the one that finished, its later twin's report will advance us.
        let stale = self
            .outstanding
            .iter()
            .position(|&(o, g)| o == offset && g < self.generation);
        let current = self
            .outstanding
            .iter()
            .position(|&(o, g)| o == offset && g == self.generation);
        match (stale, current) {
            (Some(i), _) => {
                self.outstanding.remove(i);
            }
            (None, Some(i)) => {
                self.outstanding.remove(i);
                self.advance(offset.min(log_end));
            }
            (None, None) => {
                tracing::warn!(
                    offset,
                    "mark_flushed for an offset no prepare_sync handed out; ignored"
                );
            }
        }
    }

    /// Everything below `offset` is known durable (a roll or close synced it).
    pub fn advance(&mut self, offset: i64) {
        self.flushed = self.flushed.max(offset);
    }

    /// The log was cut at `end`: data at and past it is new from here on.
    pub fn truncated(&mut self, end: i64) {
        self.generation += 1;
        self.flushed = self.flushed.min(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_from_before_a_truncation_does_not_advance() {
        let mut t = FlushTracker::new(0);
        let stale = t.prepare(Vec::new(), 10);
        t.truncated(4);
        let fresh = t.prepare(Vec::new(), 10);
        t.completed(stale.run().unwrap(), 10);
        assert_eq!(t.flushed(), 0);
        t.completed(fresh.run().unwrap(), 10);
        assert_eq!(t.flushed(), 10);
        t.completed(99, 10); // never handed out
        assert_eq!(t.flushed(), 10);
    }
}

//! The leader epoch cache: which offset each leader epoch started at, persisted as Kafka's
//! `leader-epoch-checkpoint`. Followers use it (through OffsetForLeaderEpoch) to find where
//! their log diverges from a new leader's, so no acknowledged write is truncated.

use std::path::{Path, PathBuf};

use super::checkpoint::{parse_checkpoint, render_checkpoint, write_atomically};
use super::{io_context, LogError};

/// File name inside the partition directory.
pub(crate) const EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// One epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cache; epochs and start offsets both strictly increase.
pub(crate) struct EpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// Loads the checkpoint in `dir`; a missing file is an empty cache.
    pub fn load(dir: &Path) -> Result<Self, LogError> {
        let path = dir.join(EPOCH_CHECKPOINT);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => parse_checkpoint(&path, &text, |line| {
                let mut parts = line.split_whitespace();
                let epoch = parts.next()?.parse().ok()?;
                let start_offset = parts.next()?.parse().ok()?;
                parts.next().is_none().then_some(EpochEntry {
                    epoch,
                    start_offset,
                })
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_context("reading", &path)(e)),
        };
        let increasing = entries
            .windows(2)
            .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
        if !increasing {
            return Err(LogError::io(
                format!("reading {}", path.display()),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "epochs or start offsets do not increase",
                ),
            ));
        }
        Ok(EpochCache { path, entries })
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than every known epoch;
    /// older or equal epochs change nothing. Persists on change.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<(), LogError> {
        if epoch < 0 {
            return Ok(()); // -1: written by a client or a pre-epoch broker, no epoch to record
        }
        if let Some(latest) = self.latest() {
            if epoch <= latest.epoch {
                return Ok(());
            }
            assert!(
                start_offset >= latest.start_offset,
                "epoch {epoch} starts at {start_offset}, before epoch {} at {}",
                latest.epoch,
                latest.start_offset
            );
            if start_offset == latest.start_offset {
                // The previous epoch wrote nothing; Kafka drops it the same way.
                self.entries.pop();
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()
    }

    /// Drops epochs that start at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), LogError> {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.persist()?;
        }
        Ok(())
    }

    /// Forgets epochs wholly below `start_offset`; the epoch in force there now starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), LogError> {
        let below = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if below == 0 || (below == 1 && self.entries[0].start_offset == start_offset) {
            return Ok(());
        }
        let mut in_force = self.entries[below - 1];
        in_force.start_offset = start_offset;
        self.entries.drain(..below);
        self.entries.insert(0, in_force);
        self.persist()
    }

    /// OffsetForLeaderEpoch: the largest known epoch <= `epoch` and where it ended (the next
    /// epoch's start, or `log_end` for the latest). None if empty or `epoch` is below all.
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> Option<(i32, i64)> {
        let upto = self.entries.partition_point(|e| e.epoch <= epoch);
        if upto == 0 {
            return None;
        }
        let found = self.entries[upto - 1];
        let end = self
            .entries
            .get(upto)
            .map_or(log_end, |next| next.start_offset);
        Some((found.epoch, end))
    }

    /// Writes the checkpoint atomically.
    pub fn persist(&self) -> Result<(), LogError> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        write_atomically(&self.path, render_checkpoint(&lines).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_offset_for_leader_epoch_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path()).unwrap();
        assert_eq!(cache.end_offset_for(0, 10), None);
        cache.assign(1, 0).unwrap();
        cache.assign(1, 5).unwrap(); // same epoch: no change
        cache.assign(3, 10).unwrap();
        cache.assign(2, 12).unwrap(); // older epoch: ignored
        cache.assign(5, 20).unwrap();
        assert_eq!(cache.end_offset_for(0, 30), None);
        assert_eq!(cache.end_offset_for(1, 30), Some((1, 10)));
        assert_eq!(cache.end_offset_for(2, 30), Some((1, 10)));
        assert_eq!(cache.end_offset_for(3, 30), Some((3, 20)));
        assert_eq!(cache.end_offset_for(5, 30), Some((5, 30)));
        assert_eq!(cache.end_offset_for(9, 30), Some((5, 30)));
        let text = std::fs::read_to_string(dir.path().join(EPOCH_CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n3\n1 0\n3 10\n5 20\n");
        let reloaded = EpochCache::load(dir.path()).unwrap();
        assert_eq!(reloaded.entries(), cache.entries());
    }

    #[test]
    fn truncation_from_either_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path()).unwrap();
        for (epoch, start) in [(1, 0), (2, 10), (4, 20)] {
            cache.assign(epoch, start).unwrap();
        }
        cache.truncate_from_start(15).unwrap();
        assert_eq!(
            cache.entries(),
            &[
                EpochEntry {
                    epoch: 2,
                    start_offset: 15
                },
                EpochEntry {
                    epoch: 4,
                    start_offset: 20
                }
            ]
        );
        cache.truncate_from_end(20).unwrap();
        assert_eq!(
            cache.latest(),
            Some(EpochEntry {
                epoch: 2,
                start_offset: 15
            })
        );
        assert_eq!(
            EpochCache::load(dir.path()).unwrap().entries(),
            cache.entries()
        );
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(EPOCH_CHECKPOINT), "0\n2\n3 10\n1 20\n").unwrap();
        assert!(EpochCache::load(dir.path()).is_err());
    }
}

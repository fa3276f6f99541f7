//! The sparse `.timeindex`: 12-byte entries of timestamp i64 | relative offset u32. An entry
//! is added only when the segment's largest timestamp so far has grown, so timestamps and
//! offsets both strictly increase; the offset is the last offset of the batch that holds
//! that timestamp (Kafka's convention). The last entry therefore gives a closed segment's
//! largest timestamp without reading its log.

use std::path::Path;

use super::index_file::IndexFile;
use super::LogError;

/// One time index entry, offsets absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    /// The largest timestamp seen up to this point of the segment.
    pub timestamp: i64,
    /// Last offset of the batch carrying that timestamp.
    pub offset: i64,
}

/// One segment's time index.
pub(crate) struct TimeIndex {
    file: IndexFile<12>,
    base_offset: i64,
    last: Option<TimeEntry>,
}

impl TimeIndex {
    /// Opens or creates the time index of the segment starting at `base_offset`.
    pub fn open(path: &Path, base_offset: i64) -> Result<Self, LogError> {
        let file = IndexFile::open(path)?;
        let mut index = TimeIndex {
            file,
            base_offset,
            last: None,
        };
        index.last = index.file.last()?.map(|e| index.decode(&e));
        Ok(index)
    }

    fn decode(&self, e: &[u8; 12]) -> TimeEntry {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&e[..8]);
        let relative = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            offset: self.base_offset + i64::from(relative),
        }
    }

    /// The newest entry.
    pub fn last(&self) -> Option<TimeEntry> {
        self.last
    }

    /// Adds an entry if `timestamp` exceeds the last indexed one; returns whether it did.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> Result<bool, LogError> {
        if let Some(last) = self.last {
            if timestamp <= last.timestamp {
                return Ok(false);
            }
            assert!(
                offset > last.offset,
                "time index offsets must grow: {offset} after {}",
                last.offset
            );
        }
        let relative = u32::try_from(offset - self.base_offset)
            .expect("relative offset fits u32 (roll guarantees it)");
        let mut e = [0u8; 12];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&relative.to_be_bytes());
        self.file.append(e)?;
        self.last = Some(TimeEntry { timestamp, offset });
        Ok(true)
    }

    /// The greatest entry whose timestamp is <= `timestamp`, if any.
    pub fn lookup(&self, timestamp: i64) -> Result<Option<TimeEntry>, LogError> {
        let n = self
            .file
            .partition_point(|e| self.decode(e).timestamp <= timestamp)?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(self.decode(&self.file.read(n - 1)?)))
    }

    /// Drops every entry naming an offset at or past `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) -> Result<(), LogError> {
        let keep = self
            .file
            .partition_point(|e| self.decode(e).offset < offset)?;
        self.truncate_entries(keep)
    }

    /// Keeps the first `n` entries.
    pub fn truncate_entries(&mut self, n: u32) -> Result<(), LogError> {
        self.file.truncate(n)?;
        self.last = self.file.last()?.map(|e| self.decode(&e));
        Ok(())
    }

    /// Number of entries.
    pub fn len(&self) -> u32 {
        self.file.len()
    }

    /// Cheap consistency check: the last entry names an offset inside the segment
    /// (`end_offset` exclusive) and entries increase. Returns why the index is unusable.
    pub fn sanity_check(&self, end_offset: i64) -> Result<Option<String>, LogError> {
        let Some(last) = self.last else {
            return Ok(None);
        };
        if last.offset >= end_offset {
            return Ok(Some(format!(
                "last entry names offset {} past the segment end {end_offset}",
                last.offset
            )));
        }
        let first = self.decode(&self.file.read(0)?);
        if self.len() > 1 && (first.timestamp >= last.timestamp || first.offset >= last.offset) {
            return Ok(Some("entries do not increase".into()));
        }
        Ok(None)
    }

    /// Flushes entries to stable storage.
    pub fn sync(&self) -> Result<(), LogError> {
        self.file.sync()
    }
}

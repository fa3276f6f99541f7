//! The sparse `.index`: 8-byte entries of relative offset u32 | file position u32, both
//! strictly increasing. An entry names the last offset of a batch and where that batch
//! starts, as Kafka writes them; a lookup returns a position at or before the batch that
//! holds the wanted offset, and the caller walks batch headers from there.

use std::path::Path;

use super::index_file::IndexFile;
use super::LogError;

/// A lookup answer: the indexed offset and the file position to start walking from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Absolute offset named by the entry (a batch's last offset).
    pub offset: i64,
    /// Position of that batch in the segment's `.log`.
    pub position: u32,
}

/// One segment's offset index.
pub(crate) struct OffsetIndex {
    file: IndexFile<8>,
    base_offset: i64,
    last: Option<IndexEntry>,
}

impl OffsetIndex {
    /// Opens or creates the index of the segment starting at `base_offset`.
    pub fn open(path: &Path, base_offset: i64) -> Result<Self, LogError> {
        let file = IndexFile::open(path)?;
        let mut index = OffsetIndex {
            file,
            base_offset,
            last: None,
        };
        index.last = index.file.last()?.map(|e| index.decode(&e));
        Ok(index)
    }

    fn decode(&self, e: &[u8; 8]) -> IndexEntry {
        let relative = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let position = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        IndexEntry {
            offset: self.base_offset + i64::from(relative),
            position,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> u32 {
        self.file.len()
    }

    /// The newest entry.
    pub fn last(&self) -> Option<IndexEntry> {
        self.last
    }

    /// Records that the batch ending at `offset` starts at `position`.
    pub fn append(&mut self, offset: i64, position: u32) -> Result<(), LogError> {
        let relative = u32::try_from(offset - self.base_offset)
            .expect("relative offset fits u32 (roll guarantees it)");
        if let Some(last) = self.last {
            assert!(
                offset > last.offset && position > last.position,
                "index entries must grow: ({offset}, {position}) after ({}, {})",
                last.offset,
                last.position
            );
        }
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&relative.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.file.append(e)?;
        self.last = Some(IndexEntry { offset, position });
        Ok(())
    }

    /// The greatest entry whose offset is <= `offset`, if any.
    pub fn lookup(&self, offset: i64) -> Result<Option<IndexEntry>, LogError> {
        let n = self
            .file
            .partition_point(|e| self.decode(e).offset <= offset)?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(self.decode(&self.file.read(n - 1)?)))
    }

    /// Drops every entry pointing at or past `position` (the log is being cut there).
    pub fn truncate_to_position(&mut self, position: u32) -> Result<(), LogError> {
        let keep = self
            .file
            .partition_point(|e| self.decode(e).position < position)?;
        self.truncate_entries(keep)
    }

    /// Keeps the first `n` entries.
    pub fn truncate_entries(&mut self, n: u32) -> Result<(), LogError> {
        self.file.truncate(n)?;
        self.last = self.file.last()?.map(|e| self.decode(&e));
        Ok(())
    }

    /// Cheap consistency check against the segment's log size: first and last entries
    /// increase and point inside the log. Returns why the index is unusable.
    pub fn sanity_check(&self, log_size: u32) -> Result<Option<String>, LogError> {
        let Some(last) = self.last else {
            return Ok(None);
        };
        let first = self.decode(&self.file.read(0)?);
        if last.position >= log_size {
            return Ok(Some(format!(
                "last entry points at byte {} of a {log_size}-byte log",
                last.position
            )));
        }
        if self.len() > 1 && (first.offset >= last.offset || first.position >= last.position) {
            return Ok(Some("entries do not increase".into()));
        }
        Ok(None)
    }

    /// Flushes entries to stable storage.
    pub fn sync(&self) -> Result<(), LogError> {
        self.file.sync()
    }
}

//! A file of fixed-width entries, appended one at a time and searched in place.
//!
//! Entries are not kept in memory: a binary search costs about log2(n) positional reads that
//! the page cache serves, so a partition with many segments holds no index bytes on the heap.
//! The file is never preallocated (SD cards wear); a trailing partial entry left by a torn
//! write is cut when the file is opened.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{io_context, LogError};

/// One index file with `N`-byte entries.
pub(crate) struct IndexFile<const N: usize> {
    file: File,
    path: PathBuf,
    entries: u32,
}

impl<const N: usize> IndexFile<N> {
    /// Opens (creating if missing) and cuts any trailing partial entry.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_context("opening index", path))?;
        let len = file
            .metadata()
            .map_err(io_context("reading the size of", path))?
            .len();
        let whole = len / N as u64;
        let entries = u32::try_from(whole).map_err(|_| {
            LogError::io(
                format!("opening index {}", path.display()),
                std::io::Error::new(std::io::ErrorKind::InvalidData, "index file too large"),
            )
        })?;
        if len % N as u64 != 0 {
            tracing::warn!(path = %path.display(), len, "cutting a torn entry off the end of an index");
            file.set_len(whole * N as u64)
                .map_err(io_context("cutting a torn entry off", path))?;
        }
        Ok(IndexFile {
            file,
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Number of whole entries.
    pub fn len(&self) -> u32 {
        self.entries
    }

    /// Reads entry `i` (which must exist).
    pub fn read(&self, i: u32) -> Result<[u8; N], LogError> {
        assert!(i < self.entries, "index entry {i} of {}", self.entries);
        let mut entry = [0u8; N];
        self.file
            .read_exact_at(&mut entry, u64::from(i) * N as u64)
            .map_err(io_context("reading an entry of", &self.path))?;
        Ok(entry)
    }

    /// The last entry, if any.
    pub fn last(&self) -> Result<Option<[u8; N]>, LogError> {
        match self.entries {
            0 => Ok(None),
            n => self.read(n - 1).map(Some),
        }
    }

    /// Appends one entry at the end of the file.
    pub fn append(&mut self, entry: [u8; N]) -> Result<(), LogError> {
        self.file
            .write_all_at(&entry, u64::from(self.entries) * N as u64)
            .map_err(io_context("appending to", &self.path))?;
        self.entries += 1;
        Ok(())
    }

    /// Keeps only the first `n` entries.
    pub fn truncate(&mut self, n: u32) -> Result<(), LogError> {
        if n < self.entries {
            self.file
                .set_len(u64::from(n) * N as u64)
                .map_err(io_context("truncating", &self.path))?;
            self.entries = n;
        }
        Ok(())
    }

    /// The number of leading entries for which `pred` holds; `pred` must hold for a prefix.
    pub fn partition_point(&self, pred: impl Fn(&[u8; N]) -> bool) -> Result<u32, LogError> {
        let (mut lo, mut hi) = (0u32, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self.read(mid)?) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Pushes written entries to stable storage.
    pub fn sync(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(io_context("syncing", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_entry_is_cut_on_open_and_search_finds_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut idx = IndexFile::<4>::open(&path).unwrap();
        for v in [1u32, 5, 9, 20] {
            idx.append(v.to_be_bytes()).unwrap();
        }
        drop(idx);
        let f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all_at(&[1, 2], 16).unwrap();
        let idx = IndexFile::<4>::open(&path).unwrap();
        assert_eq!(idx.len(), 4);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
        assert_eq!(
            idx.partition_point(|e| u32::from_be_bytes(*e) <= 9)
                .unwrap(),
            3
        );
        assert_eq!(
            idx.partition_point(|e| u32::from_be_bytes(*e) < 1).unwrap(),
            0
        );
        assert_eq!(idx.last().unwrap(), Some(20u32.to_be_bytes()));
    }
}

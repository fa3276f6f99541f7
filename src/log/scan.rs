//! Walks the batches of a segment file through a fixed-size window, for recovery and index
//! rebuilds. Memory stays at one window however large a batch claims to be: the CRC is
//! computed chunk by chunk, so a corrupt length read from disk never sizes an allocation.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::batch::{
    check_fields, check_header, field, parse_info, stored_crc, Strictness, HEADER_BYTES,
};
use super::{io_context, BatchInfo, LogError};

/// Window size: large enough that small batches cost one read per many batches.
const WINDOW_BYTES: usize = 64 * 1024;

/// A batch found by the scanner.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    /// Where the batch starts in the file.
    pub position: u32,
    /// Its header.
    pub info: BatchInfo,
}

/// Iterates over the intact batches of `file[start..end]`, stopping at the first torn or
/// corrupt one; `stop_reason` then says why.
pub(crate) struct Scanner<'a> {
    file: &'a File,
    path: &'a Path,
    end: u64,
    pos: u64,
    verify_crc: bool,
    window: Vec<u8>,
    window_start: u64,
    /// Why the scan stopped before `end`, if it did.
    pub stop_reason: Option<String>,
}

impl<'a> Scanner<'a> {
    /// Scans `file` from byte `start` to byte `end`; `verify_crc` reads every byte (recovery)
    /// instead of hopping from header to header (rebuilding an index of a closed segment).
    pub fn new(file: &'a File, path: &'a Path, start: u32, end: u32, verify_crc: bool) -> Self {
        Scanner {
            file,
            path,
            end: u64::from(end),
            pos: u64::from(start),
            verify_crc,
            window: Vec::new(),
            window_start: 0,
            stop_reason: None,
        }
    }

    /// Position of the next batch, or where the scan stopped: the end of the valid prefix.
    pub fn position(&self) -> u32 {
        self.pos as u32
    }

    /// Returns `len` bytes at `pos` (len <= WINDOW_BYTES, pos + len <= end), refilling the
    /// window when they are not all in it.
    fn bytes(&mut self, pos: u64, len: usize) -> Result<&[u8], LogError> {
        debug_assert!(len <= WINDOW_BYTES && pos + len as u64 <= self.end);
        let in_window = pos >= self.window_start
            && pos + len as u64 <= self.window_start + self.window.len() as u64;
        if !in_window {
            let fill = (self.end - pos).min(WINDOW_BYTES as u64) as usize;
            self.window.resize(fill, 0);
            self.file
                .read_exact_at(&mut self.window, pos)
                .map_err(io_context("scanning", self.path))?;
            self.window_start = pos;
        }
        let from = (pos - self.window_start) as usize;
        Ok(&self.window[from..from + len])
    }

    /// CRC-32C of `file[from..to]`, a window at a time.
    fn crc_of(&mut self, from: u64, to: u64) -> Result<u32, LogError> {
        let mut crc = 0u32;
        let mut at = from;
        while at < to {
            let n = (to - at).min(WINDOW_BYTES as u64) as usize;
            crc = crc32c::crc32c_append(crc, self.bytes(at, n)?);
            at += n as u64;
        }
        Ok(crc)
    }

    /// The next intact batch, or None at the end or at the first bad batch.
    pub fn next_batch(&mut self) -> Result<Option<Found>, LogError> {
        if self.pos >= self.end || self.stop_reason.is_some() {
            return Ok(None);
        }
        let available = self.end - self.pos;
        let header_len = available.min(HEADER_BYTES as u64) as usize;
        let mut header = [0u8; HEADER_BYTES];
        header[..header_len].copy_from_slice(self.bytes(self.pos, header_len)?);
        let size = match check_header(&header[..header_len], available, u32::MAX) {
            Ok(size) => size,
            Err(e) => return self.stop(e),
        };
        let info = parse_info(&header, size);
        if let Err(e) = check_fields(&info, Strictness::Stored) {
            return self.stop(e);
        }
        if self.verify_crc {
            let computed = self.crc_of(
                self.pos + field::ATTRIBUTES as u64,
                self.pos + u64::from(size),
            )?;
            if computed != stored_crc(&header) {
                return self.stop(LogError::CorruptBatch(format!(
                    "CRC-32C mismatch: stored {:#010x}, computed {computed:#010x}",
                    stored_crc(&header)
                )));
            }
        }
        let found = Found {
            position: self.pos as u32,
            info,
        };
        self.pos += u64::from(size);
        Ok(Some(found))
    }

    /// Ends the scan at the current position with `reason`.
    fn stop(&mut self, reason: LogError) -> Result<Option<Found>, LogError> {
        self.stop_reason = Some(reason.to_string());
        Ok(None)
    }

    /// Ends the scan at the current batch for a reason found by the caller (such as an
    /// offset that does not continue the previous batch).
    pub fn reject(&mut self, found: &Found, reason: String) {
        self.pos = u64::from(found.position);
        self.stop_reason = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, u32) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        (f, bytes.len() as u32)
    }

    #[test]
    fn scans_batches_larger_than_the_window_and_stops_at_corruption() {
        let big = vec![9u8; WINDOW_BYTES * 2 + 17];
        let mut bytes = testing::batch(&[(b"k", &big[..])], 1);
        let first = bytes.len() as u32;
        bytes.extend(testing::batch(&[(b"k", b"small")], 2));
        let mut corrupt = testing::batch(&[(b"k", b"bad")], 3);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        bytes.extend(corrupt);
        let (f, len) = file_with(&bytes);
        let file = f.reopen().unwrap();
        let mut s = Scanner::new(&file, f.path(), 0, len, true);
        assert_eq!(s.next_batch().unwrap().unwrap().position, 0);
        assert_eq!(s.next_batch().unwrap().unwrap().position, first);
        assert!(s.next_batch().unwrap().is_none());
        assert!(s.stop_reason.as_deref().unwrap().contains("CRC"));

        // Without CRC checks the corrupt body goes unnoticed: only headers are read.
        let mut s = Scanner::new(&file, f.path(), 0, len, false);
        let mut n = 0;
        while s.next_batch().unwrap().is_some() {
            n += 1;
        }
        assert_eq!((n, s.position(), s.stop_reason.as_deref()), (3, len, None));
    }

    #[test]
    fn a_torn_header_stops_the_scan() {
        let mut bytes = testing::batch(&[(b"k", b"v")], 1);
        let whole = bytes.len() as u32;
        bytes.extend_from_slice(&[0u8; 20]);
        let (f, len) = file_with(&bytes);
        let file = f.reopen().unwrap();
        let mut s = Scanner::new(&file, f.path(), 0, len, true);
        assert!(s.next_batch().unwrap().is_some());
        assert!(s.next_batch().unwrap().is_none());
        assert_eq!(s.position(), whole);
        assert!(s.stop_reason.is_some());
    }
}

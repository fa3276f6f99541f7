//! The Raft log on disk (`RaftLogStorage`), under `<coordinator.data_dir>/raft/`.
//!
//! - `log-<first index, 20 digits>`: segments. A segment starts with `BRLG` and a u32
//!   format version; then records `[len u32][crc32c u32][entry as JSON]`, big-endian.
//!   A new segment starts when the active one passes [`SEGMENT_BYTES_MAX`].
//! - `vote`: the vote, replaced atomically (temp file, fsync, rename, fsync dir) before
//!   `save_vote` returns: a node must never vote twice in a term.
//! - `committed`: the committed log id, replaced atomically but not fsynced: it is a hint
//!   that lets a restarted node re-apply what it knew committed; losing it is harmless.
//! - `purged`: the last purged log id, fsynced before any segment is deleted.
//!
//! Appends are written at once and fsynced by a flusher thread that takes every append
//! queued meanwhile (group commit); openraft learns of durability through the
//! `LogFlushed` callback. Recovery reads the segments in order and cuts the log at the first
//! torn or corrupt record (a `kill -9` mid-write), so what remains is a clean prefix.
//! The newest entries are also kept in memory, up to [`CACHED_BYTES_MAX`] of records (and
//! always the last one); older ones, which only a lagging follower or a restart's replay
//! asks for, are read back from their segment. A snapshot purges the log every
//! `cluster.snapshot_logs_since_last` entries, but those entries can be large znode writes:
//! the cache, not the purge, bounds the memory.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{StorageError, StorageIOError, Vote};
use serde::{de::DeserializeOwned, Serialize};

use super::types::{Entry, LogId, NodeId, TypeConfig};

/// A segment rolls once it passes this size.
pub const SEGMENT_BYTES_MAX: u64 = 8 << 20;
/// Record bytes of the newest entries kept in memory (counted in the fixed overhead of the
/// memory budget, not in a pool).
pub const CACHED_BYTES_MAX: u64 = 2 << 20;
/// Largest record accepted when reading back (guards the allocation on a corrupt length).
const RECORD_BYTES_MAX: u32 = 64 << 20;
const SEGMENT_MAGIC: &[u8; 4] = b"BRLG";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: u64 = 8;

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// The directory holding the Raft log, vote and snapshots.
pub fn raft_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("raft")
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `dir/name` with `value` as JSON: temp file, optional fsync, rename.
pub(crate) fn write_atomic<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
    durable: bool,
) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let mut f = File::create(&tmp)?;
    f.write_all(&bytes)?;
    if durable {
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads `dir/name` as JSON; None if absent or unreadable (a torn non-durable write).
pub(crate) fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> std::io::Result<Option<T>> {
    match fs::read(dir.join(name)) {
        Ok(b) => Ok(serde_json::from_slice(&b).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

struct Segment {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
}

struct Inner {
    dir: PathBuf,
    /// The newest entries, by index (a cache: see [`CACHED_BYTES_MAX`]).
    entries: BTreeMap<u64, Entry>,
    /// Record bytes of the cached entries.
    cached_bytes: u64,
    /// The most record bytes cached.
    cached_bytes_max: u64,
    /// Where each entry after the last purge is: (segment base index, byte offset, record
    /// length).
    positions: BTreeMap<u64, (u64, u64, u64)>,
    /// Segments by the index of their first entry; the last one is the active one.
    segments: BTreeMap<u64, Segment>,
    purged: Option<LogId>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId>,
    segment_bytes_max: u64,
}

/// A job for the flusher: make `file` durable, then tell openraft.
struct Flush {
    file: Arc<File>,
    done: LogFlushed<TypeConfig>,
}

/// The Raft log storage of this node.
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    flusher: mpsc::Sender<Flush>,
}

/// A reader sharing the store's entries (openraft reads from replication tasks).
#[derive(Clone)]
pub struct LogReader {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader").finish_non_exhaustive()
    }
}

fn segment_base(name: &str) -> Option<u64> {
    name.strip_prefix("log-")?.parse().ok()
}

fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        if let Some(base) = e.file_name().to_str().and_then(segment_base) {
            out.push((base, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn encode_record(entry: &Entry) -> std::io::Result<Vec<u8>> {
    let body = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    let mut rec = Vec::with_capacity(body.len() + 8);
    rec.extend_from_slice(&(body.len() as u32).to_be_bytes());
    rec.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    rec.extend_from_slice(&body);
    Ok(rec)
}

/// Parses a segment's records; returns them with their offsets and the length of the
/// clean prefix (where a torn tail, if any, begins).
fn read_segment(buf: &[u8]) -> (Vec<(u64, u64, Entry)>, u64) {
    let mut out = Vec::new();
    if buf.len() < HEADER_BYTES as usize || &buf[..4] != SEGMENT_MAGIC {
        return (out, 0);
    }
    let mut pos = HEADER_BYTES as usize;
    while pos + 8 <= buf.len() {
        let len = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
        let crc = u32::from_be_bytes([buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]]);
        if len == 0 || len > RECORD_BYTES_MAX || pos + 8 + len as usize > buf.len() {
            break;
        }
        let body = &buf[pos + 8..pos + 8 + len as usize];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(body) else {
            break;
        };
        out.push((pos as u64, 8 + u64::from(len), entry));
        pos += 8 + len as usize;
    }
    (out, pos as u64)
}

fn create_segment(dir: &Path, base: u64) -> std::io::Result<Segment> {
    let path = dir.join(format!("log-{base:020}"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let mut hdr = SEGMENT_MAGIC.to_vec();
    hdr.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    file.write_all_at(&hdr, 0)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Segment {
        path,
        file: Arc::new(file),
        len: HEADER_BYTES,
    })
}

impl Inner {
    fn recover(dir: &Path, segment_bytes_max: u64) -> std::io::Result<Inner> {
        fs::create_dir_all(dir)?;
        let purged: Option<LogId> = read_json(dir, "purged")?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            entries: BTreeMap::new(),
            cached_bytes: 0,
            cached_bytes_max: CACHED_BYTES_MAX,
            positions: BTreeMap::new(),
            segments: BTreeMap::new(),
            purged,
            vote: read_json(dir, "vote")?,
            committed: read_json(dir, "committed")?,
            segment_bytes_max,
        };
        let mut cut = false;
        // The index the next kept entry must follow. Entries up to the purge point may still
        // sit in a segment before it (a snapshot installed past the log's end purges
        // everything, and older versions kept appending to that segment), so the first
        // kept entry follows the purge point, not the record before it.
        let mut prev: Option<u64> = purged.map(|p| p.index);
        for (base, path) in list_segments(dir)? {
            if cut {
                // Everything after a torn record is gone: it was never acknowledged.
                tracing::warn!(file = %path.display(), "removing a raft log segment after a torn tail");
                fs::remove_file(&path)?;
                continue;
            }
            let buf = fs::read(&path)?;
            let (records, clean) = read_segment(&buf);
            let mut keep = clean;
            for (off, len, entry) in records {
                let idx = entry.log_id.index;
                if inner.purged.is_some_and(|p| idx <= p.index) {
                    continue;
                }
                if prev.is_some_and(|p| idx != p + 1) {
                    keep = off;
                    break;
                }
                prev = Some(idx);
                inner.positions.insert(idx, (base, off, len));
                inner.cache(idx, entry);
            }
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            if keep < buf.len() as u64 {
                tracing::warn!(file = %path.display(), valid_bytes = keep, file_bytes = buf.len(), "raft log ends in a torn record; cutting it off");
                file.set_len(keep.max(HEADER_BYTES))?;
                if keep < HEADER_BYTES {
                    file.write_all_at(SEGMENT_MAGIC, 0)?;
                    file.write_all_at(&FORMAT_VERSION.to_be_bytes(), 4)?;
                }
                file.sync_all()?;
                cut = true;
            }
            inner.segments.insert(
                base,
                Segment {
                    path,
                    file: Arc::new(file),
                    len: keep.max(HEADER_BYTES),
                },
            );
        }
        tracing::info!(
            dir = %dir.display(),
            entries = inner.positions.len(),
            cached = inner.entries.len(),
            first = inner.positions.keys().next().copied(),
            last = inner.positions.keys().next_back().copied(),
            purged = ?inner.purged,
            "raft log recovered"
        );
        Ok(inner)
    }

    /// Keeps `entry` in memory, forgetting the oldest cached ones past the cap (never the
    /// newest: the last log id is read from it).
    fn cache(&mut self, idx: u64, entry: Entry) {
        let len = self.positions.get(&idx).map_or(0, |p| p.2);
        self.entries.insert(idx, entry);
        self.cached_bytes += len;
        while self.cached_bytes > self.cached_bytes_max && self.entries.len() > 1 {
            let (old, _) = self.entries.pop_first().expect("more than one cached");
            self.cached_bytes -= self.positions.get(&old).map_or(0, |p| p.2);
        }
    }

    /// Recounts the cache after entries left it, and makes sure the newest stored entry is
    /// cached again (a truncation may have removed every cached one).
    fn recache(&mut self) -> std::io::Result<()> {
        self.cached_bytes = self
            .entries
            .keys()
            .map(|i| self.positions.get(i).map_or(0, |p| p.2))
            .sum();
        if let Some(&last) = self.positions.keys().next_back() {
            if !self.entries.contains_key(&last) {
                let entry = self.load(last)?;
                self.cache(last, entry);
            }
        }
        Ok(())
    }

    /// Reads one entry back from its segment.
    fn load(&self, idx: u64) -> std::io::Result<Entry> {
        let missing = || std::io::Error::other(format!("raft log entry {idx} is not stored"));
        let &(base, off, len) = self.positions.get(&idx).ok_or_else(missing)?;
        let seg = self.segments.get(&base).ok_or_else(missing)?;
        let mut rec = vec![0u8; len as usize];
        seg.file.read_exact_at(&mut rec, off)?;
        let body = &rec[8..];
        let crc = u32::from_be_bytes([rec[4], rec[5], rec[6], rec[7]]);
        if crc32c::crc32c(body) != crc {
            return Err(std::io::Error::other(format!(
                "raft log entry {idx} in {} fails its CRC",
                seg.path.display()
            )));
        }
        serde_json::from_slice(body).map_err(std::io::Error::other)
    }

    /// The entries in `range`, from memory or read back from disk.
    fn read<RB: RangeBounds<u64>>(&self, range: RB) -> std::io::Result<Vec<Entry>> {
        self.positions
            .range(range)
            .map(|(idx, _)| match self.entries.get(idx) {
                Some(entry) => Ok(entry.clone()),
                None => self.load(*idx),
            })
            .collect()
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(self.purged)
    }

    fn append(&mut self, entry: &Entry) -> std::io::Result<Arc<File>> {
        let rec = encode_record(entry)?;
        let idx = entry.log_id.index;
        let roll = match self.segments.values().next_back() {
            None => true,
            Some(s) => s.len + rec.len() as u64 > self.segment_bytes_max && s.len > HEADER_BYTES,
        };
        if roll {
            if let Some(s) = self.segments.values().next_back() {
                // The old segment is made durable now; the flusher only syncs the active one.
                s.file.sync_data()?;
            }
            let seg = create_segment(&self.dir, idx)?;
            self.segments.insert(idx, seg);
        }
        let (&base, seg) = self
            .segments
            .iter_mut()
            .next_back()
            .expect("an active segment");
        seg.file.write_all_at(&rec, seg.len)?;
        self.positions
            .insert(idx, (base, seg.len, rec.len() as u64));
        seg.len += rec.len() as u64;
        let file = seg.file.clone();
        self.cache(idx, entry.clone());
        Ok(file)
    }

    /// Removes entries from `index` on, on disk first.
    fn truncate(&mut self, index: u64) -> std::io::Result<()> {
        let Some(&(base, off, _)) = self.positions.get(&index) else {
            // Nothing at or after `index` is stored (already truncated or never written).
            return Ok(());
        };
        let later: Vec<u64> = self.segments.range(base + 1..).map(|(b, _)| *b).collect();
        for b in later.into_iter().rev() {
            let seg = self.segments.remove(&b).expect("listed segment");
            fs::remove_file(&seg.path)?;
        }
        let seg = self
            .segments
            .get_mut(&base)
            .expect("segment of a stored entry");
        seg.file.set_len(off)?;
        seg.file.sync_all()?;
        seg.len = off;
        sync_dir(&self.dir)?;
        self.entries.split_off(&index);
        self.positions.split_off(&index);
        self.recache()
    }

    /// Forgets entries up to `log_id` and deletes the segments holding only those.
    fn purge(&mut self, log_id: LogId) -> std::io::Result<()> {
        write_atomic(&self.dir, "purged", &log_id, true)?;
        self.purged = Some(log_id);
        self.entries = self.entries.split_off(&(log_id.index + 1));
        self.positions = self.positions.split_off(&(log_id.index + 1));
        self.recache()?;
        // A segment can go when the next one starts at or before the first kept index.
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        for pair in bases.windows(2) {
            if pair[1] <= log_id.index + 1 {
                let seg = self.segments.remove(&pair[0]).expect("listed segment");
                fs::remove_file(&seg.path)?;
            }
        }
        // Purged past everything stored (a snapshot installed beyond the log's end): the
        // active segment holds only purged entries, and the next entry does not follow its
        // last one. The next append starts a fresh segment at its own index.
        if self.positions.is_empty() {
            for (_, seg) in std::mem::take(&mut self.segments) {
                fs::remove_file(&seg.path)?;
            }
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn flusher(rx: mpsc::Receiver<Flush>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut synced: Vec<Arc<File>> = Vec::new();
        let mut result = Ok(());
        for job in &batch {
            if !synced.iter().any(|f| Arc::ptr_eq(f, &job.file)) {
                if let Err(e) = job.file.sync_data() {
                    tracing::error!(error = %e, "raft log fsync failed");
                    result = Err(e);
                    break;
                }
                synced.push(job.file.clone());
            }
        }
        for job in batch {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            job.done.log_io_completed(r);
        }
    }
}

impl LogStore {
    /// Opens (recovering) the log under `dir`.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        Self::open_with(dir, SEGMENT_BYTES_MAX)
    }

    /// Opens with a chosen segment size (tests use small segments).
    pub fn open_with(dir: &Path, segment_bytes_max: u64) -> std::io::Result<LogStore> {
        let inner = Inner::recover(dir, segment_bytes_max)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flusher(rx))?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
            flusher: tx,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("raft log lock poisoned")
    }
}

fn read_range<RB: RangeBounds<u64>>(
    inner: &Mutex<Inner>,
    range: RB,
) -> std::io::Result<Vec<Entry>> {
    inner.lock().expect("raft log lock poisoned").read(range)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry>> {
        read_range(&self.inner, range).map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry>> {
        read_range(&self.inner, range).map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let inner = self.lock();
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            inner: self.inner.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let mut inner = self.lock();
        write_atomic(&inner.dir, "vote", vote, true).map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> StoreResult<()> {
        let mut inner = self.lock();
        write_atomic(&inner.dir, "committed", &committed, false)
            .map_err(|e| StorageIOError::write(&e))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut last_file = None;
        {
            let mut inner = self.lock();
            for entry in entries {
                if let Some(prev) = inner.positions.keys().next_back() {
                    assert_eq!(
                        entry.log_id.index,
                        prev + 1,
                        "raft log indexes must be contiguous"
                    );
                }
                let f = inner
                    .append(&entry)
                    .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
                last_file = Some(f);
            }
        }
        match last_file {
            Some(file) => {
                if let Err(mpsc::SendError(job)) = self.flusher.send(Flush {
                    file,
                    done: callback,
                }) {
                    job.done
                        .log_io_completed(Err(std::io::Error::other("raft log flusher stopped")));
                }
            }
            None => callback.log_io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> StoreResult<()> {
        tracing::debug!(from = %log_id, "truncating raft log");
        self.lock()
            .truncate(log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> StoreResult<()> {
        tracing::debug!(upto = %log_id, "purging raft log");
        self.lock()
            .purge(log_id)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::types::{Command, CommandKind};
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        let cmd = Command {
            session_id: 1,
            cxid: index as i32,
            time_ms: 0,
            auth: vec![],
            kind: CommandKind::CloseSession,
            znode_cap_bytes: None,
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(cmd),
        }
    }

    /// Appends without openraft: write and fsync directly.
    fn put(store: &LogStore, from: u64, to: u64) {
        let mut inner = store.lock();
        for i in from..=to {
            inner.append(&entry(1, i)).unwrap().sync_data().unwrap();
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.lock().positions.keys().copied().collect()
    }

    #[test]
    fn entries_survive_reopen_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open_with(dir.path(), 512).unwrap();
        put(&store, 1, 40);
        assert!(store.lock().segments.len() > 2);
        drop(store);
        let store = LogStore::open_with(dir.path(), 512).unwrap();
        assert_eq!(indexes(&store), (1..=40).collect::<Vec<_>>());
    }

    #[test]
    fn memory_holds_only_the_newest_entries_and_the_rest_is_read_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open_with(dir.path(), 4096).unwrap();
        let record = encode_record(&entry(1, 1)).unwrap().len() as u64;
        store.lock().cached_bytes_max = 5 * record;
        put(&store, 1, 40);
        {
            let inner = store.lock();
            assert!(inner.entries.len() <= 5, "cached: {}", inner.entries.len());
            assert!(inner.cached_bytes <= 5 * record);
            assert_eq!(inner.entries.keys().next_back(), Some(&40));
        }
        let all = read_range(&store.inner, 1..=40).unwrap();
        assert_eq!(
            all.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            (1..=40).collect::<Vec<_>>()
        );
        assert_eq!(
            all[0],
            entry(1, 1),
            "an entry read back equals the one written"
        );
        // Truncating below everything cached brings the new last entry back into memory.
        store.lock().truncate(20).unwrap();
        assert_eq!(store.lock().last_log_id().unwrap().index, 19);
        assert_eq!(read_range(&store.inner, 18..).unwrap().len(), 2);
        store
            .lock()
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 10))
            .unwrap();
        assert_eq!(read_range(&store.inner, ..).unwrap().len(), 9);
    }

    #[test]
    fn truncate_removes_the_tail_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open_with(dir.path(), 512).unwrap();
        put(&store, 1, 40);
        store.lock().truncate(11).unwrap();
        assert_eq!(indexes(&store), (1..=10).collect::<Vec<_>>());
        put(&store, 11, 12);
        drop(store);
        let store = LogStore::open_with(dir.path(), 512).unwrap();
        assert_eq!(indexes(&store), (1..=12).collect::<Vec<_>>());
    }

    #[test]
    fn purge_forgets_entries_and_deletes_whole_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open_with(dir.path(), 512).unwrap();
        put(&store, 1, 40);
        let before = store.lock().segments.len();
        store
            .lock()
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 30))
            .unwrap();
        assert!(store.lock().segments.len() < before);
        assert_eq!(indexes(&store), (31..=40).collect::<Vec<_>>());
        drop(store);
        let store = LogStore::open_with(dir.path(), 512).unwrap();
        assert_eq!(indexes(&store), (31..=40).collect::<Vec<_>>());
        assert_eq!(store.lock().last_log_id().unwrap().index, 40);
    }

    /// A follower that installs a snapshot past its log's end purges everything and goes on
    /// from the snapshot's index: those entries must survive a restart.
    #[test]
    fn entries_after_a_purge_past_the_log_end_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open_with(dir.path(), 4096).unwrap();
        put(&store, 1, 10);
        store
            .lock()
            .purge(LogId::new(CommittedLeaderId::new(2, 1), 100))
            .unwrap();
        assert_eq!(store.lock().last_log_id().unwrap().index, 100);
        put(&store, 101, 110);
        drop(store);
        let store = LogStore::open_with(dir.path(), 4096).unwrap();
        assert_eq!(indexes(&store), (101..=110).collect::<Vec<_>>());
        assert_eq!(store.lock().last_log_id().unwrap().index, 110);
    }

    /// The same layout as written before the fix (purged entries, then the entries after the
    /// purge point, in one segment) reads back whole.
    #[test]
    fn a_segment_with_purged_entries_before_a_gap_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open_with(dir.path(), 1 << 20).unwrap();
        put(&store, 1, 10);
        put(&store, 101, 105);
        drop(store);
        write_atomic(
            dir.path(),
            "purged",
            &LogId::new(CommittedLeaderId::new(2, 1), 100),
            true,
        )
        .unwrap();
        let store = LogStore::open_with(dir.path(), 1 << 20).unwrap();
        assert_eq!(indexes(&store), (101..=105).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_tail_is_cut_off_at_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        put(&store, 1, 5);
        let path = store.lock().segments.values().next().unwrap().path.clone();
        drop(store);
        // A record half written when the power went: length and crc, half a body.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let rec = encode_record(&entry(1, 6)).unwrap();
        f.write_all(&rec[..rec.len() / 2]).unwrap();
        drop(f);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3, 4, 5]);
        put(&store, 6, 7);
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn a_corrupt_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        put(&store, 1, 5);
        let (path, off) = {
            let inner = store.lock();
            (
                inner.segments.values().next().unwrap().path.clone(),
                inner.positions[&4].1,
            )
        };
        drop(store);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"XX", off + 12).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3]);
    }

    struct Builder;

    impl
        openraft::testing::StoreBuilder<
            TypeConfig,
            LogStore,
            crate::cluster::state_machine::StateMachine,
            tempfile::TempDir,
        > for Builder
    {
        async fn build(
            &self,
        ) -> StoreResult<(
            tempfile::TempDir,
            LogStore,
            crate::cluster::state_machine::StateMachine,
        )> {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = LogStore::open(&dir.path().join("raft")).expect("open log");
            let sm =
                crate::cluster::state_machine::StateMachine::for_tests(&dir.path().join("raft"));
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn openraft_storage_suite_passes() {
        openraft::testing::Suite::test_all(Builder).unwrap();
    }
}

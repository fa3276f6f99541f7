//! Durability of the coordinator on one node: a txn log with group-committed fsync,
//! periodic snapshots, recovery, and purge. The state machine sees only [`TxnSink`];
//! the cluster will replace this with the Raft log.
//!
//! Layout under `data_dir/bramble-zk/`: `log.<first zxid, 16 hex>` and
//! `snapshot.<last zxid, 16 hex>`. A log record is `[len u32][crc32c u32][txn]`; a zero
//! length is preallocated space. A snapshot ends with the crc32c of all that precedes it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::watch;

use super::tree::{DataTree, SessionInfo};
use super::txn::{read_acl, write_acl, Txn};
use super::types::Stat;
use crate::zk::jute::{Reader, Writer};

/// Where applied txns go to become durable.
pub trait TxnSink: Send {
    /// Queues an applied txn; it is durable once [`TxnSink::durable`] reaches its zxid.
    fn append(&mut self, txn: &Txn);
    /// Called after each append with the tree as the txn left it (snapshot hook).
    fn after_apply(&mut self, tree: &DataTree);
    /// The highest zxid known durable.
    fn durable(&self) -> watch::Receiver<i64>;
}

/// A sink that keeps nothing: every txn counts as durable at once (tests, in-memory use).
#[derive(Debug)]
pub struct MemorySink {
    tx: watch::Sender<i64>,
}

impl MemorySink {
    /// A new in-memory sink.
    pub fn new() -> Self {
        MemorySink {
            tx: watch::channel(0).0,
        }
    }
}

impl Default for MemorySink {
    fn default() -> Self {
        Self::new()
    }
}

impl TxnSink for MemorySink {
    fn append(&mut self, txn: &Txn) {
        self.tx.send_replace(txn.zxid);
    }
    fn after_apply(&mut self, _tree: &DataTree) {}
    fn durable(&self) -> watch::Receiver<i64> {
        self.tx.subscribe()
    }
}

const SNAP_MAGIC: &[u8; 4] = b"BZKS";
const LOG_MAGIC: &[u8; 4] = b"BZKL";
const FORMAT_VERSION: i32 = 1;

/// The directory holding logs and snapshots.
pub fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("bramble-zk")
}

fn file_zxid(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?;
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

fn list(dir: &Path, prefix: &str) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        if let Some(z) = e.file_name().to_str().and_then(|n| file_zxid(n, prefix)) {
            out.push((z, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Serializes the whole tree (and session table) into snapshot bytes.
pub fn encode_snapshot(tree: &DataTree) -> Vec<u8> {
    let mut w = Writer::new();
    w.buf.extend_from_slice(SNAP_MAGIC);
    w.i32(FORMAT_VERSION).i64(tree.last_zxid());
    w.i32(tree.sessions().len() as i32);
    for (id, s) in tree.sessions() {
        w.i64(*id).i32(s.timeout_ms).buffer(&s.password);
    }
    let paths = tree.paths_parent_first();
    w.i32(paths.len() as i32);
    for p in &paths {
        let n = tree.get(p).expect("path from tree");
        let s = &n.stat;
        w.string(p).buffer(&n.data);
        write_acl(&mut w, &n.acl);
        w.i64(s.czxid).i64(s.mzxid).i64(s.ctime).i64(s.mtime);
        w.i32(s.version)
            .i32(s.cversion)
            .i32(s.aversion)
            .i64(s.ephemeral_owner)
            .i64(s.pzxid);
    }
    let crc = crc32c::crc32c(&w.buf);
    w.buf.extend_from_slice(&crc.to_be_bytes());
    w.buf
}

/// Rebuilds a tree from snapshot bytes; None if the snapshot is corrupt.
pub fn decode_snapshot(buf: &[u8]) -> Option<DataTree> {
    if buf.len() < 8 || &buf[..4] != SNAP_MAGIC {
        return None;
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return None;
    }
    let mut r = Reader::new(&body[4..]);
    let decode = |r: &mut Reader| -> Result<DataTree, crate::zk::jute::DecodeError> {
        if r.i32()? != FORMAT_VERSION {
            return Err(crate::zk::jute::DecodeError::BadValue("snapshot version"));
        }
        let zxid = r.i64()?;
        let n = r.i32()?;
        let mut sessions = BTreeMap::new();
        for _ in 0..n.max(0) {
            let id = r.i64()?;
            let timeout_ms = r.i32()?;
            let password = r.buffer()?;
            sessions.insert(
                id,
                SessionInfo {
                    timeout_ms,
                    password,
                },
            );
        }
        let mut tree = DataTree::new();
        let n = r.i32()?;
        for _ in 0..n.max(0) {
            let path = r.string()?;
            let data = r.buffer()?;
            let acl = read_acl(r)?;
            let stat = Stat {
                czxid: r.i64()?,
                mzxid: r.i64()?,
                ctime: r.i64()?,
                mtime: r.i64()?,
                version: r.i32()?,
                cversion: r.i32()?,
                aversion: r.i32()?,
                ephemeral_owner: r.i64()?,
                pzxid: r.i64()?,
                data_length: 0,
                num_children: 0,
            };
            tree.load_node(path, data, acl, stat);
        }
        tree.load_meta(zxid, sessions);
        Ok(tree)
    };
    decode(&mut r).ok()
}

/// Reads the records of one log file, stopping at preallocated space or a torn tail.
fn read_log(path: &Path) -> std::io::Result<Vec<Txn>> {
    let mut buf = Vec::new();
    File::open(path)?.read_to_end(&mut buf)?;
    let mut out = Vec::new();
    if buf.len() < 8 || &buf[..4] != LOG_MAGIC {
        return Ok(out);
    }
    let mut pos = 8;
    while pos + 8 <= buf.len() {
        let len = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
        let crc = u32::from_be_bytes([buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]]);
        if len == 0 || pos + 8 + len > buf.len() {
            break;
        }
        let rec = &buf[pos + 8..pos + 8 + len];
        if crc32c::crc32c(rec) != crc {
            tracing::warn!(file = %path.display(), offset = pos, "torn or corrupt txn record; log ends here");
            break;
        }
        match Txn::decode(rec) {
            Ok(t) => out.push(t),
            Err(e) => {
                tracing::warn!(file = %path.display(), offset = pos, error = %e, "undecodable txn record; log ends here");
                break;
            }
        }
        pos += 8 + len;
    }
    Ok(out)
}

/// Loads the newest valid snapshot and returns it with the logged txns that follow it.
pub fn recover(data_dir: &Path) -> std::io::Result<(DataTree, Vec<Txn>)> {
    let dir = store_dir(data_dir);
    fs::create_dir_all(&dir)?;
    let mut tree = None;
    for (zxid, path) in list(&dir, "snapshot.")?.into_iter().rev() {
        match fs::read(&path).ok().and_then(|b| decode_snapshot(&b)) {
            Some(t) => {
                tracing::info!(file = %path.display(), zxid, nodes = t.node_count(), "loaded snapshot");
                tree = Some(t);
                break;
            }
            None => tracing::warn!(file = %path.display(), "corrupt snapshot skipped"),
        }
    }
    let tree = tree.unwrap_or_default();
    let mut txns: Vec<Txn> = Vec::new();
    let mut last = tree.last_zxid();
    for (_, path) in list(&dir, "log.")? {
        for t in read_log(&path)? {
            if t.zxid > last {
                last = t.zxid;
                txns.push(t);
            }
        }
    }
    Ok((tree, txns))
}

/// Deletes all but the newest `retain` snapshots and the logs only they needed.
pub fn purge(data_dir: &Path, retain: usize) -> std::io::Result<usize> {
    let dir = store_dir(data_dir);
    let snaps = list(&dir, "snapshot.")?;
    if snaps.len() <= retain {
        return Ok(0);
    }
    let keep_from = snaps[snaps.len() - retain].0;
    let mut removed = 0;
    for (_, p) in &snaps[..snaps.len() - retain] {
        fs::remove_file(p)?;
        removed += 1;
    }
    // A log is needed if it may hold txns after the oldest kept snapshot: keep every log
    // starting after it, and the last one starting at or before it.
    let logs = list(&dir, "log.")?;
    let last_before = logs.iter().rposition(|(z, _)| *z <= keep_from);
    for (i, (_, p)) in logs.iter().enumerate() {
        if last_before.is_some_and(|lb| i < lb) {
            fs::remove_file(p)?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, retain, "purged old snapshots and logs");
    }
    Ok(removed)
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    last_zxid: i64,
    /// A snapshot to write once `buf[..offset]` is durable, then roll to a new log.
    snapshot: Option<(i64, Vec<u8>, usize)>,
    shutdown: bool,
}

/// The txn log: appends are buffered; a writer thread writes and fsyncs whatever has
/// accumulated (group commit) and publishes the durable zxid.
pub struct FileLog {
    shared: Arc<(Mutex<Pending>, Condvar)>,
    durable: watch::Receiver<i64>,
    since_snapshot: u32,
    snap_count: u32,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLog")
            .field("since_snapshot", &self.since_snapshot)
            .finish()
    }
}

struct LogFile {
    dir: PathBuf,
    file: File,
    written: u64,
    allocated: u64,
    prealloc: u64,
    force_sync: bool,
}

impl LogFile {
    fn create(
        dir: &Path,
        first_zxid: i64,
        prealloc: u64,
        force_sync: bool,
    ) -> std::io::Result<LogFile> {
        let path = dir.join(format!("log.{:016x}", first_zxid as u64));
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        let mut hdr = LOG_MAGIC.to_vec();
        hdr.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        file.write_all(&hdr)?;
        file.set_len(prealloc.max(8))?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(LogFile {
            dir: dir.to_path_buf(),
            file,
            written: 8,
            allocated: prealloc.max(8),
            prealloc,
            force_sync,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let need = self.written + bytes.len() as u64;
        if need > self.allocated {
            // Grow in preallocation steps so fdatasync rarely has metadata to flush.
            let steps = (need - self.allocated).div_ceil(self.prealloc);
            self.allocated += steps * self.prealloc;
            self.file.set_len(self.allocated)?;
        }
        use std::io::{Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(self.written))?;
        self.file.write_all(bytes)?;
        self.written = need;
        if self.force_sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

impl FileLog {
    /// Opens a new log starting after `last_zxid` (recovery has already run).
    pub fn open(
        data_dir: &Path,
        last_zxid: i64,
        snap_count: u32,
        preallocate_bytes: u32,
        force_sync: bool,
    ) -> std::io::Result<FileLog> {
        let dir = store_dir(data_dir);
        fs::create_dir_all(&dir)?;
        let mut log = LogFile::create(&dir, last_zxid + 1, preallocate_bytes as u64, force_sync)?;
        let shared: Arc<(Mutex<Pending>, Condvar)> = Arc::default();
        let (tx, rx) = watch::channel(last_zxid);
        let sh = shared.clone();
        let thread = std::thread::Builder::new().name("zk-txnlog".into()).spawn(move || {
            loop {
                let (buf, zxid, snap, stop) = {
                    let (m, cv) = &*sh;
                    let mut p = m.lock().expect("txn log lock");
                    while p.buf.is_empty() && p.snapshot.is_none() && !p.shutdown {
                        p = cv.wait(p).expect("txn log lock");
                    }
                    (std::mem::take(&mut p.buf), p.last_zxid, p.snapshot.take(), p.shutdown)
                };
                let res = (|| -> std::io::Result<()> {
                    match snap {
                        None => log.write(&buf)?,
                        Some((snap_zxid, bytes, offset)) => {
                            log.write(&buf[..offset])?;
                            write_snapshot(&log.dir, snap_zxid, &bytes)?;
                            log = LogFile::create(&log.dir, snap_zxid + 1, log.prealloc, log.force_sync)?;
                            log.write(&buf[offset..])?;
                        }
                    }
                    Ok(())
                })();
                if let Err(e) = res {
                    // Without a log nothing more can be acknowledged: stop publishing.
                    tracing::error!(error = %e, "txn log write failed; writes will no longer be acknowledged");
                    return;
                }
                if zxid > *tx.borrow() {
                    tx.send_replace(zxid);
                }
                if stop {
                    return;
                }
            }
        })?;
        Ok(FileLog {
            shared,
            durable: rx,
            since_snapshot: 0,
            snap_count,
            thread: Some(thread),
        })
    }

    /// Asks the writer to flush what it has and stop; waits for it.
    pub fn close(&mut self) {
        {
            let (m, cv) = &*self.shared;
            m.lock().expect("txn log lock").shutdown = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FileLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_snapshot(dir: &Path, zxid: i64, bytes: &[u8]) -> std::io::Result<()> {
    let name = format!("snapshot.{:016x}", zxid as u64);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(&name))?;
    sync_dir(dir)?;
    tracing::info!(zxid, bytes = bytes.len(), "wrote snapshot");
    Ok(())
}

impl TxnSink for FileLog {
    fn append(&mut self, txn: &Txn) {
        let rec = txn.encode();
        let (m, cv) = &*self.shared;
        let mut p = m.lock().expect("txn log lock");
        p.buf.extend_from_slice(&(rec.len() as u32).to_be_bytes());
        p.buf.extend_from_slice(&crc32c::crc32c(&rec).to_be_bytes());
        p.buf.extend_from_slice(&rec);
        p.last_zxid = txn.zxid;
        cv.notify_one();
        self.since_snapshot += 1;
    }

    fn after_apply(&mut self, tree: &DataTree) {
        if self.since_snapshot < self.snap_count {
            return;
        }
        let (m, cv) = &*self.shared;
        if m.lock().expect("txn log lock").snapshot.is_some() {
            // The previous snapshot is still being written: try again after the next txn.
            return;
        }
        self.since_snapshot = 0;
        // Encoded outside the log lock so the writer keeps committing meanwhile; the
        // caller holds the coordinator, so no txn can slip in between.
        let bytes = encode_snapshot(tree);
        let mut p = m.lock().expect("txn log lock");
        let off = p.buf.len();
        p.snapshot = Some((tree.last_zxid(), bytes, off));
        cv.notify_one();
    }

    fn durable(&self) -> watch::Receiver<i64> {
        self.durable.clone()
    }
}

/// Writes a snapshot of `tree` right now (used at startup after replaying logs, so
/// recovery time stays bounded).
pub fn snapshot_now(data_dir: &Path, tree: &DataTree) -> std::io::Result<()> {
    let dir = store_dir(data_dir);
    fs::create_dir_all(&dir)?;
    write_snapshot(&dir, tree.last_zxid(), &encode_snapshot(tree))
}

/// Reads `myid` from the data dir (one line, a number 1..=255), if present.
pub fn read_myid(data_dir: &Path) -> Result<Option<u8>, String> {
    let p = data_dir.join("myid");
    match fs::read_to_string(&p) {
        Ok(s) => s.trim().parse::<u8>().map(Some).map_err(|_| {
            format!(
                "{}: expected a number 1..=255, got {:?}",
                p.display(),
                s.trim()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

//! The Raft state machine (`RaftStateMachine`): committed entries are applied to the
//! coordinator, on every node in the same order, each with the zxid of its log position.
//!
//! The coordinator itself sits behind [`Applier`] so that the node's ZooKeeper server can
//! apply under its own lock and route the watch notifications an entry fires to its
//! connections. Snapshots are the coordinator's snapshot format (`persist::encode_snapshot`)
//! wrapped with the Raft metadata, in `<data_dir>/raft/snapshot`:
//! `[meta length u32][meta JSON][coordinator snapshot][crc32c u32 of all before]`.
//! At startup the state machine loads that snapshot; openraft then re-applies the committed
//! log entries after it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, EntryPayload, StorageError, StorageIOError, StoredMembership};
use tokio::sync::watch;

use super::log_store::{read_json, write_atomic};
use super::types::{
    zxid_of, Command, CommandKind, CommandResult, Entry, LogId, NodeId, TypeConfig,
};
use crate::coordinator::{Caller, Coordinator, Outcome, TxnResult};

type StoreResult<T> = Result<T, StorageError<NodeId>>;
type Meta = SnapshotMeta<NodeId, BasicNode>;

/// The coordinator as the state machine sees it. Implementations take the monotonic clock
/// themselves (session deadlines are local bookkeeping, not replicated state).
pub trait Applier: Send + Sync + 'static {
    /// Applies one committed command at `zxid`.
    fn apply(&self, cmd: &Command, zxid: i64) -> TxnResult;
    /// The coordinator's snapshot bytes, as of the last applied command.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the coordinator's state with a snapshot.
    fn install(&self, bytes: &[u8]) -> Result<(), String>;
}

/// Applies a command to a coordinator (shared by every [`Applier`]).
pub fn apply_command(
    coord: &mut Coordinator,
    cmd: &Command,
    zxid: i64,
    now_mono_ms: i64,
) -> Outcome {
    let caller = Caller {
        session_id: cmd.session_id,
        auth: &cmd.auth,
    };
    match &cmd.kind {
        CommandKind::Write(op) => {
            coord.write_at(caller, cmd.cxid, op, zxid, cmd.time_ms, cmd.znode_cap_bytes)
        }
        CommandKind::Multi(ops) => coord.multi_at(
            caller,
            cmd.cxid,
            ops,
            zxid,
            cmd.time_ms,
            cmd.znode_cap_bytes,
        ),
        CommandKind::CreateSession {
            timeout_ms,
            password,
        } => coord.create_session_at(
            cmd.session_id,
            *timeout_ms,
            password.clone(),
            zxid,
            cmd.time_ms,
            now_mono_ms,
        ),
        CommandKind::CloseSession | CommandKind::ExpireSession => {
            coord.close_session_at(cmd.session_id, cmd.cxid, zxid, cmd.time_ms)
        }
        CommandKind::Reap { path } => coord.reap_at(path, zxid, cmd.time_ms),
    }
}

/// A bare coordinator is an applier (unit tests, the storage suite).
impl Applier for Mutex<Coordinator> {
    fn apply(&self, cmd: &Command, zxid: i64) -> TxnResult {
        apply_command(&mut self.lock().expect("coordinator lock"), cmd, zxid, 0).result
    }
    fn snapshot(&self) -> Vec<u8> {
        crate::coordinator::persist::encode_snapshot(self.lock().expect("coordinator lock").tree())
    }
    fn install(&self, bytes: &[u8]) -> Result<(), String> {
        let tree = crate::coordinator::persist::decode_snapshot(bytes)
            .ok_or("corrupt coordinator snapshot")?;
        self.lock().expect("coordinator lock").replace_tree(tree, 0);
        Ok(())
    }
}

/// A snapshot held in memory (the last one built or installed).
#[derive(Clone)]
struct Stored {
    meta: Meta,
    data: Vec<u8>,
}

/// The state machine of this node.
pub struct StateMachine {
    applier: Arc<dyn Applier>,
    dir: PathBuf,
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, BasicNode>,
    current: Arc<Mutex<Option<Stored>>>,
    applied_tx: watch::Sender<u64>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("last_applied", &self.last_applied)
            .finish()
    }
}

/// Builds a snapshot from data captured when openraft asked for the builder.
pub struct SnapshotBuilder {
    stored: Stored,
    dir: PathBuf,
    current: Arc<Mutex<Option<Stored>>>,
}

fn encode_file(s: &Stored) -> std::io::Result<Vec<u8>> {
    let meta = serde_json::to_vec(&s.meta).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(meta.len() + s.data.len() + 8);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&s.data);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn decode_file(buf: &[u8]) -> Option<Stored> {
    if buf.len() < 8 {
        return None;
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return None;
    }
    let len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let meta: Meta = serde_json::from_slice(body.get(4..4 + len)?).ok()?;
    Some(Stored {
        meta,
        data: body[4 + len..].to_vec(),
    })
}

fn save(dir: &Path, s: &Stored) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join("snapshot.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&encode_file(s)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join("snapshot"))?;
    std::fs::File::open(dir)?.sync_all()?;
    // The snapshot id counter only needs to be unique per node; it lives next to it.
    write_atomic(dir, "snapshot-id", &s.meta.snapshot_id, false)
}

impl StateMachine {
    /// Opens the state machine: loads `<dir>/snapshot` into the applier, if there is one.
    pub fn open(dir: &Path, applier: Arc<dyn Applier>) -> std::io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let mut sm = StateMachine {
            applier,
            dir: dir.to_path_buf(),
            last_applied: None,
            membership: StoredMembership::default(),
            current: Arc::new(Mutex::new(None)),
            applied_tx: watch::channel(0).0,
        };
        match std::fs::read(dir.join("snapshot")) {
            Ok(buf) => {
                let stored = decode_file(&buf).ok_or_else(|| {
                    std::io::Error::other(format!(
                        "{}: corrupt raft snapshot",
                        dir.join("snapshot").display()
                    ))
                })?;
                sm.applier
                    .install(&stored.data)
                    .map_err(std::io::Error::other)?;
                sm.last_applied = stored.meta.last_log_id;
                sm.membership = stored.meta.last_membership.clone();
                sm.applied_tx
                    .send_replace(sm.last_applied.map(|l| l.index).unwrap_or(0));
                tracing::info!(last_applied = ?sm.last_applied, bytes = stored.data.len(), "raft snapshot loaded");
                *sm.current.lock().expect("snapshot lock") = Some(stored);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(sm)
    }

    /// A state machine over an empty in-memory coordinator (tests).
    pub fn for_tests(dir: &Path) -> StateMachine {
        Self::open(dir, Arc::new(Mutex::new(Coordinator::in_memory()))).expect("state machine")
    }

    /// The applied log index, as it advances (read-your-writes and `sync` wait on it).
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let s = self.stored.clone();
        let sig = s.meta.signature();
        let dir = self.dir.clone();
        let s2 = s.clone();
        tokio::task::spawn_blocking(move || save(&dir, &s2))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(sig.clone()), &e))?
            .map_err(|e| StorageIOError::write_snapshot(Some(sig), &e))?;
        tracing::info!(last_log = ?s.meta.last_log_id, bytes = s.data.len(), "raft snapshot written");
        *self.current.lock().expect("snapshot lock") = Some(s.clone());
        Ok(Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId>, StoredMembership<NodeId, BasicNode>)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<CommandResult>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        for entry in entries {
            let zxid = zxid_of(&entry.log_id);
            assert!(
                self.last_applied
                    .is_none_or(|l| l.index < entry.log_id.index),
                "applied index must grow"
            );
            self.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Normal(cmd) => self.applier.apply(&cmd, zxid),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    TxnResult::Checked
                }
                EntryPayload::Blank => TxnResult::Checked,
            };
            out.push(CommandResult { zxid, result });
        }
        if let Some(l) = self.last_applied {
            self.applied_tx.send_replace(l.index);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Captured now, between two applies, so the data matches `last_applied` exactly.
        let data = self.applier.snapshot();
        let next_id: u64 = read_json(&self.dir, "snapshot-id")
            .ok()
            .flatten()
            .and_then(|s: String| s.rsplit('-').next().and_then(|n| n.parse().ok()))
            .unwrap_or(0)
            + 1;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{next_id}", l.leader_id, l.index),
            None => format!("none-{next_id}"),
        };
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        SnapshotBuilder {
            stored: Stored { meta, data },
            dir: self.dir.clone(),
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let stored = Stored {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        let sig = meta.signature();
        self.applier.install(&stored.data).map_err(|e| {
            StorageIOError::read_snapshot(Some(sig.clone()), &std::io::Error::other(e))
        })?;
        save(&self.dir, &stored).map_err(|e| StorageIOError::write_snapshot(Some(sig), &e))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.applied_tx
            .send_replace(self.last_applied.map(|l| l.index).unwrap_or(0));
        tracing::info!(last_log = ?meta.last_log_id, bytes = stored.data.len(), "raft snapshot installed");
        *self.current.lock().expect("snapshot lock") = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let cur = self.current.lock().expect("snapshot lock").clone();
        Ok(cur.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

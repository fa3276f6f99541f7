//! The coordinator: ZooKeeper's data model as a pure state machine.
//!
//! A write is validated against the tree and turned into a [`txn::Txn`] carrying the zxid
//! and wall time; [`Coordinator`] applies it to the [`tree::DataTree`], hands it to a
//! [`persist::TxnSink`] (the txn log here, the Raft log in a cluster), and turns the tree
//! events it caused into watch notifications. Time comes in as arguments: nothing in here
//! reads a clock, so tests replay exactly.

pub mod acl;
pub mod base64_bytes;
pub mod config;
pub mod persist;
pub mod session;
pub mod tree;
pub mod txn;
pub mod types;
pub mod watch;

pub use config::CoordinatorConfig;
pub use tree::{Caller, DataTree, TxnResult, WriteOp};
pub use types::*;

use persist::TxnSink;
use session::SessionTracker;
use txn::{Txn, TxnBody};
use watch::WatchManager;

/// Limits the state machine enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest node data, bytes.
    pub max_data_bytes: usize,
    /// Session timeout bounds, ms.
    pub session_timeout_ms: (i32, i32),
}

/// What a write did: its zxid, its result, and the notifications it fired.
#[derive(Debug)]
pub struct Outcome {
    /// The zxid the write was given.
    pub zxid: i64,
    /// The result (an error result for failed writes).
    pub result: TxnResult,
    /// Notifications to deliver before the reply.
    pub notifications: Vec<WatchEvent>,
}

/// The server's view of the znode tree, sessions and watches.
pub struct Coordinator {
    tree: DataTree,
    watches: WatchManager,
    sessions: SessionTracker,
    sink: Box<dyn TxnSink>,
    limits: Limits,
    /// Identities of sessions attached to this node (local, like watches).
    auth: std::collections::HashMap<i64, Vec<Id>>,
    /// The znode pool of the memory budget: writes that would grow the tree past it are
    /// refused with ZooKeeper's QuotaExceeded (-125), which clients know.
    tree_bytes_max: u64,
}

/// Heap bytes a znode costs beyond its data (path held twice, stat, children set, ACL):
/// an estimate used for the budget.
pub const NODE_OVERHEAD_BYTES: u64 = 256;

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("zxid", &self.tree.last_zxid())
            .finish()
    }
}

/// Result of a connect attempt.
#[derive(Debug)]
pub enum Connect {
    /// A session (new or reattached) with its negotiated timeout and password.
    Session {
        /// Session id.
        id: i64,
        /// Negotiated timeout.
        timeout_ms: i32,
        /// Password.
        password: Vec<u8>,
        /// The create-session write, for a new session.
        outcome: Option<Outcome>,
    },
    /// Unknown/expired session or wrong password: answer with timeout 0 and close.
    Expired,
}

/// A multi refused as a whole for the memory cap: the first op carries the reason, the
/// rest `RuntimeInconsistency`, as ZooKeeper reports a failed multi.
fn quota_exceeded_multi(ops: usize) -> TxnBody {
    TxnBody::Multi(
        (0..ops)
            .map(|i| {
                let err = if i == 0 {
                    ErrorCode::QuotaExceeded
                } else {
                    ErrorCode::RuntimeInconsistency
                };
                TxnBody::Error { err: err.code() }
            })
            .collect(),
    )
}

impl Coordinator {
    /// A coordinator over a recovered tree. Sessions found in the tree are tracked afresh
    /// from `now_mono_ms`, so clients get a full timeout to come back after a restart.
    pub fn new(
        tree: DataTree,
        sink: Box<dyn TxnSink>,
        limits: Limits,
        max_watches: usize,
        server_id: u8,
        now_wall_ms: i64,
        now_mono_ms: i64,
    ) -> Self {
        let mut sessions = SessionTracker::new(server_id, now_wall_ms);
        for (id, s) in tree.sessions() {
            sessions.add(*id, s.timeout_ms as i64, now_mono_ms);
        }
        Coordinator {
            tree,
            watches: WatchManager::new(max_watches),
            sessions,
            sink,
            limits,
            auth: Default::default(),
            tree_bytes_max: u64::MAX,
        }
    }

    /// An empty in-memory coordinator (tests).
    pub fn in_memory() -> Self {
        let limits = Limits {
            max_data_bytes: 1 << 20,
            session_timeout_ms: (4000, 40000),
        };
        Self::new(
            DataTree::new(),
            Box::new(persist::MemorySink::new()),
            limits,
            0,
            1,
            0,
            0,
        )
    }

    /// The tree (reads, snapshots, four-letter words).
    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    /// The watches.
    pub fn watches(&self) -> &WatchManager {
        &self.watches
    }

    /// The live-session tracker.
    pub fn sessions(&self) -> &SessionTracker {
        &self.sessions
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The last applied zxid.
    pub fn last_zxid(&self) -> i64 {
        self.tree.last_zxid()
    }

    /// The durable-zxid feed of the sink.
    pub fn durable(&self) -> tokio::sync::watch::Receiver<i64> {
        self.sink.durable()
    }

    fn next_zxid(&self) -> i64 {
        let z = self.tree.last_zxid() + 1;
        assert!(z & 0xFFFF_FFFF != 0, "zxid counter overflow");
        z
    }

    /// Applies a txn, logs it, and fires watches. Used for live writes and by replay.
    pub fn apply(&mut self, txn: &Txn) -> Outcome {
        let (result, events) = self.tree.apply(txn);
        self.sink.append(txn);
        self.sink.after_apply(&self.tree);
        let auth = &self.auth;
        let notifications = self.watches.trigger(&events, |s| {
            auth.get(&s).map(|v| v.as_slice()).unwrap_or(&[])
        });
        Outcome {
            zxid: txn.zxid,
            result,
            notifications,
        }
    }

    /// Replays recovered txns without logging them again.
    pub fn replay(tree: &mut DataTree, txns: &[Txn]) {
        for t in txns {
            tree.apply(t);
        }
    }

    /// Cap the tree's estimated memory (the znode pool of the memory budget).
    pub fn set_tree_bytes_max(&mut self, bytes: u64) {
        self.tree_bytes_max = bytes;
    }

    /// The tree's estimated heap use: data plus a fixed cost per node.
    pub fn tree_memory_bytes(&self) -> u64 {
        self.tree.data_bytes() + self.tree.node_count() as u64 * NODE_OVERHEAD_BYTES
    }

    /// The tree's memory cap (the znode pool of this node's budget).
    pub fn tree_bytes_max(&self) -> u64 {
        self.tree_bytes_max
    }

    /// What a write on this node may grow the tree to: the znode pool less what the
    /// watches registered here take from it.
    pub fn write_cap_bytes(&self) -> u64 {
        self.tree_bytes_max.saturating_sub(self.watches.bytes())
    }

    /// What the tree and this node's watches take from the znode pool.
    pub fn znode_pool_used_bytes(&self) -> u64 {
        self.tree_memory_bytes() + self.watches.bytes()
    }

    /// Whether `ops` would grow the tree past `cap_bytes`. Depends only on the tree and the
    /// ops, so every replica at the same log position answers alike. A create counts its
    /// data, path and [`NODE_OVERHEAD_BYTES`]; a setData its whole new data (an upper bound
    /// of the growth); deletes and ACL changes never count.
    pub fn would_exceed(&self, ops: &[&WriteOp], cap_bytes: u64) -> bool {
        let growth: u64 = ops
            .iter()
            .map(|op| match op {
                WriteOp::Create { path, data, .. } => {
                    data.len() as u64 + path.len() as u64 + NODE_OVERHEAD_BYTES
                }
                WriteOp::SetData { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum();
        growth > 0 && self.tree_memory_bytes().saturating_add(growth) > cap_bytes
    }

    /// Executes one write for a caller at wall time `time_ms`, capped by this node's pool.
    pub fn write(&mut self, caller: Caller, cxid: i32, op: &WriteOp, time_ms: i64) -> Outcome {
        let zxid = self.next_zxid();
        let cap = Some(self.write_cap_bytes());
        self.write_at(caller, cxid, op, zxid, time_ms, cap)
    }

    /// Executes one write with a zxid chosen by the caller (the Raft log position in a
    /// cluster, where validation happens as the entry is applied, on every node alike).
    /// `cap_bytes` is the tree's memory cap for this write: a write that would grow the
    /// tree past it is refused with `QuotaExceeded`. In a cluster the cap travels in the
    /// log entry (not this node's own budget), so every replica refuses or applies alike;
    /// `None` (the node's own bookkeeping writes) is not capped.
    pub fn write_at(
        &mut self,
        caller: Caller,
        cxid: i32,
        op: &WriteOp,
        zxid: i64,
        time_ms: i64,
        cap_bytes: Option<u64>,
    ) -> Outcome {
        let body = if cap_bytes.is_some_and(|cap| self.would_exceed(&[op], cap)) {
            TxnBody::Error {
                err: ErrorCode::QuotaExceeded.code(),
            }
        } else {
            match self.tree.prepare(caller, op, self.limits.max_data_bytes) {
                Ok(b) => b,
                Err(e) => TxnBody::Error { err: e.code() },
            }
        };
        let txn = Txn {
            session_id: caller.session_id,
            cxid,
            zxid,
            time_ms,
            body,
        };
        self.apply(&txn)
    }

    /// Executes a multi atomically, capped by this node's pool.
    pub fn multi(&mut self, caller: Caller, cxid: i32, ops: &[WriteOp], time_ms: i64) -> Outcome {
        let zxid = self.next_zxid();
        let cap = Some(self.write_cap_bytes());
        self.multi_at(caller, cxid, ops, zxid, time_ms, cap)
    }

    /// Executes a multi with a zxid chosen by the caller (see [`Coordinator::write_at`]).
    pub fn multi_at(
        &mut self,
        caller: Caller,
        cxid: i32,
        ops: &[WriteOp],
        zxid: i64,
        time_ms: i64,
        cap_bytes: Option<u64>,
    ) -> Outcome {
        let refs: Vec<&WriteOp> = ops.iter().collect();
        let body = if cap_bytes.is_some_and(|cap| self.would_exceed(&refs, cap)) {
            quota_exceeded_multi(ops.len())
        } else {
            self.tree
                .prepare_multi(caller, ops, self.limits.max_data_bytes, zxid, time_ms)
        };
        let txn = Txn {
            session_id: caller.session_id,
            cxid,
            zxid,
            time_ms,
            body,
        };
        self.apply(&txn)
    }

    /// Negotiates a requested session timeout into the configured bounds.
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        let (lo, hi) = self.limits.session_timeout_ms;
        requested_ms.clamp(lo, hi)
    }

    /// A fresh session id (this node's id in the top byte, so nodes never collide).
    pub fn new_session_id(&mut self) -> i64 {
        self.sessions.next_session_id()
    }

    /// Creates a session whose id, timeout and password were chosen by the node the client
    /// connected to (cluster mode: the entry is applied on every node). The session is
    /// tracked from `now_mono_ms`.
    pub fn create_session_at(
        &mut self,
        id: i64,
        timeout_ms: i32,
        password: Vec<u8>,
        zxid: i64,
        time_ms: i64,
        now_mono_ms: i64,
    ) -> Outcome {
        if self.tree.sessions().contains_key(&id) {
            // A retried proposal: the session exists already; do not reset it.
            let txn = Txn {
                session_id: id,
                cxid: 0,
                zxid,
                time_ms,
                body: TxnBody::Error {
                    err: ErrorCode::SystemError.code(),
                },
            };
            return self.apply(&txn);
        }
        let txn = Txn {
            session_id: id,
            cxid: 0,
            zxid,
            time_ms,
            body: TxnBody::CreateSession {
                timeout_ms,
                password,
            },
        };
        let out = self.apply(&txn);
        self.sessions.add(id, timeout_ms as i64, now_mono_ms);
        out
    }

    /// Closes a session with a zxid chosen by the caller; a session that is already gone
    /// gives an error txn (an expiry racing the client's own close).
    pub fn close_session_at(
        &mut self,
        session_id: i64,
        cxid: i32,
        zxid: i64,
        time_ms: i64,
    ) -> Outcome {
        self.sessions.remove(session_id);
        self.watches.remove_session(session_id);
        self.auth.remove(&session_id);
        let body = if self.tree.sessions().contains_key(&session_id) {
            TxnBody::CloseSession
        } else {
            TxnBody::Error {
                err: ErrorCode::SessionExpired.code(),
            }
        };
        let txn = Txn {
            session_id,
            cxid,
            zxid,
            time_ms,
            body,
        };
        self.apply(&txn)
    }

    /// Checks a reattaching client's session id and password against the replicated
    /// session table; on success the session is touched and its timeout returned.
    pub fn reattach(&mut self, session_id: i64, password: &[u8], now_mono_ms: i64) -> Option<i32> {
        let s = self.tree.sessions().get(&session_id)?;
        if s.password != password {
            return None;
        }
        let timeout = s.timeout_ms;
        if !self.sessions.contains(session_id) {
            self.sessions.add(session_id, timeout as i64, now_mono_ms);
        }
        self.sessions.touch(session_id, now_mono_ms);
        Some(timeout)
    }

    /// Restarts every session's deadline from `now_mono_ms`: a new quorum leader gives each
    /// session a full timeout, since it did not hear the pings the old leader heard.
    pub fn touch_all(&mut self, now_mono_ms: i64) {
        let ids: Vec<(i64, i32)> = self
            .tree
            .sessions()
            .iter()
            .map(|(id, s)| (*id, s.timeout_ms))
            .collect();
        for (id, timeout) in ids {
            self.sessions.add(id, timeout as i64, now_mono_ms);
        }
    }

    /// Deletes one reaping candidate with a zxid chosen by the caller (cluster mode: the
    /// leader proposes the paths, every node re-checks them as the entry is applied).
    pub fn reap_at(&mut self, path: &str, zxid: i64, time_ms: i64) -> Outcome {
        let still = self.tree.reap_candidates(time_ms).iter().any(|p| p == path);
        let superuser = [Id {
            scheme: "super".into(),
            id: String::new(),
        }];
        let body = if still {
            let op = WriteOp::Delete {
                path: path.to_string(),
                version: -1,
            };
            self.tree
                .prepare(
                    Caller {
                        session_id: 0,
                        auth: &superuser,
                    },
                    &op,
                    usize::MAX,
                )
                .unwrap_or_else(|e| TxnBody::Error { err: e.code() })
        } else {
            TxnBody::Error {
                err: ErrorCode::NoNode.code(),
            }
        };
        let txn = Txn {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms,
            body,
        };
        self.apply(&txn)
    }

    /// Replaces the tree wholesale (a Raft snapshot was installed): sessions are tracked
    /// afresh from `now_mono_ms`.
    pub fn replace_tree(&mut self, tree: DataTree, now_mono_ms: i64) {
        self.tree = tree;
        // The tracker keeps its id generator; only its deadlines restart.
        let known: Vec<i64> = self.tree.sessions().keys().copied().collect();
        for id in self.sessions.ids() {
            if !known.contains(&id) {
                self.sessions.remove(id);
            }
        }
        self.touch_all(now_mono_ms);
    }

    /// Handles a ConnectRequest's session part: new session (id 0) or reattach.
    pub fn connect(
        &mut self,
        session_id: i64,
        password: &[u8],
        requested_timeout_ms: i32,
        new_password: [u8; 16],
        time_ms: i64,
        now_mono_ms: i64,
    ) -> Connect {
        let (lo, hi) = self.limits.session_timeout_ms;
        let timeout_ms = requested_timeout_ms.clamp(lo, hi);
        if session_id != 0 {
            return match self.tree.sessions().get(&session_id) {
                Some(s) if s.password == password && self.sessions.contains(session_id) => {
                    let timeout_ms = s.timeout_ms;
                    self.sessions.touch(session_id, now_mono_ms);
                    Connect::Session {
                        id: session_id,
                        timeout_ms,
                        password: s.password.clone(),
                        outcome: None,
                    }
                }
                _ => Connect::Expired,
            };
        }
        let id = self.sessions.next_session_id();
        let txn = Txn {
            session_id: id,
            cxid: 0,
            zxid: self.next_zxid(),
            time_ms,
            body: TxnBody::CreateSession {
                timeout_ms,
                password: new_password.to_vec(),
            },
        };
        let outcome = self.apply(&txn);
        self.sessions.add(id, timeout_ms as i64, now_mono_ms);
        Connect::Session {
            id,
            timeout_ms,
            password: new_password.to_vec(),
            outcome: Some(outcome),
        }
    }

    /// The client of a session was heard from.
    pub fn touch(&mut self, session_id: i64, now_mono_ms: i64) -> bool {
        self.sessions.touch(session_id, now_mono_ms)
    }

    /// Sessions past their deadline.
    pub fn expired_sessions(&self, now_mono_ms: i64) -> Vec<i64> {
        self.sessions.expired(now_mono_ms)
    }

    /// Closes a session (client request or expiry): its ephemerals go, their watches fire.
    pub fn close_session(&mut self, session_id: i64, cxid: i32, time_ms: i64) -> Outcome {
        self.sessions.remove(session_id);
        self.watches.remove_session(session_id);
        self.auth.remove(&session_id);
        let txn = Txn {
            session_id,
            cxid,
            zxid: self.next_zxid(),
            time_ms,
            body: TxnBody::CloseSession,
        };
        self.apply(&txn)
    }

    /// Drops the watches of a session whose connection went away (the session lives on).
    pub fn detach(&mut self, session_id: i64) {
        self.watches.remove_session(session_id);
        self.auth.remove(&session_id);
    }

    /// Records the identities of an attached session (its ip, digests it proved).
    pub fn set_session_auth(&mut self, session_id: i64, ids: Vec<Id>) {
        self.auth.insert(session_id, ids);
    }

    /// Deletes empty containers and expired TTL nodes (ZooKeeper's ContainerManager).
    pub fn reap(&mut self, time_ms: i64) -> Vec<Outcome> {
        let mut out = Vec::new();
        for path in self.tree.reap_candidates(time_ms) {
            let op = WriteOp::Delete { path, version: -1 };
            let caller = Caller {
                session_id: 0,
                auth: &[],
            };
            // Reaping is the server's own act: ACLs do not apply, only emptiness.
            let body = match self.tree.prepare(
                Caller {
                    auth: &[Id {
                        scheme: "super".into(),
                        id: String::new(),
                    }],
                    ..caller
                },
                &op,
                usize::MAX,
            ) {
                Ok(b) => b,
                Err(_) => continue,
            };
            let txn = Txn {
                session_id: 0,
                cxid: 0,
                zxid: self.next_zxid(),
                time_ms,
                body,
            };
            out.push(self.apply(&txn));
        }
        out
    }

    // ------------------------------------------------------------------ reads

    fn readable(&self, caller: Caller, path: &str) -> Result<&tree::Node, ErrorCode> {
        let n = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        acl::check(&n.acl, perms::READ, caller.auth)?;
        Ok(n)
    }

    /// exists: the stat, registering a data watch whether or not the node exists.
    pub fn exists(&mut self, caller: Caller, path: &str, watch: bool) -> Result<Stat, ErrorCode> {
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        if watch {
            self.add_watch_entry(caller.session_id, WatchKind::Data, path)?;
        }
        self.tree
            .get(path)
            .map(|n| n.client_stat())
            .ok_or(ErrorCode::NoNode)
    }

    /// getData.
    pub fn get_data(
        &mut self,
        caller: Caller,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<u8>, Stat), ErrorCode> {
        let n = self.readable(caller, path)?;
        let r = (n.data.clone(), n.client_stat());
        if watch {
            self.add_watch_entry(caller.session_id, WatchKind::Data, path)?;
        }
        Ok(r)
    }

    /// getChildren / getChildren2.
    pub fn get_children(
        &mut self,
        caller: Caller,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), ErrorCode> {
        let n = self.readable(caller, path)?;
        let r = (n.children.iter().cloned().collect(), n.client_stat());
        if watch {
            self.add_watch_entry(caller.session_id, WatchKind::Child, path)?;
        }
        Ok(r)
    }

    /// getACL (READ or ADMIN suffices, as in ZooKeeper 3.8).
    pub fn get_acl(&self, caller: Caller, path: &str) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let n = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        acl::check(&n.acl, perms::READ | perms::ADMIN, caller.auth)?;
        Ok((n.acl.to_vec(), n.client_stat()))
    }

    /// getAllChildrenNumber: every descendant.
    pub fn all_children_number(&self, caller: Caller, path: &str) -> Result<i32, ErrorCode> {
        self.readable(caller, path)?;
        let mut count = 0i32;
        let mut stack = vec![path.to_string()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.tree.get(&p) {
                for c in &n.children {
                    count += 1;
                    stack.push(if p == "/" {
                        format!("/{c}")
                    } else {
                        format!("{p}/{c}")
                    });
                }
            }
        }
        Ok(count)
    }

    /// getEphemerals of the caller's session under a prefix.
    pub fn ephemerals(&self, caller: Caller, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .tree
            .ephemerals_of(caller.session_id)
            .filter(|p| prefix == "/" || p.starts_with(prefix))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// addWatch (mode 0 persistent, 1 persistent-recursive).
    pub fn add_watch(&mut self, caller: Caller, path: &str, mode: i32) -> Result<(), ErrorCode> {
        let kind = match mode {
            0 => WatchKind::Persistent,
            1 => WatchKind::PersistentRecursive,
            _ => return Err(ErrorCode::BadArguments),
        };
        self.add_watch_entry(caller.session_id, kind, path)
    }

    /// Registers a watch within the room the tree leaves in the znode pool (and
    /// `max_watches`); beyond it the request is refused with `QuotaExceeded` and no
    /// watch is set.
    fn add_watch_entry(
        &mut self,
        session_id: i64,
        kind: WatchKind,
        path: &str,
    ) -> Result<(), ErrorCode> {
        self.set_watch_room();
        self.watches.add(session_id, kind, path)
    }

    /// A persistent recursive watch of the node's own (in-process watchers): past the
    /// pool's cap, as the node's own bookkeeping writes are, but counted.
    pub fn add_own_watch(&mut self, session_id: i64, path: &str) {
        self.watches
            .add_uncapped(session_id, WatchKind::PersistentRecursive, path);
    }

    fn set_watch_room(&mut self) {
        let room = self.tree_bytes_max.saturating_sub(self.tree_memory_bytes());
        self.watches.set_bytes_max(room);
    }

    /// checkWatches (remove = false) / removeWatches (remove = true). WatcherType:
    /// 1 children, 2 data, 3 any.
    pub fn remove_watches(
        &mut self,
        caller: Caller,
        path: &str,
        watcher_type: i32,
        remove: bool,
    ) -> Result<(), ErrorCode> {
        if !(1..=3).contains(&watcher_type) {
            return Err(ErrorCode::BadArguments);
        }
        let found = if remove {
            self.watches.remove(caller.session_id, path, watcher_type)
        } else {
            self.watches.contains(caller.session_id, path, watcher_type)
        };
        if found {
            Ok(())
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    /// setWatches / setWatches2 after a reconnect: watches whose event already happened
    /// since `relative_zxid` fire now; the rest are registered, all of them or, when they
    /// do not fit the znode pool (or `max_watches`), none: then nothing fires either and
    /// the request is answered `QuotaExceeded`. (The lists are the wire record's fields,
    /// hence the argument count.)
    #[allow(clippy::too_many_arguments)]
    pub fn set_watches(
        &mut self,
        session_id: i64,
        relative_zxid: i64,
        data: &[String],
        exist: &[String],
        child: &[String],
        persistent: &[String],
        recursive: &[String],
    ) -> Result<Vec<WatchEvent>, ErrorCode> {
        let mut fire = Vec::new();
        let mut register: Vec<(WatchKind, &str)> = Vec::new();
        let mut ev = |kind, path: &String| {
            fire.push(WatchEvent {
                session_id,
                kind,
                path: path.clone(),
            })
        };
        for p in data {
            match self.tree.get(p) {
                None => ev(EventType::NodeDeleted, p),
                Some(n) if n.stat.mzxid > relative_zxid => ev(EventType::NodeDataChanged, p),
                Some(_) => register.push((WatchKind::Data, p)),
            }
        }
        for p in exist {
            match self.tree.get(p) {
                Some(_) => ev(EventType::NodeCreated, p),
                None => register.push((WatchKind::Data, p)),
            }
        }
        for p in child {
            match self.tree.get(p) {
                None => ev(EventType::NodeDeleted, p),
                Some(n) if n.stat.pzxid > relative_zxid => ev(EventType::NodeChildrenChanged, p),
                Some(_) => register.push((WatchKind::Child, p)),
            }
        }
        register.extend(
            persistent
                .iter()
                .map(|p| (WatchKind::Persistent, p.as_str())),
        );
        // (ZooKeeper adds these without checking the node; so do we.)
        register.extend(
            recursive
                .iter()
                .map(|p| (WatchKind::PersistentRecursive, p.as_str())),
        );
        self.set_watch_room();
        if !self.watches.fits(session_id, &register) {
            return Err(ErrorCode::QuotaExceeded);
        }
        for (kind, path) in register {
            self.watches
                .add(session_id, kind, path)
                .expect("checked to fit");
        }
        Ok(fire)
    }
}

#[cfg(test)]
mod tests;

//! The Raft type configuration: what a log entry carries ([`Command`]) and what applying
//! it answers ([`CommandResult`]).

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::coordinator::{Id, TxnResult, WriteOp};

openraft::declare_raft_types!(
    /// bramble's Raft types: node ids are ZooKeeper-style `myid`s, nodes are peer addresses.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of this node.
pub type Raft = openraft::Raft<TypeConfig>;
/// A node id.
pub type NodeId = u64;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;

/// One coordinator request as it travels through the Raft log. It is validated as it is
/// applied (against the tree every node has at that log position), not when proposed, so
/// two racing writes can never both pass a check that only one of them should.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The session asking (0: the server itself, e.g. container reaping).
    pub session_id: i64,
    /// The client's xid (tracing; kept in the txn).
    pub cxid: i32,
    /// Wall time assigned by the node that took the request: ctime/mtime of what it touches.
    pub time_ms: i64,
    /// The caller's identities for ACL checks (ip, digests).
    pub auth: Vec<Id>,
    /// What to do.
    pub kind: CommandKind,
    /// The znode tree's memory cap for this write (create, setData, multi): the smaller of
    /// the znode pools of the node that took the request and of the leader that proposed
    /// it. Carried in the entry so every replica refuses (`QuotaExceeded`) or applies
    /// alike, whatever its own budget. `None`: not capped (the nodes' own bookkeeping, and
    /// entries written before the cap existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub znode_cap_bytes: Option<u64>,
}

/// What a [`Command`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandKind {
    /// create / delete / setData / setACL.
    Write(WriteOp),
    /// An atomic multi.
    Multi(Vec<WriteOp>),
    /// A new session; its id and password were chosen by the node the client connected to.
    CreateSession {
        /// Negotiated timeout.
        timeout_ms: i32,
        /// Password.
        #[serde(with = "crate::coordinator::base64_bytes")]
        password: Vec<u8>,
    },
    /// The client closed its session.
    CloseSession,
    /// The leader found the session expired (decided once, replicated to all).
    ExpireSession,
    /// The leader found an empty container or an expired TTL node at this path.
    Reap {
        /// Path to delete if it still qualifies.
        path: String,
    },
}

/// What applying a [`Command`] gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The zxid the entry got: (term << 32) | log index.
    pub zxid: i64,
    /// The result.
    pub result: TxnResult,
}

/// The zxid of a log position: Raft term as ZooKeeper's epoch, log index as its counter.
/// Both only grow along the log, so zxids only grow.
pub fn zxid_of(log_id: &LogId) -> i64 {
    let term = log_id.leader_id.term;
    assert!(
        term <= u32::MAX as u64 && log_id.index <= u32::MAX as u64,
        "zxid overflow at {log_id}"
    );
    ((term << 32) | log_id.index) as i64
}

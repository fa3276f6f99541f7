//! The coordinator's vocabulary: error codes, stats, ACLs, create modes, watch events.
//! Numeric values are ZooKeeper's, because they go on the wire unchanged.

/// A ZooKeeper error code (`KeeperException.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(i32)]
pub enum ErrorCode {
    /// Everything went fine.
    Ok = 0,
    /// A system or server-side error.
    SystemError = -1,
    /// A failed multi: operations after the failing one.
    RuntimeInconsistency = -2,
    /// The request could not be decoded.
    MarshallingError = -5,
    /// The operation is not implemented.
    Unimplemented = -6,
    /// Invalid arguments (bad path, bad mode, bad TTL).
    BadArguments = -8,
    /// The session is not known.
    UnknownSession = -12,
    /// The node does not exist.
    NoNode = -101,
    /// Not authorized by the node's ACL.
    NoAuth = -102,
    /// The expected version does not match.
    BadVersion = -103,
    /// Ephemeral nodes may not have children.
    NoChildrenForEphemerals = -108,
    /// The node already exists.
    NodeExists = -110,
    /// The node has children.
    NotEmpty = -111,
    /// The session has expired.
    SessionExpired = -112,
    /// An invalid ACL was given.
    InvalidAcl = -114,
    /// Authentication failed.
    AuthFailed = -115,
    /// No such watch.
    NoWatcher = -121,
    /// A quota was exceeded (here: the znode tree's share of the memory budget).
    QuotaExceeded = -125,
    /// A limit was reached (watches, request size).
    Throttled = -127,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Parses a wire code (unknown codes map to SystemError).
    pub fn from_code(c: i32) -> ErrorCode {
        use ErrorCode::*;
        match c {
            0 => Ok,
            -2 => RuntimeInconsistency,
            -5 => MarshallingError,
            -6 => Unimplemented,
            -8 => BadArguments,
            -12 => UnknownSession,
            -101 => NoNode,
            -102 => NoAuth,
            -103 => BadVersion,
            -108 => NoChildrenForEphemerals,
            -110 => NodeExists,
            -111 => NotEmpty,
            -112 => SessionExpired,
            -114 => InvalidAcl,
            -115 => AuthFailed,
            -121 => NoWatcher,
            -125 => QuotaExceeded,
            -127 => Throttled,
            _ => SystemError,
        }
    }
}

/// A zxid: epoch in the high 32 bits, counter in the low 32, as ZooKeeper packs it.
pub type Zxid = i64;

/// Builds a zxid from an epoch and a counter.
pub fn make_zxid(epoch: u32, counter: u32) -> Zxid {
    ((epoch as i64) << 32) | counter as i64
}

/// A node's metadata as the client sees it (`Stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Stat {
    /// Zxid of the create.
    pub czxid: i64,
    /// Zxid of the last data change.
    pub mzxid: i64,
    /// Wall time of the create, ms since the epoch.
    pub ctime: i64,
    /// Wall time of the last data change.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Child list version.
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Owning session of an ephemeral; container/TTL markers; else 0.
    pub ephemeral_owner: i64,
    /// Bytes of data.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// Zxid of the last change to the child list.
    pub pzxid: i64,
}

/// ACL permission bits.
pub mod perms {
    /// Read data and list children.
    pub const READ: i32 = 1;
    /// Set data.
    pub const WRITE: i32 = 2;
    /// Create children.
    pub const CREATE: i32 = 4;
    /// Delete children.
    pub const DELETE: i32 = 8;
    /// Set the ACL.
    pub const ADMIN: i32 = 16;
    /// Everything.
    pub const ALL: i32 = 31;
}

/// An identity: scheme (world, digest, ip, auth) and id.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Id {
    /// The scheme.
    pub scheme: String,
    /// The id within the scheme.
    pub id: String,
}

/// One ACL entry.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Acl {
    /// Permission bits ([`perms`]).
    pub perms: i32,
    /// Who gets them.
    pub id: Id,
}

impl Acl {
    /// world:anyone with all permissions (ZooKeeper's OPEN_ACL_UNSAFE).
    pub fn open() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]
    }
}

/// How a node is created (`CreateMode`, by its wire flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// flag 0
    Persistent,
    /// flag 1
    Ephemeral,
    /// flag 2
    PersistentSequential,
    /// flag 3
    EphemeralSequential,
    /// flag 4: deleted once it had children and has none left
    Container,
    /// flag 5: deleted when childless and unmodified for its TTL
    PersistentWithTtl,
    /// flag 6
    PersistentSequentialWithTtl,
}

impl CreateMode {
    /// Parses the wire flag.
    pub fn from_flag(f: i32) -> Option<CreateMode> {
        use CreateMode::*;
        Some(match f {
            0 => Persistent,
            1 => Ephemeral,
            2 => PersistentSequential,
            3 => EphemeralSequential,
            4 => Container,
            5 => PersistentWithTtl,
            6 => PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    /// Whether the name gets a sequence suffix.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// Whether the node dies with its session.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Whether the node carries a TTL.
    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

/// ephemeralOwner of a container node (ZooKeeper's EphemeralType.CONTAINER).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// High byte marking a TTL node's ephemeralOwner (ZooKeeper's extended type).
pub const TTL_MASK: i64 = 0xFF00_0000_0000_0000_u64 as i64;
/// Largest TTL ZooKeeper accepts, ms.
pub const TTL_MAX_MS: i64 = 0x00FF_FFFF_FFFF;

/// What an ephemeralOwner value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    /// An ordinary persistent node.
    Persistent,
    /// An ephemeral of this session.
    Session(i64),
    /// A container.
    Container,
    /// A TTL node with this TTL in ms.
    Ttl(i64),
}

impl OwnerKind {
    /// Decodes an ephemeralOwner.
    pub fn of(owner: i64) -> OwnerKind {
        if owner == 0 {
            OwnerKind::Persistent
        } else if owner == CONTAINER_OWNER {
            OwnerKind::Container
        } else if owner & TTL_MASK == TTL_MASK {
            OwnerKind::Ttl(owner & TTL_MAX_MS)
        } else {
            OwnerKind::Session(owner)
        }
    }
}

/// Watch event types (`Watcher.Event.EventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum EventType {
    /// A node appeared.
    NodeCreated = 1,
    /// A node went away.
    NodeDeleted = 2,
    /// A node's data changed.
    NodeDataChanged = 3,
    /// A node's child list changed.
    NodeChildrenChanged = 4,
}

/// A notification for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The session to notify.
    pub session_id: i64,
    /// What happened.
    pub kind: EventType,
    /// Where.
    pub path: String,
}

/// Watch kinds a client can register, remove or check (`WatcherType` / AddWatchMode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    /// getData / exists watch.
    Data,
    /// getChildren watch.
    Child,
    /// addWatch PERSISTENT.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE.
    PersistentRecursive,
}

//! The znode tree and the replicated session table: validation of writes into txns
//! (`prepare`), and their application (`apply`), which yields results and tree events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::acl;
use super::txn::{Txn, TxnBody};
use super::types::*;

/// A write as a client asks for it, before validation. (Serde: it is the payload of a
/// Raft log entry in a cluster.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WriteOp {
    /// create / create2 / createContainer / createTTL.
    Create {
        /// Requested path (sequential nodes get a suffix).
        path: String,
        /// Data.
        #[serde(with = "super::base64_bytes")]
        data: Vec<u8>,
        /// Requested ACL.
        acl: Vec<Acl>,
        /// Mode flag as sent (validated in prepare).
        flags: i32,
        /// TTL in ms, -1 when none.
        ttl_ms: i64,
        /// Which create op was used (1, 15, 19, 21): containers and TTLs need their own op.
        op: i32,
    },
    /// delete.
    Delete {
        /// Path.
        path: String,
        /// Expected version, -1 = any.
        version: i32,
    },
    /// setData.
    SetData {
        /// Path.
        path: String,
        /// New data.
        #[serde(with = "super::base64_bytes")]
        data: Vec<u8>,
        /// Expected version, -1 = any.
        version: i32,
    },
    /// setACL.
    SetAcl {
        /// Path.
        path: String,
        /// New ACL.
        acl: Vec<Acl>,
        /// Expected aversion, -1 = any.
        version: i32,
    },
    /// check (multi only).
    Check {
        /// Path.
        path: String,
        /// Expected version, -1 = any.
        version: i32,
    },
}

/// Who is asking: the session and its authenticated identities.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// Session id.
    pub session_id: i64,
    /// Identities (ip plus any digest added by auth packets).
    pub auth: &'a [Id],
}

/// The outcome of one applied txn (or one part of a multi).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TxnResult {
    /// A node was created at this path.
    Created {
        /// Final path.
        path: String,
        /// Its stat.
        stat: Stat,
    },
    /// A node was deleted.
    Deleted,
    /// Data was set; the new stat.
    SetData(Stat),
    /// ACL was set; the new stat.
    SetAcl(Stat),
    /// A check passed.
    Checked,
    /// A session was created or closed.
    Session,
    /// The request failed with this code.
    Error(ErrorCode),
    /// Results of a multi, one per op.
    Multi(Vec<TxnResult>),
}

/// A change to the tree that may fire watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEvent {
    /// What happened.
    pub kind: EventType,
    /// The path it happened at.
    pub path: String,
    /// The ACL of the node the event is about: watchers without READ on it are not told
    /// (ZooKeeper 3.8 filters notifications the same way).
    pub acl: Arc<[Acl]>,
}

/// One znode.
#[derive(Debug, Clone)]
pub struct Node {
    /// Data.
    pub data: Vec<u8>,
    /// ACL (shared between nodes that have the same one).
    pub acl: Arc<[Acl]>,
    /// Stat; data_length and num_children are filled in when read.
    pub stat: Stat,
    /// Child names.
    pub children: BTreeSet<String>,
}

impl Node {
    /// The stat as a client sees it. As in ZooKeeper, the stored cversion counts child
    /// creations (it numbers sequential children); clients see creations plus deletions,
    /// `2 * creations - children`. Container and TTL markers read as ephemeralOwner 0.
    pub fn client_stat(&self) -> Stat {
        let mut s = self.stat;
        s.data_length = self.data.len() as i32;
        s.num_children = self.children.len() as i32;
        s.cversion = s.cversion.wrapping_mul(2).wrapping_sub(s.num_children);
        if !matches!(OwnerKind::of(s.ephemeral_owner), OwnerKind::Session(_)) {
            s.ephemeral_owner = 0;
        }
        s
    }
}

/// A session as the replicated state knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Negotiated timeout.
    pub timeout_ms: i32,
    /// Password for reattaching.
    pub password: Vec<u8>,
}

/// Paths ZooKeeper reserves (they exist in every tree and cannot be deleted).
const SPECIAL: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// The replicated state: nodes, their indexes, sessions, and the last applied zxid.
#[derive(Debug)]
pub struct DataTree {
    nodes: HashMap<String, Node>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    sessions: BTreeMap<i64, SessionInfo>,
    acl_cache: HashMap<Vec<Acl>, Arc<[Acl]>>,
    last_zxid: i64,
    data_bytes: u64,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

/// Splits a path into (parent, child name); the root's children have parent "/".
pub fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// ZooKeeper's PathUtils.validatePath.
pub fn validate_path(path: &str) -> Result<(), ErrorCode> {
    let c: Vec<char> = path.chars().collect();
    if c.is_empty() || c[0] != '/' {
        return Err(ErrorCode::BadArguments);
    }
    if c.len() == 1 {
        return Ok(());
    }
    if c[c.len() - 1] == '/' {
        return Err(ErrorCode::BadArguments);
    }
    for i in 1..c.len() {
        let ch = c[i];
        let last = c[i - 1];
        let next_is_end = i + 1 == c.len() || c[i + 1] == '/';
        let bad = ch == '\0'
            || (ch == '/' && last == '/')
            || (ch == '.' && last == '.' && i >= 2 && c[i - 2] == '/' && next_is_end)
            || (ch == '.' && last == '/' && next_is_end)
            || (ch > '\u{0}' && ch <= '\u{1f}')
            || ('\u{7f}'..='\u{9f}').contains(&ch)
            || ('\u{e000}'..='\u{f8ff}').contains(&ch)
            || ('\u{fff0}'..='\u{ffff}').contains(&ch);
        if bad {
            return Err(ErrorCode::BadArguments);
        }
    }
    Ok(())
}

/// ZooKeeper's check-and-increment of a version (-1 matches anything).
fn next_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// What to restore when a tentatively applied part of a multi is rolled back.
enum Undo {
    Created {
        path: String,
        parent_stat: Stat,
    },
    Deleted {
        path: String,
        node: Node,
        parent_stat: Stat,
    },
    Replaced {
        path: String,
        data: Vec<u8>,
        acl: Arc<[Acl]>,
        stat: Stat,
    },
}

impl DataTree {
    /// A tree holding only `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`.
    pub fn new() -> Self {
        let mut t = DataTree {
            nodes: HashMap::new(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions: BTreeMap::new(),
            acl_cache: HashMap::new(),
            last_zxid: 0,
            data_bytes: 0,
        };
        let open = t.intern_acl(Acl::open());
        let read_only = t.intern_acl(vec![Acl {
            perms: perms::READ,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]);
        for p in SPECIAL {
            let mut node = Node {
                data: Vec::new(),
                acl: open.clone(),
                stat: Stat::default(),
                children: BTreeSet::new(),
            };
            if p == "/zookeeper/config" {
                // As ZooKeeper sets it up: world-readable, ACL version -1.
                node.acl = read_only.clone();
                node.stat.aversion = -1;
            }
            t.nodes.insert(p.to_string(), node);
            if p != "/" {
                let (parent, name) = split(p);
                t.nodes
                    .get_mut(parent)
                    .expect("special parent")
                    .children
                    .insert(name.to_string());
            }
        }
        t
    }

    /// The zxid of the last applied txn.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Number of znodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Total bytes of node data.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// A node by path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Every node (snapshots).
    pub fn nodes(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// The sessions table.
    pub fn sessions(&self) -> &BTreeMap<i64, SessionInfo> {
        &self.sessions
    }

    /// Ephemerals owned by a session.
    pub fn ephemerals_of(&self, session_id: i64) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&session_id).into_iter().flatten()
    }

    /// Total number of ephemerals.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    /// Containers and TTL nodes due for deletion at `now_ms` (ZooKeeper's ContainerManager).
    pub fn reap_candidates(&self, now_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.containers {
            if let Some(n) = self.nodes.get(p) {
                if n.children.is_empty() && n.stat.cversion > 0 {
                    out.push(p.clone());
                }
            }
        }
        for p in &self.ttls {
            if let Some(n) = self.nodes.get(p) {
                if let OwnerKind::Ttl(ttl) = OwnerKind::of(n.stat.ephemeral_owner) {
                    if n.children.is_empty() && now_ms - n.stat.mtime > ttl {
                        out.push(p.clone());
                    }
                }
            }
        }
        out
    }

    fn intern_acl(&mut self, acl: Vec<Acl>) -> Arc<[Acl]> {
        if let Some(a) = self.acl_cache.get(&acl) {
            return a.clone();
        }
        let a: Arc<[Acl]> = acl.clone().into();
        self.acl_cache.insert(acl, a.clone());
        a
    }

    fn node(&self, path: &str) -> Result<&Node, ErrorCode> {
        self.nodes.get(path).ok_or(ErrorCode::NoNode)
    }

    // ---------------------------------------------------------------- prepare

    /// Validates a write against the current tree and turns it into a txn body, exactly
    /// as ZooKeeper's PrepRequestProcessor orders its checks (so error codes match).
    pub fn prepare(
        &self,
        caller: Caller,
        op: &WriteOp,
        max_data_bytes: usize,
    ) -> Result<TxnBody, ErrorCode> {
        match op {
            WriteOp::Create {
                path,
                data,
                acl,
                flags,
                ttl_ms,
                op,
            } => self.prepare_create(
                caller,
                path,
                data,
                acl,
                *flags,
                *ttl_ms,
                *op,
                max_data_bytes,
            ),
            WriteOp::Delete { path, version } => {
                let parent = parent_of_for_write(path, true)?;
                let pnode = self.node(parent)?;
                acl::check(&pnode.acl, perms::DELETE, caller.auth)?;
                acl::check_system_write(path, caller.auth)?;
                let node = self.node(path)?;
                next_version(node.stat.version, *version)?;
                if !node.children.is_empty() {
                    return Err(ErrorCode::NotEmpty);
                }
                Ok(TxnBody::Delete { path: path.clone() })
            }
            WriteOp::SetData {
                path,
                data,
                version,
            } => {
                validate_path(path)?;
                let node = self.node(path)?;
                acl::check(&node.acl, perms::WRITE, caller.auth)?;
                acl::check_system_write(path, caller.auth)?;
                if data.len() > max_data_bytes {
                    return Err(ErrorCode::BadArguments);
                }
                let v = next_version(node.stat.version, *version)?;
                Ok(TxnBody::SetData {
                    path: path.clone(),
                    data: data.clone(),
                    version: v,
                })
            }
            WriteOp::SetAcl {
                path,
                acl: new_acl,
                version,
            } => {
                validate_path(path)?;
                let fixed = acl::fixup(new_acl, caller.auth)?;
                let node = self.node(path)?;
                acl::check(&node.acl, perms::ADMIN, caller.auth)?;
                acl::check_system_write(path, caller.auth)?;
                let v = next_version(node.stat.aversion, *version)?;
                Ok(TxnBody::SetAcl {
                    path: path.clone(),
                    acl: fixed,
                    version: v,
                })
            }
            WriteOp::Check { path, version } => {
                validate_path(path)?;
                let node = self.node(path)?;
                acl::check(&node.acl, perms::READ, caller.auth)?;
                next_version(node.stat.version, *version)?;
                Ok(TxnBody::Check { path: path.clone() })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare_create(
        &self,
        caller: Caller,
        path: &str,
        data: &[u8],
        req_acl: &[Acl],
        flags: i32,
        ttl_ms: i64,
        op: i32,
        max_data_bytes: usize,
    ) -> Result<TxnBody, ErrorCode> {
        let mode = CreateMode::from_flag(flags).ok_or(ErrorCode::BadArguments)?;
        // validateTTL: TTL modes need a TTL in range, other modes must not carry one.
        if mode.is_ttl() {
            if op != 21 || ttl_ms <= 0 || ttl_ms > TTL_MAX_MS {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl_ms >= 0 || op == 21 {
            return Err(ErrorCode::BadArguments);
        }
        if (mode == CreateMode::Container) != (op == 19) {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = parent_of_for_write(path, false)?;
        let fixed = acl::fixup(req_acl, caller.auth)?;
        let parent = self.node(parent_path)?;
        acl::check(&parent.acl, perms::CREATE, caller.auth)?;
        acl::check_system_write(path, caller.auth)?;
        let mut full = path.to_string();
        if mode.is_sequential() {
            full.push_str(&format!("{:010}", parent.stat.cversion));
        }
        validate_path(&full)?;
        if self.nodes.contains_key(&full) {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(
            OwnerKind::of(parent.stat.ephemeral_owner),
            OwnerKind::Session(_)
        ) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        if data.len() > max_data_bytes {
            return Err(ErrorCode::BadArguments);
        }
        let ephemeral_owner = if mode.is_ephemeral() {
            caller.session_id
        } else if mode == CreateMode::Container {
            CONTAINER_OWNER
        } else if mode.is_ttl() {
            TTL_MASK | ttl_ms
        } else {
            0
        };
        Ok(TxnBody::Create {
            path: full,
            data: data.to_vec(),
            acl: fixed,
            ephemeral_owner,
            parent_cversion: parent.stat.cversion.wrapping_add(1),
        })
    }

    /// Validates a multi: each op is prepared against the tree as the earlier ops leave it
    /// (applied tentatively, then rolled back). If one fails, every part becomes an error:
    /// OK before it, its own code, RuntimeInconsistency after it — as ZooKeeper reports.
    pub fn prepare_multi(
        &mut self,
        caller: Caller,
        ops: &[WriteOp],
        max_data_bytes: usize,
        zxid: i64,
        time_ms: i64,
    ) -> TxnBody {
        let mut undo = Vec::new();
        let mut parts = Vec::with_capacity(ops.len());
        let mut failed_at = None;
        for (i, op) in ops.iter().enumerate() {
            match self.prepare(caller, op, max_data_bytes) {
                Ok(body) => {
                    let mut ev = Vec::new();
                    let r = self.apply_one(
                        &body,
                        caller.session_id,
                        zxid,
                        time_ms,
                        &mut ev,
                        Some(&mut undo),
                    );
                    debug_assert!(
                        !matches!(r, TxnResult::Error(_)),
                        "prepared op failed to apply"
                    );
                    parts.push(body);
                }
                Err(e) => {
                    failed_at = Some((i, e));
                    break;
                }
            }
        }
        self.rollback(undo);
        match failed_at {
            None => TxnBody::Multi(parts),
            Some((at, e)) => TxnBody::Multi(
                (0..ops.len())
                    .map(|i| {
                        let err = match i.cmp(&at) {
                            std::cmp::Ordering::Less => ErrorCode::Ok,
                            std::cmp::Ordering::Equal => e,
                            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                        };
                        TxnBody::Error { err: err.code() }
                    })
                    .collect(),
            ),
        }
    }

    // ---------------------------------------------------------------- apply

    /// Applies a txn. Zxids must grow; the txn's effects and the events they fire are
    /// returned. A txn that no longer fits the tree (possible only if its preparation
    /// raced another write) applies as an error, never a panic.
    pub fn apply(&mut self, txn: &Txn) -> (TxnResult, Vec<TreeEvent>) {
        assert!(
            txn.zxid > self.last_zxid,
            "zxid must grow: {} after {}",
            txn.zxid,
            self.last_zxid
        );
        self.last_zxid = txn.zxid;
        let mut events = Vec::new();
        let result = match &txn.body {
            TxnBody::Multi(parts) => {
                let mut undo = Vec::new();
                let mut results = Vec::with_capacity(parts.len());
                let mut failed = false;
                for p in parts {
                    let r = self.apply_one(
                        p,
                        txn.session_id,
                        txn.zxid,
                        txn.time_ms,
                        &mut events,
                        Some(&mut undo),
                    );
                    failed |= matches!(r, TxnResult::Error(e) if e != ErrorCode::Ok)
                        || matches!(p, TxnBody::Error { .. });
                    results.push(r);
                }
                if failed {
                    // All-or-nothing: drop the effects of the parts that did apply.
                    self.rollback(undo);
                    events.clear();
                    let at = results
                        .iter()
                        .position(|r| matches!(r, TxnResult::Error(e) if *e != ErrorCode::Ok));
                    for (i, r) in results.iter_mut().enumerate() {
                        if !matches!(r, TxnResult::Error(_)) {
                            let ok_before = at.is_none_or(|a| i < a);
                            *r = TxnResult::Error(if ok_before {
                                ErrorCode::Ok
                            } else {
                                ErrorCode::RuntimeInconsistency
                            });
                        }
                    }
                }
                TxnResult::Multi(results)
            }
            body => self.apply_one(
                body,
                txn.session_id,
                txn.zxid,
                txn.time_ms,
                &mut events,
                None,
            ),
        };
        (result, events)
    }

    fn apply_one(
        &mut self,
        body: &TxnBody,
        session_id: i64,
        zxid: i64,
        time_ms: i64,
        events: &mut Vec<TreeEvent>,
        undo: Option<&mut Vec<Undo>>,
    ) -> TxnResult {
        match body {
            TxnBody::CreateSession {
                timeout_ms,
                password,
            } => {
                self.sessions.insert(
                    session_id,
                    SessionInfo {
                        timeout_ms: *timeout_ms,
                        password: password.clone(),
                    },
                );
                TxnResult::Session
            }
            TxnBody::CloseSession => {
                let paths: Vec<String> = self
                    .ephemerals
                    .remove(&session_id)
                    .into_iter()
                    .flatten()
                    .collect();
                for p in paths.iter().rev() {
                    self.delete_node(p, zxid, events);
                }
                self.sessions.remove(&session_id);
                TxnResult::Session
            }
            TxnBody::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                let (parent, name) = split(path);
                let Some(pnode) = self.nodes.get(parent) else {
                    return TxnResult::Error(ErrorCode::NoNode);
                };
                if self.nodes.contains_key(path) {
                    return TxnResult::Error(ErrorCode::NodeExists);
                }
                let parent_stat = pnode.stat;
                let acl = self.intern_acl(acl.clone());
                let stat = Stat {
                    czxid: zxid,
                    mzxid: zxid,
                    ctime: time_ms,
                    mtime: time_ms,
                    pzxid: zxid,
                    ephemeral_owner: *ephemeral_owner,
                    ..Stat::default()
                };
                let pnode = self.nodes.get_mut(parent).expect("parent checked");
                if *parent_cversion > pnode.stat.cversion {
                    pnode.stat.cversion = *parent_cversion;
                    pnode.stat.pzxid = zxid;
                }
                pnode.children.insert(name.to_string());
                let parent_acl = pnode.acl.clone();
                let node = Node {
                    data: data.clone(),
                    acl: acl.clone(),
                    stat,
                    children: BTreeSet::new(),
                };
                let client_stat = node.client_stat();
                self.data_bytes += data.len() as u64;
                self.nodes.insert(path.clone(), node);
                self.index_owner(path, *ephemeral_owner, true);
                if let Some(u) = undo {
                    u.push(Undo::Created {
                        path: path.clone(),
                        parent_stat,
                    });
                }
                events.push(TreeEvent {
                    kind: EventType::NodeCreated,
                    path: path.clone(),
                    acl,
                });
                events.push(TreeEvent {
                    kind: EventType::NodeChildrenChanged,
                    path: parent.to_string(),
                    acl: parent_acl,
                });
                TxnResult::Created {
                    path: path.clone(),
                    stat: client_stat,
                }
            }
            TxnBody::Delete { path } => {
                let (parent, _) = split(path);
                let Some(pnode) = self.nodes.get(parent) else {
                    return TxnResult::Error(ErrorCode::NoNode);
                };
                let parent_stat = pnode.stat;
                match self.delete_node(path, zxid, events) {
                    Some(node) => {
                        if let Some(u) = undo {
                            u.push(Undo::Deleted {
                                path: path.clone(),
                                node,
                                parent_stat,
                            });
                        }
                        TxnResult::Deleted
                    }
                    None => TxnResult::Error(ErrorCode::NoNode),
                }
            }
            TxnBody::SetData {
                path,
                data,
                version,
            } => {
                let Some(node) = self.nodes.get_mut(path) else {
                    return TxnResult::Error(ErrorCode::NoNode);
                };
                if let Some(u) = undo {
                    u.push(Undo::Replaced {
                        path: path.clone(),
                        data: node.data.clone(),
                        acl: node.acl.clone(),
                        stat: node.stat,
                    });
                }
                self.data_bytes = self.data_bytes + data.len() as u64 - node.data.len() as u64;
                node.data = data.clone();
                node.stat.version = *version;
                node.stat.mzxid = zxid;
                node.stat.mtime = time_ms;
                let stat = node.client_stat();
                events.push(TreeEvent {
                    kind: EventType::NodeDataChanged,
                    path: path.clone(),
                    acl: node.acl.clone(),
                });
                TxnResult::SetData(stat)
            }
            TxnBody::SetAcl { path, acl, version } => {
                let acl = self.intern_acl(acl.clone());
                let Some(node) = self.nodes.get_mut(path) else {
                    return TxnResult::Error(ErrorCode::NoNode);
                };
                if let Some(u) = undo {
                    u.push(Undo::Replaced {
                        path: path.clone(),
                        data: node.data.clone(),
                        acl: node.acl.clone(),
                        stat: node.stat,
                    });
                }
                node.acl = acl;
                node.stat.aversion = *version;
                TxnResult::SetAcl(node.client_stat())
            }
            TxnBody::Check { path } => {
                if self.nodes.contains_key(path) {
                    TxnResult::Checked
                } else {
                    TxnResult::Error(ErrorCode::NoNode)
                }
            }
            TxnBody::Error { err } => TxnResult::Error(ErrorCode::from_code(*err)),
            TxnBody::Multi(_) => TxnResult::Error(ErrorCode::BadArguments),
        }
    }

    fn index_owner(&mut self, path: &str, owner: i64, add: bool) {
        let set = match OwnerKind::of(owner) {
            OwnerKind::Persistent => return,
            OwnerKind::Session(s) => self.ephemerals.entry(s).or_default(),
            OwnerKind::Container => &mut self.containers,
            OwnerKind::Ttl(_) => &mut self.ttls,
        };
        if add {
            set.insert(path.to_string());
        } else {
            set.remove(path);
            if let OwnerKind::Session(s) = OwnerKind::of(owner) {
                if self.ephemerals.get(&s).is_some_and(|e| e.is_empty()) {
                    self.ephemerals.remove(&s);
                }
            }
        }
    }

    fn delete_node(&mut self, path: &str, zxid: i64, events: &mut Vec<TreeEvent>) -> Option<Node> {
        if SPECIAL.contains(&path) {
            return None;
        }
        let node = self.nodes.remove(path)?;
        let (parent, name) = split(path);
        let mut parent_acl = node.acl.clone();
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.remove(name);
            if zxid > p.stat.pzxid {
                p.stat.pzxid = zxid;
            }
            parent_acl = p.acl.clone();
        }
        self.data_bytes -= node.data.len() as u64;
        self.index_owner(path, node.stat.ephemeral_owner, false);
        events.push(TreeEvent {
            kind: EventType::NodeDeleted,
            path: path.to_string(),
            acl: node.acl.clone(),
        });
        events.push(TreeEvent {
            kind: EventType::NodeChildrenChanged,
            path: parent.to_string(),
            acl: parent_acl,
        });
        Some(node)
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Created { path, parent_stat } => {
                    let (parent, name) = split(&path);
                    if let Some(n) = self.nodes.remove(&path) {
                        self.data_bytes -= n.data.len() as u64;
                        self.index_owner(&path, n.stat.ephemeral_owner, false);
                    }
                    if let Some(p) = self.nodes.get_mut(parent) {
                        p.children.remove(name);
                        p.stat = parent_stat;
                    }
                }
                Undo::Deleted {
                    path,
                    node,
                    parent_stat,
                } => {
                    let (parent, name) = split(&path);
                    if let Some(p) = self.nodes.get_mut(parent) {
                        p.children.insert(name.to_string());
                        p.stat = parent_stat;
                    }
                    self.data_bytes += node.data.len() as u64;
                    self.index_owner(&path, node.stat.ephemeral_owner, true);
                    self.nodes.insert(path, node);
                }
                Undo::Replaced {
                    path,
                    data,
                    acl,
                    stat,
                } => {
                    if let Some(n) = self.nodes.get_mut(&path) {
                        self.data_bytes = self.data_bytes + data.len() as u64 - n.data.len() as u64;
                        n.data = data;
                        n.acl = acl;
                        n.stat = stat;
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- snapshots

    /// Inserts a node while loading a snapshot (parents come before children).
    pub fn load_node(&mut self, path: String, data: Vec<u8>, acl: Vec<Acl>, stat: Stat) {
        let acl = self.intern_acl(acl);
        if path != "/" {
            let (parent, name) = split(&path);
            if let Some(p) = self.nodes.get_mut(parent) {
                p.children.insert(name.to_string());
            }
        }
        self.data_bytes += data.len() as u64;
        let owner = stat.ephemeral_owner;
        let children = self
            .nodes
            .remove(&path)
            .map(|n| n.children)
            .unwrap_or_default();
        self.nodes.insert(
            path.clone(),
            Node {
                data,
                acl,
                stat,
                children,
            },
        );
        self.index_owner(&path, owner, true);
    }

    /// Restores the session table and last zxid while loading a snapshot.
    pub fn load_meta(&mut self, last_zxid: i64, sessions: BTreeMap<i64, SessionInfo>) {
        self.last_zxid = last_zxid;
        self.sessions = sessions;
    }

    /// Paths in an order where every parent precedes its children.
    pub fn paths_parent_first(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack = vec!["/".to_string()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(&p) {
                for c in n.children.iter().rev() {
                    stack.push(if p == "/" {
                        format!("/{c}")
                    } else {
                        format!("{p}/{c}")
                    });
                }
            }
            out.push(p);
        }
        out
    }
}

/// The parent of a path given to delete/create, or BadArguments (ZooKeeper's
/// getParentPathAndValidate: no slash, a NUL, or a reserved path).
fn parent_of_for_write(path: &str, deleting: bool) -> Result<&str, ErrorCode> {
    if !path.contains('/') || path.contains('\0') || (deleting && SPECIAL.contains(&path)) {
        return Err(ErrorCode::BadArguments);
    }
    let (parent, _) = split(path);
    Ok(if parent.is_empty() { "/" } else { parent })
}

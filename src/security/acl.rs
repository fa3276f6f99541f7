//! Kafka ACLs: what a principal may do on a topic, a group or the cluster, kept where
//! Kafka-on-ZooKeeper kept them — `/kafka-acl/<ResourceType>/<name>` for literal names and
//! `/kafka-acl-extended/prefixed/<ResourceType>/<prefix>` for prefixes — as Kafka's JSON
//! (`{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow",
//! "operation":"Write","host":"*"}]}`), in znodes only the node itself can read or write.
//!
//! A check follows Kafka's AclAuthorizer: super users pass; a resource with no ACL at all
//! (literal, `*` or prefix) passes when `allow_everyone_if_no_acl_found`; otherwise a
//! matching Deny refuses, and a matching Allow (of the operation, of All, or of an operation
//! that implies it: Read, Write, Delete and Alter imply Describe; AlterConfigs implies
//! DescribeConfigs) grants.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::coordinator::ErrorCode;
use crate::server::zk::ZkHandle;

/// Literal ACLs live under this path.
pub const LITERAL_ROOT: &str = "/kafka-acl";
/// Prefixed ACLs live under this path.
pub const PREFIXED_ROOT: &str = "/kafka-acl-extended/prefixed";
/// The name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// Most ACL entries on one resource.
pub const ENTRIES_PER_RESOURCE_MAX: usize = 1000;

/// Kinds of resources (Kafka's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceType {
    /// A topic (2).
    Topic,
    /// A consumer group (3).
    Group,
    /// The cluster (4).
    Cluster,
    /// A transactional id (5).
    TransactionalId,
}

impl ResourceType {
    const ALL: [ResourceType; 4] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
    ];

    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
        }
    }

    /// The type with Kafka's code `code`.
    pub fn from_code(code: i8) -> Option<ResourceType> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Kafka's name (the znode level).
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "Topic",
            ResourceType::Group => "Group",
            ResourceType::Cluster => "Cluster",
            ResourceType::TransactionalId => "TransactionalId",
        }
    }
}

/// Whether a resource name is literal or a prefix (Kafka's codes 3 and 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PatternType {
    /// The exact name, or `*` for every name.
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

impl PatternType {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    /// The pattern type with Kafka's code (3 or 4).
    pub fn from_code(code: i8) -> Option<PatternType> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }

    fn root(self) -> &'static str {
        match self {
            PatternType::Literal => LITERAL_ROOT,
            PatternType::Prefixed => PREFIXED_ROOT,
        }
    }
}

/// Operations (Kafka's codes and names).
pub const OPERATIONS: &[(i8, &str)] = &[
    (2, "All"),
    (3, "Read"),
    (4, "Write"),
    (5, "Create"),
    (6, "Delete"),
    (7, "Alter"),
    (8, "Describe"),
    (9, "ClusterAction"),
    (10, "DescribeConfigs"),
    (11, "AlterConfigs"),
    (12, "IdempotentWrite"),
];

/// An operation a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Consume, join a group.
    Read,
    /// Produce.
    Write,
    /// Create topics.
    Create,
    /// Delete topics, groups, offsets.
    Delete,
    /// Add partitions, change ACLs or users.
    Alter,
    /// See metadata and offsets.
    Describe,
    /// Replica fetches between nodes.
    ClusterAction,
    /// Read settings.
    DescribeConfigs,
    /// Change settings.
    AlterConfigs,
}

impl Operation {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "Read",
            Operation::Write => "Write",
            Operation::Create => "Create",
            Operation::Delete => "Delete",
            Operation::Alter => "Alter",
            Operation::Describe => "Describe",
            Operation::ClusterAction => "ClusterAction",
            Operation::DescribeConfigs => "DescribeConfigs",
            Operation::AlterConfigs => "AlterConfigs",
        }
    }

    /// Whether an ACL naming `granted` allows this operation.
    fn allowed_by(self, granted: &str) -> bool {
        granted == "All"
            || granted == self.name()
            || (self == Operation::Describe
                && matches!(granted, "Read" | "Write" | "Delete" | "Alter"))
            || (self == Operation::DescribeConfigs && granted == "AlterConfigs")
    }

    /// Whether a Deny naming `denied` refuses this operation.
    fn denied_by(self, denied: &str) -> bool {
        denied == "All" || denied == self.name()
    }
}

/// The name of operation code `code`.
pub fn operation_name(code: i8) -> Option<&'static str> {
    OPERATIONS.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// The code of operation `name`.
pub fn operation_code(name: &str) -> i8 {
    OPERATIONS
        .iter()
        .find(|(_, n)| *n == name)
        .map_or(0, |(c, _)| *c)
}

/// One ACL entry of a resource, in Kafka's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `User:name` or `User:*`.
    pub principal: String,
    /// `Allow` or `Deny`.
    #[serde(rename = "permissionType")]
    pub permission: String,
    /// An operation name from [`OPERATIONS`].
    pub operation: String,
    /// A client address, or `*`.
    pub host: String,
}

impl Entry {
    fn applies_to(&self, principal: &str, host: Option<IpAddr>) -> bool {
        (self.principal == principal || self.principal == "User:*")
            && (self.host == "*" || host.is_some_and(|h| h.to_string() == self.host))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AclZnode {
    version: u32,
    acls: Vec<Entry>,
}

/// A resource pattern with its entries.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Resource type.
    pub resource_type: ResourceType,
    /// Literal or prefixed.
    pub pattern: PatternType,
    /// The name or prefix.
    pub name: String,
    /// Its entries.
    pub entries: Vec<Entry>,
}

/// ACLs on the coordinator.
#[derive(Debug)]
pub struct AclStore {
    zk: ZkHandle,
}

fn path(pattern: PatternType, resource_type: ResourceType, name: &str) -> String {
    format!("{}/{}/{name}", pattern.root(), resource_type.name())
}

/// Whether `name` can be a znode name (Kafka escapes nothing either: topics cannot hold
/// `/`; a group with one cannot carry ACLs here).
pub fn storable_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

impl AclStore {
    /// The store over this node's coordinator.
    pub fn new(zk: ZkHandle) -> AclStore {
        AclStore { zk }
    }

    fn read(&self, pattern: PatternType, t: ResourceType, name: &str) -> Vec<Entry> {
        if !storable_name(name) {
            return Vec::new();
        }
        self.zk
            .get_protected(&path(pattern, t, name))
            .and_then(|data| serde_json::from_slice::<AclZnode>(&data).ok())
            .map(|z| z.acls)
            .unwrap_or_default()
    }

    /// Every binding, in a stable order.
    pub fn all(&self) -> Vec<Binding> {
        let mut out = Vec::new();
        for pattern in [PatternType::Literal, PatternType::Prefixed] {
            for t in ResourceType::ALL {
                let parent = format!("{}/{}", pattern.root(), t.name());
                let mut names = self.zk.children_protected(&parent);
                names.sort();
                for name in names {
                    let entries = self.read(pattern, t, &name);
                    if !entries.is_empty() {
                        out.push(Binding {
                            resource_type: t,
                            pattern,
                            name,
                            entries,
                        });
                    }
                }
            }
        }
        out
    }

    /// Whether any ACL exists at all (the fast path when none does).
    pub fn is_empty(&self) -> bool {
        [PatternType::Literal, PatternType::Prefixed]
            .into_iter()
            .flat_map(|p| {
                ResourceType::ALL
                    .into_iter()
                    .map(move |t| format!("{}/{}", p.root(), t.name()))
            })
            .all(|parent| self.zk.children_protected(&parent).is_empty())
    }

    /// Entries that bear on `name`: its literal ACLs, the `*` ACLs and every matching prefix.
    fn matching(&self, t: ResourceType, name: &str) -> Vec<Entry> {
        let mut entries = self.read(PatternType::Literal, t, name);
        if name != "*" {
            entries.extend(self.read(PatternType::Literal, t, "*"));
        }
        let parent = format!("{PREFIXED_ROOT}/{}", t.name());
        for prefix in self.zk.children_protected(&parent) {
            if name.starts_with(&prefix) {
                entries.extend(self.read(PatternType::Prefixed, t, &prefix));
            }
        }
        entries
    }

    /// Add entries to a resource pattern (those already there are kept once).
    pub async fn add(
        &self,
        pattern: PatternType,
        t: ResourceType,
        name: &str,
        new: &[Entry],
    ) -> Result<(), ErrorCode> {
        if !storable_name(name) {
            return Err(ErrorCode::BadArguments);
        }
        let mut too_many = false;
        self.zk
            .update_protected(pattern.root(), &path(pattern, t, name), |current| {
                let mut entries = decode(current);
                for e in new {
                    if !entries.contains(e) {
                        entries.push(e.clone());
                    }
                }
                too_many = entries.len() > ENTRIES_PER_RESOURCE_MAX;
                if too_many {
                    return (current.map(<[u8]>::to_vec), ());
                }
                (encode(entries), ())
            })
            .await?;
        if too_many {
            return Err(ErrorCode::BadArguments);
        }
        Ok(())
    }

    /// Remove the entries of a resource pattern that `gone` selects (none left deletes its
    /// znode); the entries removed.
    pub async fn remove_matching(
        &self,
        pattern: PatternType,
        t: ResourceType,
        name: &str,
        gone: impl Fn(&Entry) -> bool,
    ) -> Result<Vec<Entry>, ErrorCode> {
        if !storable_name(name) {
            return Ok(Vec::new());
        }
        self.zk
            .update_protected(pattern.root(), &path(pattern, t, name), |current| {
                let (removed, kept): (Vec<Entry>, Vec<Entry>) =
                    decode(current).into_iter().partition(|e| gone(e));
                if removed.is_empty() {
                    return (current.map(<[u8]>::to_vec), removed);
                }
                (encode(kept), removed)
            })
            .await
    }
}

/// The entries of an ACL znode's data (none when absent or unreadable).
fn decode(data: Option<&[u8]>) -> Vec<Entry> {
    data.and_then(|d| serde_json::from_slice::<AclZnode>(d).ok())
        .map(|z| z.acls)
        .unwrap_or_default()
}

/// An ACL znode's data for `entries`; none left: no znode.
fn encode(entries: Vec<Entry>) -> Option<Vec<u8>> {
    (!entries.is_empty()).then(|| {
        serde_json::to_vec(&AclZnode {
            version: 1,
            acls: entries,
        })
        .expect("an ACL znode serializes")
    })
}

/// The decision for one check.
#[derive(Debug)]
pub struct Authorizer<'a> {
    /// The ACLs.
    pub store: &'a AclStore,
    /// The settings (super users, the no-ACL default).
    pub config: &'a super::SecurityConfig,
}

impl Authorizer<'_> {
    /// Whether `principal` from `host` may do `op` on resource `name` of type `t`.
    pub fn allows(
        &self,
        principal: &str,
        host: Option<IpAddr>,
        op: Operation,
        t: ResourceType,
        name: &str,
    ) -> bool {
        if self.config.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let entries = self.store.matching(t, name);
        if entries.is_empty() {
            return self.config.allow_everyone_if_no_acl_found;
        }
        let applicable: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.applies_to(principal, host))
            .collect();
        if applicable
            .iter()
            .any(|e| e.permission == "Deny" && op.denied_by(&e.operation))
        {
            return false;
        }
        applicable
            .iter()
            .any(|e| e.permission == "Allow" && op.allowed_by(&e.operation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(principal: &str, permission: &str, operation: &str) -> Entry {
        Entry {
            principal: principal.into(),
            permission: permission.into(),
            operation: operation.into(),
            host: "*".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn allow_deny_prefix_wildcard_and_super_users_decide_as_in_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::coordinator::CoordinatorConfig {
            data_dir: dir.path().display().to_string(),
            ..Default::default()
        };
        let zk = crate::server::zk::open(&config, u64::MAX).unwrap();
        let store = AclStore::new(zk.clone());
        let settings = super::super::SecurityConfig {
            super_users: vec!["User:admin".into()],
            ..Default::default()
        };
        let auth = Authorizer {
            store: &store,
            config: &settings,
        };
        let t = ResourceType::Topic;
        assert!(store.is_empty());
        assert!(auth.allows("User:bob", None, Operation::Write, t, "orders"));
        store
            .add(
                PatternType::Literal,
                t,
                "orders",
                &[
                    entry("User:alice", "Allow", "Write"),
                    entry("User:alice", "Allow", "Read"),
                ],
            )
            .await
            .unwrap();
        assert!(auth.allows("User:alice", None, Operation::Write, t, "orders"));
        assert!(auth.allows("User:alice", None, Operation::Describe, t, "orders"));
        assert!(!auth.allows("User:alice", None, Operation::Delete, t, "orders"));
        assert!(!auth.allows("User:bob", None, Operation::Write, t, "orders"));
        assert!(auth.allows("User:admin", None, Operation::Delete, t, "orders"));
        // Another topic has no ACL: the default decides.
        assert!(auth.allows("User:bob", None, Operation::Write, t, "other"));
        store
            .add(
                PatternType::Prefixed,
                t,
                "sens",
                &[entry("User:*", "Allow", "Read")],
            )
            .await
            .unwrap();
        store
            .add(
                PatternType::Literal,
                t,
                "sensors",
                &[entry("User:bob", "Deny", "All")],
            )
            .await
            .unwrap();
        assert!(auth.allows("User:carol", None, Operation::Read, t, "sensors"));
        assert!(!auth.allows("User:bob", None, Operation::Read, t, "sensors"));
        assert!(!auth.allows("User:carol", None, Operation::Write, t, "sensors"));
        assert_eq!(store.all().len(), 3);
        let gone = store
            .remove_matching(PatternType::Literal, t, "sensors", |_| true)
            .await
            .unwrap();
        assert_eq!(gone, vec![entry("User:bob", "Deny", "All")]);
        assert_eq!(store.all().len(), 2);
        // Concurrent additions to one resource all land (each retries on the other's write).
        let mut adds = tokio::task::JoinSet::new();
        for i in 0..8 {
            let store = AclStore::new(zk.clone());
            adds.spawn(async move {
                let who = format!("User:u{i}");
                store
                    .add(
                        PatternType::Literal,
                        t,
                        "busy",
                        &[entry(&who, "Allow", "Read")],
                    )
                    .await
            });
        }
        while let Some(r) = adds.join_next().await {
            r.unwrap().unwrap();
        }
        let busy = store.all().into_iter().find(|b| b.name == "busy").unwrap();
        assert_eq!(busy.entries.len(), 8);
    }
}

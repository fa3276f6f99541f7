//! Znodes only the node itself may read or write: SCRAM credentials (`/config/users`) and
//! Kafka ACLs (`/kafka-acl`). They carry an ACL naming the `super` identity, which a
//! ZooKeeper client can never hold (its auth packets only add `digest` identities), so every
//! client read, write, child listing and ACL change on them is refused with NoAuth.
//!
//! A znode at such a path that lacks that ACL was made by a client (say, before the parent
//! existed) and is not trusted: reads skip it, writes replace it.

use crate::cluster::types::CommandKind;
use crate::cluster::LocalZk;
use crate::coordinator::{perms, Acl, ErrorCode, Id, TxnResult, WriteOp};

use super::ZkServer;

/// The ACL of protected znodes: all permissions, to the node's own identity only.
pub fn protected_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "super".into(),
            id: "bramble".into(),
        },
    }]
}

impl ZkServer {
    fn is_protected(&self, path: &str) -> Option<bool> {
        self.lock()
            .coord
            .tree()
            .get(path)
            .map(|n| n.acl.as_ref() == protected_acl().as_slice())
    }

    /// Data of a protected znode; `None` when absent or not protected.
    pub fn get_protected(&self, path: &str) -> Option<Vec<u8>> {
        self.protected_node(path).map(|(data, _)| data)
    }

    /// Data and version of a protected znode; `None` when absent or not protected.
    fn protected_node(&self, path: &str) -> Option<(Vec<u8>, i32)> {
        let inner = self.lock();
        let node = inner.coord.tree().get(path)?;
        (node.acl.as_ref() == protected_acl().as_slice())
            .then(|| (node.data.clone(), node.stat.version))
    }

    /// Names of the protected children of a protected znode.
    pub fn children_protected(&self, path: &str) -> Vec<String> {
        let inner = self.lock();
        let tree = inner.coord.tree();
        let Some(node) = tree.get(path) else {
            return Vec::new();
        };
        node.children
            .iter()
            .filter(|c| {
                tree.get(&format!("{path}/{c}"))
                    .is_some_and(|n| n.acl.as_ref() == protected_acl().as_slice())
            })
            .cloned()
            .collect()
    }

    /// Write a protected znode (creating it, and its protected parents down from
    /// `protected_root`, as needed); a same-named znode without the ACL is replaced.
    pub async fn put_protected(
        &self,
        protected_root: &str,
        path: &str,
        data: &[u8],
    ) -> Result<(), ErrorCode> {
        debug_assert!(path.starts_with(protected_root));
        // Open parents above the protected root (e.g. `/config`), then protected ones.
        let mut prefix = String::new();
        for part in path.trim_start_matches('/').split('/') {
            prefix.push('/');
            prefix.push_str(part);
            let is_leaf = prefix.len() == path.len();
            if prefix.len() < protected_root.len() {
                if self.get(&prefix).is_none() {
                    match self.create(&prefix, b"", false).await {
                        Ok(_) | Err(ErrorCode::NodeExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let contents: &[u8] = if is_leaf { data } else { b"" };
            match self.is_protected(&prefix) {
                Some(true) if is_leaf => {
                    self.set(&prefix, data, -1).await?;
                }
                Some(true) => {}
                Some(false) => {
                    // Made by a client: take it back (its children go with it only if
                    // there are none; a non-empty one stays and is simply not trusted).
                    if is_leaf {
                        self.delete(&prefix, -1).await?;
                        self.create_protected(&prefix, contents).await?;
                    }
                }
                None => match self.create_protected(&prefix, contents).await {
                    Ok(()) => {}
                    Err(ErrorCode::NodeExists) if !is_leaf => {}
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }

    /// Read-modify-write of a protected znode, safe against another node changing it at the
    /// same time: `change` gets the current data (None when absent) and returns the new data
    /// (None: delete it); the write is conditional on the version read and is retried, with
    /// `change` run again on what the other writer left, when it lost a race. Returns what
    /// `change` returned on the attempt that was written.
    pub async fn update_protected<T>(
        &self,
        protected_root: &str,
        path: &str,
        mut change: impl FnMut(Option<&[u8]>) -> (Option<Vec<u8>>, T),
    ) -> Result<T, ErrorCode> {
        const ATTEMPTS: usize = 16;
        for _ in 0..ATTEMPTS {
            let current = self.protected_node(path);
            let (next, out) = change(current.as_ref().map(|(data, _)| data.as_slice()));
            let written = match (current, next) {
                (None, None) => Ok(()),
                (Some((data, _)), Some(next)) if data == next => Ok(()),
                (Some((_, version)), None) => self.delete(path, version).await,
                (Some((_, version)), Some(data)) => {
                    self.set(path, &data, version).await.map(|_| ())
                }
                // Absent (or made by a client): created, and a creation that races another
                // comes back as NodeExists.
                (None, Some(data)) => match self.is_protected(path) {
                    None => match self.create_protected_parents(protected_root, path).await {
                        Ok(()) => self.create_protected(path, &data).await,
                        Err(e) => Err(e),
                    },
                    Some(_) => self.put_protected(protected_root, path, &data).await,
                },
            };
            match written {
                Ok(()) => return Ok(out),
                Err(ErrorCode::BadVersion | ErrorCode::NodeExists | ErrorCode::NoNode) => {
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(
            path,
            "protected znode kept changing under this write; giving up"
        );
        Err(ErrorCode::SystemError)
    }

    /// Creates the parents of `path` as `put_protected` would, not `path` itself.
    async fn create_protected_parents(
        &self,
        protected_root: &str,
        path: &str,
    ) -> Result<(), ErrorCode> {
        match path.rfind('/') {
            Some(i) if i >= protected_root.len() => {
                let parent = &path[..i];
                if self.is_protected(parent) == Some(true) {
                    Ok(())
                } else {
                    self.put_protected(protected_root, parent, b"").await
                }
            }
            _ => {
                self.put_protected(protected_root, protected_root, b"")
                    .await
            }
        }
    }

    /// Delete a protected znode (a missing one is not an error).
    pub async fn delete_protected(&self, path: &str) -> Result<(), ErrorCode> {
        if self.is_protected(path) != Some(true) {
            return Ok(());
        }
        match self.delete(path, -1).await {
            Ok(()) | Err(ErrorCode::NoNode) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_protected(&self, path: &str, data: &[u8]) -> Result<(), ErrorCode> {
        let sid = self.server_session().await?;
        let op = WriteOp::Create {
            path: path.into(),
            data: data.to_vec(),
            acl: protected_acl(),
            flags: 0,
            ttl_ms: -1,
            op: crate::zk::op::CREATE,
        };
        match self.local_command(sid, CommandKind::Write(op)).await? {
            TxnResult::Error(e) => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::{Caller, CoordinatorConfig};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_can_neither_read_nor_replace_protected_znodes() {
        let dir = tempfile::tempdir().unwrap();
        let config = CoordinatorConfig {
            data_dir: dir.path().display().to_string(),
            ..Default::default()
        };
        let zk = super::super::open(&config, u64::MAX).unwrap();
        zk.put_protected("/config/users", "/config/users/alice", b"secret")
            .await
            .unwrap();
        assert_eq!(
            zk.get_protected("/config/users/alice").unwrap(),
            b"secret".to_vec()
        );
        assert_eq!(zk.children_protected("/config/users"), vec!["alice"]);
        let client = vec![Id {
            scheme: "ip".into(),
            id: "127.0.0.1".into(),
        }];
        let mut inner = zk.lock();
        let caller = Caller {
            session_id: 7,
            auth: &client,
        };
        assert_eq!(
            inner
                .coord
                .get_data(caller, "/config/users/alice", false)
                .map(|_| ()),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(
            inner
                .coord
                .get_children(caller, "/config/users", false)
                .map(|_| ()),
            Err(ErrorCode::NoAuth)
        );
    }
}

//! The user store: SCRAM credentials in the znode tree, where every node of the quorum
//! reads the same ones. Each user is `/config/users/<name>` holding Kafka's JSON,
//! `{"version":2,"config":{"SCRAM-SHA-256":"salt=..,stored_key=..,server_key=..,iterations=4096"}}`
//! — salted and hashed, never the password — under an ACL no ZooKeeper client passes
//! (see `server::zk::protected`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::scram::{Credential, Mechanism};
use crate::coordinator::ErrorCode;
use crate::server::zk::ZkHandle;

/// Where users live.
pub const USERS_PATH: &str = "/config/users";
/// Longest user name.
pub const NAME_MAX_BYTES: usize = 255;

/// One user's znode.
#[derive(Debug, Default, Serialize, Deserialize)]
struct UserZnode {
    version: u32,
    /// Mechanism name → Kafka's credential text.
    config: BTreeMap<String, String>,
}

/// Why a user name cannot be stored.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > NAME_MAX_BYTES {
        return Err(format!("a user name has 1 to {NAME_MAX_BYTES} bytes"));
    }
    if name == "." || name == ".." || name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!(
            "`{name}`: a user name cannot be . or .., nor contain / or control characters"
        ));
    }
    Ok(())
}

/// Credentials on the coordinator.
#[derive(Debug)]
pub struct UserStore {
    zk: ZkHandle,
}

impl UserStore {
    /// The store over this node's coordinator.
    pub fn new(zk: ZkHandle) -> UserStore {
        UserStore { zk }
    }

    fn path(name: &str) -> String {
        format!("{USERS_PATH}/{name}")
    }

    fn read(&self, name: &str) -> Option<UserZnode> {
        validate_name(name).ok()?;
        let data = self.zk.get_protected(&Self::path(name))?;
        match serde_json::from_slice(&data) {
            Ok(user) => Some(user),
            Err(error) => {
                tracing::warn!(user = name, %error, "unreadable user znode; ignoring it");
                None
            }
        }
    }

    /// The user's credential for `mechanism`.
    pub fn credential(&self, name: &str, mechanism: Mechanism) -> Option<Credential> {
        let user = self.read(name)?;
        let text = user.config.get(mechanism.name())?;
        Credential::from_kafka_string(text)
            .inspect_err(|error| {
                tracing::warn!(user = name, mechanism = mechanism.name(), %error, "unreadable credential")
            })
            .ok()
    }

    /// The mechanisms the user has a credential for, with their iterations.
    pub fn mechanisms(&self, name: &str) -> Vec<(Mechanism, u32)> {
        Mechanism::ALL
            .into_iter()
            .filter_map(|m| self.credential(name, m).map(|c| (m, c.iterations)))
            .collect()
    }

    /// Every user with at least one credential, sorted.
    pub fn users(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .zk
            .children_protected(USERS_PATH)
            .into_iter()
            .filter(|n| !self.mechanisms(n).is_empty())
            .collect();
        names.sort();
        names
    }

    /// Whether any user exists.
    pub fn is_empty(&self) -> bool {
        self.users().is_empty()
    }

    /// Add or replace the user's credential for `mechanism` (the user's other mechanisms
    /// are kept, even when another node changes them at the same time).
    pub async fn upsert(
        &self,
        name: &str,
        mechanism: Mechanism,
        credential: &Credential,
    ) -> Result<(), ErrorCode> {
        validate_name(name).map_err(|_| ErrorCode::BadArguments)?;
        let encoded = credential.to_kafka_string();
        self.zk
            .update_protected(USERS_PATH, &Self::path(name), |current| {
                let mut user: UserZnode = current
                    .and_then(|data| serde_json::from_slice(data).ok())
                    .unwrap_or_default();
                user.version = 2;
                user.config
                    .insert(mechanism.name().to_string(), encoded.clone());
                let data = serde_json::to_vec(&user).expect("a user znode serializes");
                (Some(data), ())
            })
            .await
    }

    /// Remove the user's credential for `mechanism` (the user goes with its last one);
    /// false when there was none.
    pub async fn remove(&self, name: &str, mechanism: Mechanism) -> Result<bool, ErrorCode> {
        if validate_name(name).is_err() {
            return Ok(false);
        }
        self.zk
            .update_protected(USERS_PATH, &Self::path(name), |current| {
                let Some(data) = current else {
                    return (None, false);
                };
                let Ok(mut user) = serde_json::from_slice::<UserZnode>(data) else {
                    return (Some(data.to_vec()), false);
                };
                if user.config.remove(mechanism.name()).is_none() {
                    return (Some(data.to_vec()), false);
                }
                if user
                    .config
                    .keys()
                    .any(|k| Mechanism::from_name(k).is_some())
                {
                    let data = serde_json::to_vec(&user).expect("a user znode serializes");
                    (Some(data), true)
                } else {
                    (None, true)
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn credentials_are_stored_per_mechanism_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::coordinator::CoordinatorConfig {
            data_dir: dir.path().display().to_string(),
            ..Default::default()
        };
        let zk = crate::server::zk::open(&config, u64::MAX).unwrap();
        let store = UserStore::new(zk.clone());
        assert!(store.is_empty());
        let c256 = Credential::from_password(Mechanism::Sha256, "pass-word", b"salt", 4096);
        let c512 = Credential::from_password(Mechanism::Sha512, "pass-word", b"salt", 8192);
        store
            .upsert("alice", Mechanism::Sha256, &c256)
            .await
            .unwrap();
        store
            .upsert("alice", Mechanism::Sha512, &c512)
            .await
            .unwrap();
        assert_eq!(store.credential("alice", Mechanism::Sha512), Some(c512));
        assert_eq!(
            store.mechanisms("alice"),
            vec![(Mechanism::Sha256, 4096), (Mechanism::Sha512, 8192)]
        );
        assert_eq!(store.users(), vec!["alice".to_string()]);
        // Kafka's JSON, with no password in it.
        let raw = String::from_utf8(zk.get_protected("/config/users/alice").unwrap()).unwrap();
        assert!(raw.contains("\"SCRAM-SHA-256\":\"salt="), "{raw}");
        assert!(!raw.contains("pass-word"));
        assert!(store.remove("alice", Mechanism::Sha256).await.unwrap());
        assert!(!store.remove("alice", Mechanism::Sha256).await.unwrap());
        assert!(store.remove("alice", Mechanism::Sha512).await.unwrap());
        assert!(store.is_empty());
        assert!(validate_name("a/b").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_to_one_user_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::coordinator::CoordinatorConfig {
            data_dir: dir.path().display().to_string(),
            ..Default::default()
        };
        let zk = crate::server::zk::open(&config, u64::MAX).unwrap();
        for round in 0..10 {
            let name = format!("user{round}");
            let mut writes = tokio::task::JoinSet::new();
            for (mechanism, iterations) in [(Mechanism::Sha256, 4096), (Mechanism::Sha512, 8192)] {
                let store = UserStore::new(zk.clone());
                let name = name.clone();
                writes.spawn(async move {
                    let c = Credential::from_password(mechanism, "pw", b"salt", iterations);
                    store.upsert(&name, mechanism, &c).await
                });
            }
            while let Some(r) = writes.join_next().await {
                r.unwrap().unwrap();
            }
            let store = UserStore::new(zk.clone());
            assert_eq!(store.mechanisms(&name).len(), 2, "round {round}");
        }
    }
}

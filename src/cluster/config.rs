//! `[cluster]`: the quorum's members and Raft timings. Absent = a single node, as before.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The cluster section of the config.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Address the peer port binds (Raft and, later, partition replication).
    pub listen: String,
    /// Members: node id to `host:port` of its peer listener, as zoo.cfg's `server.N`.
    /// TOML keys are strings (`{ 1 = "pi1:2888" }`); they are parsed as ids in
    /// [`ClusterConfig::members`].
    pub servers: BTreeMap<String, String>,
    /// Leader heartbeat period.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for a random time in [min, max) starts an election.
    /// Defaults suit a Pi on Wi-Fi while keeping failover under 3 s.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the election timeout.
    pub election_timeout_max_ms: u64,
    /// Log entries applied since the last snapshot before a new one is taken.
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log behind a snapshot, so a briefly lagging follower catches up
    /// from the log instead of receiving the whole snapshot.
    pub logs_to_keep_after_snapshot: u64,
    /// Timeout of one peer RPC (connect plus reply), and of a forwarded write.
    pub rpc_timeout_ms: u64,
    /// Timeout of each node's own coordinator session, which owns its `/brokers/ids/<id>`
    /// registration (Kafka's `broker.session.timeout.ms`): how long after a node dies the
    /// controller moves its partition leaderships. Followers report liveness every
    /// sixth of it.
    pub broker_session_timeout_ms: u64,
    /// Mutual TLS on the peer port with `[tls]`'s certificate, key and CA: a node serves and
    /// dials peers over TLS, and each end must present a certificate the CA signed.
    pub tls: bool,
    /// Where the Kafka metadata lives in the tree (Kafka's `zookeeper.connect` chroot):
    /// "" keeps `/brokers`, `/controller` and the rest at the root; `"/kafka-broker"` puts
    /// them under `/kafka-broker/`. Every node must use the same.
    pub metadata_chroot: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            listen: "0.0.0.0:2888".into(),
            servers: BTreeMap::new(),
            heartbeat_interval_ms: 100,
            // openraft lets a follower stand only after the leader lease (the max) plus its own
            // timeout: 0.9-1.2 s of silence, nine heartbeats or more.
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            snapshot_logs_since_last: 10_000,
            logs_to_keep_after_snapshot: 1000,
            rpc_timeout_ms: 5000,
            broker_session_timeout_ms: 1500,
            tls: false,
            metadata_chroot: String::new(),
        }
    }
}

impl ClusterConfig {
    /// The members with parsed ids.
    pub fn members(&self) -> Result<BTreeMap<u64, String>, String> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.servers {
            let id: u64 = k.trim().parse().map_err(|_| {
                format!("cluster.servers: key {k:?} is not a node id (a number 1..=255)")
            })?;
            if id == 0 || id > 255 {
                return Err(format!(
                    "cluster.servers: node id {id} must be 1..=255 (as ZooKeeper's myid)"
                ));
            }
            crate::config::split_host_port(v).map_err(|e| format!("cluster.servers.{k}: {e}"))?;
            out.insert(id, v.clone());
        }
        Ok(out)
    }

    /// Checks the section; `node_id` is this node's id (from `[node] id` or `myid`).
    pub fn validate(&self, node_id: u64) -> Result<(), String> {
        crate::config::parse_listener(&self.listen).map_err(|e| format!("cluster.listen: {e}"))?;
        let members = self.members()?;
        if ![1, 3, 5].contains(&members.len()) {
            return Err(format!(
                "cluster.servers lists {} servers; a quorum needs 3 or 5 (or 1 for a single-node cluster)",
                members.len()
            ));
        }
        if !members.contains_key(&node_id) {
            let ids: Vec<String> = members.keys().map(|k| k.to_string()).collect();
            return Err(format!(
                "this node's id {node_id} is not in cluster.servers (ids: {}); set [node] id or myid to one of them",
                ids.join(", ")
            ));
        }
        let root = &self.metadata_chroot;
        if !root.is_empty()
            && (!root.starts_with('/')
                || root[1..]
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
                || root == "/zookeeper"
                || root.starts_with("/zookeeper/"))
        {
            return Err(format!(
                "cluster.metadata_chroot {root:?} must be empty or an absolute znode path such as \"/kafka-broker\" (no trailing '/', not under /zookeeper)"
            ));
        }
        if self.heartbeat_interval_ms == 0 {
            return Err("cluster.heartbeat_interval_ms must be > 0".into());
        }
        if self.election_timeout_min_ms <= self.heartbeat_interval_ms * 2 {
            return Err(
                "cluster.election_timeout_min_ms must exceed twice heartbeat_interval_ms".into(),
            );
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(
                "cluster.election_timeout_max_ms must exceed election_timeout_min_ms".into(),
            );
        }
        if self.snapshot_logs_since_last == 0 {
            return Err("cluster.snapshot_logs_since_last must be > 0".into());
        }
        if self.rpc_timeout_ms < 100 {
            return Err("cluster.rpc_timeout_ms must be at least 100".into());
        }
        if !(300..=600_000).contains(&self.broker_session_timeout_ms) {
            return Err("cluster.broker_session_timeout_ms must be 300..=600000".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ClusterConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn three_servers_with_defaults_validate() {
        let c = parse("servers = { 1 = \"pi1:2888\", 2 = \"pi2:2888\", 3 = \"pi3:2888\" }\n");
        c.validate(2).unwrap();
        assert_eq!(c.members().unwrap()[&3], "pi3:2888");
    }

    #[test]
    fn a_node_missing_from_servers_is_refused_by_id() {
        let c = parse("servers = { 1 = \"a:1\", 2 = \"b:1\", 3 = \"c:1\" }\n");
        let e = c.validate(7).unwrap_err();
        assert!(e.contains("id 7") && e.contains("1, 2, 3"), "{e}");
    }

    #[test]
    fn two_or_four_servers_are_refused() {
        let c = parse("servers = { 1 = \"a:1\", 2 = \"b:1\" }\n");
        assert!(c.validate(1).unwrap_err().contains("3 or 5"));
        assert!(toml::from_str::<ClusterConfig>("heartbeat = 5\n").is_err());
    }

    #[test]
    fn a_metadata_chroot_must_be_an_absolute_znode_path() {
        let servers = "servers = { 1 = \"a:1\", 2 = \"b:1\", 3 = \"c:1\" }\n";
        for ok in ["", "/kafka-broker", "/a/b"] {
            parse(&format!("{servers}metadata_chroot = \"{ok}\"\n"))
                .validate(1)
                .unwrap();
        }
        for bad in [
            "kafka",
            "/kafka/",
            "/",
            "/a//b",
            "/zookeeper",
            "/zookeeper/x",
            "/a/..",
        ] {
            let e = parse(&format!("{servers}metadata_chroot = \"{bad}\"\n"))
                .validate(1)
                .unwrap_err();
            assert!(e.contains("cluster.metadata_chroot"), "{bad}: {e}");
        }
    }
}

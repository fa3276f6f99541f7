//! `[coordinator]` configuration, keys named after ZooKeeper's zoo.cfg in snake case.

use serde::Deserialize;

/// The coordinator's settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinatorConfig {
    /// ZooKeeper's dataDir: myid, txn logs and snapshots.
    pub data_dir: String,
    /// Client address (ZooKeeper's clientPortAddress:clientPort).
    pub listen: String,
    /// A second client address whose connections are TLS, with `[tls]`'s certificate
    /// (ZooKeeper's secureClientPort); absent = none.
    pub secure_listen: Option<String>,
    /// ZooKeeper's tickTime.
    pub tick_time_ms: u32,
    /// Connections allowed from one client address (0 = unlimited).
    pub max_client_cnxns: u32,
    /// Largest request frame and node data, bytes.
    pub jute_maxbuffer: u32,
    /// Snapshots (and the logs they need) kept by purge; at least 3.
    pub autopurge_snap_retain_count: u32,
    /// Hours between purges; 0 = off.
    pub autopurge_purge_interval: u32,
    /// Txns between snapshots.
    pub snap_count: u32,
    /// Bytes a txn log file grows by at a time (ZooKeeper's preAllocSize, far smaller here).
    pub preallocate_bytes: u32,
    /// Cap on registered watches across all sessions (0 = unlimited).
    pub max_watches: u32,
    /// Four-letter words answered; `["*"]` = all.
    pub four_letter_words: Vec<String>,
    /// Smallest negotiated session timeout; 0 = 2 x tick_time_ms.
    pub min_session_timeout_ms: u32,
    /// Largest negotiated session timeout; 0 = 20 x tick_time_ms.
    pub max_session_timeout_ms: u32,
    /// Requests in flight across all connections before reading pauses.
    pub global_outstanding_limit: u32,
    /// How often empty containers and expired TTL nodes are reaped
    /// (ZooKeeper's znode.container.checkIntervalMs).
    pub container_check_interval_ms: u32,
    /// Fsync the txn log before answering writes (ZooKeeper's forceSync).
    pub force_sync: bool,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            data_dir: "/var/lib/zookeeper".into(),
            listen: "127.0.0.1:2181".into(),
            secure_listen: None,
            tick_time_ms: 2000,
            max_client_cnxns: 60,
            jute_maxbuffer: 1_048_576,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval: 24,
            snap_count: 100_000,
            preallocate_bytes: 1 << 20,
            max_watches: 1_000_000,
            four_letter_words: vec!["*".into()],
            min_session_timeout_ms: 0,
            max_session_timeout_ms: 0,
            global_outstanding_limit: 1000,
            container_check_interval_ms: 60_000,
            force_sync: true,
        }
    }
}

/// The four-letter words this server knows.
pub const FOUR_LETTER_WORDS: [&str; 11] = [
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "dirs", "isro", "crst",
];

impl CoordinatorConfig {
    /// Checks every key; the error names the key and what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.data_dir.is_empty() {
            return Err("coordinator.data_dir must not be empty".into());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "coordinator.listen: {:?} is not HOST:PORT with an IP address",
                self.listen
            ));
        }
        if let Some(secure) = &self.secure_listen {
            if secure.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!(
                    "coordinator.secure_listen: {secure:?} is not HOST:PORT with an IP address"
                ));
            }
        }
        if self.tick_time_ms == 0 {
            return Err("coordinator.tick_time_ms must be > 0".into());
        }
        if self.jute_maxbuffer < 1024 {
            return Err("coordinator.jute_maxbuffer must be at least 1024 bytes".into());
        }
        if self.autopurge_snap_retain_count < 3 {
            return Err(
                "coordinator.autopurge_snap_retain_count must be at least 3 (as in ZooKeeper)"
                    .into(),
            );
        }
        if self.snap_count < 2 {
            return Err("coordinator.snap_count must be at least 2".into());
        }
        if self.preallocate_bytes < 4096 {
            return Err("coordinator.preallocate_bytes must be at least 4096".into());
        }
        let (min, max) = self.session_timeout_bounds();
        if min > max {
            return Err(
                "coordinator.min_session_timeout_ms must not exceed max_session_timeout_ms".into(),
            );
        }
        if self.global_outstanding_limit == 0 {
            return Err("coordinator.global_outstanding_limit must be > 0".into());
        }
        for w in &self.four_letter_words {
            if w != "*" && !FOUR_LETTER_WORDS.contains(&w.as_str()) {
                return Err(format!("coordinator.four_letter_words: unknown word {w:?}"));
            }
        }
        Ok(())
    }

    /// The timeout bounds, following ZooKeeper: unset (0) means 2x / 20x tick.
    pub fn session_timeout_bounds(&self) -> (i32, i32) {
        let min = if self.min_session_timeout_ms == 0 {
            self.tick_time_ms * 2
        } else {
            self.min_session_timeout_ms
        };
        let max = if self.max_session_timeout_ms == 0 {
            self.tick_time_ms * 20
        } else {
            self.max_session_timeout_ms
        };
        (min as i32, max as i32)
    }

    /// Whether a four-letter word is allowed.
    pub fn allows_word(&self, w: &str) -> bool {
        self.four_letter_words.iter().any(|a| a == "*" || a == w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_unknown_keys_are_refused() {
        CoordinatorConfig::default().validate().unwrap();
        let c: CoordinatorConfig = toml::from_str("tick_time_ms = 100\n").unwrap();
        assert_eq!(c.tick_time_ms, 100);
        assert!(toml::from_str::<CoordinatorConfig>("tickTime = 100\n").is_err());
        let bad = CoordinatorConfig {
            four_letter_words: vec!["kill".into()],
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("four_letter_words"));
    }
}

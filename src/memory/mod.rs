//! The memory budget: one number (`[memory] budget`) split at startup into named pools, each
//! with a limit. Every large or unbounded allocation path takes a [`pool::Grant`] before it
//! allocates; a full pool means backpressure (stop reading that socket, wait, answer with a
//! smaller fetch) instead of growing past the budget.
//!
//! What is reserved up front ([`FIXED_OVERHEAD_BYTES`]) covers the code, the tokio runtime,
//! thread stacks and the allocator's own slack; the rest is shared out as [`SHARES`] says.

pub mod pool;
pub mod stats;

use std::sync::Arc;

use serde::Deserialize;

pub use pool::{Grant, Pool};

/// Resident memory the pools do not cover: code, runtime, thread stacks, connection state.
/// Measured under the 64 MiB load test: about 24-30 MiB for a debug build (health,
/// 200 connections); a release build idles at 6-8 MiB. Each is rounded up with room to spare.
pub const FIXED_OVERHEAD_BYTES: u64 = if cfg!(debug_assertions) {
    32 << 20
} else {
    16 << 20
};

/// Share of what remains after the fixed overhead that the pools hand out; the rest is
/// headroom for the allocator (freed buffers it has not yet returned to the OS) and for
/// transient copies the pools do not see.
pub const POOLED_PERCENT: u64 = 75;

/// Why the request pool needs more than twice its largest frame, for the startup error.
const BESIDE_CONNECTIONS: &str =
    " (twice the largest frame, beside the 40% of the pool TLS connections may hold)";

/// The smallest budget accepted.
pub const MIN_BUDGET_BYTES: u64 = 32 << 20;

/// "auto": this share of the machine's RAM (a Pi also runs the OS and page cache, which the
/// log's reads and writes live on).
pub const AUTO_SHARE_PERCENT: u64 = 25;

/// Each pool's share of what remains after the fixed overhead, in percent.
pub const SHARES: [(&str, u64); 7] = [
    ("kafka_requests", 30),
    ("fetch_responses", 25),
    ("znodes", 20),
    ("replication", 10),
    ("mqtt_inflight", 5),
    ("group_state", 5),
    ("index_cache", 5),
];

/// `[memory]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// The most memory bramble uses: a size ("192MiB", "1GiB", "65536KiB", bytes) or "auto".
    pub budget: String,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            budget: "192MiB".into(),
        }
    }
}

/// Parse "192MiB", "64MB", "1GiB", "65536KiB" or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size such as \"192MiB\" or \"auto\""))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" | "k" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}'; use KiB, MiB or GiB"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Total RAM from /proc/meminfo, for "auto".
fn machine_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The budget and its pools.
#[derive(Debug)]
pub struct Budget {
    /// The whole budget in bytes.
    pub total_bytes: u64,
    /// Request frames being read, decoded and answered (Kafka and ZooKeeper).
    pub kafka_requests: Arc<Pool>,
    /// Fetch response buffers.
    pub fetch_responses: Arc<Pool>,
    /// The znode tree and watches.
    pub znodes: Arc<Pool>,
    /// Partition replication buffers.
    pub replication: Arc<Pool>,
    /// MQTT messages waiting for their commit.
    pub mqtt_inflight: Arc<Pool>,
    /// Consumer group metadata and assignments.
    pub group_state: Arc<Pool>,
    /// Segment index caches.
    pub index_cache: Arc<Pool>,
}

/// What the limits elsewhere in the config need from the pools (so a budget too small
/// for them is refused at startup with what would fit).
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// Largest Kafka request frame.
    pub request_max_bytes: u64,
    /// Largest batch (a fetch must be able to hold one).
    pub message_max_bytes: u64,
    /// Largest znode / ZooKeeper request.
    pub jute_maxbuffer: u64,
    /// Whether the node replicates partitions (`[cluster]`): only then must the
    /// replication pool hold a fetch.
    pub clustered: bool,
}

impl Budget {
    /// Resolve the budget and split it; refuse budgets that cannot hold the configured
    /// limits, naming what would fit.
    pub fn new(config: &MemoryConfig, needs: Needs) -> Result<Budget, String> {
        let total = match config.budget.trim() {
            "auto" => {
                let ram = machine_memory_bytes()
                    .ok_or("cannot read MemTotal from /proc/meminfo for budget = \"auto\"")?;
                (ram * AUTO_SHARE_PERCENT / 100).max(MIN_BUDGET_BYTES)
            }
            text => parse_size(text)?,
        };
        if total < MIN_BUDGET_BYTES {
            return Err(format!(
                "budget {} MiB is below the minimum of {} MiB",
                total >> 20,
                MIN_BUDGET_BYTES >> 20
            ));
        }
        let usable = (total - FIXED_OVERHEAD_BYTES) * POOLED_PERCENT / 100;
        let share = |name: &str| {
            let percent = SHARES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| *p)
                .unwrap_or(0);
            usable * percent / 100
        };
        // What each pool must hold at least once, or its users could never progress: a
        // request is held while decoded (twice its frame, see server::kafka), a fetch
        // twice its batch (read, then encoded), the tree a few of its largest znodes. The
        // request pool holds that beside what open TLS connections may take of it
        // (pool::CONNECTION_SHARE_PERCENT), or a large frame could wait on idle connections.
        let beside_connections = |bytes: u64| bytes * 100 / (100 - pool::CONNECTION_SHARE_PERCENT);
        let mut checks = vec![
            (
                "kafka_requests",
                beside_connections(2 * needs.request_max_bytes),
                "broker.socket_request_max_bytes",
                BESIDE_CONNECTIONS,
            ),
            // ZooKeeper request frames draw from the same pool (see server::zk).
            (
                "kafka_requests",
                beside_connections(2 * needs.jute_maxbuffer),
                "coordinator.jute_maxbuffer",
                BESIDE_CONNECTIONS,
            ),
            (
                "fetch_responses",
                2 * needs.message_max_bytes,
                "broker.message_max_bytes",
                "",
            ),
            (
                "znodes",
                4 * needs.jute_maxbuffer,
                "coordinator.jute_maxbuffer",
                "",
            ),
        ];
        if needs.clustered {
            // A follower's fetch, and the leader's answer to it, each take at least one
            // maximal batch twice over from this pool (see replication::FollowerFetch).
            checks.push((
                "replication",
                2 * needs.message_max_bytes,
                "broker.message_max_bytes",
                "",
            ));
        }
        for (pool, needed, key, why) in checks {
            let have = share(pool);
            if have < needed {
                let percent = SHARES
                    .iter()
                    .find(|(n, _)| *n == pool)
                    .map(|(_, p)| *p)
                    .unwrap_or(1);
                let budget_needed =
                    FIXED_OVERHEAD_BYTES + needed * 100 / percent * 100 / POOLED_PERCENT;
                return Err(format!(
                    "budget {} MiB gives the {pool} pool {} KiB, but {key} needs {} KiB{why}; \
                     raise memory.budget to at least {} MiB or lower {key}",
                    total >> 20,
                    have >> 10,
                    needed >> 10,
                    budget_needed.div_ceil(1 << 20)
                ));
            }
        }
        Ok(Budget {
            total_bytes: total,
            kafka_requests: Pool::new("kafka_requests", share("kafka_requests")),
            fetch_responses: Pool::new("fetch_responses", share("fetch_responses")),
            znodes: Pool::new("znodes", share("znodes")),
            replication: Pool::new("replication", share("replication")),
            mqtt_inflight: Pool::new("mqtt_inflight", share("mqtt_inflight")),
            group_state: Pool::new("group_state", share("group_state")),
            index_cache: Pool::new("index_cache", share("index_cache")),
        })
    }

    /// Every pool, for metrics and /health.
    pub fn pools(&self) -> [&Arc<Pool>; 7] {
        [
            &self.kafka_requests,
            &self.fetch_responses,
            &self.znodes,
            &self.replication,
            &self.mqtt_inflight,
            &self.group_state,
            &self.index_cache,
        ]
    }

    /// Whether any pool is dry right now (health turns degraded).
    pub fn any_exhausted(&self) -> bool {
        self.pools().iter().any(|p| p.is_exhausted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs() -> Needs {
        Needs {
            request_max_bytes: 1 << 20,
            message_max_bytes: 1 << 20,
            jute_maxbuffer: 1 << 20,
            clustered: false,
        }
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("192MiB").unwrap(), 192 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("65536KiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn the_budget_is_split_into_pools_that_fit_it() {
        let budget = Budget::new(
            &MemoryConfig {
                budget: "192MiB".into(),
            },
            needs(),
        )
        .unwrap();
        let pooled: u64 = budget.pools().iter().map(|p| p.limit_bytes()).sum();
        assert!(pooled + FIXED_OVERHEAD_BYTES <= 192 << 20);
        assert!(
            pooled + FIXED_OVERHEAD_BYTES > (192 << 20) * 7 / 10,
            "most of the budget is usable"
        );
    }

    #[test]
    fn a_budget_too_small_for_the_limits_says_what_fits() {
        let big = Needs {
            request_max_bytes: 16 << 20,
            ..needs()
        };
        let error = Budget::new(
            &MemoryConfig {
                budget: "64MiB".into(),
            },
            big,
        )
        .unwrap_err();
        assert!(error.contains("broker.socket_request_max_bytes"), "{error}");
        assert!(error.contains("raise memory.budget to at least"), "{error}");
        assert!(Budget::new(
            &MemoryConfig {
                budget: "16MiB".into()
            },
            needs()
        )
        .is_err());
    }

    #[test]
    fn a_cluster_needs_a_replication_pool_that_holds_one_fetch() {
        // 96 MiB: the replication pool gets (96 - fixed) x 75% x 10%, under 4 MiB either
        // way, too little for two copies of a 3 MiB batch; the fetch pool (25%) holds it.
        let big_batches = Needs {
            message_max_bytes: 3 << 20,
            ..needs()
        };
        let config = MemoryConfig {
            budget: "96MiB".into(),
        };
        assert!(
            Budget::new(&config, big_batches).is_ok(),
            "a single node does not replicate"
        );
        let error = Budget::new(
            &config,
            Needs {
                clustered: true,
                ..big_batches
            },
        )
        .unwrap_err();
        assert!(error.contains("replication pool"), "{error}");
        assert!(
            error.contains("broker.message_max_bytes needs 6144 KiB"),
            "{error}"
        );
        // The budget it names is enough.
        let at_least: u64 = error
            .split("at least ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|mib| mib.parse().ok())
            .expect("the error names a budget");
        let fits = Budget::new(
            &MemoryConfig {
                budget: format!("{at_least}MiB"),
            },
            Needs {
                clustered: true,
                ..big_batches
            },
        )
        .unwrap();
        assert!(fits.replication.limit_bytes() >= 6 << 20);
        assert!(Budget::new(
            &MemoryConfig {
                budget: format!("{}MiB", at_least - 1),
            },
            Needs {
                clustered: true,
                ..big_batches
            },
        )
        .is_err());
    }

    #[test]
    fn zookeeper_frames_must_fit_the_request_pool() {
        let error = Budget::new(
            &MemoryConfig {
                budget: "64MiB".into(),
            },
            Needs {
                jute_maxbuffer: 6 << 20,
                ..needs()
            },
        )
        .unwrap_err();
        assert!(error.contains("coordinator.jute_maxbuffer"), "{error}");
    }

    #[test]
    fn auto_takes_a_share_of_the_machine() {
        let budget = Budget::new(
            &MemoryConfig {
                budget: "auto".into(),
            },
            needs(),
        )
        .unwrap();
        assert!(budget.total_bytes >= MIN_BUDGET_BYTES);
    }
}

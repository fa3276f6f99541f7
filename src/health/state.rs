//! The health state machine: facts in, one state out, with the reason for every change.
//!
//! Pure: time (monotonic and wall clock) is handed in with each observation, so every
//! transition is testable without sleeping. The order of precedence, most severe first:
//! `fault` (sticky until restart), `booting` (listeners not up yet), `no-quorum`,
//! `degraded`, then the quorum role (`leader` or `follower`).

use std::fmt;

/// The node's health, as the LED, `/health`, `bramble status` and systemd show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Starting: logs recovering, listeners not up yet.
    Booting,
    /// No quorum: this node cannot tell who leads (no majority reachable).
    NoQuorum,
    /// Healthy follower of the quorum leader.
    Follower,
    /// Healthy quorum leader (a single node is always its own leader).
    Leader,
    /// Serving, but something needs attention (replication, disk, heat, memory, clock).
    Degraded,
    /// Not trustworthy: a storage error or a config error after start. Sticky until restart.
    Fault,
}

impl State {
    /// Every state, in display order.
    pub const ALL: [State; 6] = [
        State::Booting,
        State::NoQuorum,
        State::Follower,
        State::Leader,
        State::Degraded,
        State::Fault,
    ];

    /// The name used everywhere the state is shown (`no-quorum`, not `NoQuorum`).
    pub fn name(self) -> &'static str {
        match self {
            State::Booting => "booting",
            State::NoQuorum => "no-quorum",
            State::Follower => "follower",
            State::Leader => "leader",
            State::Degraded => "degraded",
            State::Fault => "fault",
        }
    }

    /// Whether the node answers clients in this state (`/health` gives 200, else 503).
    pub fn is_serving(self) -> bool {
        matches!(self, State::Leader | State::Follower | State::Degraded)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// This node's part in the quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Leads the quorum (and is the controller).
    Leader,
    /// Follows a leader.
    Follower,
    /// Campaigning or cut off: no known leader.
    Candidate,
    /// Not a voting member (learner).
    Learner,
}

impl Role {
    /// The name shown in `/health` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
        }
    }
}

/// Limits past which a fact makes the node `degraded`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Disk usage of the log directory, in percent.
    pub disk_usage_percent: u8,
    /// CPU temperature, in degrees Celsius.
    pub temperature_celsius: f32,
    /// Wall clock moving this much more or less than the monotonic clock counts as a jump.
    pub clock_jump_ms: u64,
    /// How long a clock jump keeps the node degraded.
    pub clock_jump_hold_ms: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            disk_usage_percent: 90,
            temperature_celsius: 80.0,
            clock_jump_ms: 2_000,
            clock_jump_hold_ms: 60_000,
        }
    }
}

/// Everything the state machine decides from, gathered once per tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The listeners are up and the logs recovered.
    pub serving: bool,
    /// The quorum role; `None` before the quorum has said anything.
    pub role: Option<Role>,
    /// A majority is reachable and a leader known.
    pub quorum: bool,
    /// Partitions with fewer in-sync replicas than replicas.
    pub under_replicated: u32,
    /// Partitions with no leader.
    pub offline: u32,
    /// (used, total) bytes of the file system holding the logs.
    pub disk_bytes: Option<(u64, u64)>,
    /// CPU temperature in degrees Celsius.
    pub temperature_celsius: Option<f32>,
    /// The firmware reports throttling or under-voltage now.
    pub throttled: bool,
    /// Memory pools that are full (backpressure on).
    pub exhausted_pools: Vec<String>,
    /// A storage error (fsync, write, checkpoint) since start.
    pub storage_error: Option<String>,
    /// A config error found after start (e.g. a reload that failed).
    pub config_error: Option<String>,
}

/// The clocks at the moment of an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds on a monotonic clock (any origin).
    pub mono_ms: u64,
    /// Milliseconds since the Unix epoch (may jump).
    pub wall_ms: u64,
}

/// A change of state, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state now.
    pub to: State,
    /// Why, in words (`disk 93% used (threshold 90%)`).
    pub reason: String,
}

/// The health state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    thresholds: Thresholds,
    state: State,
    reason: String,
    since_mono_ms: u64,
    last: Option<Now>,
    clock_jump: Option<(i64, u64)>,
    fault: Option<String>,
}

impl Machine {
    /// A machine in `booting`, started at `now`.
    pub fn new(thresholds: Thresholds, now: Now) -> Machine {
        Machine {
            thresholds,
            state: State::Booting,
            reason: "starting".into(),
            since_mono_ms: now.mono_ms,
            last: None,
            clock_jump: None,
            fault: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Why the machine is in its current state.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Monotonic time of the last change.
    pub fn since_mono_ms(&self) -> u64 {
        self.since_mono_ms
    }

    /// Take in the facts at `now`; returns the transition if the state changed. The reason
    /// is updated even without a change (a second degraded cause), but only a change of state
    /// is returned.
    pub fn observe(&mut self, facts: &Facts, now: Now) -> Option<Transition> {
        self.track_clock(now);
        let (state, reason) = self.decide(facts, now);
        self.reason = reason;
        if state == self.state {
            return None;
        }
        let from = self.state;
        self.state = state;
        self.since_mono_ms = now.mono_ms;
        Some(Transition {
            from,
            to: state,
            reason: self.reason.clone(),
        })
    }

    /// Remember a wall-clock jump: the wall clock moved differently from the monotonic one
    /// by more than the threshold since the last observation.
    fn track_clock(&mut self, now: Now) {
        if let Some(last) = self.last {
            let mono = now.mono_ms.saturating_sub(last.mono_ms) as i64;
            let wall = now.wall_ms as i64 - last.wall_ms as i64;
            let skew = wall - mono;
            if skew.unsigned_abs() > self.thresholds.clock_jump_ms {
                self.clock_jump = Some((skew, now.mono_ms));
            }
        }
        if let Some((_, at)) = self.clock_jump {
            if now.mono_ms.saturating_sub(at) >= self.thresholds.clock_jump_hold_ms {
                self.clock_jump = None;
            }
        }
        self.last = Some(now);
    }

    fn decide(&mut self, facts: &Facts, now: Now) -> (State, String) {
        if self.fault.is_none() {
            self.fault = facts
                .storage_error
                .as_ref()
                .map(|e| format!("storage error: {e}"))
                .or_else(|| {
                    facts
                        .config_error
                        .as_ref()
                        .map(|e| format!("config error: {e}"))
                });
        }
        if let Some(fault) = &self.fault {
            return (State::Fault, fault.clone());
        }
        if !facts.serving {
            return (State::Booting, "listeners not up yet".into());
        }
        let Some(role) = facts.role.filter(|_| facts.quorum) else {
            return (State::NoQuorum, "no quorum leader known".into());
        };
        let causes = self.degraded_causes(facts, now);
        if !causes.is_empty() {
            return (State::Degraded, causes.join("; "));
        }
        match role {
            Role::Leader => (State::Leader, "quorum leader".into()),
            Role::Follower | Role::Learner => (State::Follower, format!("quorum {}", role.name())),
            Role::Candidate => (State::NoQuorum, "election in progress".into()),
        }
    }

    fn degraded_causes(&self, facts: &Facts, now: Now) -> Vec<String> {
        let t = &self.thresholds;
        let mut causes = Vec::new();
        if facts.under_replicated > 0 {
            causes.push(format!(
                "{} under-replicated partitions",
                facts.under_replicated
            ));
        }
        if facts.offline > 0 {
            causes.push(format!("{} offline partitions", facts.offline));
        }
        if let Some(percent) = facts
            .disk_bytes
            .and_then(|(used, total)| usage_percent(used, total))
        {
            if percent >= u64::from(t.disk_usage_percent) {
                causes.push(format!(
                    "disk {percent}% used (threshold {}%)",
                    t.disk_usage_percent
                ));
            }
        }
        if let Some(celsius) = facts.temperature_celsius {
            if celsius >= t.temperature_celsius {
                causes.push(format!(
                    "CPU at {celsius:.1}°C (threshold {:.0}°C)",
                    t.temperature_celsius
                ));
            }
        }
        if facts.throttled {
            causes.push("CPU throttled or under-voltage".into());
        }
        if !facts.exhausted_pools.is_empty() {
            causes.push(format!(
                "memory pool exhausted: {}",
                facts.exhausted_pools.join(", ")
            ));
        }
        if let Some((skew, at)) = self.clock_jump {
            let ago = now.mono_ms.saturating_sub(at) / 1000;
            causes.push(format!("wall clock jumped {skew:+} ms {ago} s ago"));
        }
        causes
    }
}

/// Whole percent of `used` in `total`; `None` for an empty file system.
pub fn usage_percent(used: u64, total: u64) -> Option<u64> {
    (total > 0).then(|| (u128::from(used) * 100 / u128::from(total)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Now {
        Now {
            mono_ms: ms,
            wall_ms: 1_700_000_000_000 + ms,
        }
    }

    fn healthy(role: Role) -> Facts {
        Facts {
            serving: true,
            role: Some(role),
            quorum: true,
            ..Facts::default()
        }
    }

    fn machine() -> Machine {
        Machine::new(Thresholds::default(), at(0))
    }

    #[test]
    fn starts_booting_and_stays_booting_until_serving() {
        let mut m = machine();
        assert_eq!(m.state(), State::Booting);
        let facts = Facts {
            serving: false,
            ..healthy(Role::Leader)
        };
        assert_eq!(m.observe(&facts, at(100)), None);
        assert_eq!(m.state(), State::Booting);
    }

    #[test]
    fn booting_to_leader_when_single_node_serves() {
        let mut m = machine();
        let t = m.observe(&healthy(Role::Leader), at(100)).unwrap();
        assert_eq!((t.from, t.to), (State::Booting, State::Leader));
        assert_eq!(m.since_mono_ms(), 100);
    }

    #[test]
    fn booting_to_follower() {
        let mut m = machine();
        let t = m.observe(&healthy(Role::Follower), at(100)).unwrap();
        assert_eq!(t.to, State::Follower);
    }

    #[test]
    fn booting_to_no_quorum_without_a_leader() {
        let mut m = machine();
        let facts = Facts {
            quorum: false,
            ..healthy(Role::Follower)
        };
        assert_eq!(m.observe(&facts, at(100)).unwrap().to, State::NoQuorum);
        let mut m = machine();
        assert_eq!(
            m.observe(
                &Facts {
                    role: None,
                    ..healthy(Role::Leader)
                },
                at(100)
            )
            .unwrap()
            .to,
            State::NoQuorum
        );
        let mut m = machine();
        assert_eq!(
            m.observe(&healthy(Role::Candidate), at(100)).unwrap().to,
            State::NoQuorum
        );
    }

    #[test]
    fn follower_becomes_leader_after_election() {
        let mut m = machine();
        m.observe(&healthy(Role::Follower), at(100));
        m.observe(
            &Facts {
                quorum: false,
                ..healthy(Role::Candidate)
            },
            at(200),
        );
        assert_eq!(m.state(), State::NoQuorum);
        let t = m.observe(&healthy(Role::Leader), at(300)).unwrap();
        assert_eq!((t.from, t.to), (State::NoQuorum, State::Leader));
    }

    #[test]
    fn leader_to_no_quorum_when_majority_lost() {
        let mut m = machine();
        m.observe(&healthy(Role::Leader), at(100));
        let t = m
            .observe(
                &Facts {
                    quorum: false,
                    ..healthy(Role::Leader)
                },
                at(200),
            )
            .unwrap();
        assert_eq!((t.from, t.to), (State::Leader, State::NoQuorum));
    }

    #[test]
    fn under_replicated_or_offline_partitions_degrade() {
        let mut m = machine();
        m.observe(&healthy(Role::Leader), at(100));
        let t = m
            .observe(
                &Facts {
                    under_replicated: 2,
                    ..healthy(Role::Leader)
                },
                at(200),
            )
            .unwrap();
        assert_eq!(t.to, State::Degraded);
        assert!(t.reason.contains("2 under-replicated"), "{}", t.reason);
        let t = m.observe(&healthy(Role::Leader), at(300)).unwrap();
        assert_eq!((t.from, t.to), (State::Degraded, State::Leader));
        let t = m
            .observe(
                &Facts {
                    offline: 1,
                    ..healthy(Role::Follower)
                },
                at(400),
            )
            .unwrap();
        assert!(t.reason.contains("1 offline"), "{}", t.reason);
    }

    #[test]
    fn full_disk_degrades_at_the_threshold() {
        let mut m = machine();
        m.observe(
            &Facts {
                disk_bytes: Some((89, 100)),
                ..healthy(Role::Leader)
            },
            at(100),
        );
        assert_eq!(m.state(), State::Leader);
        let t = m
            .observe(
                &Facts {
                    disk_bytes: Some((90, 100)),
                    ..healthy(Role::Leader)
                },
                at(200),
            )
            .unwrap();
        assert_eq!(t.to, State::Degraded);
        assert!(t.reason.contains("disk 90%"), "{}", t.reason);
    }

    #[test]
    fn heat_or_throttling_degrades() {
        let mut m = machine();
        m.observe(
            &Facts {
                temperature_celsius: Some(79.9),
                ..healthy(Role::Leader)
            },
            at(100),
        );
        assert_eq!(m.state(), State::Leader);
        let t = m
            .observe(
                &Facts {
                    temperature_celsius: Some(81.0),
                    ..healthy(Role::Leader)
                },
                at(200),
            )
            .unwrap();
        assert!(t.reason.contains("CPU at 81.0"), "{}", t.reason);
        let mut m = machine();
        let t = m
            .observe(
                &Facts {
                    throttled: true,
                    ..healthy(Role::Follower)
                },
                at(100),
            )
            .unwrap();
        assert_eq!(t.to, State::Degraded);
        assert!(t.reason.contains("throttled"));
    }

    #[test]
    fn exhausted_memory_pool_degrades_and_names_the_pool() {
        let mut m = machine();
        let facts = Facts {
            exhausted_pools: vec!["fetch".into()],
            ..healthy(Role::Leader)
        };
        let t = m.observe(&facts, at(100)).unwrap();
        assert_eq!(t.to, State::Degraded);
        assert!(t.reason.contains("fetch"));
    }

    #[test]
    fn clock_jump_degrades_for_the_hold_time() {
        let mut m = machine();
        m.observe(&healthy(Role::Leader), at(1_000));
        // One second passes on the monotonic clock, an hour on the wall clock.
        let jumped = Now {
            mono_ms: 2_000,
            wall_ms: at(2_000).wall_ms + 3_600_000,
        };
        let t = m.observe(&healthy(Role::Leader), jumped).unwrap();
        assert_eq!(t.to, State::Degraded);
        assert!(t.reason.contains("clock jumped +3600000"), "{}", t.reason);
        let later = |mono: u64| Now {
            mono_ms: mono,
            wall_ms: jumped.wall_ms + (mono - 2_000),
        };
        assert_eq!(m.observe(&healthy(Role::Leader), later(30_000)), None);
        let t = m.observe(&healthy(Role::Leader), later(62_000)).unwrap();
        assert_eq!((t.from, t.to), (State::Degraded, State::Leader));
    }

    #[test]
    fn small_clock_drift_is_not_a_jump() {
        let mut m = machine();
        m.observe(&healthy(Role::Leader), at(1_000));
        let drift = Now {
            mono_ms: 2_000,
            wall_ms: at(2_000).wall_ms + 500,
        };
        assert_eq!(m.observe(&healthy(Role::Leader), drift), None);
    }

    #[test]
    fn storage_error_is_a_sticky_fault() {
        let mut m = machine();
        m.observe(&healthy(Role::Leader), at(100));
        let t = m
            .observe(
                &Facts {
                    storage_error: Some("fsync failed".into()),
                    ..healthy(Role::Leader)
                },
                at(200),
            )
            .unwrap();
        assert_eq!((t.from, t.to), (State::Leader, State::Fault));
        assert!(t.reason.contains("fsync failed"));
        assert_eq!(m.observe(&healthy(Role::Leader), at(300)), None);
        assert_eq!(m.state(), State::Fault);
    }

    #[test]
    fn config_error_after_start_is_a_fault_even_while_booting() {
        let mut m = machine();
        let t = m
            .observe(
                &Facts {
                    config_error: Some("bad reload".into()),
                    ..Facts::default()
                },
                at(100),
            )
            .unwrap();
        assert_eq!((t.from, t.to), (State::Booting, State::Fault));
    }

    #[test]
    fn no_quorum_outranks_degraded() {
        let mut m = machine();
        let facts = Facts {
            quorum: false,
            under_replicated: 3,
            ..healthy(Role::Follower)
        };
        assert_eq!(m.observe(&facts, at(100)).unwrap().to, State::NoQuorum);
    }

    #[test]
    fn second_cause_updates_reason_without_a_transition() {
        let mut m = machine();
        m.observe(
            &Facts {
                throttled: true,
                ..healthy(Role::Leader)
            },
            at(100),
        );
        let both = Facts {
            throttled: true,
            under_replicated: 1,
            ..healthy(Role::Leader)
        };
        assert_eq!(m.observe(&both, at(200)), None);
        assert!(m.reason().contains("under-replicated") && m.reason().contains("throttled"));
    }

    #[test]
    fn only_serving_states_answer_200() {
        let serving: Vec<_> = State::ALL
            .iter()
            .filter(|s| s.is_serving())
            .map(|s| s.name())
            .collect();
        assert_eq!(serving, ["follower", "leader", "degraded"]);
    }
}

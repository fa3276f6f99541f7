//! Health: one state machine, many outputs.
//!
//! Facts come in through [`HealthInputs`] (fed by the parts that know them: the server says
//! when it is serving and reports storage errors; the quorum feeds its role, term and leader;
//! replication feeds under-replicated and offline partitions; the memory budget feeds its
//! pools) and through [`system::Sensors`] (temperature, throttling, disk, memory). A loop on
//! the runtime ([`run`]) turns them into a [`state::State`] once per `admin.health_interval_ms`
//! and shows every change on the LEDs ([`led`]), in the systemd status line ([`notify`]), and
//! in `/health` (`server::admin`).
//!
//! - [`state`] — the pure state machine
//! - [`pattern`] — blink patterns and the drift-free ticker
//! - [`led`] — LED backends: sysfs, gpio (gpiocdev), rppal (feature), file, none
//! - [`notify`] — sd_notify: READY, STATUS, WATCHDOG, STOPPING
//! - [`system`] — temperature, throttling, disk, resident memory
//! - [`metrics`] — Kafka traffic and request counters
//! - [`config`] — `[led]` and `[admin]`

pub mod config;
pub mod led;
pub mod metrics;
pub mod notify;
pub mod pattern;
pub mod state;
pub mod system;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use state::{Facts, Machine, Now, Role, State};
use system::{Readings, Sensors};

/// The first storage error reported from a path that has no [`Health`] handle (the Kafka
/// append and fsync paths); the health loop folds it into its facts.
static STORAGE_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Report a storage error (append, fsync) from anywhere: the node turns `fault`.
pub fn report_storage_error(error: impl std::fmt::Display) {
    let mut first = STORAGE_ERROR.lock().expect("storage error lock");
    if first.is_none() {
        *first = Some(error.to_string());
    }
}

/// What the quorum says about this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This node's role.
    pub role: Role,
    /// The Raft term (ZooKeeper's epoch).
    pub term: u64,
    /// The leader's node id, if one is known.
    pub leader: Option<u32>,
    /// A majority is reachable.
    pub quorum: bool,
    /// Voting members.
    pub voters: u32,
}

impl QuorumStatus {
    /// A single node: always its own leader.
    pub fn single_node(node_id: u32) -> QuorumStatus {
        QuorumStatus {
            role: Role::Leader,
            term: 0,
            leader: Some(node_id),
            quorum: true,
            voters: 1,
        }
    }
}

/// One memory pool as the budget reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    /// The pool's name (`fetch`, `replication`, ...).
    pub name: String,
    /// Bytes in use.
    pub used_bytes: u64,
    /// The pool's limit.
    pub limit_bytes: u64,
    /// Backpressure is on: the pool is full.
    pub exhausted: bool,
    /// How many times the pool has run dry since start.
    pub exhausted_episodes: u64,
}

/// Replication counts from the partition leaders (or the controller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// Partitions with fewer in-sync replicas than replicas.
    pub under_replicated: u32,
    /// Partitions without a leader.
    pub offline: u32,
    /// ISR shrinks since start.
    pub isr_shrinks: u64,
    /// ISR expansions since start.
    pub isr_expands: u64,
}

/// The facts other parts of the daemon feed in. Every setter is cheap and never blocks on
/// I/O; the health loop reads them once per tick.
#[derive(Debug, Default)]
pub struct HealthInputs {
    inner: Mutex<InputState>,
}

#[derive(Debug, Clone, Default)]
struct InputState {
    budget: Option<Arc<crate::memory::Budget>>,
    serving: bool,
    quorum: Option<QuorumStatus>,
    replication: Option<ReplicationStatus>,
    budget_bytes: Option<u64>,
    pools: Vec<PoolStatus>,
    storage_error: Option<String>,
    config_error: Option<String>,
}

impl HealthInputs {
    fn lock(&self) -> std::sync::MutexGuard<'_, InputState> {
        self.inner.lock().expect("health inputs lock")
    }

    /// The listeners are up (or, `false`, going down).
    pub fn set_serving(&self, serving: bool) {
        self.lock().serving = serving;
    }

    /// The quorum's latest word on this node.
    pub fn set_quorum(&self, status: QuorumStatus) {
        self.lock().quorum = Some(status);
    }

    /// Replication counts (the replication layer, or the controller, feeds these).
    pub fn set_replication(&self, status: ReplicationStatus) {
        self.lock().replication = Some(status);
    }

    /// The memory budget: its pools are read at every tick.
    pub fn set_budget(&self, budget: Arc<crate::memory::Budget>) {
        self.lock().budget = Some(budget);
    }

    /// The memory budget and its pools, as numbers (for a feeder without a [`crate::memory::Budget`]).
    pub fn set_memory(&self, budget_bytes: u64, pools: Vec<PoolStatus>) {
        let mut inner = self.lock();
        inner.budget_bytes = Some(budget_bytes);
        inner.pools = pools;
    }

    /// A storage error happened (write, fsync, checkpoint): the node is in `fault` until
    /// restarted. The first error is kept.
    pub fn storage_error(&self, error: impl std::fmt::Display) {
        let mut inner = self.lock();
        if inner.storage_error.is_none() {
            inner.storage_error = Some(error.to_string());
        }
    }

    /// A config error after start (e.g. a reload that failed): `fault`.
    pub fn config_error(&self, error: impl std::fmt::Display) {
        let mut inner = self.lock();
        if inner.config_error.is_none() {
            inner.config_error = Some(error.to_string());
        }
    }

    fn snapshot(&self) -> InputState {
        let mut state = self.lock().clone();
        if let Some(budget) = state.budget.take() {
            state.budget_bytes = Some(budget.total_bytes);
            state.pools = budget
                .pools()
                .iter()
                .map(|p| PoolStatus {
                    name: p.name().to_string(),
                    used_bytes: p.used_bytes(),
                    limit_bytes: p.limit_bytes(),
                    exhausted: p.is_exhausted(),
                    exhausted_episodes: p.exhausted_episodes(),
                })
                .collect();
        }
        if state.storage_error.is_none() {
            state.storage_error = STORAGE_ERROR.lock().expect("storage error lock").clone();
        }
        state
    }
}

/// Everything `/health`, `/metrics` and `bramble status` show about the node's health,
/// as of the last tick.
#[derive(Debug, Clone)]
pub struct Status {
    /// The state.
    pub state: State,
    /// Why.
    pub reason: String,
    /// Unix ms of the last change.
    pub since_unix_ms: u64,
    /// The quorum's word (`None` before it said anything).
    pub quorum: Option<QuorumStatus>,
    /// Replication counts (`None`: nobody feeds them yet; a single node has none).
    pub replication: ReplicationStatus,
    /// The memory budget, once the memory module reports it.
    pub budget_bytes: Option<u64>,
    /// Memory pools.
    pub pools: Vec<PoolStatus>,
    /// Machine readings.
    pub readings: Readings,
}

impl Status {
    /// The one-line summary for systemd and logs: `leader: quorum leader`.
    pub fn line(&self) -> String {
        format!("{}: {}", self.state, self.reason)
    }
}

/// The node's health: inputs, the current status, and the channel that LEDs watch.
#[derive(Debug)]
pub struct Health {
    /// Where other parts feed facts.
    pub inputs: HealthInputs,
    /// This node's id.
    pub node_id: u32,
    status: Mutex<Status>,
    states: watch::Sender<State>,
    wake: Notify,
    notifier: notify::Notifier,
    origin: Instant,
    last_tick_ms: AtomicU64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Health {
    /// A node in `booting`, notifying systemd through `notifier`.
    pub fn new(node_id: u32, notifier: notify::Notifier) -> Arc<Health> {
        let status = Status {
            state: State::Booting,
            reason: "starting".into(),
            since_unix_ms: unix_ms(),
            quorum: None,
            replication: ReplicationStatus::default(),
            budget_bytes: None,
            pools: Vec::new(),
            readings: Readings::default(),
        };
        Arc::new(Health {
            inputs: HealthInputs::default(),
            node_id,
            status: Mutex::new(status),
            states: watch::channel(State::Booting).0,
            wake: Notify::new(),
            notifier,
            origin: Instant::now(),
            last_tick_ms: AtomicU64::new(0),
        })
    }

    /// The status as of the last tick.
    pub fn status(&self) -> Status {
        self.status.lock().expect("health status lock").clone()
    }

    /// A receiver of every state change (the LED driver watches this).
    pub fn watch(&self) -> watch::Receiver<State> {
        self.states.subscribe()
    }

    /// The listeners are up: re-evaluate now (the loop then sends `READY=1`).
    pub fn serving(&self) {
        self.inputs.set_serving(true);
        self.wake.notify_one();
    }

    /// Re-evaluate now instead of at the next tick.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// SIGTERM: tell systemd the clean shutdown has started.
    pub fn stopping(&self) {
        self.notifier.stopping();
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: self.origin.elapsed().as_millis() as u64,
            wall_ms: unix_ms(),
        }
    }

    /// Milliseconds since the health loop last ran (for the watchdog).
    fn tick_age_ms(&self) -> u64 {
        (self.origin.elapsed().as_millis() as u64)
            .saturating_sub(self.last_tick_ms.load(Ordering::Relaxed))
    }
}

/// The health loop: gather facts every `interval`, decide, and publish changes until
/// `shutdown`. Also feeds the systemd watchdog while it runs.
pub async fn run(
    health: Arc<Health>,
    mut sensors: Sensors,
    thresholds: state::Thresholds,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut machine = Machine::new(thresholds, health.now());
    let mut ready_sent = false;
    let mut watchdog = None;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let inputs = health.inputs.snapshot();
        // A handful of small sysfs/procfs reads and one statvfs per mount: inline, so the
        // health loop costs no blocking-pool thread (whose stack counts against the budget).
        let readings = sensors.read();
        let facts = facts(&inputs, &readings);
        let now = health.now();
        let transition = machine.observe(&facts, now);
        let status = Status {
            state: machine.state(),
            reason: machine.reason().to_string(),
            since_unix_ms: now
                .wall_ms
                .saturating_sub(now.mono_ms.saturating_sub(machine.since_mono_ms())),
            quorum: inputs.quorum,
            replication: inputs.replication.unwrap_or_default(),
            budget_bytes: inputs.budget_bytes,
            pools: inputs.pools.clone(),
            readings,
        };
        let line = status.line();
        let changed_reason = {
            let mut current = health.status.lock().expect("health status lock");
            let changed = current.reason != status.reason;
            *current = status;
            changed
        };
        health.last_tick_ms.store(now.mono_ms, Ordering::Relaxed);
        if let Some(t) = &transition {
            tracing::info!(from = %t.from, to = %t.to, reason = %t.reason, "health state changed");
            health.states.send_replace(t.to);
        }
        if facts.serving && !ready_sent {
            health
                .notifier
                .ready(&format!("serving as node {}; {line}", health.node_id));
            ready_sent = true;
            // The watchdog is fed from READY on, so READY=1 is the first message systemd sees.
            watchdog = notify::watchdog_interval().map(|every| {
                tracing::info!(
                    every_ms = every.as_millis() as u64,
                    "feeding the systemd watchdog"
                );
                tokio::spawn(feed_watchdog(
                    health.clone(),
                    every,
                    interval,
                    shutdown.clone(),
                ))
            });
        } else if ready_sent && (transition.is_some() || changed_reason) {
            // Before READY=1 systemd shows "activating"; the first status goes with READY.
            health.notifier.status(&line);
        }
        tokio::select! {
            _ = ticks.tick() => {}
            _ = health.wake.notified() => {}
            _ = shutdown.changed() => break,
        }
    }
    if let Some(task) = watchdog {
        task.abort();
    }
}

fn facts(inputs: &InputState, readings: &Readings) -> Facts {
    let replication = inputs.replication.unwrap_or_default();
    Facts {
        serving: inputs.serving,
        role: inputs.quorum.map(|q| q.role),
        quorum: inputs
            .quorum
            .is_some_and(|q| q.quorum && q.leader.is_some()),
        under_replicated: replication.under_replicated,
        offline: replication.offline,
        disk_bytes: readings.disk_bytes,
        temperature_celsius: readings.temperature_celsius,
        throttled: readings.throttled_now(),
        exhausted_pools: inputs
            .pools
            .iter()
            .filter(|p| p.exhausted)
            .map(|p| p.name.clone())
            .collect(),
        storage_error: inputs.storage_error.clone(),
        config_error: inputs.config_error.clone(),
    }
}

/// `WATCHDOG=1` every `every`, but only while the health loop keeps ticking: a stalled
/// event loop (or a stuck health loop) stops the feed and systemd restarts the node.
async fn feed_watchdog(
    health: Arc<Health>,
    every: Duration,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let stale_ms = (interval.as_millis() as u64).saturating_mul(5).max(5_000);
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let age = health.tick_age_ms();
        if age <= stale_ms {
            health.notifier.watchdog();
        } else {
            tracing::warn!(
                age_ms = age,
                "health loop stalled; not feeding the watchdog"
            );
        }
    }
}

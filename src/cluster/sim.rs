//! A seeded, in-process simulation of the quorum under faults.
//!
//! Three openraft nodes run with bramble's own [`LogStore`] (on disk, in a temp dir) and
//! [`StateMachine`] applying to a coordinator, joined by an in-memory network whose faults
//! follow a schedule drawn from a seed: links cut in one or both directions, a node isolated,
//! messages lost (the sender waits out its timeout, as with a silent network) or delayed, a
//! node shut down and reopened from its files. Clients meanwhile write through whichever
//! node leads: creates of unique znodes, compare-and-set `setData` on one register, and
//! sessions opened, given an ephemeral and closed.
//!
//! After the schedule, the network heals and every node must converge to the same tree, in
//! which every acknowledged write is present as acknowledged (the create's czxid, the
//! register's chain of versions), no two acknowledged compare-and-sets took the same
//! version, and sessions are as acknowledged (an open one with its ephemeral, a closed one
//! gone with its ephemeral). A failing seed is printed; `BRAMBLE_SIM_SEED=<n>` replays that schedule.
//!
//! Not bit-for-bit deterministic: openraft's timers and the log store's flusher thread run
//! in real time, so the same seed gives the same faults and client operations, not the same
//! interleaving. The real-process tests (tests/clients/test_cluster_*.py) remain the proof;
//! this finds schedule-dependent bugs faster and in many more schedules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::types::{Command, CommandKind, NodeId, Raft, TypeConfig};
use crate::coordinator::{Acl, Coordinator, TxnResult, WriteOp};

/// SplitMix64: a small seeded generator, so a schedule is a function of its seed alone.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

const NODES: [NodeId; 3] = [1, 2, 3];

/// The network's state: who runs, which directed links are cut, how lossy and slow it is.
#[derive(Debug)]
struct Faults {
    cut: BTreeSet<(NodeId, NodeId)>,
    loss_per_mille: u64,
    delay_max_ms: u64,
    rng: Rng,
}

/// What happens to one message.
enum Fate {
    Deliver(Raft, Duration),
    /// Lost in flight: the sender hears nothing until its timeout.
    Lost,
    /// The link is down or the node is not running: the sender fails at once.
    Refused,
}

struct Net {
    running: Mutex<BTreeMap<NodeId, Raft>>,
    faults: Mutex<Faults>,
}

impl Net {
    fn fate(&self, from: NodeId, to: NodeId) -> Fate {
        let mut guard = self.faults.lock().expect("faults");
        let faults = &mut *guard;
        if faults.cut.contains(&(from, to)) {
            return Fate::Refused;
        }
        let Some(raft) = self.running.lock().expect("running").get(&to).cloned() else {
            return Fate::Refused;
        };
        if faults.rng.chance(faults.loss_per_mille) {
            return Fate::Lost;
        }
        let delay = faults.rng.below(faults.delay_max_ms + 1);
        Fate::Deliver(raft, Duration::from_millis(delay))
    }
}

struct SimFactory {
    from: NodeId,
    net: Arc<Net>,
}

struct SimClient {
    from: NodeId,
    to: NodeId,
    net: Arc<Net>,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl RaftNetworkFactory<TypeConfig> for SimFactory {
    type Network = SimClient;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> SimClient {
        SimClient {
            from: self.from,
            to: target,
            net: self.net.clone(),
        }
    }
}

impl SimClient {
    /// Carries a request to the target and its answer back, each way subject to the faults.
    async fn carry<T, E: std::error::Error>(
        &self,
        option: &RPCOption,
        call: impl AsyncFnOnce(Raft) -> Result<T, RaftError<NodeId, E>>,
    ) -> Result<T, RpcErr<E>> {
        let target = self.pass(self.from, self.to, option).await?;
        let answer = call(target)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))?;
        self.pass(self.to, self.from, option).await?;
        Ok(answer)
    }

    async fn pass<E: std::error::Error>(
        &self,
        from: NodeId,
        to: NodeId,
        option: &RPCOption,
    ) -> Result<Raft, RpcErr<E>> {
        match self.net.fate(from, to) {
            Fate::Deliver(raft, delay) => {
                tokio::time::sleep(delay).await;
                Ok(raft)
            }
            Fate::Lost => {
                tokio::time::sleep(option.hard_ttl()).await;
                Err(RPCError::Network(NetworkError::new(&std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                ))))
            }
            Fate::Refused => Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            ))),
        }
    }
}

impl RaftNetwork<TypeConfig> for SimClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        self.carry(&option, async |raft: Raft| raft.append_entries(rpc).await)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        self.carry(&option, async |raft: Raft| raft.install_snapshot(rpc).await)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        self.carry(&option, async |raft: Raft| raft.vote(rpc).await)
            .await
    }
}

/// One node: its Raft, the coordinator its state machine applies to, and its files.
struct SimNode {
    raft: Raft,
    coordinator: Arc<Mutex<Coordinator>>,
}

struct Sim {
    net: Arc<Net>,
    dirs: BTreeMap<NodeId, PathBuf>,
    nodes: Mutex<BTreeMap<NodeId, SimNode>>,
    config: Arc<openraft::Config>,
}

impl Sim {
    async fn new(root: &Path, seed: u64) -> Sim {
        let config = openraft::Config {
            cluster_name: "bramble-sim".into(),
            heartbeat_interval: 30,
            election_timeout_min: 150,
            election_timeout_max: 300,
            install_snapshot_timeout: 500,
            // Small, so snapshots and log purges happen within a run.
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(40),
            max_in_snapshot_log_to_keep: 10,
            ..Default::default()
        }
        .validate()
        .expect("raft config");
        let net = Arc::new(Net {
            running: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Faults {
                cut: BTreeSet::new(),
                loss_per_mille: 0,
                delay_max_ms: 0,
                rng: Rng(seed ^ 0x5eed),
            }),
        });
        let sim = Sim {
            net,
            dirs: NODES
                .iter()
                .map(|n| (*n, root.join(format!("node-{n}"))))
                .collect(),
            nodes: Mutex::new(BTreeMap::new()),
            config: Arc::new(config),
        };
        for n in NODES {
            sim.start(n).await;
        }
        let members: BTreeMap<NodeId, BasicNode> = NODES
            .iter()
            .map(|n| (*n, BasicNode::new(format!("sim-{n}"))))
            .collect();
        sim.raft(1)
            .expect("node 1 runs")
            .initialize(members)
            .await
            .expect("bootstrap");
        sim
    }

    /// Opens node `n` from its directory (fresh, or as a restart) and connects it.
    async fn start(&self, n: NodeId) {
        let dir = &self.dirs[&n];
        let coordinator = Arc::new(Mutex::new(Coordinator::in_memory()));
        let log = LogStore::open(dir).expect("log store");
        let sm = StateMachine::open(dir, coordinator.clone()).expect("state machine");
        let factory = SimFactory {
            from: n,
            net: self.net.clone(),
        };
        let raft = Raft::new(n, self.config.clone(), factory, log, sm)
            .await
            .expect("raft");
        self.net
            .running
            .lock()
            .expect("running")
            .insert(n, raft.clone());
        self.nodes
            .lock()
            .expect("nodes")
            .insert(n, SimNode { raft, coordinator });
    }

    /// Stops node `n` (its files stay for the restart).
    async fn stop(&self, n: NodeId) {
        self.net.running.lock().expect("running").remove(&n);
        let node = self.nodes.lock().expect("nodes").remove(&n);
        if let Some(node) = node {
            let _ = node.raft.shutdown().await;
        }
    }

    fn raft(&self, n: NodeId) -> Option<Raft> {
        self.nodes
            .lock()
            .expect("nodes")
            .get(&n)
            .map(|s| s.raft.clone())
    }

    /// The leader some running node knows of (its view may be stale).
    fn leader(&self) -> Option<NodeId> {
        NODES.iter().find_map(|n| {
            self.raft(*n)
                .and_then(|r| r.metrics().borrow().current_leader)
        })
    }

    fn coordinator(&self, n: NodeId) -> Option<Arc<Mutex<Coordinator>>> {
        self.nodes
            .lock()
            .expect("nodes")
            .get(&n)
            .map(|s| s.coordinator.clone())
    }

    fn set_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.net.faults.lock().expect("faults"));
    }

    /// Proposes `op` through the node `via` (following a leader hint once); the result, or
    /// `None` when the outcome is unknown or refused.
    async fn write(&self, via: NodeId, op: WriteOp) -> Option<(i64, TxnResult)> {
        self.propose(via, 0, CommandKind::Write(op)).await
    }

    /// Proposes `kind` for `session_id` through `via` (see [`Sim::write`]).
    async fn propose(
        &self,
        via: NodeId,
        session_id: i64,
        kind: CommandKind,
    ) -> Option<(i64, TxnResult)> {
        let mut target = via;
        for _ in 0..2 {
            let raft = self.raft(target)?;
            let cmd = Command {
                session_id,
                cxid: 0,
                time_ms: 1,
                auth: vec![],
                kind: kind.clone(),
                znode_cap_bytes: None,
            };
            match tokio::time::timeout(Duration::from_secs(1), raft.client_write(cmd)).await {
                Ok(Ok(resp)) => return Some((resp.data.zxid, resp.data.result)),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    target = f.leader_id?;
                }
                _ => return None,
            }
        }
        None
    }
}

const REGISTER: &str = "/register";

/// A create of `path` with an open ACL; `flags` 1 makes it ephemeral.
fn create(path: &str, data: Vec<u8>, flags: i32) -> WriteOp {
    WriteOp::Create {
        path: path.into(),
        data,
        acl: Acl::open(),
        flags,
        ttl_ms: -1,
        op: 1,
    }
}

/// What the clients were told.
#[derive(Debug, Default)]
struct Acknowledged {
    /// path → czxid of every acknowledged create.
    creates: BTreeMap<String, i64>,
    /// new version → data, of every acknowledged compare-and-set on the register.
    sets: BTreeMap<i32, Vec<u8>>,
    /// session → its acknowledged ephemeral, of sessions whose creation was acknowledged
    /// and whose close was never asked for.
    open_sessions: BTreeMap<i64, Option<String>>,
    /// Sessions whose close was acknowledged.
    closed_sessions: BTreeSet<i64>,
}

/// A client of sessions: opens one, creates an ephemeral in it, and closes it (or leaves
/// it open), over and over, until the fault schedule ends.
async fn session_client(
    sim: Arc<Sim>,
    seed: u64,
    done: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<Mutex<Acknowledged>>,
) {
    let mut rng = Rng(seed.wrapping_mul(97).wrapping_add(7));
    for round in 1i64.. {
        if done.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let via = sim.leader().unwrap_or(NODES[rng.below(3) as usize]);
        let session = (7 << 32) | round;
        let made = CommandKind::CreateSession {
            timeout_ms: 10_000,
            password: vec![7; 16],
        };
        match sim.propose(via, session, made).await {
            Some((_, TxnResult::Session)) => {}
            Some((_, other)) => panic!("session 0x{session:x}: {other:?}"),
            None => {
                tokio::time::sleep(Duration::from_millis(30)).await;
                continue;
            }
        }
        acked
            .lock()
            .expect("acked")
            .open_sessions
            .insert(session, None);
        let path = format!("/e-{session:x}");
        let ephemeral = create(&path, Vec::new(), 1);
        match sim
            .propose(via, session, CommandKind::Write(ephemeral))
            .await
        {
            Some((_, TxnResult::Created { .. })) => {
                acked
                    .lock()
                    .expect("acked")
                    .open_sessions
                    .insert(session, Some(path));
            }
            Some((_, other)) => panic!("ephemeral {path}: {other:?}"),
            None => {}
        }
        if rng.chance(700) {
            // Once its close is asked for, an open session is no longer promised.
            acked.lock().expect("acked").open_sessions.remove(&session);
            if let Some((_, TxnResult::Session)) =
                sim.propose(via, session, CommandKind::CloseSession).await
            {
                acked.lock().expect("acked").closed_sessions.insert(session);
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
    }
}

/// One client: operations through the node it believes leads, until the fault schedule
/// ends.
async fn client(
    sim: Arc<Sim>,
    id: u64,
    seed: u64,
    done: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<Mutex<Acknowledged>>,
) {
    let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(id));
    let mut via = NODES[rng.below(3) as usize];
    for i in 0.. {
        if done.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let leader = sim
            .raft(via)
            .and_then(|r| r.metrics().borrow().current_leader);
        if let Some(l) = leader {
            via = l;
        } else {
            via = NODES[rng.below(3) as usize];
        }
        if rng.chance(500) {
            let path = format!("/c{id}-{i}");
            let op = create(&path, path.clone().into_bytes(), 0);
            match sim.write(via, op).await {
                Some((zxid, TxnResult::Created { path: made, stat })) => {
                    assert_eq!(made, path);
                    assert_eq!(stat.czxid, zxid, "a create's czxid is its entry's zxid");
                    acked.lock().expect("acked").creates.insert(path, zxid);
                }
                Some((_, other)) => panic!("create {path}: {other:?}"),
                // No leader there (yet): give the election time.
                None => tokio::time::sleep(Duration::from_millis(30)).await,
            }
        } else {
            // Compare-and-set on the version this node last saw (may be stale: then BadVersion).
            let seen = sim.coordinator(via).and_then(|c| {
                c.lock()
                    .expect("coordinator")
                    .tree()
                    .get(REGISTER)
                    .map(|n| n.stat.version)
            });
            let Some(version) = seen else {
                tokio::time::sleep(Duration::from_millis(30)).await;
                continue;
            };
            let data = format!("client {id} op {i}").into_bytes();
            let op = WriteOp::SetData {
                path: REGISTER.into(),
                data: data.clone(),
                version,
            };
            match sim.write(via, op).await {
                Some((_, TxnResult::SetData(stat))) => {
                    assert_eq!(
                        stat.version,
                        version + 1,
                        "a compare-and-set advances by one"
                    );
                    let previous = acked.lock().expect("acked").sets.insert(stat.version, data);
                    assert!(
                        previous.is_none(),
                        "two acknowledged compare-and-sets both made version {}",
                        stat.version
                    );
                }
                Some((_, TxnResult::Error(_))) => {}
                None => tokio::time::sleep(Duration::from_millis(30)).await,
                Some((_, other)) => panic!("setData: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.below(15))).await;
    }
}

/// The fault schedule: `steps` phases of 100–500 ms, each a fresh draw of faults.
async fn faults(sim: Arc<Sim>, seed: u64, steps: u32) -> Vec<String> {
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut stopped: Option<NodeId> = None;
    let mut log = Vec::new();
    for _ in 0..steps {
        let pick = rng.below(8);
        let node = NODES[rng.below(3) as usize];
        let other = NODES.iter().copied().find(|n| *n != node).expect("3 nodes");
        // Bring back a stopped node before anything else happens to it.
        if let Some(s) = stopped.take() {
            sim.start(s).await;
            log.push(format!("restart {s}"));
        }
        let description = match pick {
            0 => {
                sim.set_faults(|f| f.cut.clear());
                "heal".to_string()
            }
            1 => {
                sim.set_faults(|f| {
                    for n in NODES.iter().filter(|n| **n != node) {
                        f.cut.insert((node, *n));
                        f.cut.insert((*n, node));
                    }
                });
                format!("isolate {node}")
            }
            2 => {
                sim.set_faults(|f| {
                    f.cut.insert((node, other));
                });
                format!("cut {node}->{other}")
            }
            3 => {
                let per_mille = 50 + rng.below(250);
                sim.set_faults(|f| f.loss_per_mille = per_mille);
                format!("lose {per_mille}/1000")
            }
            4 => {
                let ms = rng.below(40);
                sim.set_faults(|f| f.delay_max_ms = ms);
                format!("delay up to {ms} ms")
            }
            5 => {
                sim.stop(node).await;
                stopped = Some(node);
                format!("stop {node}")
            }
            6 => {
                // Stop whoever leads now.
                match sim.leader() {
                    Some(l) => {
                        sim.stop(l).await;
                        stopped = Some(l);
                        format!("stop leader {l}")
                    }
                    None => "no leader to stop".to_string(),
                }
            }
            _ => {
                sim.set_faults(|f| {
                    f.cut.clear();
                    f.loss_per_mille = 0;
                    f.delay_max_ms = 0;
                });
                "calm".to_string()
            }
        };
        log.push(description);
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
    }
    if let Some(s) = stopped {
        sim.start(s).await;
        log.push(format!("restart {s}"));
    }
    sim.set_faults(|f| {
        f.cut.clear();
        f.loss_per_mille = 0;
        f.delay_max_ms = 0;
    });
    log.push("heal all".into());
    log
}

/// Waits until every node's tree is the same (each applies at its own pace, and a metric of
/// the applied index may run ahead of the tree it describes, so the trees themselves are
/// compared); fails with the difference if they have not converged within 20 s.
async fn converge(sim: &Sim, seed: u64, schedule: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let trees: Vec<Vec<u8>> = NODES
            .iter()
            .map(|n| {
                let c = sim.coordinator(*n).expect("running");
                let c = c.lock().expect("coordinator");
                crate::coordinator::persist::encode_snapshot(c.tree())
            })
            .collect();
        let differing = (1..trees.len()).find(|i| trees[*i] != trees[0]);
        let Some(i) = differing else { return };
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: node {}'s tree still differs from node 1's 20 s after {schedule:?}: {}; {}",
            i + 1,
            difference(&trees[0], &trees[i]),
            NODES
                .iter()
                .filter_map(|n| sim.raft(*n))
                .map(|r| {
                    let m = r.metrics().borrow().clone();
                    format!(
                        "node {}: applied {:?} snapshot {:?} purged {:?} log {:?}",
                        m.id, m.last_applied, m.snapshot, m.purged, m.last_log_index
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first difference between two encoded trees, for the failure message.
fn difference(a: &[u8], b: &[u8]) -> String {
    use crate::coordinator::persist::decode_snapshot;
    let (Some(a), Some(b)) = (decode_snapshot(a), decode_snapshot(b)) else {
        return "undecodable snapshot".into();
    };
    let mut out = String::new();
    if a.last_zxid() != b.last_zxid() {
        out = format!("last zxid {:#x} vs {:#x}; ", a.last_zxid(), b.last_zxid());
    }
    let paths: BTreeSet<&String> = a.nodes().chain(b.nodes()).map(|(p, _)| p).collect();
    for p in paths {
        let (x, y) = (a.get(p), b.get(p));
        let same = match (x, y) {
            (Some(x), Some(y)) => x.stat == y.stat && x.data == y.data,
            _ => false,
        };
        if !same {
            let show = |n: Option<&crate::coordinator::tree::Node>| {
                n.map(|n| format!("{:?} {} data bytes", n.stat, n.data.len()))
            };
            return format!("{out}{p}: {:?} vs {:?}", show(x), show(y));
        }
    }
    out + "the same nodes"
}

/// Checks node 1's converged tree against what the clients were told; a one-line summary.
fn check(sim: &Sim, acked: &Acknowledged, seed: u64, schedule: &[String]) -> String {
    let coordinator = sim.coordinator(1).expect("running");
    let c = coordinator.lock().expect("coordinator");
    for (path, czxid) in &acked.creates {
        let node = c.tree().get(path);
        assert!(
            node.is_some_and(|n| n.stat.czxid == *czxid),
            "seed {seed}: acknowledged create {path} (czxid {czxid:#x}) lost after {schedule:?}"
        );
    }
    let register = c.tree().get(REGISTER).expect("the register");
    let newest = acked.sets.keys().next_back().copied().unwrap_or(0);
    assert!(
        register.stat.version >= newest,
        "seed {seed}: the register is at version {} below acknowledged {newest}",
        register.stat.version
    );
    if register.stat.version == newest && newest > 0 {
        assert_eq!(register.data, acked.sets[&newest], "seed {seed}");
    }
    let tree = c.tree();
    for (session, ephemeral) in &acked.open_sessions {
        assert!(
            tree.sessions().contains_key(session),
            "seed {seed}: open session 0x{session:x} lost after {schedule:?}"
        );
        if let Some(path) = ephemeral {
            assert!(
                tree.get(path)
                    .is_some_and(|n| n.stat.ephemeral_owner == *session),
                "seed {seed}: ephemeral {path} of open session 0x{session:x} lost"
            );
        }
    }
    for session in &acked.closed_sessions {
        assert!(
            !tree.sessions().contains_key(session) && tree.ephemerals_of(*session).next().is_none(),
            "seed {seed}: closed session 0x{session:x} or its ephemeral is still there"
        );
    }
    // Every session left has its ephemeral or none, never another's.
    for session in tree.sessions().keys() {
        for path in tree.ephemerals_of(*session) {
            assert_eq!(*path, format!("/e-{session:x}"), "seed {seed}");
        }
    }
    format!(
        "{} creates, {} compare-and-sets, {} open and {} closed sessions acknowledged, \
         register at version {}",
        acked.creates.len(),
        acked.sets.len(),
        acked.open_sessions.len(),
        acked.closed_sessions.len(),
        register.stat.version
    )
}

async fn run(seed: u64) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Arc::new(Sim::new(dir.path(), seed).await);
    // The register exists before the faults start.
    let made = loop {
        if let Some(r) = sim.write(1, create(REGISTER, Vec::new(), 0)).await {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A retry after an unknown outcome may find the register made.
    assert!(
        matches!(
            made.1,
            TxnResult::Created { .. } | TxnResult::Error(crate::coordinator::ErrorCode::NodeExists)
        ),
        "{made:?}"
    );

    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients: Vec<_> = (0..3)
        .map(|id| tokio::spawn(client(sim.clone(), id, seed, done.clone(), acked.clone())))
        .collect();
    clients.push(tokio::spawn(session_client(
        sim.clone(),
        seed,
        done.clone(),
        acked.clone(),
    )));
    let schedule = faults(sim.clone(), seed, 10).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    // Healed, the quorum takes writes again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let via = sim.leader().unwrap_or(1);
        let op = create("/after", Vec::new(), 0);
        if let Some((zxid, result)) = sim.write(via, op).await {
            if let TxnResult::Created { path, .. } = result {
                acked.lock().expect("acked").creates.insert(path, zxid);
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: no write accepted 10 s after healing {schedule:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    converge(&sim, seed, &schedule).await;
    let summary = check(&sim, &acked.lock().expect("acked"), seed, &schedule);
    for n in NODES {
        sim.stop(n).await;
    }
    (schedule, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_fault_schedules_lose_no_acknowledged_write_and_nodes_converge() {
    let seeds: Vec<u64> = match std::env::var("BRAMBLE_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("BRAMBLE_SIM_SEED is a number")],
        Err(_) => {
            let count = std::env::var("BRAMBLE_SIM_RUNS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(3u64);
            (1..=count).collect()
        }
    };
    for seed in seeds {
        let (schedule, summary) = run(seed).await;
        eprintln!("seed {seed}: {summary}; faults {schedule:?}");
    }
}

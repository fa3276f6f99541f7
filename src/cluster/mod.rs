//! The quorum: the application side of openraft (log storage, state machine, network) and
//! the coordinator replicated on it.
//!
//! - [`config`] — `[cluster]`: members and Raft timings.
//! - [`types`] — the Raft type config; a log entry is a coordinator [`types::Command`].
//! - [`log_store`] — the Raft log, vote and committed index on disk (group-committed).
//! - [`state_machine`] — applies committed commands to the coordinator; snapshots.
//! - [`network`] — the peer protocol (`BRFT`/`BRKF` preambles) and Raft's TCP client.
//!
//! How a znode write flows in a cluster: the ZooKeeper server decodes it into a
//! [`types::Command`] and calls [`Cluster::propose`]. On the leader that is openraft's
//! `client_write`; on a follower the command goes to the leader over the peer port
//! (`PeerRequest::Propose`). Once committed, every node's state machine validates and
//! applies it at zxid = (term << 32 | index); the node that took the request answers its
//! client after its *own* state machine has applied that index, so a client always reads
//! its own writes. Reads are local; `sync` calls [`Cluster::read_barrier`].
//!
//! Bootstrap: on first start (no vote, no log) the member with the lowest id initializes
//! the membership with every server in `cluster.servers`; the others wait to be contacted.
//! Initializing is idempotent: a node that has a vote or log never does it again.
//!
//! # Interfaces for partition replication and the controller
//!
//! - Leadership: [`Cluster::leader`] is a `watch::Receiver<Option<NodeId>>` of the current
//!   quorum leader; [`Cluster::is_leader`] says whether it is this node. The controller runs
//!   where `is_leader()` holds and re-checks on every change.
//! - Peer connections: [`Cluster::open_brkf`] opens a `BRKF` connection to node N's peer
//!   port (the stream is past the preamble); [`Cluster::take_brkf_inbound`] hands out the
//!   receiver of inbound `BRKF` connections accepted by the peer listener (until it is
//!   taken, such connections are closed).
//! - znodes: `crate::server::zk::ZkServer` implements [`LocalZk`]: create/read/set/delete,
//!   ephemerals under a server-owned session, and in-process watches on a path (a tokio
//!   channel of events), all going through the quorum like a client's request.

pub mod config;
pub mod log_store;
pub mod network;
#[cfg(test)]
mod sim;
pub mod state_machine;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::tls::Stream;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};
use tokio::sync::{mpsc, watch};

pub use config::ClusterConfig;
use network::{
    CallError, ForwardError, Network, PeerPool, PeerRequest, PeerResponse, PREAMBLE_KAFKA,
};
use state_machine::{Applier, StateMachine};
use types::{Command, CommandResult, NodeId, Raft};

/// Why a proposal or a read barrier failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No leader is known (an election is under way, or no majority is reachable).
    #[error("no quorum leader")]
    NoLeader,
    /// The request was possibly committed but this node cannot tell (leader lost or
    /// unreachable mid-request). A ZooKeeper client gets a connection loss, as with ZooKeeper.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// Timed out waiting for a leader, a commit, or the local state machine.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

/// Liveness reports of sessions arriving from followers (session ids).
pub type TouchHandler = Arc<dyn Fn(&[i64]) + Send + Sync>;

/// In-process access to the replicated znode tree (implemented by the ZooKeeper server).
/// Writes go through the quorum exactly like a client's request.
pub trait LocalZk: Send + Sync {
    /// Creates a persistent node (or an ephemeral one owned by the server's own session,
    /// which ends, and takes its ephemerals with it, when this node stops or loses touch).
    fn create(
        &self,
        path: &str,
        data: &[u8],
        ephemeral: bool,
    ) -> impl std::future::Future<Output = Result<String, crate::coordinator::ErrorCode>> + Send;
    /// Replaces a node's data (`version` -1 = any); the new version.
    fn set(
        &self,
        path: &str,
        data: &[u8],
        version: i32,
    ) -> impl std::future::Future<Output = Result<i32, crate::coordinator::ErrorCode>> + Send;
    /// Deletes a node (`version` -1 = any).
    fn delete(
        &self,
        path: &str,
        version: i32,
    ) -> impl std::future::Future<Output = Result<(), crate::coordinator::ErrorCode>> + Send;
    /// The session this node's own ephemerals belong to, once it has one.
    fn own_session(&self) -> Option<i64>;
    /// Reads a node's data and stat from this node's tree.
    fn get(&self, path: &str) -> Option<(Vec<u8>, crate::coordinator::Stat)>;
    /// Lists a node's children from this node's tree.
    fn children(&self, path: &str) -> Option<Vec<String>>;
    /// Watches a path and everything under it: every change is sent on the channel until
    /// the receiver is dropped.
    fn watch(&self, path: &str) -> mpsc::UnboundedReceiver<crate::coordinator::WatchEvent>;
}

/// This node's membership in the quorum.
pub struct Cluster {
    id: NodeId,
    raft: Raft,
    members: BTreeMap<NodeId, String>,
    pool: PeerPool,
    applied: watch::Receiver<u64>,
    leader: watch::Receiver<Option<NodeId>>,
    touch: Mutex<Option<TouchHandler>>,
    brkf_tx: mpsc::Sender<Stream>,
    brkf_rx: Mutex<Option<mpsc::Receiver<Stream>>>,
    timeout: Duration,
    liveness: Arc<network::PeerLiveness>,
    /// Since when this node has known no quorum leader (None while it knows one).
    leaderless: Arc<Mutex<Option<std::time::Instant>>>,
    /// See [`Cluster::stood_down`].
    stand_down_after: Duration,
    /// `cluster.metadata_chroot`.
    metadata_chroot: String,
    /// How long the leader's RPCs to a peer fail before [`Cluster::unreachable_peers`]
    /// names it: two heartbeats, at least 200 ms.
    unreachable_after: Duration,
    /// This node's znode pool: a capped write this node proposes as leader carries at most
    /// this cap (see [`Command::znode_cap_bytes`]).
    znode_cap_bytes: AtomicU64,
    tls: Option<crate::tls::Connector>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("members", &self.members)
            .finish()
    }
}

/// Inbound `BRKF` connections waiting for the replication code: a small queue, since a
/// connection that waits here holds a socket.
const BRKF_QUEUE: usize = 16;

impl Cluster {
    /// Opens the Raft log and state machine under `<data_dir>/raft/`, starts Raft, and
    /// bootstraps the membership if this is the lowest-id member of a brand-new cluster.
    /// With `tls`, every connection to a peer is mutual TLS.
    pub async fn start(
        config: &ClusterConfig,
        id: NodeId,
        data_dir: &Path,
        applier: Arc<dyn Applier>,
        tls: Option<crate::tls::Connector>,
    ) -> anyhow::Result<Arc<Cluster>> {
        config.validate(id).map_err(anyhow::Error::msg)?;
        let members = config.members().map_err(anyhow::Error::msg)?;
        let dir = log_store::raft_dir(data_dir);
        let log = log_store::LogStore::open(&dir)?;
        let sm = StateMachine::open(&dir, applier)?;
        let applied = sm.applied_index();
        let raft_config = openraft::Config {
            cluster_name: "bramble".into(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            install_snapshot_timeout: config.rpc_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                config.snapshot_logs_since_last,
            ),
            max_in_snapshot_log_to_keep: config.logs_to_keep_after_snapshot,
            ..Default::default()
        }
        .validate()?;
        let timeout = Duration::from_millis(config.rpc_timeout_ms);
        let liveness = Arc::new(network::PeerLiveness::default());
        let network = Network {
            connect_timeout: timeout,
            liveness: liveness.clone(),
            tls: tls.clone(),
        };
        let raft = Raft::new(id, Arc::new(raft_config), network, log, sm).await?;
        let lowest = *members
            .keys()
            .next()
            .expect("validated: at least one member");
        if id == lowest && !raft.is_initialized().await? {
            let nodes: BTreeMap<NodeId, BasicNode> = members
                .iter()
                .map(|(k, v)| (*k, BasicNode { addr: v.clone() }))
                .collect();
            tracing::info!(node = id, members = ?members.keys().collect::<Vec<_>>(), "bootstrapping the quorum membership");
            if let Err(e) = raft.initialize(nodes).await {
                tracing::warn!(error = %e, "bootstrap not needed");
            }
        }
        let (leader_tx, leader_rx) = watch::channel(None);
        let mut metrics = raft.metrics();
        let fresh = liveness.clone();
        let peers: Vec<NodeId> = members.keys().copied().filter(|m| *m != id).collect();
        let majority = members.len() / 2 + 1;
        // openraft keeps a leader that no longer reaches a majority in office until it hears a
        // higher term. This node stops counting itself as leader once fewer than a majority
        // (itself included) have answered its RPCs for an election timeout: by then the
        // others may have elected someone else, and its clients must go there.
        let quorum_window = Duration::from_millis(config.election_timeout_max_ms);
        let mut tick = tokio::time::interval(Duration::from_millis(config.heartbeat_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let leaderless = Arc::new(Mutex::new(Some(std::time::Instant::now())));
        let leaderless_w = leaderless.clone();
        tokio::spawn(async move {
            let mut raft_leader = None;
            loop {
                let (reported, state, term) = {
                    let m = metrics.borrow_and_update();
                    (m.current_leader, m.state, m.current_term)
                };
                if reported != raft_leader {
                    // A new term starts with fresh connections.
                    fresh.clear();
                    raft_leader = reported;
                }
                // Only a leader that has established itself, and still reaches a majority,
                // counts for this node.
                let leader = if reported == Some(id)
                    && (state != ServerState::Leader
                        || 1 + fresh.answered_within(peers.iter().copied(), quorum_window)
                            < majority)
                {
                    None
                } else {
                    reported
                };
                if *leader_tx.borrow() != leader {
                    if reported == Some(id) && state == ServerState::Leader && leader.is_none() {
                        tracing::warn!(
                            node = id,
                            term,
                            "leading no majority: standing down until a quorum answers"
                        );
                    }
                    tracing::info!(node = id, leader = ?leader, term, state = ?state, "quorum leader changed");
                    leader_tx.send_replace(leader);
                    let mut since = leaderless_w.lock().expect("leaderless");
                    *since = match leader {
                        Some(_) => None,
                        None => Some(since.unwrap_or_else(std::time::Instant::now)),
                    };
                }
                tokio::select! {
                    changed = metrics.changed() => if changed.is_err() { return },
                    _ = tick.tick() => {}
                }
            }
        });
        let (brkf_tx, brkf_rx) = mpsc::channel(BRKF_QUEUE);
        Ok(Arc::new(Cluster {
            id,
            raft,
            pool: PeerPool::new(members.clone(), timeout, tls.clone()),
            members,
            applied,
            leader: leader_rx,
            touch: Mutex::new(None),
            brkf_tx,
            brkf_rx: Mutex::new(Some(brkf_rx)),
            timeout,
            liveness,
            leaderless,
            stand_down_after: Duration::from_millis(config.broker_session_timeout_ms),
            metadata_chroot: config.metadata_chroot.clone(),
            unreachable_after: Duration::from_millis((2 * config.heartbeat_interval_ms).max(200)),
            znode_cap_bytes: AtomicU64::new(u64::MAX),
            tls,
        }))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The members and their peer addresses.
    pub fn members(&self) -> &BTreeMap<NodeId, String> {
        &self.members
    }

    /// The openraft handle (metrics, tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The current quorum leader, as it changes.
    pub fn leader(&self) -> watch::Receiver<Option<NodeId>> {
        self.leader.clone()
    }

    /// Whether this node has known no quorum leader for longer than its broker session
    /// timeout: by then the majority, if there is one, counts this node as gone and has moved
    /// its partition leaderships and its clients' sessions on. Such a node stops acting as a
    /// partition leader and closes its ZooKeeper clients, so they go to the majority; it
    /// serves again as soon as it knows a leader.
    pub fn stood_down(&self) -> bool {
        self.leaderless
            .lock()
            .expect("leaderless")
            .is_some_and(|t| t.elapsed() >= self.stand_down_after)
    }

    /// Whether this node is the quorum leader now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow() == Some(self.id)
    }

    /// The applied log index of this node's state machine, as it advances.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// Sets this node's znode pool (the leader lowers a capped write's cap to it).
    pub fn set_znode_cap_bytes(&self, bytes: u64) {
        self.znode_cap_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Registers what to do with session liveness reports from followers.
    pub fn set_touch_handler(&self, h: TouchHandler) {
        *self.touch.lock().expect("touch lock") = Some(h);
    }

    /// Where the Kafka metadata lives in the tree: "" (the root) or a path such as
    /// `/kafka-broker` (`cluster.metadata_chroot`).
    pub fn metadata_chroot(&self) -> &str {
        &self.metadata_chroot
    }

    /// The timeout of one peer RPC (`rpc_timeout_ms`).
    pub fn rpc_timeout(&self) -> Duration {
        self.timeout
    }

    /// Opens a `BRKF` (partition replication) connection to node `target`'s peer port.
    pub async fn open_brkf(&self, target: NodeId) -> std::io::Result<Stream> {
        let addr = self.members.get(&target).ok_or_else(|| {
            std::io::Error::other(format!("node {target} is not in cluster.servers"))
        })?;
        network::connect(addr, PREAMBLE_KAFKA, self.timeout, self.tls.as_ref()).await
    }

    /// The inbound `BRKF` connections (once: the partition replication code takes it).
    pub fn take_brkf_inbound(&self) -> Option<mpsc::Receiver<Stream>> {
        self.brkf_rx.lock().expect("brkf lock").take()
    }

    /// Hands an inbound `BRKF` connection to whoever took the receiver; closed otherwise.
    pub fn accept_brkf(&self, stream: Stream) {
        if self.brkf_rx.lock().expect("brkf lock").is_some()
            || self.brkf_tx.try_send(stream).is_err()
        {
            tracing::debug!("BRKF connection closed: partition replication is not running here");
        }
    }

    async fn wait_applied(&self, index: u64) -> Result<(), ClusterError> {
        let mut applied = self.applied.clone();
        tokio::time::timeout(self.timeout, applied.wait_for(|a| *a >= index))
            .await
            .map_err(|_| ClusterError::Timeout("local state machine to apply"))?
            .map_err(|_| ClusterError::Unknown("state machine stopped".into()))?;
        Ok(())
    }

    /// The quorum leader, waiting for one at most until this node stands down for want of
    /// one (see [`Cluster::stood_down`]): a request still waiting then fails, rather than
    /// being forwarded after the node closed its client, which would apply a write whose
    /// client saw the connection drop.
    async fn wait_leader(&self) -> Result<NodeId, ClusterError> {
        let mut rx = self.leader.clone();
        let since = *self.leaderless.lock().expect("leaderless");
        let until_stand_down = since.map_or(self.stand_down_after, |t| {
            self.stand_down_after.saturating_sub(t.elapsed())
        });
        let wait = self.timeout.min(until_stand_down);
        let r = tokio::time::timeout(wait, rx.wait_for(|l| l.is_some())).await;
        match r {
            Ok(Ok(l)) => Ok(l.expect("waited for some")),
            _ => Err(ClusterError::NoLeader),
        }
    }

    /// Proposes a command on the leader (this node's or, forwarded, another's); returns
    /// once it is committed and applied on this node.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult, ClusterError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let leader = self.wait_leader().await?;
            let attempt = if leader == self.id {
                self.propose_local(cmd.clone()).await
            } else {
                self.forward(leader, PeerRequest::Propose(cmd.clone()))
                    .await
            };
            match attempt {
                Ok(PeerResponse::Propose(Ok((index, res)))) => {
                    self.wait_applied(index).await?;
                    return Ok(res);
                }
                // Not proposed anywhere: wait for the leader to settle and try again.
                Ok(PeerResponse::Propose(Err(ForwardError::NotLeader(_))))
                | Err(CallError::Unreachable(..)) => {}
                Ok(PeerResponse::Propose(Err(ForwardError::Unknown(e)))) => {
                    return Err(ClusterError::Unknown(e))
                }
                Ok(_) => return Err(ClusterError::Unknown("unexpected peer response".into())),
                Err(e @ CallError::Failed(..)) => return Err(ClusterError::Unknown(e.to_string())),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn forward(&self, leader: NodeId, req: PeerRequest) -> Result<PeerResponse, CallError> {
        self.pool.call(leader, &req).await
    }

    /// The leader's side of `Propose`: only a settled leader proposes, so a refusal is
    /// always safe to retry.
    /// A capped write's cap is lowered to this leader's own znode pool, so the tree never
    /// grows past the smaller of the two budgets.
    async fn propose_local(&self, mut cmd: Command) -> Result<PeerResponse, CallError> {
        if !self.is_leader() {
            return Ok(PeerResponse::Propose(Err(ForwardError::NotLeader(
                *self.leader.borrow(),
            ))));
        }
        if let Some(cap) = cmd.znode_cap_bytes.as_mut() {
            *cap = (*cap).min(self.znode_cap_bytes.load(Ordering::Relaxed));
        }
        let r = match self.raft.client_write(cmd).await {
            Ok(resp) => Ok((resp.log_id.index, resp.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(
                ForwardError::Unknown(format!("leadership moved to {:?}", f.leader_id)),
            ),
            Err(e) => Err(ForwardError::Unknown(e.to_string())),
        };
        Ok(PeerResponse::Propose(r))
    }

    /// Makes the next local read linearizable: waits until this node has applied
    /// everything the leader had committed when the barrier was asked for.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let leader = self.wait_leader().await?;
            let answer = if leader == self.id {
                Ok(PeerResponse::ReadIndex(self.read_index_local().await))
            } else {
                self.forward(leader, PeerRequest::ReadIndex).await
            };
            match answer {
                Ok(PeerResponse::ReadIndex(Ok(index))) => return self.wait_applied(index).await,
                // The leader is gone or moved: a barrier is safe to retry once one settles.
                Ok(PeerResponse::ReadIndex(Err(_)))
                | Err(CallError::Unreachable(..))
                | Err(CallError::Failed(..)) => {}
                Ok(_) => return Err(ClusterError::Unknown("unexpected peer response".into())),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn read_index_local(&self) -> Result<u64, ForwardError> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map(|l| l.index).unwrap_or(0)),
            Err(e) => Err(ForwardError::Unknown(e.to_string())),
        }
    }

    /// Tells the leader which sessions have live clients here (followers only).
    pub async fn send_touches(&self, sessions: Vec<i64>) {
        let Some(leader) = *self.leader.borrow() else {
            return;
        };
        if leader == self.id || sessions.is_empty() {
            return;
        }
        if let Err(e) = self.forward(leader, PeerRequest::Touch(sessions)).await {
            tracing::debug!(error = %e, "session touches not delivered");
        }
    }

    /// Answers one `BRFT` request from a peer (called by the peer listener).
    pub async fn handle_peer(&self, req: PeerRequest) -> PeerResponse {
        match req {
            PeerRequest::AppendEntries(rpc) => {
                PeerResponse::AppendEntries(self.raft.append_entries(rpc).await)
            }
            PeerRequest::Vote(rpc) => PeerResponse::Vote(self.raft.vote(rpc).await),
            PeerRequest::InstallSnapshot(rpc) => {
                PeerResponse::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            PeerRequest::Propose(cmd) => match self.propose_local(cmd).await {
                Ok(r) => r,
                Err(e) => PeerResponse::Propose(Err(ForwardError::Unknown(e.to_string()))),
            },
            PeerRequest::Touch(ids) => {
                let h = self.touch.lock().expect("touch lock").clone();
                if let Some(h) = h {
                    h(&ids);
                }
                PeerResponse::Touched
            }
            PeerRequest::ReadIndex => {
                if !self.is_leader() {
                    PeerResponse::ReadIndex(Err(ForwardError::NotLeader(*self.leader.borrow())))
                } else {
                    PeerResponse::ReadIndex(self.read_index_local().await)
                }
            }
        }
    }

    /// Stops Raft.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    /// On the leader: members its Raft heartbeats have not reached for a few heartbeat
    /// intervals (a killed process, a cut link). Empty on followers, which send no
    /// heartbeats.
    pub fn unreachable_peers(&self) -> BTreeSet<NodeId> {
        if !self.is_leader() {
            return BTreeSet::new();
        }
        self.liveness.failing_for(self.unreachable_after)
    }

    /// Members other than this node.
    pub fn peers(&self) -> BTreeSet<NodeId> {
        self.members
            .keys()
            .copied()
            .filter(|k| *k != self.id)
            .collect()
    }
}

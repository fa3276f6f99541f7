//! The peer protocol and the client side of it (`RaftNetworkFactory` over TCP).
//!
//! Every peer connection starts with a 4-byte preamble naming its protocol:
//! [`PREAMBLE_RAFT`] (`BRFT`) for the frames below, [`PREAMBLE_KAFKA`] (`BRKF`) reserved for
//! partition replication (Kafka-protocol frames from follower replicas). A `BRFT`
//! connection then carries request/response pairs, one at a time, each frame
//! `[length u32 big-endian][JSON]`. JSON (serde_json) because every openraft type
//! round-trips through it without custom code, and the traffic is metadata-sized: znode
//! writes, heartbeats, and a coordinator snapshot now and then.
//!
//! A client keeps one connection per peer and reconnects after any error; every call has a
//! deadline (openraft's per-RPC TTL, or `cluster.rpc_timeout_ms`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::types::{Command, CommandResult, NodeId, TypeConfig};
use crate::tls::{Connector, Stream};

/// Preamble of a Raft (and coordinator forwarding) peer connection.
pub const PREAMBLE_RAFT: [u8; 4] = *b"BRFT";
/// Preamble reserved for partition replication: Kafka-protocol frames between brokers.
pub const PREAMBLE_KAFKA: [u8; 4] = *b"BRKF";
/// Largest peer frame accepted (a snapshot chunk is far smaller).
pub const FRAME_BYTES_MAX: u32 = 64 << 20;

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Raft: replicate entries / heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft: request a vote.
    Vote(VoteRequest<NodeId>),
    /// Raft: one snapshot chunk.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client's write taken by a follower, for the leader to propose.
    Propose(Command),
    /// Sessions whose clients are connected to (and alive on) the sender: the leader
    /// pushes their deadlines out, as ZooKeeper's learner pings do.
    Touch(Vec<i64>),
    /// The leader's commit index after confirming it still leads (for `sync`).
    ReadIndex,
}

/// Why a forwarded request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    /// The receiver is not the leader; nothing was proposed (safe to retry elsewhere).
    #[error("not the leader (leader: {0:?})")]
    NotLeader(Option<NodeId>),
    /// The proposal may or may not have been committed (leadership lost meanwhile).
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// To `AppendEntries`.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// To `Vote`.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// To `InstallSnapshot`.
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// To `Propose`: the log index the command got, and its result.
    Propose(Result<(u64, CommandResult), ForwardError>),
    /// To `Touch`.
    Touched,
    /// To `ReadIndex`: the index to wait for.
    ReadIndex(Result<u64, ForwardError>),
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    if body.len() as u64 > FRAME_BYTES_MAX as u64 {
        return Err(std::io::Error::other(format!(
            "peer frame of {} bytes exceeds {FRAME_BYTES_MAX}",
            body.len()
        )));
    }
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len);
    if len > FRAME_BYTES_MAX {
        return Err(std::io::Error::other(format!(
            "peer frame of {len} bytes exceeds {FRAME_BYTES_MAX}"
        )));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(std::io::Error::other)
}

/// Connects to a peer (over TLS when `tls` is given) and sends the preamble.
pub async fn connect(
    addr: &str,
    preamble: [u8; 4],
    timeout: Duration,
    tls: Option<&Connector>,
) -> std::io::Result<Stream> {
    let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {addr} timed out"),
            )
        })??;
    s.set_nodelay(true)?;
    let mut s = match tls {
        Some(tls) => tls.connect(addr, s).await?,
        None => Stream::Plain(s),
    };
    s.write_all(&preamble).await?;
    s.flush().await?;
    Ok(s)
}

/// One `BRFT` connection to a peer.
#[derive(Debug)]
pub struct PeerConn {
    stream: Stream,
}

impl PeerConn {
    /// Opens a connection.
    pub async fn open(
        addr: &str,
        timeout: Duration,
        tls: Option<&Connector>,
    ) -> std::io::Result<PeerConn> {
        Ok(PeerConn {
            stream: connect(addr, PREAMBLE_RAFT, timeout, tls).await?,
        })
    }

    /// One request, one response, within `timeout`.
    pub async fn call(
        &mut self,
        req: &PeerRequest,
        timeout: Duration,
    ) -> std::io::Result<PeerResponse> {
        let fut = async {
            write_frame(&mut self.stream, req).await?;
            read_frame(&mut self.stream).await?.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "peer closed the connection",
                )
            })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "peer call timed out"))?
    }
}

/// Idle connections per peer, for forwarded writes, touches and read-index calls
/// (several may be in flight to the leader at once, one per connection).
#[derive(Debug)]
pub struct PeerPool {
    addrs: BTreeMap<NodeId, String>,
    idle: Mutex<HashMap<NodeId, Vec<PeerConn>>>,
    timeout: Duration,
    tls: Option<Connector>,
}

/// Idle connections kept per peer.
const POOL_IDLE_MAX: usize = 8;

/// How a pooled call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made: the request was never sent.
    #[error("cannot reach node {0}: {1}")]
    Unreachable(NodeId, std::io::Error),
    /// The request may have been received.
    #[error("call to node {0} failed: {1}")]
    Failed(NodeId, std::io::Error),
}

impl PeerPool {
    /// A pool over the members' peer addresses (dialled over TLS when `tls` is given).
    pub fn new(addrs: BTreeMap<NodeId, String>, timeout: Duration, tls: Option<Connector>) -> Self {
        PeerPool {
            addrs,
            idle: Mutex::new(HashMap::new()),
            timeout,
            tls,
        }
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request to `target` and waits for its answer.
    pub async fn call(&self, target: NodeId, req: &PeerRequest) -> Result<PeerResponse, CallError> {
        let pooled = self
            .idle
            .lock()
            .expect("pool lock")
            .get_mut(&target)
            .and_then(|v| v.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let addr = self.addrs.get(&target).ok_or_else(|| {
                    CallError::Unreachable(target, std::io::Error::other("not a member"))
                })?;
                PeerConn::open(addr, self.timeout, self.tls.as_ref())
                    .await
                    .map_err(|e| CallError::Unreachable(target, e))?
            }
        };
        let resp = conn
            .call(req, self.timeout)
            .await
            .map_err(|e| CallError::Failed(target, e))?;
        let mut idle = self.idle.lock().expect("pool lock");
        let v = idle.entry(target).or_default();
        if v.len() < POOL_IDLE_MAX {
            v.push(conn);
        }
        Ok(resp)
    }
}

/// Makes Raft clients for peers.
#[derive(Debug, Clone)]
pub struct Network {
    /// Bound on connecting (the RPC itself is bounded by openraft's TTL).
    pub connect_timeout: Duration,
    /// Where Raft RPC outcomes are recorded.
    pub liveness: Arc<PeerLiveness>,
    /// Mutual TLS to peers (`[cluster] tls`).
    pub tls: Option<Connector>,
}

/// Whether each peer answers this node's Raft RPCs. The leader heartbeats every follower
/// several times a second, so on the leader (the controller) this says within a few
/// heartbeats that a node's process or link is gone, long before its session expires.
#[derive(Debug, Default)]
pub struct PeerLiveness {
    /// Per peer: `None` while it answers, else since when it has not.
    failing: Mutex<BTreeMap<NodeId, Option<Instant>>>,
    /// When the outcomes were last forgotten, and each peer's last answer since.
    answers: Mutex<(Option<Instant>, BTreeMap<NodeId, Instant>)>,
}

impl PeerLiveness {
    fn answered(&self, peer: NodeId) {
        self.failing.lock().expect("liveness").insert(peer, None);
        self.answers
            .lock()
            .expect("liveness")
            .1
            .insert(peer, Instant::now());
    }

    /// Peers that answered an RPC within `window`. A peer not heard from since the outcomes
    /// were forgotten counts while that was less than `window` ago (a new leader has not had
    /// a heartbeat round yet). A link that drops packets silently shows here after `window`,
    /// while [`PeerLiveness::failing_for`] waits for the RPC to time out.
    pub fn answered_within(&self, peers: impl Iterator<Item = NodeId>, window: Duration) -> usize {
        let answers = self.answers.lock().expect("liveness");
        let fresh_start = answers.0.is_none_or(|t| t.elapsed() < window);
        peers
            .filter(|p| match answers.1.get(p) {
                Some(t) => t.elapsed() < window,
                None => fresh_start,
            })
            .count()
    }

    fn failed(&self, peer: NodeId) {
        self.failing
            .lock()
            .expect("liveness")
            .entry(peer)
            .or_insert(None)
            .get_or_insert_with(Instant::now);
    }

    /// Forgets every outcome (a new leadership term starts with fresh connections).
    pub fn clear(&self) {
        self.failing.lock().expect("liveness").clear();
        *self.answers.lock().expect("liveness") = (Some(Instant::now()), BTreeMap::new());
    }

    /// Peers whose RPCs have failed, without an answer since, for longer than `after`.
    pub fn failing_for(&self, after: Duration) -> BTreeSet<NodeId> {
        self.failing
            .lock()
            .expect("liveness")
            .iter()
            .filter(|(_, since)| since.is_some_and(|s| s.elapsed() >= after))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// A Raft client for one peer.
#[derive(Debug)]
pub struct RaftClient {
    target: NodeId,
    addr: String,
    conn: Option<PeerConn>,
    connect_timeout: Duration,
    liveness: Arc<PeerLiveness>,
    tls: Option<Connector>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> RaftClient {
        RaftClient {
            target,
            addr: node.addr.clone(),
            conn: None,
            connect_timeout: self.connect_timeout,
            liveness: self.liveness.clone(),
            tls: self.tls.clone(),
        }
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl RaftClient {
    async fn call<E: std::error::Error>(
        &mut self,
        req: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, RpcErr<E>> {
        let outcome = self.call_once(req, option).await;
        match &outcome {
            Ok(_) => self.liveness.answered(self.target),
            Err(_) => self.liveness.failed(self.target),
        }
        outcome
    }

    async fn call_once<E: std::error::Error>(
        &mut self,
        req: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, RpcErr<E>> {
        if self.conn.is_none() {
            let timeout = self.connect_timeout.min(option.hard_ttl());
            let c = PeerConn::open(&self.addr, timeout, self.tls.as_ref())
                .await
                .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().expect("connected above");
        match conn.call(&req, option.hard_ttl()).await {
            Ok(r) => Ok(r),
            Err(e) => {
                // The stream may hold half a frame: start afresh next time.
                self.conn = None;
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }

    fn unexpected<E: std::error::Error>(&self) -> RpcErr<E> {
        RPCError::Network(NetworkError::new(&std::io::Error::other(
            "unexpected peer response",
        )))
    }
}

impl RaftNetwork<TypeConfig> for RaftClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        match self.call(PeerRequest::AppendEntries(rpc), &option).await? {
            PeerResponse::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self
            .call(PeerRequest::InstallSnapshot(rpc), &option)
            .await?
        {
            PeerResponse::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self.call(PeerRequest::Vote(rpc), &option).await? {
            PeerResponse::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_counts_the_peers_that_answered_within_the_window() {
        let window = Duration::from_millis(80);
        let live = PeerLiveness::default();
        // Never cleared (no leadership yet) and never answered: nobody counts as lost.
        assert_eq!(live.answered_within([2, 3].into_iter(), window), 2);
        live.clear();
        // A new term: peers not heard from yet count until the window has passed.
        assert_eq!(live.answered_within([2, 3].into_iter(), window), 2);
        live.answered(2);
        std::thread::sleep(Duration::from_millis(100));
        // Silent since: neither the never-heard peer nor the one that answered once.
        assert_eq!(live.answered_within([2, 3].into_iter(), window), 0);
        live.answered(3);
        assert_eq!(live.answered_within([2, 3].into_iter(), window), 1);
        live.failed(2);
        assert_eq!(live.answered_within([2, 3].into_iter(), window), 1);
    }
}

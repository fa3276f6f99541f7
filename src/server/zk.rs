//! The ZooKeeper listener: accept loop with a per-address connection cap, one task pair per
//! connection (reader applies requests, writer sends replies once their zxid is durable),
//! four-letter words on the first four bytes, session expiry, container reaping and purge.

mod protected;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::cluster::state_machine::{apply_command, Applier};
use crate::cluster::types::{Command, CommandKind};
use crate::cluster::Cluster;
use crate::coordinator::persist::{self, FileLog};
use crate::coordinator::{Connect, Coordinator, CoordinatorConfig, Limits, Outcome, WatchEvent};
use crate::memory::{Grant, Pool};
use crate::zk::connect::{ConnectRequest, ConnectResponse};
use crate::zk::dispatch::{self, Replicated, SessionState};
use crate::zk::watches::encode_notification;
use crate::zk::words::WordData;

/// One frame queued for a connection's writer.
struct Out {
    frame: Vec<u8>,
    /// Sent only once this zxid is durable.
    zxid: i64,
    /// Held until written: bounds requests in flight server-wide.
    _permit: Option<InFlight>,
    close_after: bool,
}

/// What a request holds from the moment its frame is read until its answer is written:
/// a slot of `global_outstanding_limit` and its bytes in the requests pool.
struct InFlight {
    _slot: OwnedSemaphorePermit,
    _bytes: Grant,
}

struct ConnEntry {
    conn_id: u64,
    tx: mpsc::UnboundedSender<Out>,
}

/// Information about a live connection, for `cons` / `stat`.
#[derive(Debug, Clone)]
struct ConnInfo {
    peer: SocketAddr,
    session_id: i64,
    received: u64,
    sent: u64,
}

struct Inner {
    coord: Coordinator,
    conns: HashMap<i64, ConnEntry>,
    /// In-process watchers ([`crate::cluster::LocalZk::watch`]), by pseudo session id.
    local_watchers: HashMap<i64, mpsc::UnboundedSender<WatchEvent>>,
    rng: u64,
}

impl Inner {
    /// Binds session `id` to connection `conn_id` and encodes the answer to its connect
    /// request. A connection the session had before is closed: the session moved here.
    fn attach(
        &mut self,
        id: i64,
        conn_id: u64,
        tx: &mpsc::UnboundedSender<Out>,
        timeout_ms: i32,
        password: Vec<u8>,
        read_only: Option<bool>,
    ) -> Vec<u8> {
        let entry = ConnEntry {
            conn_id,
            tx: tx.clone(),
        };
        if let Some(old) = self.conns.insert(id, entry) {
            let _ = old.tx.send(Out {
                frame: Vec::new(),
                zxid: 0,
                _permit: None,
                close_after: true,
            });
        }
        ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id: id,
            password,
            read_only: read_only.map(|_| false),
        }
        .encode()
    }

    /// Queues notifications to their sessions' connections (under the same lock as the
    /// write that caused them, so every connection sees events in zxid order).
    fn route(&mut self, notes: &[WatchEvent], zxid: i64) {
        let mut gone = Vec::new();
        for n in notes {
            if let Some(c) = self.conns.get(&n.session_id) {
                let _ = c.tx.send(Out {
                    frame: encode_notification(n),
                    zxid,
                    _permit: None,
                    close_after: false,
                });
            } else if let Some(w) = self.local_watchers.get(&n.session_id) {
                if w.send(n.clone()).is_err() {
                    gone.push(n.session_id);
                }
            }
        }
        for id in gone {
            self.local_watchers.remove(&id);
            self.coord.detach(id);
        }
    }

    fn route_outcome(&mut self, out: &Outcome) {
        let notes = out.notifications.clone();
        self.route(&notes, out.zxid);
    }

    fn password(&mut self) -> [u8; 16] {
        let mut p = [0u8; 16];
        for chunk in p.chunks_mut(8) {
            // splitmix64
            self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
        }
        p
    }
}

/// Server-wide counters for four-letter words.
#[derive(Default)]
struct Stats {
    packets_received: AtomicU64,
    packets_sent: AtomicU64,
    latency_total_us: AtomicU64,
    latency_count: AtomicU64,
    latency_max_us: AtomicU64,
    latency_min_us: AtomicU64,
    next_conn_id: AtomicU64,
}

/// The coordinator shared by all ZooKeeper connections.
pub struct ZkServer {
    inner: Mutex<Inner>,
    config: CoordinatorConfig,
    data_dir: PathBuf,
    server_id: u8,
    durable: watch::Receiver<i64>,
    outstanding: Arc<Semaphore>,
    serving: AtomicBool,
    started: Instant,
    stats: Stats,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    conn_info: Mutex<HashMap<u64, ConnInfo>>,
    /// The quorum, in cluster mode (set once, right after the coordinator is opened).
    cluster: std::sync::OnceLock<Arc<Cluster>>,
    /// Sessions whose expiry this leader has proposed and not yet seen applied.
    expiring: Mutex<std::collections::HashSet<i64>>,
    /// Whether this node led the quorum at the last background tick.
    was_leader: AtomicBool,
    /// The session owning this node's own ephemerals (created on first use, and again if
    /// it expired, e.g. after this node was cut off longer than its timeout); 0 = none.
    server_session: AtomicI64,
    /// Serialises the creation of `server_session`.
    server_session_lock: tokio::sync::Mutex<()>,
    /// Timeout of `server_session` (cluster mode: `cluster.broker_session_timeout_ms`).
    server_session_timeout_ms: AtomicI32,
    /// Requests a second each client connection may make; 0: no limit
    /// (`security.max_requests_per_second_per_connection`).
    requests_per_second: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for ZkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkServer")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// The shared handle passed to [`serve`].
pub type ZkHandle = Arc<ZkServer>;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u64::from_be_bytes(b) ^ wall_ms() as u64 ^ ((std::process::id() as u64) << 32)
}

/// Opens the coordinator from its config: reads `myid`, recovers snapshot and txn log,
/// purges old files, and starts a new txn log.
pub fn open(config: &CoordinatorConfig, tree_bytes_max: u64) -> anyhow::Result<ZkHandle> {
    config.validate().map_err(anyhow::Error::msg)?;
    let data_dir = PathBuf::from(&config.data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating coordinator.data_dir {}", data_dir.display()))?;
    let server_id = persist::read_myid(&data_dir)
        .map_err(anyhow::Error::msg)?
        .unwrap_or(1);
    let (mut tree, txns) = persist::recover(&data_dir)
        .with_context(|| format!("recovering {}", data_dir.display()))?;
    Coordinator::replay(&mut tree, &txns);
    tracing::info!(
        zxid = tree.last_zxid(),
        nodes = tree.node_count(),
        replayed = txns.len(),
        sessions = tree.sessions().len(),
        "coordinator recovered"
    );
    if !txns.is_empty() {
        persist::snapshot_now(&data_dir, &tree).context("writing the post-recovery snapshot")?;
    }
    if config.autopurge_purge_interval > 0 {
        persist::purge(&data_dir, config.autopurge_snap_retain_count as usize)
            .context("purging old snapshots")?;
    }
    let log = FileLog::open(
        &data_dir,
        tree.last_zxid(),
        config.snap_count,
        config.preallocate_bytes,
        config.force_sync,
    )
    .context("opening the txn log")?;
    let limits = Limits {
        max_data_bytes: config.jute_maxbuffer as usize,
        session_timeout_ms: config.session_timeout_bounds(),
    };
    let mut coord = Coordinator::new(
        tree,
        Box::new(log),
        limits,
        config.max_watches as usize,
        server_id,
        wall_ms(),
        0,
    );
    coord.set_tree_bytes_max(tree_bytes_max);
    let durable = coord.durable();
    Ok(Arc::new(ZkServer {
        inner: Mutex::new(Inner {
            coord,
            conns: HashMap::new(),
            local_watchers: HashMap::new(),
            rng: seed(),
        }),
        config: config.clone(),
        data_dir,
        server_id,
        durable,
        outstanding: Arc::new(Semaphore::new(config.global_outstanding_limit as usize)),
        serving: AtomicBool::new(false),
        started: Instant::now(),
        stats: Stats {
            latency_min_us: AtomicU64::new(u64::MAX),
            ..Default::default()
        },
        per_ip: Mutex::new(HashMap::new()),
        requests_per_second: std::sync::atomic::AtomicU32::new(0),
        conn_info: Mutex::new(HashMap::new()),
        cluster: std::sync::OnceLock::new(),
        expiring: Mutex::new(Default::default()),
        was_leader: AtomicBool::new(false),
        server_session: AtomicI64::new(0),
        server_session_lock: tokio::sync::Mutex::new(()),
        server_session_timeout_ms: AtomicI32::new(SERVER_SESSION_TIMEOUT_MS),
    }))
}

/// Opens the coordinator of a cluster node: an empty tree that the Raft state machine fills
/// (snapshot, then committed log), no txn log of its own. Replies need not wait for a
/// durable zxid: anything applied was committed by a majority first.
pub fn open_clustered(
    config: &CoordinatorConfig,
    node_id: u32,
    tree_bytes_max: u64,
) -> anyhow::Result<ZkHandle> {
    config.validate().map_err(anyhow::Error::msg)?;
    let data_dir = PathBuf::from(&config.data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating coordinator.data_dir {}", data_dir.display()))?;
    let server_id = u8::try_from(node_id).map_err(|_| {
        anyhow::anyhow!("node id {node_id} must be 1..=255 in a cluster (it goes in session ids)")
    })?;
    let limits = Limits {
        max_data_bytes: config.jute_maxbuffer as usize,
        session_timeout_ms: config.session_timeout_bounds(),
    };
    let sink = Box::new(persist::MemorySink::new());
    let mut coord = Coordinator::new(
        crate::coordinator::DataTree::new(),
        sink,
        limits,
        config.max_watches as usize,
        server_id,
        wall_ms(),
        0,
    );
    // Checked before proposing; on apply the cap the entry carries decides.
    coord.set_tree_bytes_max(tree_bytes_max);
    // Always "durable": the writer never holds a reply back.
    let durable = watch::channel(i64::MAX).1;
    Ok(Arc::new(ZkServer {
        inner: Mutex::new(Inner {
            coord,
            conns: HashMap::new(),
            local_watchers: HashMap::new(),
            rng: seed(),
        }),
        config: config.clone(),
        data_dir,
        server_id,
        durable,
        outstanding: Arc::new(Semaphore::new(config.global_outstanding_limit as usize)),
        serving: AtomicBool::new(false),
        started: Instant::now(),
        stats: Stats {
            latency_min_us: AtomicU64::new(u64::MAX),
            ..Default::default()
        },
        per_ip: Mutex::new(HashMap::new()),
        requests_per_second: std::sync::atomic::AtomicU32::new(0),
        conn_info: Mutex::new(HashMap::new()),
        cluster: std::sync::OnceLock::new(),
        expiring: Mutex::new(Default::default()),
        was_leader: AtomicBool::new(false),
        server_session: AtomicI64::new(0),
        server_session_lock: tokio::sync::Mutex::new(()),
        server_session_timeout_ms: AtomicI32::new(SERVER_SESSION_TIMEOUT_MS),
    }))
}

impl Applier for ZkServer {
    fn apply(&self, cmd: &Command, zxid: i64) -> crate::coordinator::TxnResult {
        let now = self.mono_ms();
        let mut inner = self.lock();
        let out = apply_command(&mut inner.coord, cmd, zxid, now);
        inner.route_outcome(&out);
        if cmd.kind == CommandKind::ExpireSession {
            tracing::info!(
                session = format_args!("0x{:x}", cmd.session_id),
                zxid,
                "session expired"
            );
            if let Some(c) = inner.conns.remove(&cmd.session_id) {
                let _ = c.tx.send(Out {
                    frame: Vec::new(),
                    zxid: out.zxid,
                    _permit: None,
                    close_after: true,
                });
            }
            self.expiring
                .lock()
                .expect("expiring lock")
                .remove(&cmd.session_id);
        }
        out.result
    }

    fn snapshot(&self) -> Vec<u8> {
        persist::encode_snapshot(self.lock().coord.tree())
    }

    fn install(&self, bytes: &[u8]) -> Result<(), String> {
        let tree = persist::decode_snapshot(bytes).ok_or("corrupt coordinator snapshot")?;
        let now = self.mono_ms();
        self.lock().coord.replace_tree(tree, now);
        Ok(())
    }
}

impl ZkServer {
    fn mono_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("coordinator lock poisoned")
    }

    /// Limits each client connection to `per_second` requests a second (0: no limit),
    /// for connections accepted from now on.
    pub fn set_requests_per_second(&self, per_second: u32) {
        self.requests_per_second
            .store(per_second, Ordering::Relaxed);
    }

    /// The node id read from `myid` (1 when absent).
    pub fn server_id(&self) -> u8 {
        self.server_id
    }

    /// What the tree and this node's watches take from the znode pool.
    pub fn znode_pool_used_bytes(&self) -> u64 {
        self.lock().coord.znode_pool_used_bytes()
    }

    /// The last applied zxid.
    pub fn last_zxid(&self) -> i64 {
        self.lock().coord.last_zxid()
    }

    /// Joins the coordinator to the quorum (cluster mode); liveness reports from followers
    /// touch the sessions here.
    pub fn attach_cluster(self: &Arc<Self>, cluster: Arc<Cluster>, broker_session_timeout_ms: u64) {
        self.server_session_timeout_ms.store(
            i32::try_from(broker_session_timeout_ms).unwrap_or(i32::MAX),
            Ordering::Relaxed,
        );
        let weak = Arc::downgrade(self);
        cluster.set_touch_handler(Arc::new(move |ids: &[i64]| {
            if let Some(zk) = weak.upgrade() {
                let now = zk.mono_ms();
                let mut inner = zk.lock();
                for id in ids {
                    inner.coord.touch(*id, now);
                }
            }
        }));
        let _ = self.cluster.set(cluster);
    }

    /// The quorum, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    /// Cluster mode, every tick: the leader expires sessions and reaps containers through
    /// the quorum; followers tell the leader which sessions have clients here.
    fn cluster_tick(self: &Arc<Self>, cluster: &Arc<Cluster>, reap: bool) {
        let leading = cluster.is_leader();
        self.touch_server_session();
        if cluster.stood_down() {
            // Cut off from the majority: as a ZooKeeper server that loses its quorum, close
            // every client so it tries the next server in its list (its session lives on
            // there); new ones are refused until this node knows a leader again.
            let mut inner = self.lock();
            let dropped: Vec<ConnEntry> = inner.conns.drain().map(|(_, c)| c).collect();
            drop(inner);
            if !dropped.is_empty() {
                tracing::warn!(
                    node = cluster.id(),
                    clients = dropped.len(),
                    "no quorum leader: closing ZooKeeper clients"
                );
            }
            for c in dropped {
                let _ = c.tx.send(Out {
                    frame: Vec::new(),
                    zxid: 0,
                    _permit: None,
                    close_after: true,
                });
            }
        }
        if leading && !self.was_leader.swap(true, Ordering::SeqCst) {
            // A new leader did not hear the old one's pings: every session starts afresh.
            let now = self.mono_ms();
            self.lock().coord.touch_all(now);
            tracing::info!(
                node = cluster.id(),
                "leading the quorum: session deadlines restarted"
            );
        }
        if !leading {
            self.was_leader.store(false, Ordering::SeqCst);
            let mut ids: Vec<i64> = self.lock().conns.keys().copied().collect();
            ids.extend(self.current_server_session());
            let c = cluster.clone();
            tokio::spawn(async move { c.send_touches(ids).await });
            return;
        }
        let now = self.mono_ms();
        let expired: Vec<i64> = {
            let inner = self.lock();
            let mut expiring = self.expiring.lock().expect("expiring lock");
            inner
                .coord
                .expired_sessions(now)
                .into_iter()
                .filter(|s| expiring.insert(*s))
                .collect()
        };
        let mut cmds: Vec<Command> = expired
            .into_iter()
            .map(|sid| Command {
                session_id: sid,
                cxid: 0,
                time_ms: wall_ms(),
                auth: Vec::new(),
                kind: CommandKind::ExpireSession,
                znode_cap_bytes: None,
            })
            .collect();
        if reap {
            let paths = self.lock().coord.tree().reap_candidates(wall_ms());
            cmds.extend(paths.into_iter().map(|path| Command {
                session_id: 0,
                cxid: 0,
                time_ms: wall_ms(),
                auth: Vec::new(),
                kind: CommandKind::Reap { path },
                znode_cap_bytes: None,
            }));
        }
        if cmds.is_empty() {
            return;
        }
        let c = cluster.clone();
        let zk = self.clone();
        tokio::spawn(async move {
            for cmd in cmds {
                let sid = cmd.session_id;
                if let Err(e) = c.propose(cmd).await {
                    tracing::warn!(error = %e, "proposing an expiry or reap failed; will retry");
                    zk.expiring.lock().expect("expiring lock").remove(&sid);
                }
            }
        });
    }

    /// The node's own session is alive as long as the node is.
    fn touch_server_session(&self) {
        if let Some(sid) = self.current_server_session() {
            let now = self.mono_ms();
            self.lock().coord.touch(sid, now);
        }
    }

    fn current_server_session(&self) -> Option<i64> {
        match self.server_session.load(Ordering::Acquire) {
            0 => None,
            sid => Some(sid),
        }
    }

    fn expire_sessions(&self) {
        self.touch_server_session();
        let now = self.mono_ms();
        let mut inner = self.lock();
        for sid in inner.coord.expired_sessions(now) {
            tracing::info!(session = format_args!("0x{sid:x}"), "session expired");
            let out = inner.coord.close_session(sid, 0, wall_ms());
            inner.route_outcome(&out);
            if let Some(c) = inner.conns.remove(&sid) {
                let _ = c.tx.send(Out {
                    frame: Vec::new(),
                    zxid: out.zxid,
                    _permit: None,
                    close_after: true,
                });
            }
        }
    }

    fn reap(&self) {
        let mut inner = self.lock();
        for out in inner.coord.reap(wall_ms()) {
            inner.route_outcome(&out);
        }
    }

    fn record_latency(&self, us: u64) {
        let s = &self.stats;
        s.latency_total_us.fetch_add(us, Ordering::Relaxed);
        s.latency_count.fetch_add(1, Ordering::Relaxed);
        s.latency_max_us.fetch_max(us, Ordering::Relaxed);
        s.latency_min_us.fetch_min(us, Ordering::Relaxed);
    }
}

/// Serves ZooKeeper clients on `listener` (and TLS clients on `secure`, ZooKeeper's
/// secureClientPort) until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    zk: ZkHandle,
    secure: Option<(TcpListener, crate::tls::Acceptor)>,
    requests: Arc<Pool>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    zk.serving.store(true, Ordering::SeqCst);
    tracing::info!(addr = %listener.local_addr()?, "zookeeper listener up");
    let bg = spawn_background(zk.clone(), shutdown.clone());
    let secure = match secure {
        Some((listener, tls)) => {
            tracing::info!(addr = %listener.local_addr()?, "zookeeper TLS listener up");
            Some(tokio::spawn(accept_loop(
                listener,
                Some(tls),
                zk.clone(),
                requests.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    accept_loop(listener, None, zk.clone(), requests, shutdown).await;
    zk.serving.store(false, Ordering::SeqCst);
    bg.abort();
    if let Some(secure) = secure {
        secure.abort();
    }
    Ok(())
}

/// Accepts connections on one listener, each after a TLS handshake when `tls` is given.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<crate::tls::Acceptor>,
    zk: ZkHandle,
    requests: Arc<Pool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if !admit(&zk, peer.ip()) {
                    tracing::warn!(peer = %peer, limit = zk.config.max_client_cnxns, "too many connections from this address");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let zk2 = zk.clone();
                let sd = shutdown.clone();
                let tls = tls.clone();
                let requests = requests.clone();
                tokio::spawn(async move {
                    let served = async {
                        // A TLS connection's buffers are counted in the requests pool while it is open.
                        let _tls_bytes = crate::tls::connection_grant(tls.as_ref(), &requests).await;
                        let (stream, _) = crate::tls::accept(tls.as_ref(), stream)
                            .await
                            .inspect_err(|e| tracing::warn!(peer = %peer, error = %e, "TLS handshake failed"))?;
                        connection(stream, peer, zk2.clone(), requests, sd).await
                    };
                    if let Err(e) = served.await {
                        tracing::debug!(peer = %peer, error = %e, "connection ended");
                    }
                    release(&zk2, peer.ip());
                });
            }
        }
    }
}

fn admit(zk: &ZkServer, ip: IpAddr) -> bool {
    let mut m = zk.per_ip.lock().expect("per-ip lock");
    let n = m.entry(ip).or_insert(0);
    if zk.config.max_client_cnxns > 0 && *n >= zk.config.max_client_cnxns {
        return false;
    }
    *n += 1;
    true
}

fn release(zk: &ZkServer, ip: IpAddr) {
    let mut m = zk.per_ip.lock().expect("per-ip lock");
    if let Some(n) = m.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            m.remove(&ip);
        }
    }
}

fn spawn_background(
    zk: ZkHandle,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = Duration::from_millis((zk.config.tick_time_ms as u64 / 2).clamp(10, 500));
        if zk.cluster.get().is_some() {
            // Followers report liveness every tick: several reports fit in the brokers'
            // own (short) session timeout.
            let server_ms = zk.server_session_timeout_ms.load(Ordering::Relaxed).max(40) as u64;
            tick = tick.min(Duration::from_millis(server_ms / 6));
        }
        let mut expiry = tokio::time::interval(tick);
        let mut reaper = tokio::time::interval(Duration::from_millis(
            zk.config.container_check_interval_ms.max(10) as u64,
        ));
        let purge_every =
            Duration::from_secs(3600 * zk.config.autopurge_purge_interval.max(1) as u64);
        let mut purge =
            tokio::time::interval_at(tokio::time::Instant::now() + purge_every, purge_every);
        loop {
            tokio::select! {
                _ = shutdown.changed() => if *shutdown.borrow() { return },
                _ = expiry.tick() => match zk.cluster.get() {
                    Some(c) => zk.cluster_tick(c, false),
                    None => zk.expire_sessions(),
                },
                _ = reaper.tick() => match zk.cluster.get() {
                    Some(c) => zk.cluster_tick(c, true),
                    None => zk.reap(),
                },
                _ = purge.tick() => {
                    if zk.config.autopurge_purge_interval > 0 && zk.cluster.get().is_none() {
                        let dir = zk.data_dir.clone();
                        let keep = zk.config.autopurge_snap_retain_count as usize;
                        let r = tokio::task::spawn_blocking(move || persist::purge(&dir, keep)).await;
                        if let Ok(Err(e)) = r {
                            tracing::warn!(error = %e, "autopurge failed");
                        }
                    }
                }
            }
        }
    })
}

async fn read_exact_or_eof(s: &mut crate::tls::ReadHalf, buf: &mut [u8]) -> std::io::Result<bool> {
    match s.read_exact(buf).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// A frame length outside 0..=jute_maxbuffer closes the connection.
fn check_length(len: i32, max: u32) -> anyhow::Result<()> {
    if len < 0 || len as u32 > max {
        anyhow::bail!("frame length {len} outside 0..={max} (jute_maxbuffer)");
    }
    Ok(())
}

/// What a request frame of `len` bytes holds in the requests pool until its answer is
/// written: the frame, and what is decoded or copied from it.
fn frame_cost(len: i32) -> u64 {
    2 * u64::from(len.max(0) as u32)
}

/// Reads a frame body whose 4-byte length was already read, enforcing jute_maxbuffer
/// before allocating.
async fn read_body(s: &mut crate::tls::ReadHalf, len: i32, max: u32) -> anyhow::Result<Vec<u8>> {
    check_length(len, max)?;
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).await?;
    Ok(body)
}

async fn connection(
    stream: crate::tls::Stream,
    peer: SocketAddr,
    zk: ZkHandle,
    requests: Arc<Pool>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let mut first = [0u8; 4];
    if !read_exact_or_eof(&mut rd, &mut first).await? {
        return Ok(());
    }
    if let Ok(word) = std::str::from_utf8(&first) {
        if crate::coordinator::config::FOUR_LETTER_WORDS.contains(&word) {
            let text = if zk.config.allows_word(word) {
                if word == "crst" {
                    zk.reset_stats();
                }
                crate::zk::words::answer(word, &zk.word_data())
            } else {
                format!("{word} is not executed because it is not in the whitelist.\n")
            };
            wr.write_all(text.as_bytes()).await?;
            wr.shutdown().await?;
            return Ok(());
        }
    }
    let max = zk.config.jute_maxbuffer;
    let length = i32::from_be_bytes(first);
    check_length(length, max)?;
    let connect_bytes = requests.acquire(frame_cost(length)).await;
    let body = read_body(&mut rd, length, max).await?;
    let req = ConnectRequest::decode(&body).context("bad ConnectRequest")?;
    drop(body);
    drop(connect_bytes);
    let conn_id = zk.stats.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel::<Out>();

    // Session establishment, under the coordinator lock (through the quorum in a cluster).
    let established = if let Some(cluster) = zk.cluster.get() {
        match establish_clustered(&zk, cluster, &req, conn_id, &tx, peer).await {
            Established::Stale => return Ok(()),
            Established::Expired => None,
            Established::Session(id, frame, zxid) => Some((id, frame, zxid)),
        }
    } else {
        let mut inner = zk.lock();
        let last = inner.coord.last_zxid();
        if req.last_zxid_seen > last {
            tracing::warn!(peer = %peer, client_zxid = req.last_zxid_seen, server_zxid = last, "refusing a client that has seen a newer zxid");
            return Ok(());
        }
        let pw = inner.password();
        let now = zk.mono_ms();
        match inner.coord.connect(
            req.session_id,
            &req.password,
            req.timeout_ms,
            pw,
            wall_ms(),
            now,
        ) {
            Connect::Expired => None,
            Connect::Session {
                id,
                timeout_ms,
                password,
                outcome,
            } => {
                let zxid = outcome.as_ref().map(|o| o.zxid).unwrap_or(0);
                let answer = inner.attach(id, conn_id, &tx, timeout_ms, password, req.read_only);
                Some((id, answer, zxid))
            }
        }
    };
    let Some((session_id, connect_frame, connect_zxid)) = established else {
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            password: vec![0; 16],
            read_only: req.read_only.map(|_| false),
        };
        wr.write_all(&resp.encode()).await?;
        return Ok(());
    };
    tracing::debug!(peer = %peer, session = format_args!("0x{session_id:x}"), "session established");
    zk.conn_info.lock().expect("conn info").insert(
        conn_id,
        ConnInfo {
            peer,
            session_id,
            received: 0,
            sent: 0,
        },
    );
    let _ = tx.send(Out {
        frame: connect_frame,
        zxid: connect_zxid,
        _permit: None,
        close_after: false,
    });

    let writer = tokio::spawn(writer(wr, rx, zk.durable.clone(), zk.clone(), conn_id));
    let mut st = SessionState::new(session_id, &peer.ip().to_string());
    let mut rate = crate::security::rate::ConnectionRate::new(
        zk.requests_per_second.load(Ordering::Relaxed),
        crate::security::rate::Listener::ZooKeeper,
        peer,
    );
    zk.lock()
        .coord
        .set_session_auth(session_id, st.auth.clone());
    let result = async {
        loop {
            let mut len = [0u8; 4];
            let got = tokio::select! {
                r = read_exact_or_eof(&mut rd, &mut len) => r?,
                _ = shutdown.changed() => false,
            };
            if !got {
                return Ok(());
            }
            let length = i32::from_be_bytes(len);
            check_length(length, max)?;
            // The frame is held against the requests pool until its answer is written:
            // twice its size, the frame and what is decoded from it (a create's data, a
            // multi's ops). A full pool stops reading this socket: TCP backpressure.
            let bytes = requests.acquire(frame_cost(length)).await;
            let body = read_body(&mut rd, length, max).await?;
            // Over its request rate, the connection is not read until a token is back.
            rate.pace().await;
            let permit = InFlight {
                _slot: zk
                    .outstanding
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore closed"),
                _bytes: bytes,
            };
            let started = Instant::now();
            zk.stats.packets_received.fetch_add(1, Ordering::Relaxed);
            if let Some(cluster) = zk.cluster.get() {
                let rep = dispatch::decode_replicated(&body)
                    .map_err(|e| anyhow::anyhow!("malformed request: {e}"))?;
                if let Some(rep) = rep {
                    if !replicated(&zk, cluster, &st, conn_id, rep, &tx, permit).await {
                        return Ok(());
                    }
                    zk.record_latency(started.elapsed().as_micros() as u64);
                    continue;
                }
            }
            let done = {
                let mut inner = zk.lock();
                // A newer connection took over this session: stop.
                if inner
                    .conns
                    .get(&session_id)
                    .is_none_or(|c| c.conn_id != conn_id)
                {
                    return Ok(());
                }
                let h = dispatch::handle(&mut inner.coord, &mut st, &body, wall_ms(), zk.mono_ms())
                    .map_err(|e| anyhow::anyhow!("malformed request: {e}"))?;
                inner.route(&h.notifications, h.durable_zxid);
                if let Some(frame) = h.reply {
                    let _ = tx.send(Out {
                        frame,
                        zxid: h.durable_zxid,
                        _permit: Some(permit),
                        close_after: h.close,
                    });
                } else if h.close {
                    let _ = tx.send(Out {
                        frame: Vec::new(),
                        zxid: h.durable_zxid,
                        _permit: None,
                        close_after: true,
                    });
                }
                if h.session_closed {
                    inner.conns.remove(&session_id);
                }
                h.close
            };
            zk.record_latency(started.elapsed().as_micros() as u64);
            if let Some(ci) = zk.conn_info.lock().expect("conn info").get_mut(&conn_id) {
                ci.received += 1;
            }
            if done {
                return Ok(());
            }
        }
    }
    .await;
    // The connection is gone but the session lives until it expires; its watches go.
    {
        let mut inner = zk.lock();
        if inner
            .conns
            .get(&session_id)
            .is_some_and(|c| c.conn_id == conn_id)
        {
            inner.conns.remove(&session_id);
            inner.coord.detach(session_id);
        }
    }
    drop(tx);
    let _ = writer.await;
    zk.conn_info.lock().expect("conn info").remove(&conn_id);
    result
}

/// How a cluster node's connect went.
enum Established {
    /// The client has seen a newer zxid than this node applied: refuse, it tries another.
    Stale,
    /// Unknown session or wrong password.
    Expired,
    /// Session id, connect response frame, zxid of its creation (0 when reattached).
    Session(i64, Vec<u8>, i64),
}

async fn establish_clustered(
    zk: &ZkHandle,
    cluster: &Arc<Cluster>,
    req: &ConnectRequest,
    conn_id: u64,
    tx: &mpsc::UnboundedSender<Out>,
    peer: SocketAddr,
) -> Established {
    if cluster.stood_down() {
        tracing::debug!(peer = %peer, "no quorum leader: refusing a client");
        return Established::Stale;
    }
    let last = zk.lock().coord.last_zxid();
    if req.last_zxid_seen > last {
        tracing::warn!(peer = %peer, client_zxid = req.last_zxid_seen, server_zxid = last, "refusing a client that has seen a newer zxid");
        return Established::Stale;
    }
    let (id, timeout_ms, password, zxid) = if req.session_id != 0 {
        // Reattach: checked against the replicated session table, wherever it was created.
        let now = zk.mono_ms();
        match zk.lock().coord.reattach(req.session_id, &req.password, now) {
            Some(t) => (req.session_id, t, req.password.clone(), 0),
            None => return Established::Expired,
        }
    } else {
        let (id, pw, t) = {
            let mut inner = zk.lock();
            (
                inner.coord.new_session_id(),
                inner.password().to_vec(),
                inner.coord.negotiate_timeout(req.timeout_ms),
            )
        };
        let cmd = Command {
            session_id: id,
            cxid: 0,
            time_ms: wall_ms(),
            auth: Vec::new(),
            kind: CommandKind::CreateSession {
                timeout_ms: t,
                password: pw.clone(),
            },
            znode_cap_bytes: None,
        };
        match cluster.propose(cmd).await {
            Ok(res) if !matches!(res.result, crate::coordinator::TxnResult::Error(_)) => {
                (id, t, pw, res.zxid)
            }
            Ok(res) => {
                tracing::warn!(result = ?res.result, "session creation refused");
                return Established::Stale;
            }
            Err(e) => {
                // No quorum here: close, so the client tries the next server in its list.
                tracing::warn!(peer = %peer, error = %e, "cannot create a session");
                return Established::Stale;
            }
        }
    };
    let answer = zk
        .lock()
        .attach(id, conn_id, tx, timeout_ms, password, req.read_only);
    Established::Session(id, answer, zxid)
}

/// A write, closeSession or sync on a cluster node: through the quorum, answered once
/// applied here. False when the connection must close (the outcome is unknown, so the
/// client sees a connection loss, as with ZooKeeper when its server loses the leader).
async fn replicated(
    zk: &ZkHandle,
    cluster: &Arc<Cluster>,
    st: &SessionState,
    conn_id: u64,
    rep: Replicated,
    tx: &mpsc::UnboundedSender<Out>,
    permit: InFlight,
) -> bool {
    let session_id = st.session_id;
    {
        let now = zk.mono_ms();
        let mut inner = zk.lock();
        if inner
            .conns
            .get(&session_id)
            .is_none_or(|c| c.conn_id != conn_id)
            || !inner.coord.touch(session_id, now)
        {
            return false;
        }
    }
    let command = |cxid: i32, kind: CommandKind| Command {
        session_id,
        cxid,
        time_ms: wall_ms(),
        auth: st.auth.clone(),
        kind,
        znode_cap_bytes: None,
    };
    // The znode pool, checked here before anything is proposed (a refusal costs the quorum
    // nothing) and stamped on the entry, where the leader may lower it and every replica
    // applies it alike.
    let (cap, refused) = {
        let inner = zk.lock();
        let cap = inner.coord.write_cap_bytes();
        let refused = match &rep {
            Replicated::Write { op, .. } => inner.coord.would_exceed(&[op], cap),
            Replicated::Multi { ops, .. } => inner
                .coord
                .would_exceed(&ops.iter().collect::<Vec<_>>(), cap),
            _ => false,
        };
        (cap, refused.then(|| inner.coord.last_zxid()))
    };
    if let Some(last) = refused {
        let frame = quota_exceeded_reply(&rep, last);
        let _ = tx.send(Out {
            frame,
            zxid: last,
            _permit: Some(permit),
            close_after: false,
        });
        return true;
    }
    let capped = |cxid: i32, kind: CommandKind| Command {
        znode_cap_bytes: Some(cap),
        ..command(cxid, kind)
    };
    let (frame, zxid, close) = match rep {
        Replicated::Write { xid, code, op } => {
            match cluster.propose(capped(xid, CommandKind::Write(op))).await {
                Ok(res) => (
                    dispatch::write_reply(xid, code, res.zxid, &res.result),
                    res.zxid,
                    false,
                ),
                Err(e) => {
                    tracing::warn!(session = format_args!("0x{session_id:x}"), error = %e, "write not acknowledged; closing the connection");
                    return false;
                }
            }
        }
        Replicated::Multi { xid, codes, ops } => {
            match cluster.propose(capped(xid, CommandKind::Multi(ops))).await {
                Ok(res) => (
                    dispatch::multi_reply(xid, res.zxid, &codes, &res.result),
                    res.zxid,
                    false,
                ),
                Err(e) => {
                    tracing::warn!(session = format_args!("0x{session_id:x}"), error = %e, "multi not acknowledged; closing the connection");
                    return false;
                }
            }
        }
        Replicated::Close { xid } => match cluster
            .propose(command(xid, CommandKind::CloseSession))
            .await
        {
            Ok(res) => {
                zk.lock().conns.remove(&session_id);
                tracing::debug!(session = format_args!("0x{session_id:x}"), zxid = res.zxid, result = ?res.result, "session closed by its client");
                (dispatch::plain_reply(xid, res.zxid, None), res.zxid, true)
            }
            Err(e) => {
                tracing::warn!(session = format_args!("0x{session_id:x}"), error = %e, "closeSession not acknowledged; closing the connection");
                return false;
            }
        },
        Replicated::Sync { xid, path } => match cluster.read_barrier().await {
            Ok(()) => {
                let last = zk.lock().coord.last_zxid();
                (dispatch::plain_reply(xid, last, Some(&path)), last, false)
            }
            Err(e) => {
                tracing::warn!(error = %e, "sync failed; closing the connection");
                return false;
            }
        },
    };
    let _ = tx.send(Out {
        frame,
        zxid,
        _permit: Some(permit),
        close_after: close,
    });
    !close
}

/// The answer to a write or multi refused for the znode pool before it was proposed:
/// `QuotaExceeded`, as the entry's own check would have answered on apply.
fn quota_exceeded_reply(rep: &Replicated, zxid: i64) -> Vec<u8> {
    use crate::coordinator::{ErrorCode, TxnResult};
    match rep {
        Replicated::Multi { xid, codes, .. } => {
            let results = (0..codes.len())
                .map(|i| {
                    TxnResult::Error(if i == 0 {
                        ErrorCode::QuotaExceeded
                    } else {
                        ErrorCode::RuntimeInconsistency
                    })
                })
                .collect();
            dispatch::multi_reply(*xid, zxid, codes, &TxnResult::Multi(results))
        }
        Replicated::Write { xid, code, .. } => dispatch::write_reply(
            *xid,
            *code,
            zxid,
            &TxnResult::Error(ErrorCode::QuotaExceeded),
        ),
        Replicated::Close { .. } | Replicated::Sync { .. } => {
            unreachable!("only writes are refused for the znode pool")
        }
    }
}

async fn writer(
    wr: crate::tls::WriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    mut durable: watch::Receiver<i64>,
    zk: ZkHandle,
    conn_id: u64,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(out) = rx.recv().await {
        if out.zxid > *durable.borrow() && durable.wait_for(|d| *d >= out.zxid).await.is_err() {
            return;
        }
        if write_out(&mut w, &out).await.is_err() || out.close_after {
            let _ = w.flush().await;
            let _ = w.shutdown().await;
            return;
        }
        zk.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
        drop(out);
        // Write everything already queued and durable before flushing once.
        while let Ok(next) = rx.try_recv() {
            if next.zxid > *durable.borrow() && durable.wait_for(|d| *d >= next.zxid).await.is_err()
            {
                return;
            }
            if write_out(&mut w, &next).await.is_err() || next.close_after {
                let _ = w.flush().await;
                let _ = w.shutdown().await;
                return;
            }
            zk.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
        }
        if w.flush().await.is_err() {
            return;
        }
        if let Some(ci) = zk.conn_info.lock().expect("conn info").get_mut(&conn_id) {
            ci.sent += 1;
        }
    }
    let _ = w.flush().await;
}

async fn write_out<W: AsyncWrite + Unpin>(w: &mut W, out: &Out) -> std::io::Result<()> {
    if !out.frame.is_empty() {
        w.write_all(&out.frame).await?;
    }
    Ok(())
}

impl ZkServer {
    pub fn word_data(&self) -> WordData {
        let (zxid, nodes, watches, watch_paths, watch_sessions, ephemerals, data_bytes, sessions) = {
            let inner = self.lock();
            let c = &inner.coord;
            (
                c.last_zxid(),
                c.tree().node_count(),
                c.watches().count(),
                c.watches().path_count(),
                c.watches().by_session().len(),
                c.tree().ephemeral_count(),
                c.tree().data_bytes(),
                c.sessions().len(),
            )
        };
        let connections = self
            .conn_info
            .lock()
            .expect("conn info")
            .values()
            .map(|c| (c.peer, c.session_id, c.received, c.sent))
            .collect();
        let s = &self.stats;
        let n = s.latency_count.load(Ordering::Relaxed);
        let min = s.latency_min_us.load(Ordering::Relaxed);
        let latency = (
            if n == 0 { 0 } else { min / 1000 },
            if n == 0 {
                0.0
            } else {
                s.latency_total_us.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
            },
            s.latency_max_us.load(Ordering::Relaxed) / 1000,
        );
        let mode = match self.cluster.get() {
            None => Some("standalone"),
            Some(c) if c.is_leader() => Some("leader"),
            Some(c) if c.leader().borrow().is_some() => Some("follower"),
            Some(_) => None,
        };
        WordData {
            serving: self.serving.load(Ordering::SeqCst),
            mode,
            zxid,
            nodes,
            watches,
            watch_paths,
            watch_sessions,
            ephemerals,
            data_bytes,
            sessions,
            connections,
            received: s.packets_received.load(Ordering::Relaxed),
            sent: s.packets_sent.load(Ordering::Relaxed),
            outstanding: self.config.global_outstanding_limit as usize
                - self.outstanding.available_permits(),
            latency,
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            server_id: self.server_id,
            uptime_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    /// Resets the connection/latency statistics (`crst`).
    pub fn reset_stats(&self) {
        let s = &self.stats;
        s.latency_total_us.store(0, Ordering::Relaxed);
        s.latency_count.store(0, Ordering::Relaxed);
        s.latency_max_us.store(0, Ordering::Relaxed);
        s.latency_min_us.store(u64::MAX, Ordering::Relaxed);
        s.packets_received.store(0, Ordering::Relaxed);
        s.packets_sent.store(0, Ordering::Relaxed);
    }
}

/// The superuser identity the node acts with in-process (ACLs do not apply to it).
fn superuser() -> Vec<crate::coordinator::Id> {
    vec![crate::coordinator::Id {
        scheme: "super".into(),
        id: String::new(),
    }]
}

/// First pseudo session id of in-process watchers (real ids carry a node id in the top
/// byte and never come near it).
const LOCAL_WATCHER_BASE: i64 = i64::MIN / 2;

impl ZkServer {
    /// Carries out a command for the node itself: through the quorum in a cluster, else
    /// applied here and answered once durable.
    async fn local_command(
        &self,
        session_id: i64,
        kind: CommandKind,
    ) -> Result<crate::coordinator::TxnResult, crate::coordinator::ErrorCode> {
        let cmd = Command {
            session_id,
            cxid: 0,
            time_ms: wall_ms(),
            auth: superuser(),
            kind,
            znode_cap_bytes: None,
        };
        if let Some(c) = self.cluster.get() {
            return c.propose(cmd).await.map(|r| r.result).map_err(|e| {
                tracing::warn!(error = %e, "in-process coordinator write failed");
                crate::coordinator::ErrorCode::SystemError
            });
        }
        let (zxid, out) = {
            let now = self.mono_ms();
            let mut inner = self.lock();
            let zxid = inner.coord.last_zxid() + 1;
            let out = apply_command(&mut inner.coord, &cmd, zxid, now);
            inner.route_outcome(&out);
            (zxid, out)
        };
        let mut durable = self.durable.clone();
        durable
            .wait_for(|d| *d >= zxid)
            .await
            .map_err(|_| crate::coordinator::ErrorCode::SystemError)?;
        Ok(out.result)
    }

    /// The node's own session (created through the quorum on first use, and anew once the
    /// quorum has expired the previous one).
    async fn server_session(&self) -> Result<i64, crate::coordinator::ErrorCode> {
        let _creating = self.server_session_lock.lock().await;
        if let Some(sid) = self.current_server_session() {
            if self.lock().coord.sessions().contains(sid) {
                return Ok(sid);
            }
            tracing::warn!(
                session = format_args!("0x{sid:x}"),
                "this node's own coordinator session expired; opening a new one"
            );
        }
        let (id, pw, timeout) = {
            let mut inner = self.lock();
            // Like a Kafka broker's session: its ephemerals must go within seconds of a crash
            // for the controller to fail partitions over. The node's own session is not a
            // client's, so the negotiable range does not bound it.
            (
                inner.coord.new_session_id(),
                inner.password().to_vec(),
                self.server_session_timeout_ms.load(Ordering::Relaxed),
            )
        };
        match self
            .local_command(
                id,
                CommandKind::CreateSession {
                    timeout_ms: timeout,
                    password: pw,
                },
            )
            .await?
        {
            crate::coordinator::TxnResult::Error(e) => Err(e),
            _ => {
                self.server_session.store(id, Ordering::Release);
                Ok(id)
            }
        }
    }
}

/// The server-owned session's timeout on a single node (a cluster sets its own).
const SERVER_SESSION_TIMEOUT_MS: i32 = 6_000;

fn result_of(
    r: crate::coordinator::TxnResult,
) -> Result<crate::coordinator::TxnResult, crate::coordinator::ErrorCode> {
    match r {
        crate::coordinator::TxnResult::Error(e) => Err(e),
        ok => Ok(ok),
    }
}

impl crate::cluster::LocalZk for ZkServer {
    async fn create(
        &self,
        path: &str,
        data: &[u8],
        ephemeral: bool,
    ) -> Result<String, crate::coordinator::ErrorCode> {
        use crate::coordinator::{Acl, TxnResult, WriteOp};
        let sid = self.server_session().await?;
        let op = WriteOp::Create {
            path: path.into(),
            data: data.to_vec(),
            // The node's metadata is world-readable and the node's alone to change.
            acl: if crate::coordinator::acl::is_system_path(path) {
                crate::coordinator::acl::system_acl()
            } else {
                Acl::open()
            },
            flags: i32::from(ephemeral),
            ttl_ms: -1,
            op: crate::zk::op::CREATE,
        };
        match result_of(self.local_command(sid, CommandKind::Write(op)).await?)? {
            TxnResult::Created { path, .. } => Ok(path),
            _ => Err(crate::coordinator::ErrorCode::SystemError),
        }
    }

    async fn set(
        &self,
        path: &str,
        data: &[u8],
        version: i32,
    ) -> Result<i32, crate::coordinator::ErrorCode> {
        use crate::coordinator::{TxnResult, WriteOp};
        let sid = self.server_session().await?;
        let op = WriteOp::SetData {
            path: path.into(),
            data: data.to_vec(),
            version,
        };
        match result_of(self.local_command(sid, CommandKind::Write(op)).await?)? {
            TxnResult::SetData(stat) => Ok(stat.version),
            _ => Err(crate::coordinator::ErrorCode::SystemError),
        }
    }

    async fn delete(&self, path: &str, version: i32) -> Result<(), crate::coordinator::ErrorCode> {
        use crate::coordinator::WriteOp;
        let sid = self.server_session().await?;
        let op = WriteOp::Delete {
            path: path.into(),
            version,
        };
        result_of(self.local_command(sid, CommandKind::Write(op)).await?).map(|_| ())
    }

    fn own_session(&self) -> Option<i64> {
        self.current_server_session()
    }

    fn get(&self, path: &str) -> Option<(Vec<u8>, crate::coordinator::Stat)> {
        self.lock()
            .coord
            .tree()
            .get(path)
            .map(|n| (n.data.clone(), n.client_stat()))
    }

    fn children(&self, path: &str) -> Option<Vec<String>> {
        self.lock()
            .coord
            .tree()
            .get(path)
            .map(|n| n.children.iter().cloned().collect())
    }

    fn watch(&self, path: &str) -> mpsc::UnboundedReceiver<WatchEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        let id = LOCAL_WATCHER_BASE
            + inner.local_watchers.len() as i64
            + self.stats.next_conn_id.fetch_add(1, Ordering::Relaxed) as i64;
        let auth = superuser();
        inner.coord.set_session_auth(id, auth.clone());
        // A persistent recursive watch: it fires for the path and everything below it.
        inner.coord.add_own_watch(id, path);
        inner.local_watchers.insert(id, tx);
        rx
    }
}

#[cfg(test)]
mod local_zk_tests {
    use super::*;
    use crate::cluster::LocalZk;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_node_creates_watches_and_deletes_znodes_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let config = CoordinatorConfig {
            data_dir: dir.path().display().to_string(),
            ..Default::default()
        };
        let zk = open(&config, u64::MAX).unwrap();
        zk.create("/brokers", b"", false).await.unwrap();
        zk.create("/brokers/ids", b"", false).await.unwrap();
        let mut events = zk.watch("/brokers");
        zk.create("/brokers/ids/1", b"{\"host\":\"pi1\"}", true)
            .await
            .unwrap();
        let ev = events.recv().await.unwrap();
        assert_eq!(ev.path, "/brokers/ids/1");
        assert_eq!(zk.children("/brokers/ids").unwrap(), vec!["1".to_string()]);
        assert_eq!(zk.set("/brokers/ids/1", b"x", 0).await.unwrap(), 1);
        assert_eq!(zk.get("/brokers/ids/1").unwrap().0, b"x");
        assert_ne!(zk.get("/brokers/ids/1").unwrap().1.ephemeral_owner, 0);
        zk.delete("/brokers/ids/1", -1).await.unwrap();
        assert!(zk.get("/brokers/ids/1").is_none());
        assert_eq!(
            zk.delete("/nope", -1).await,
            Err(crate::coordinator::ErrorCode::NoNode)
        );
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;
    use crate::memory::pool::UNIT_BYTES;
    use crate::zk::{client, op};
    use tokio::net::TcpStream;

    struct Server {
        _dir: tempfile::TempDir,
        addr: SocketAddr,
        zk: ZkHandle,
        requests: Arc<Pool>,
        _stop: watch::Sender<bool>,
    }

    async fn start(pool_bytes: u64) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = CoordinatorConfig {
            data_dir: dir.path().display().to_string(),
            ..Default::default()
        };
        let zk = open(&config, u64::MAX).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Pool::new("requests", pool_bytes);
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(serve(
            listener,
            zk.clone(),
            None,
            requests.clone(),
            shutdown,
        ));
        Server {
            _dir: dir,
            addr,
            zk,
            requests,
            _stop: stop,
        }
    }

    async fn read_frame(s: &mut TcpStream) -> Vec<u8> {
        let len = s.read_i32().await.unwrap();
        let mut body = vec![0; len as usize];
        s.read_exact(&mut body).await.unwrap();
        body
    }

    async fn session(addr: SocketAddr) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let connect = ConnectRequest::new_session(10_000);
        s.write_all(&connect.encode()).await.unwrap();
        let answer = ConnectResponse::decode(&read_frame(&mut s).await).unwrap();
        assert_ne!(answer.session_id, 0);
        s
    }

    fn exists(xid: i32, path: &str, watch: bool) -> Vec<u8> {
        client::request(xid, op::EXISTS, |w| {
            w.string(path).bool(watch);
        })
    }

    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..200 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_request_pool_stops_reading_frames_until_it_has_room() {
        let server = start(64 * UNIT_BYTES).await;
        let mut s = session(server.addr).await;
        let hog = server.requests.try_acquire(64 * UNIT_BYTES).unwrap();
        s.write_all(&exists(1, "/", false)).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(300), read_frame(&mut s)).await;
        assert!(waited.is_err(), "answered while the pool was full");
        drop(hog);
        let answer = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
            .await
            .expect("answered once the pool has room");
        let (header, _) = client::reply(&answer).unwrap();
        assert_eq!((header.xid, header.err), (1, 0));
        eventually("the frame's bytes go back once answered", || {
            server.requests.used_bytes() == 0
        })
        .await;
        assert!(server.requests.peak_bytes() > 0, "the frame was counted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_dropped_mid_frame_gives_its_bytes_and_watches_back() {
        let server = start(64 * UNIT_BYTES).await;
        let mut s = session(server.addr).await;
        for (xid, path) in [(1, "/a"), (2, "/b/c")] {
            s.write_all(&exists(xid, path, true)).await.unwrap();
            let (header, _) = client::reply(&read_frame(&mut s).await).unwrap();
            assert_eq!(header.xid, xid);
        }
        let watch_bytes = server.zk.lock().coord.watches().bytes();
        assert_eq!(
            watch_bytes,
            crate::coordinator::watch::watch_cost("/a")
                + crate::coordinator::watch::watch_cost("/b/c")
        );
        // Half a frame: its length says 10 000 bytes, 100 arrive, then the peer goes.
        s.write_all(&10_000i32.to_be_bytes()).await.unwrap();
        s.write_all(&[0; 100]).await.unwrap();
        eventually("the frame is counted while its body is read", || {
            server.requests.used_bytes() >= 20_000
        })
        .await;
        drop(s);
        eventually("the bytes go back when the connection drops", || {
            server.requests.used_bytes() == 0
        })
        .await;
        eventually("the watches go with the connection", || {
            server.zk.lock().coord.watches().bytes() == 0
        })
        .await;
    }
}

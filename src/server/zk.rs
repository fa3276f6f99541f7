//! The ZooKeeper listener: accept loop with a per-address connection cap, one task pair per
//! connection (reader applies requests, writer sends replies once their zxid is durable),
//! four-letter words on the first four bytes, session expiry, container reaping and purge.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::coordinator::persist::{self, FileLog};
use crate::coordinator::{Connect, Coordinator, CoordinatorConfig, Limits, Outcome, WatchEvent};
use crate::zk::connect::{ConnectRequest, ConnectResponse};
use crate::zk::dispatch::{self, SessionState};
use crate::zk::watches::encode_notification;
use crate::zk::words::WordData;

/// One frame queued for a connection's writer.
struct Out {
    frame: Vec<u8>,
    /// Sent only once this zxid is durable.
    zxid: i64,
    /// Held until written: bounds requests in flight server-wide.
    _permit: Option<OwnedSemaphorePermit>,
    close_after: bool,
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
    rng: u64,
}

impl Inner {
    /// Queues notifications to their sessions' connections (under the same lock as the
    /// write that caused them, so every connection sees events in zxid order).
    fn route(&mut self, notes: &[WatchEvent], zxid: i64) {
        for n in notes {
            if let Some(c) = self.conns.get(&n.session_id) {
                let _ = c.tx.send(Out { frame: encode_notification(n), zxid, _permit: None, close_after: false });
            }
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
}

impl std::fmt::Debug for ZkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkServer").field("data_dir", &self.data_dir).finish()
    }
}

/// The shared handle passed to [`serve`].
pub type ZkHandle = Arc<ZkServer>;

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
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
pub fn open(config: &CoordinatorConfig) -> anyhow::Result<ZkHandle> {
    config.validate().map_err(anyhow::Error::msg)?;
    let data_dir = PathBuf::from(&config.data_dir);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating coordinator.data_dir {}", data_dir.display()))?;
    let server_id = persist::read_myid(&data_dir).map_err(anyhow::Error::msg)?.unwrap_or(1);
    let (mut tree, txns) = persist::recover(&data_dir).with_context(|| format!("recovering {}", data_dir.display()))?;
    Coordinator::replay(&mut tree, &txns);
    tracing::info!(zxid = tree.last_zxid(), nodes = tree.node_count(), replayed = txns.len(), sessions = tree.sessions().len(), "coordinator recovered");
    if !txns.is_empty() {
        persist::snapshot_now(&data_dir, &tree).context("writing the post-recovery snapshot")?;
    }
    if config.autopurge_purge_interval > 0 {
        persist::purge(&data_dir, config.autopurge_snap_retain_count as usize).context("purging old snapshots")?;
    }
    let log = FileLog::open(&data_dir, tree.last_zxid(), config.snap_count, config.preallocate_bytes, config.force_sync)
        .context("opening the txn log")?;
    let limits = Limits { max_data_bytes: config.jute_maxbuffer as usize, session_timeout_ms: config.session_timeout_bounds() };
    let coord = Coordinator::new(tree, Box::new(log), limits, config.max_watches as usize, server_id, wall_ms(), 0);
    let durable = coord.durable();
    Ok(Arc::new(ZkServer {
        inner: Mutex::new(Inner { coord, conns: HashMap::new(), rng: seed() }),
        config: config.clone(),
        data_dir,
        server_id,
        durable,
        outstanding: Arc::new(Semaphore::new(config.global_outstanding_limit as usize)),
        serving: AtomicBool::new(false),
        started: Instant::now(),
        stats: Stats { latency_min_us: AtomicU64::new(u64::MAX), ..Default::default() },
        per_ip: Mutex::new(HashMap::new()),
        conn_info: Mutex::new(HashMap::new()),
    }))
}

impl ZkServer {
    fn mono_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("coordinator lock poisoned")
    }

    /// The node id read from `myid` (1 when absent).
    pub fn server_id(&self) -> u8 {
        self.server_id
    }

    /// The last applied zxid.
    pub fn last_zxid(&self) -> i64 {
        self.lock().coord.last_zxid()
    }

    fn expire_sessions(&self) {
        let now = self.mono_ms();
        let mut inner = self.lock();
        for sid in inner.coord.expired_sessions(now) {
            tracing::info!(session = format_args!("0x{sid:x}"), "session expired");
            let out = inner.coord.close_session(sid, 0, wall_ms());
            inner.route_outcome(&out);
            if let Some(c) = inner.conns.remove(&sid) {
                let _ = c.tx.send(Out { frame: Vec::new(), zxid: out.zxid, _permit: None, close_after: true });
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

/// Serves ZooKeeper clients on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, zk: ZkHandle, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    zk.serving.store(true, Ordering::SeqCst);
    tracing::info!(addr = %listener.local_addr()?, "zookeeper listener up");
    let bg = spawn_background(zk.clone(), shutdown.clone());
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
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, peer, zk2.clone(), sd).await {
                        tracing::debug!(peer = %peer, error = %e, "connection ended");
                    }
                    release(&zk2, peer.ip());
                });
            }
        }
    }
    zk.serving.store(false, Ordering::SeqCst);
    bg.abort();
    Ok(())
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

fn spawn_background(zk: ZkHandle, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tick = Duration::from_millis((zk.config.tick_time_ms as u64 / 2).clamp(10, 500));
        let mut expiry = tokio::time::interval(tick);
        let mut reaper = tokio::time::interval(Duration::from_millis(zk.config.container_check_interval_ms.max(10) as u64));
        let purge_every = Duration::from_secs(3600 * zk.config.autopurge_purge_interval.max(1) as u64);
        let mut purge = tokio::time::interval_at(tokio::time::Instant::now() + purge_every, purge_every);
        loop {
            tokio::select! {
                _ = shutdown.changed() => if *shutdown.borrow() { return },
                _ = expiry.tick() => zk.expire_sessions(),
                _ = reaper.tick() => zk.reap(),
                _ = purge.tick() => {
                    if zk.config.autopurge_purge_interval > 0 {
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

async fn read_exact_or_eof(s: &mut tokio::net::tcp::OwnedReadHalf, buf: &mut [u8]) -> std::io::Result<bool> {
    match s.read_exact(buf).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a frame body whose 4-byte length was already read, enforcing jute_maxbuffer
/// before allocating.
async fn read_body(s: &mut tokio::net::tcp::OwnedReadHalf, len: i32, max: u32) -> anyhow::Result<Vec<u8>> {
    if len < 0 || len as u32 > max {
        anyhow::bail!("frame length {len} outside 0..={max} (jute_maxbuffer)");
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).await?;
    Ok(body)
}

async fn connection(stream: TcpStream, peer: SocketAddr, zk: ZkHandle, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
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
    let body = read_body(&mut rd, i32::from_be_bytes(first), max).await?;
    let req = ConnectRequest::decode(&body).context("bad ConnectRequest")?;
    let conn_id = zk.stats.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel::<Out>();

    // Session establishment, under the coordinator lock.
    let established = {
        let mut inner = zk.lock();
        let last = inner.coord.last_zxid();
        if req.last_zxid_seen > last {
            tracing::warn!(peer = %peer, client_zxid = req.last_zxid_seen, server_zxid = last, "refusing a client that has seen a newer zxid");
            return Ok(());
        }
        let pw = inner.password();
        let now = zk.mono_ms();
        match inner.coord.connect(req.session_id, &req.password, req.timeout_ms, pw, wall_ms(), now) {
            Connect::Expired => None,
            Connect::Session { id, timeout_ms, password, outcome } => {
                let zxid = outcome.as_ref().map(|o| o.zxid).unwrap_or(0);
                if let Some(old) = inner.conns.insert(id, ConnEntry { conn_id, tx: tx.clone() }) {
                    // The session moved to this connection: close the old one.
                    let _ = old.tx.send(Out { frame: Vec::new(), zxid: 0, _permit: None, close_after: true });
                }
                let resp = ConnectResponse { protocol_version: 0, timeout_ms, session_id: id, password, read_only: req.read_only.map(|_| false) };
                Some((id, resp.encode(), zxid))
            }
        }
    };
    let Some((session_id, connect_frame, connect_zxid)) = established else {
        let resp = ConnectResponse { protocol_version: 0, timeout_ms: 0, session_id: 0, password: vec![0; 16], read_only: req.read_only.map(|_| false) };
        wr.write_all(&resp.encode()).await?;
        return Ok(());
    };
    tracing::debug!(peer = %peer, session = format_args!("0x{session_id:x}"), "session established");
    zk.conn_info.lock().expect("conn info").insert(conn_id, ConnInfo { peer, session_id, received: 0, sent: 0 });
    let _ = tx.send(Out { frame: connect_frame, zxid: connect_zxid, _permit: None, close_after: false });

    let writer = tokio::spawn(writer(wr, rx, zk.durable.clone(), zk.clone(), conn_id));
    let mut st = SessionState::new(session_id, &peer.ip().to_string());
    zk.lock().coord.set_session_auth(session_id, st.auth.clone());
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
            let body = read_body(&mut rd, i32::from_be_bytes(len), max).await?;
            let permit = zk.outstanding.clone().acquire_owned().await.expect("semaphore closed");
            let started = Instant::now();
            zk.stats.packets_received.fetch_add(1, Ordering::Relaxed);
            let done = {
                let mut inner = zk.lock();
                // A newer connection took over this session: stop.
                if inner.conns.get(&session_id).is_none_or(|c| c.conn_id != conn_id) {
                    return Ok(());
                }
                let h = dispatch::handle(&mut inner.coord, &mut st, &body, wall_ms(), zk.mono_ms())
                    .map_err(|e| anyhow::anyhow!("malformed request: {e}"))?;
                inner.route(&h.notifications, h.durable_zxid);
                if let Some(frame) = h.reply {
                    let _ = tx.send(Out { frame, zxid: h.durable_zxid, _permit: Some(permit), close_after: h.close });
                } else if h.close {
                    let _ = tx.send(Out { frame: Vec::new(), zxid: h.durable_zxid, _permit: None, close_after: true });
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
        if inner.conns.get(&session_id).is_some_and(|c| c.conn_id == conn_id) {
            inner.conns.remove(&session_id);
            inner.coord.detach(session_id);
        }
    }
    drop(tx);
    let _ = writer.await;
    zk.conn_info.lock().expect("conn info").remove(&conn_id);
    result
}

async fn writer(wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Out>, mut durable: watch::Receiver<i64>, zk: ZkHandle, conn_id: u64) {
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
            if next.zxid > *durable.borrow() && durable.wait_for(|d| *d >= next.zxid).await.is_err() {
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
        let connections = self.conn_info.lock().expect("conn info").values().map(|c| (c.peer, c.session_id, c.received, c.sent)).collect();
        let s = &self.stats;
        let n = s.latency_count.load(Ordering::Relaxed);
        let min = s.latency_min_us.load(Ordering::Relaxed);
        let latency = (
            if n == 0 { 0 } else { min / 1000 },
            if n == 0 { 0.0 } else { s.latency_total_us.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0 },
            s.latency_max_us.load(Ordering::Relaxed) / 1000,
        );
        WordData {
            serving: self.serving.load(Ordering::SeqCst),
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
            outstanding: self.config.global_outstanding_limit as usize - self.outstanding.available_permits(),
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

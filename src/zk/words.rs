//! Four-letter words (ruok, srvr, stat, mntr, conf, cons, envi, wchs, dirs, isro, crst):
//! plain-text answers formatted the way ZooKeeper's are, so monitoring scripts parse them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::coordinator::CoordinatorConfig;

/// The version string reported (ZooKeeper-compatible prefix, then ours).
pub const VERSION: &str = concat!("3.8.0-bramble-", env!("CARGO_PKG_VERSION"));

/// A snapshot of the server's state for answering a word.
#[derive(Debug, Clone)]
pub struct WordData {
    /// Whether the listener is serving.
    pub serving: bool,
    /// ZooKeeper's server state: `standalone`, `leader` or `follower` (`None` = no quorum
    /// leader known, shown as `looking`).
    pub mode: Option<&'static str>,
    /// Last applied zxid.
    pub zxid: i64,
    /// Znode count.
    pub nodes: usize,
    /// Registered watches.
    pub watches: usize,
    /// Distinct watched paths.
    pub watch_paths: usize,
    /// Sessions holding watches.
    pub watch_sessions: usize,
    /// Ephemeral nodes.
    pub ephemerals: usize,
    /// Bytes of node data.
    pub data_bytes: u64,
    /// Live sessions.
    pub sessions: usize,
    /// (peer, session id, packets received, packets sent) per connection.
    pub connections: Vec<(SocketAddr, i64, u64, u64)>,
    /// Packets received.
    pub received: u64,
    /// Packets sent.
    pub sent: u64,
    /// Requests in flight.
    pub outstanding: usize,
    /// Latency min / avg / max in ms.
    pub latency: (u64, f64, u64),
    /// The configuration.
    pub config: CoordinatorConfig,
    /// The data dir.
    pub data_dir: PathBuf,
    /// myid.
    pub server_id: u8,
    /// Uptime.
    pub uptime_ms: u64,
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn summary(d: &WordData, out: &mut String) {
    let (min, avg, max) = d.latency;
    let _ = writeln!(out, "Latency min/avg/max: {min}/{avg:.4}/{max}");
    let _ = writeln!(out, "Received: {}", d.received);
    let _ = writeln!(out, "Sent: {}", d.sent);
    let _ = writeln!(out, "Connections: {}", d.connections.len());
    let _ = writeln!(out, "Outstanding: {}", d.outstanding);
    let _ = writeln!(out, "Zxid: 0x{:x}", d.zxid);
    let _ = writeln!(out, "Mode: {}", d.mode.unwrap_or("looking"));
    let _ = writeln!(out, "Node count: {}", d.nodes);
}

fn cons(d: &WordData, out: &mut String) {
    for (peer, sid, rx, tx) in &d.connections {
        let _ = writeln!(
            out,
            " /{peer}[1](queued=0,recved={rx},sent={tx},sid=0x{sid:x})"
        );
    }
    out.push('\n');
}

/// The answer to a four-letter word.
pub fn answer(word: &str, d: &WordData) -> String {
    let mut out = String::new();
    match word {
        "ruok" if d.serving => out.push_str("imok"),
        "ruok" => {}
        "isro" => out.push_str("rw"),
        "crst" => out.push_str("Connection stats reset.\n"),
        "srvr" => {
            let _ = writeln!(out, "Zookeeper version: {VERSION}, built by bramble");
            summary(d, &mut out);
        }
        "stat" => {
            let _ = writeln!(out, "Zookeeper version: {VERSION}, built by bramble");
            out.push_str("Clients:\n");
            cons(d, &mut out);
            summary(d, &mut out);
        }
        "cons" => cons(d, &mut out),
        "mntr" => {
            let (min, avg, max) = d.latency;
            let c = &d.config;
            let (smin, smax) = c.session_timeout_bounds();
            let lines: Vec<(&str, String)> = vec![
                ("zk_version", VERSION.to_string()),
                ("zk_server_state", d.mode.unwrap_or("looking").into()),
                ("zk_avg_latency", format!("{avg:.4}")),
                ("zk_max_latency", max.to_string()),
                ("zk_min_latency", min.to_string()),
                ("zk_packets_received", d.received.to_string()),
                ("zk_packets_sent", d.sent.to_string()),
                ("zk_num_alive_connections", d.connections.len().to_string()),
                ("zk_outstanding_requests", d.outstanding.to_string()),
                ("zk_znode_count", d.nodes.to_string()),
                ("zk_watch_count", d.watches.to_string()),
                ("zk_ephemerals_count", d.ephemerals.to_string()),
                ("zk_approximate_data_size", d.data_bytes.to_string()),
                ("zk_open_file_descriptor_count", open_fds().to_string()),
                ("zk_max_file_descriptor_count", max_fds().to_string()),
                ("zk_global_sessions", d.sessions.to_string()),
                ("zk_uptime", d.uptime_ms.to_string()),
                ("zk_last_zxid", format!("0x{:x}", d.zxid)),
                ("zk_min_session_timeout", smin.to_string()),
                ("zk_max_session_timeout", smax.to_string()),
            ];
            for (k, v) in lines {
                let _ = writeln!(out, "{k}\t{v}");
            }
        }
        "conf" => {
            let c = &d.config;
            let (smin, smax) = c.session_timeout_bounds();
            let port = c.listen.rsplit(':').next().unwrap_or("2181");
            let _ = writeln!(out, "clientPort={port}");
            let _ = writeln!(out, "clientPortAddress={}", c.listen);
            let _ = writeln!(out, "dataDir={}", d.data_dir.display());
            let _ = writeln!(out, "dataLogDir={}", d.data_dir.display());
            let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
            let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
            let _ = writeln!(out, "minSessionTimeout={smin}");
            let _ = writeln!(out, "maxSessionTimeout={smax}");
            let _ = writeln!(out, "serverId={}", d.server_id);
            let _ = writeln!(out, "jute.maxbuffer={}", c.jute_maxbuffer);
            let _ = writeln!(out, "snapCount={}", c.snap_count);
            let _ = writeln!(
                out,
                "autopurge.snapRetainCount={}",
                c.autopurge_snap_retain_count
            );
            let _ = writeln!(
                out,
                "autopurge.purgeInterval={}",
                c.autopurge_purge_interval
            );
        }
        "envi" => {
            out.push_str("Environment:\n");
            let _ = writeln!(out, "zookeeper.version={VERSION}");
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let _ = writeln!(out, "host.name={}", host.trim());
            let _ = writeln!(out, "os.name={}", std::env::consts::OS);
            let _ = writeln!(out, "os.arch={}", std::env::consts::ARCH);
            let _ = writeln!(
                out,
                "user.dir={}",
                std::env::current_dir()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        "wchs" => {
            let _ = writeln!(
                out,
                "{} connections watching {} paths",
                d.watch_sessions, d.watch_paths
            );
            let _ = writeln!(out, "Total watches:{}", d.watches);
        }
        "dirs" => {
            let size = dir_size(&d.data_dir);
            let _ = writeln!(out, "datadir_size: {size}");
            let _ = writeln!(out, "logdir_size: {size}");
        }
        _ => {}
    }
    out
}

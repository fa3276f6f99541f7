//! The admin HTTP listener: `GET /health` (JSON; 200 when serving, 503 when not),
//! `GET /metrics` (Prometheus text) and `GET /commands/<word>` (ZooKeeper's AdminServer:
//! the four-letter words as JSON).
//!
//! A deliberately tiny HTTP/1.1 server: GET only, one request per connection
//! (`Connection: close`), the request head bounded to [`REQUEST_HEAD_MAX_BYTES`] and
//! [`REQUEST_TIMEOUT`], at most [`CONNECTIONS_MAX`] connections at once. Scrapers and curl
//! need no more, and it costs no dependency.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::broker::Broker;
use crate::group::GroupCoordinator;
use crate::health::metrics::{self, header};
use crate::health::state::State;
use crate::health::Health;
use crate::server::zk::ZkHandle;

/// Largest request head (request line and headers) read.
pub const REQUEST_HEAD_MAX_BYTES: usize = 8 * 1024;
/// Longest a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections served at once; more wait for a free slot.
pub const CONNECTIONS_MAX: usize = 16;

/// What the admin pages are made from.
#[derive(Debug, Clone)]
pub struct AdminContext {
    /// Health state and readings.
    pub health: Arc<Health>,
    /// Topics and partitions.
    pub broker: Arc<Broker>,
    /// Consumer groups.
    pub groups: Arc<GroupCoordinator>,
    /// The ZooKeeper side (znode, watch and session counts; four-letter words).
    pub zk: ZkHandle,
    /// The first log directory (its file system's usage is `disk`).
    pub log_dir: PathBuf,
    /// The Kafka address clients are told (`bramble status` asks it for topics).
    pub kafka: Option<String>,
}

/// Serve admin requests on `listener` (HTTPS when `tls` is given) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    ctx: AdminContext,
    tls: Option<crate::tls::Acceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = async {
                let (stream, _) = crate::tls::accept(tls.as_ref(), stream).await?;
                connection(stream, &ctx).await
            };
            if let Err(error) = served.await {
                tracing::debug!(%peer, %error, "admin connection ended");
            }
            drop(slot);
        });
    }
}

async fn connection(mut stream: crate::tls::Stream, ctx: &AdminContext) -> std::io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let response = match head {
        Some(head) => answer(ctx, &head),
        None => Response::text(431, "request head too large\n"),
    };
    stream.write_all(&response.encode()).await?;
    stream.shutdown().await
}

/// Read until the blank line that ends the head; `None` if it does not fit the limit.
async fn read_head(stream: &mut crate::tls::Stream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() >= REQUEST_HEAD_MAX_BYTES {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// An HTTP response.
#[derive(Debug)]
struct Response {
    code: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(code: u16, body: &str) -> Response {
        Response {
            code,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }

    fn json(code: u16, value: &Value) -> Response {
        let mut body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
        body.push('\n');
        Response {
            code,
            content_type: "application/json",
            body,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let reason = match self.code {
            200 => "OK",
            404 => "Not Found",
            405 => "Method Not Allowed",
            400 => "Bad Request",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
            self.code,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

fn answer(ctx: &AdminContext, head: &str) -> Response {
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Response::text(400, "bad request line\n");
    };
    if method != "GET" {
        return Response::text(405, "only GET is served\n");
    }
    let path = target.split('?').next().unwrap_or_default();
    match path {
        "/health" => {
            let body = health_json(ctx);
            let serving = body["serving"].as_bool().unwrap_or(false);
            Response::json(if serving { 200 } else { 503 }, &body)
        }
        "/metrics" => Response {
            code: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics_text(ctx),
        },
        "/commands" | "/commands/" => {
            let names: Vec<&str> = COMMANDS
                .iter()
                .flat_map(|(long, word)| [*long, *word])
                .collect();
            Response::json(200, &json!({ "commands": names }))
        }
        _ => match path.strip_prefix("/commands/") {
            Some(name) => command(ctx, name),
            None => Response::text(404, "try /health, /metrics or /commands\n"),
        },
    }
}

/// ZooKeeper AdminServer command names and the four-letter word each answers.
const COMMANDS: [(&str, &str); 10] = [
    ("ruok", "ruok"),
    ("server_stats", "srvr"),
    ("stats", "stat"),
    ("monitor", "mntr"),
    ("configuration", "conf"),
    ("connections", "cons"),
    ("environment", "envi"),
    ("watch_summary", "wchs"),
    ("dirs", "dirs"),
    ("is_read_only", "isro"),
];

fn command(ctx: &AdminContext, name: &str) -> Response {
    let Some((long, word)) = COMMANDS
        .iter()
        .find(|(long, word)| name == *long || name == *word)
    else {
        return Response::json(
            404,
            &json!({ "command": name, "error": "unknown command; see /commands" }),
        );
    };
    let text = crate::zk::words::answer(word, &ctx.zk.word_data());
    let mut body = Map::new();
    body.insert("command".into(), json!(long));
    body.insert("error".into(), Value::Null);
    for (key, value) in word_fields(word, &text) {
        body.insert(key, value);
    }
    body.insert("text".into(), json!(text));
    Response::json(200, &Value::Object(body))
}

/// The `key<sep>value` lines of a word's answer as JSON fields (numbers where they parse).
fn word_fields(word: &str, text: &str) -> Vec<(String, Value)> {
    if word == "ruok" {
        return vec![("ok".into(), json!(text == "imok"))];
    }
    if word == "isro" {
        return vec![("read_only".into(), json!(text.trim() != "rw"))];
    }
    text.lines()
        .filter_map(|line| {
            let (key, value) = line
                .split_once('\t')
                .or_else(|| line.split_once('='))
                .or_else(|| line.split_once(": "))?;
            let key = key.trim().to_lowercase().replace([' ', '.', '/'], "_");
            let value = value.trim();
            let value = value
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| value.parse::<f64>().map(Value::from))
                .unwrap_or_else(|_| json!(value));
            Some((key, value))
        })
        .collect()
}

/// Partition counts: (total, online) — a partition is online when it has a leader.
fn partition_counts(ctx: &AdminContext, offline: u32) -> (u64, u64) {
    let total: u64 = ctx
        .broker
        .topics()
        .iter()
        .map(|t| t.partitions.len() as u64)
        .sum();
    (total, total.saturating_sub(u64::from(offline)))
}

/// The `/health` document.
pub fn health_json(ctx: &AdminContext) -> Value {
    let status = ctx.health.status();
    let quorum = status.quorum;
    let (total, online) = partition_counts(ctx, status.replication.offline);
    let r = &status.readings;
    let disk = r.disk_bytes.map_or(Value::Null, |(used, total)| {
        json!({
            "path": ctx.log_dir.display().to_string(),
            "used_bytes": used,
            "total_bytes": total,
            "used_percent": crate::health::state::usage_percent(used, total),
        })
    });
    let pools: Map<String, Value> = status
        .pools
        .iter()
        .map(|p| (p.name.clone(), json!({ "used_bytes": p.used_bytes, "limit_bytes": p.limit_bytes, "exhausted": p.exhausted })))
        .collect();
    json!({
        "node": ctx.health.node_id,
        "state": status.state.name(),
        "reason": status.reason,
        "since_unix_ms": status.since_unix_ms,
        "serving": status.state.is_serving(),
        "role": quorum.map(|q| q.role.name()),
        "quorum": quorum.is_some_and(|q| q.quorum),
        "leader": quorum.and_then(|q| q.leader),
        "term": quorum.map(|q| q.term),
        "voters": quorum.map(|q| q.voters),
        "zxid": format!("0x{:x}", ctx.zk.last_zxid()),
        "kafka": ctx.kafka,
        "topics": ctx.broker.topics().len(),
        "partitions": {
            "total": total,
            "online": online,
            "under_replicated": status.replication.under_replicated,
            "offline": status.replication.offline,
        },
        "memory": {
            "budget_bytes": status.budget_bytes,
            "resident_bytes": r.resident_bytes,
            "allocated_bytes": r.jemalloc.map(|(allocated, _)| allocated),
            "allocator_resident_bytes": r.jemalloc.map(|(_, resident)| resident),
            "pools": pools,
        },
        "disk": disk,
        "temperature": {
            "celsius": r.temperature_celsius,
            "throttled": r.throttled_now(),
            "throttled_flags": r.throttled_flags.map(|f| format!("0x{f:x}")),
        },
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// The `/metrics` text.
pub fn metrics_text(ctx: &AdminContext) -> String {
    let status = ctx.health.status();
    let mut out = String::with_capacity(8 * 1024);
    let gauge = |out: &mut String, name: &str, help: &str, value: String| {
        header(out, name, help, "gauge");
        let _ = writeln!(out, "{name} {value}");
    };
    header(
        &mut out,
        "bramble_health_state",
        "1 for the node's current health state.",
        "gauge",
    );
    for state in State::ALL {
        let _ = writeln!(
            out,
            "bramble_health_state{{state=\"{state}\"}} {}",
            u8::from(state == status.state)
        );
    }
    header(
        &mut out,
        "bramble_quorum_role",
        "1 for this node's quorum role.",
        "gauge",
    );
    if let Some(q) = status.quorum {
        let _ = writeln!(out, "bramble_quorum_role{{role=\"{}\"}} 1", q.role.name());
    }
    let q = status.quorum;
    gauge(
        &mut out,
        "bramble_quorum_term",
        "The quorum's term.",
        q.map_or(0, |q| q.term).to_string(),
    );
    gauge(
        &mut out,
        "bramble_quorum_leader",
        "The quorum leader's node id (0: none).",
        q.and_then(|q| q.leader).unwrap_or(0).to_string(),
    );
    gauge(
        &mut out,
        "bramble_quorum_up",
        "1 when a majority and a leader are known.",
        u8::from(q.is_some_and(|q| q.quorum)).to_string(),
    );
    let repl = status.replication;
    let (total, online) = partition_counts(ctx, repl.offline);
    header(
        &mut out,
        "bramble_partitions",
        "Partitions on this node, by state.",
        "gauge",
    );
    let _ = writeln!(out, "bramble_partitions{{state=\"online\"}} {online}");
    let _ = writeln!(
        out,
        "bramble_partitions{{state=\"under_replicated\"}} {}",
        repl.under_replicated
    );
    let _ = writeln!(
        out,
        "bramble_partitions{{state=\"offline\"}} {}",
        repl.offline
    );
    gauge(
        &mut out,
        "bramble_partitions_total",
        "Partitions on this node.",
        total.to_string(),
    );
    gauge(
        &mut out,
        "bramble_topics",
        "Topics, internal ones included.",
        ctx.broker.topics().len().to_string(),
    );
    header(
        &mut out,
        "bramble_isr_shrinks_total",
        "ISR shrinks since start.",
        "counter",
    );
    let _ = writeln!(out, "bramble_isr_shrinks_total {}", repl.isr_shrinks);
    header(
        &mut out,
        "bramble_isr_expands_total",
        "ISR expansions since start.",
        "counter",
    );
    let _ = writeln!(out, "bramble_isr_expands_total {}", repl.isr_expands);
    gauge(
        &mut out,
        "bramble_consumer_groups",
        "Consumer groups this coordinator holds.",
        ctx.groups.list().len().to_string(),
    );
    metrics::kafka().render(&mut out);
    crate::mqtt::metrics::render(&mut out);
    crate::security::rate::render(&mut out);
    zk_metrics(ctx, &mut out);
    memory_metrics(&status, &mut out);
    let r = &status.readings;
    if let Some((used, total)) = r.disk_bytes {
        gauge(
            &mut out,
            "bramble_disk_used_bytes",
            "Used bytes of the log directory's file system.",
            used.to_string(),
        );
        gauge(
            &mut out,
            "bramble_disk_total_bytes",
            "Size of the log directory's file system.",
            total.to_string(),
        );
    }
    if let Some(celsius) = r.temperature_celsius {
        gauge(
            &mut out,
            "bramble_cpu_temperature_celsius",
            "CPU temperature.",
            format!("{celsius}"),
        );
    }
    gauge(
        &mut out,
        "bramble_cpu_throttled",
        "1 while the firmware throttles or sees under-voltage.",
        u8::from(r.throttled_now()).to_string(),
    );
    out
}

fn zk_metrics(ctx: &AdminContext, out: &mut String) {
    let d = ctx.zk.word_data();
    let rows: [(&str, &str, String); 8] = [
        (
            "bramble_zk_znodes",
            "Znodes in the tree.",
            d.nodes.to_string(),
        ),
        (
            "bramble_zk_ephemerals",
            "Ephemeral znodes.",
            d.ephemerals.to_string(),
        ),
        (
            "bramble_zk_watches",
            "Registered watches.",
            d.watches.to_string(),
        ),
        (
            "bramble_zk_sessions",
            "Live ZooKeeper sessions.",
            d.sessions.to_string(),
        ),
        (
            "bramble_zk_connections",
            "Open ZooKeeper connections.",
            d.connections.len().to_string(),
        ),
        (
            "bramble_zk_data_bytes",
            "Bytes of znode data.",
            d.data_bytes.to_string(),
        ),
        (
            "bramble_zk_outstanding_requests",
            "ZooKeeper requests in flight.",
            d.outstanding.to_string(),
        ),
        (
            "bramble_zk_zxid",
            "The last applied zxid.",
            d.zxid.to_string(),
        ),
    ];
    for (name, help, value) in rows {
        header(out, name, help, "gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    for (name, help, value) in [
        (
            "bramble_zk_packets_received_total",
            "ZooKeeper packets received.",
            d.received,
        ),
        (
            "bramble_zk_packets_sent_total",
            "ZooKeeper packets sent.",
            d.sent,
        ),
    ] {
        header(out, name, help, "counter");
        let _ = writeln!(out, "{name} {value}");
    }
}

fn memory_metrics(status: &crate::health::Status, out: &mut String) {
    let r = &status.readings;
    let mut gauge = |name: &str, help: &str, value: Option<u64>| {
        if let Some(value) = value {
            header(out, name, help, "gauge");
            let _ = writeln!(out, "{name} {value}");
        }
    };
    gauge(
        "bramble_memory_resident_bytes",
        "Resident set size of the process (VmRSS).",
        r.resident_bytes,
    );
    gauge(
        "bramble_memory_allocated_bytes",
        "Bytes allocated through jemalloc.",
        r.jemalloc.map(|j| j.0),
    );
    gauge(
        "bramble_memory_allocator_resident_bytes",
        "Bytes jemalloc holds resident.",
        r.jemalloc.map(|j| j.1),
    );
    gauge(
        "bramble_memory_budget_bytes",
        "The memory budget.",
        status.budget_bytes,
    );
    if !status.pools.is_empty() {
        header(
            out,
            "bramble_memory_pool_used_bytes",
            "Bytes in use per memory pool.",
            "gauge",
        );
        for p in &status.pools {
            let _ = writeln!(
                out,
                "bramble_memory_pool_used_bytes{{pool=\"{}\"}} {}",
                metrics::escape(&p.name),
                p.used_bytes
            );
        }
        header(
            out,
            "bramble_memory_pool_exhausted_total",
            "Times each memory pool ran dry (backpressure episodes; each is logged once).",
            "counter",
        );
        for p in &status.pools {
            let _ = writeln!(
                out,
                "bramble_memory_pool_exhausted_total{{pool=\"{}\"}} {}",
                metrics::escape(&p.name),
                p.exhausted_episodes
            );
        }
        header(
            out,
            "bramble_memory_pool_limit_bytes",
            "Limit per memory pool.",
            "gauge",
        );
        for p in &status.pools {
            let _ = writeln!(
                out,
                "bramble_memory_pool_limit_bytes{{pool=\"{}\"}} {}",
                metrics::escape(&p.name),
                p.limit_bytes
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_answers_become_json_fields() {
        let fields = word_fields(
            "mntr",
            "zk_version\t3.8.0\nzk_znode_count\t5\nzk_avg_latency\t0.5000\n",
        );
        assert_eq!(fields[1], ("zk_znode_count".to_string(), json!(5)));
        assert_eq!(fields[2].1, json!(0.5));
        let fields = word_fields("srvr", "Zxid: 0x1f\nNode count: 4\n");
        assert_eq!(fields[1], ("node_count".to_string(), json!(4)));
        assert_eq!(
            word_fields("ruok", "imok"),
            vec![("ok".to_string(), json!(true))]
        );
    }

    #[test]
    fn responses_carry_length_and_close() {
        let bytes = Response::text(503, "no\n").encode();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text.contains("Content-Length: 3\r\n") && text.contains("Connection: close\r\n"));
    }
}

//! `bramble status`: the cluster at a glance, from any node. Each node's `/health` (admin
//! HTTP) gives its role, state, memory, disk and temperature; the Kafka Metadata API gives
//! the topics with their partitions, leaders and ISR.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use kafka_protocol::messages::MetadataRequest;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::Client;

/// Largest `/health` answer read.
const HEALTH_MAX_BYTES: u64 = 1 << 20;
/// Longest wait for one node.
const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// Options of `bramble status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A node's admin address (repeatable: one per node); `https://host:port` for an
    /// admin listener with `[admin] tls = true` (needs --cacert).
    #[arg(long = "admin", default_value = "127.0.0.1:8080")]
    admin: Vec<String>,
    /// PEM CA certificate the HTTPS admin listeners' certificates must chain to (the
    /// cluster CA of `bramble certs`).
    #[arg(long = "cacert", value_name = "FILE")]
    cacert: Option<std::path::PathBuf>,
    /// PEM client certificate to present to HTTPS admin listeners that ask for one.
    #[arg(long = "cert", value_name = "FILE", requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// PEM private key of --cert.
    #[arg(long = "key", value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,
    /// The Kafka listener to ask for topics (default: the one the first node reports).
    #[arg(long = "bootstrap-server")]
    bootstrap_server: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
    /// Refresh until interrupted.
    #[arg(long)]
    watch: bool,
    /// Seconds between refreshes with --watch.
    #[arg(long, default_value_t = 2)]
    interval: u64,
}

/// Run `bramble status`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    loop {
        let report = gather(&args).await;
        let text = if args.json {
            serde_json::to_string_pretty(&report)? + "\n"
        } else {
            table(&report)
        };
        if args.watch {
            // Clear the screen and go home, like watch(1).
            print!("\x1b[2J\x1b[H{text}");
        } else {
            print!("{text}");
        }
        if !args.watch {
            let any_up = report["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n.get("error").is_none()));
            anyhow::ensure!(any_up, "no node answered");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(args.interval.max(1))).await;
    }
}

/// The TLS connector for `https://` admin addresses, from --cacert/--cert/--key.
fn connector(args: &Args) -> anyhow::Result<Option<crate::tls::Connector>> {
    let Some(ca_file) = &args.cacert else {
        return Ok(None);
    };
    let config = crate::tls::TlsConfig {
        ca_file: Some(ca_file.clone()),
        cert_file: args.cert.clone(),
        key_file: args.key.clone(),
        ..Default::default()
    };
    Ok(Some(config.client_connector().map_err(|e| {
        anyhow::anyhow!("{e} (--cacert {}, --cert, --key)", ca_file.display())
    })?))
}

async fn gather(args: &Args) -> Value {
    let tls = match connector(args) {
        Ok(tls) => tls,
        Err(error) => {
            let nodes: Vec<Value> = args
                .admin
                .iter()
                .map(|admin| json!({ "admin": admin, "error": format!("{error:#}") }))
                .collect();
            return json!({ "nodes": nodes, "topics": { "error": "no node answered" } });
        }
    };
    let mut nodes = Vec::new();
    for admin in &args.admin {
        let fetched = fetch_health(admin, tls.as_ref());
        let node = match tokio::time::timeout(NODE_TIMEOUT, fetched).await {
            Ok(Ok(health)) => json!({ "admin": admin, "health": health }),
            Ok(Err(error)) => json!({ "admin": admin, "error": format!("{error:#}") }),
            Err(_) => json!({ "admin": admin, "error": "timed out" }),
        };
        nodes.push(node);
    }
    let bootstrap = args.bootstrap_server.clone().or_else(|| {
        nodes
            .iter()
            .find_map(|n| n["health"]["kafka"].as_str().map(str::to_string))
    });
    let topics = match bootstrap {
        Some(address) => match tokio::time::timeout(NODE_TIMEOUT, topics(&address)).await {
            Ok(Ok(topics)) => topics,
            Ok(Err(error)) => json!({ "error": format!("{address}: {error:#}") }),
            Err(_) => json!({ "error": format!("{address}: timed out") }),
        },
        None => json!({ "error": "no Kafka listener known; give --bootstrap-server" }),
    };
    json!({ "nodes": nodes, "topics": topics })
}

/// GET `/health` from `admin` (any status code: 503 still carries the document), over TLS
/// when it is written `https://host:port`.
async fn fetch_health(admin: &str, tls: Option<&crate::tls::Connector>) -> anyhow::Result<Value> {
    let (address, https) = match admin.strip_prefix("https://") {
        Some(address) => (address, true),
        None => (admin.strip_prefix("http://").unwrap_or(admin), false),
    };
    let address = address.trim_end_matches('/');
    let socket = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    let mut stream = match (https, tls) {
        (false, _) => crate::tls::Stream::Plain(socket),
        (true, Some(tls)) => tls
            .connect(address, socket)
            .await
            .with_context(|| format!("TLS handshake with {address} failed"))?,
        (true, None) => anyhow::bail!("{admin} is HTTPS: give the CA with --cacert"),
    };
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    match (&mut stream)
        .take(HEALTH_MAX_BYTES)
        .read_to_end(&mut answer)
        .await
    {
        Ok(_) => {}
        // A TLS server that closes without close_notify: the answer is complete anyway
        // (Connection: close), and the JSON check below catches a cut one.
        Err(error) if https && error.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(error) => return Err(error.into()),
    }
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("not an HTTP answer")?;
    serde_json::from_slice(&answer[split + 4..]).context("/health is not JSON")
}

/// Topics with partitions, leaders, replicas and ISR, from the Metadata API.
async fn topics(address: &str) -> anyhow::Result<Value> {
    let mut client = Client::connect(address).await?;
    let response = client
        .send(MetadataRequest::default().with_topics(None), 12)
        .await?;
    let mut topics: Vec<Value> = response
        .topics
        .iter()
        .map(|t| {
            let mut partitions: Vec<Value> = t
                .partitions
                .iter()
                .map(|p| {
                    json!({
                        "partition": p.partition_index,
                        "leader": p.leader_id.0,
                        "replicas": p.replica_nodes.iter().map(|r| r.0).collect::<Vec<_>>(),
                        "isr": p.isr_nodes.iter().map(|r| r.0).collect::<Vec<_>>(),
                        "error_code": p.error_code,
                    })
                })
                .collect();
            partitions.sort_by_key(|p| p["partition"].as_i64());
            json!({
                "name": t.name.as_ref().map(|n| n.0.as_str().to_string()),
                "internal": t.is_internal,
                "partitions": partitions,
            })
        })
        .collect();
    topics.sort_by_key(|t| t["name"].as_str().map(str::to_string));
    Ok(Value::Array(topics))
}

fn bytes(value: &Value) -> String {
    let Some(n) = value.as_u64() else {
        return "-".into();
    };
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut size = n as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn ids(value: &Value) -> String {
    value.as_array().map_or("-".into(), |a| {
        a.iter().map(text).collect::<Vec<_>>().join(",")
    })
}

/// Render columns padded to their widest cell.
fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// The human-readable report.
fn table(report: &Value) -> String {
    let mut rows = vec![[
        "NODE", "ADMIN", "STATE", "ROLE", "LEADER", "ZXID", "RSS", "DISK", "TEMP", "REASON",
    ]
    .map(String::from)
    .to_vec()];
    for node in report["nodes"].as_array().into_iter().flatten() {
        let admin = text(&node["admin"]);
        if let Some(error) = node.get("error") {
            rows.push(vec![
                "?".into(),
                admin,
                "unreachable".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                text(error),
            ]);
            continue;
        }
        let h = &node["health"];
        let disk = match (
            h["disk"]["used_percent"].as_u64(),
            h["disk"]["total_bytes"].as_u64(),
        ) {
            (Some(p), Some(_)) => format!("{p}% of {}", bytes(&h["disk"]["total_bytes"])),
            _ => "-".into(),
        };
        let temp = h["temperature"]["celsius"]
            .as_f64()
            .map_or("-".into(), |c| {
                let throttled = if h["temperature"]["throttled"].as_bool() == Some(true) {
                    " throttled"
                } else {
                    ""
                };
                format!("{c:.1}°C{throttled}")
            });
        rows.push(vec![
            text(&h["node"]),
            admin,
            text(&h["state"]),
            text(&h["role"]),
            text(&h["leader"]),
            text(&h["zxid"]),
            bytes(&h["memory"]["resident_bytes"]),
            disk,
            temp,
            text(&h["reason"]),
        ]);
    }
    let mut out = columns(&rows);
    out.push('\n');
    match &report["topics"] {
        Value::Array(topics) => {
            let mut rows = vec![["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"]
                .map(String::from)
                .to_vec()];
            for topic in topics
                .iter()
                .filter(|t| t["internal"].as_bool() != Some(true))
            {
                for p in topic["partitions"].as_array().into_iter().flatten() {
                    rows.push(vec![
                        text(&topic["name"]),
                        text(&p["partition"]),
                        text(&p["leader"]),
                        ids(&p["replicas"]),
                        ids(&p["isr"]),
                    ]);
                }
            }
            if rows.len() == 1 {
                out.push_str("no topics\n");
            } else {
                out.push_str(&columns(&rows));
            }
        }
        other => {
            let _ = writeln!(out, "topics: {}", text(&other["error"]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_nodes_and_topics() {
        let report = json!({
            "nodes": [
                { "admin": "pi1:8080", "health": { "node": 1, "state": "leader", "role": "leader", "leader": 1,
                  "zxid": "0x5", "memory": { "resident_bytes": 20_000_000 },
                  "disk": { "used_percent": 12, "total_bytes": 32_000_000_000u64 },
                  "temperature": { "celsius": 48.5, "throttled": false }, "reason": "quorum leader" } },
                { "admin": "pi2:8080", "error": "cannot connect" }
            ],
            "topics": [ { "name": "sensors", "internal": false,
                          "partitions": [ { "partition": 0, "leader": 1, "replicas": [1], "isr": [1] } ] } ]
        });
        let out = table(&report);
        assert!(
            out.contains("leader") && out.contains("19.1 MiB") && out.contains("12% of 29.8 GiB"),
            "{out}"
        );
        assert!(
            out.contains("48.5°C") && out.contains("unreachable"),
            "{out}"
        );
        assert!(
            out.lines().any(
                |l| l.split_whitespace().collect::<Vec<_>>() == ["sensors", "0", "1", "1", "1"]
            ),
            "{out}"
        );
    }
}

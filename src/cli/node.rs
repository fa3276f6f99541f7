//! `bramble node init`: first boot of an SD card. Reads `bramble-node.toml` from the FAT boot
//! partition and lays the node out the way a Kafka + ZooKeeper install is laid out:
//!
//! | what | where |
//! |---|---|
//! | node id, one line, as ZooKeeper has it | `/var/lib/zookeeper/myid` (tmp, fsync, rename) |
//! | log dir with broker id and cluster id | `/var/lib/kafka-logs/meta.properties` |
//! | hostname (`bramble-<id>` by default) | `/etc/hostname`, the `127.0.1.1` line of `/etc/hosts` |
//! | the daemon's config | `/etc/bramble/bramble.toml` (single node, or with `[cluster]`) |
//! | a static address, if asked for | `/etc/systemd/network/10-bramble.network` |
//! | the root partition grown to the card | `growpart` + `resize2fs` (real root only) |
//! | "done" | `/var/lib/bramble/firstboot.done`, written last |
//!
//! Every step compares before it writes, so a second run with the same input changes nothing
//! and a run after a power cut (myid written, no stamp yet) completes the rest. Every path is
//! under `--root` (default `/`), so tests run the whole thing on a scratch tree. A missing or
//! invalid id fails the command; the reason goes to stderr (the console and the journal) and
//! is appended to `bramble-firstboot.log` on the boot partition, readable on any PC.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::ids::Uuid;
use crate::log::checkpoint::{self, MetaProperties};

/// The node file's name on the boot partition.
pub const NODE_FILE: &str = "bramble-node.toml";
/// The log file on the boot partition where first boot reports what it did or why it failed.
pub const BOOT_LOG: &str = "bramble-firstboot.log";
/// The stamp whose presence means first boot completed (relative to the root).
pub const STAMP: &str = "var/lib/bramble/firstboot.done";
/// The quorum port peers are given when the node file names them without one.
pub const QUORUM_PORT: u16 = 2888;

/// `bramble node …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// First boot: node id, hostname, config and root growth from bramble-node.toml.
    Init(InitArgs),
}

/// Options of `bramble node init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The boot partition, where bramble-node.toml is read and bramble-firstboot.log written.
    #[arg(long, default_value = "/boot/firmware")]
    boot: PathBuf,
    /// The node file (default: <BOOT>/bramble-node.toml).
    #[arg(long)]
    node_file: Option<PathBuf>,
    /// Prefix for every path written (a scratch tree in tests); anything but `/` also skips
    /// the steps that touch the running system (root growth, live hostname, LED).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Do not grow the root partition and file system.
    #[arg(long)]
    no_grow: bool,
}

/// Run a `bramble node` subcommand.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init(args),
    }
}

/// What `bramble-node.toml` says, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFile {
    /// This node's id, 1..=255 (ZooKeeper's myid range).
    pub id: u32,
    /// The hostname; `bramble-<id>` when not given.
    pub hostname: String,
    /// The quorum members, id → `host:port`; empty for a single node.
    pub servers: BTreeMap<u32, String>,
    /// The host clients are told to connect to (Kafka's advertised listener).
    pub advertised_host: String,
    /// The port clients are told to connect to: 9092 unless a NAT or port forward in front of
    /// the node maps another port onto its 9092 (an emulator's, a router's).
    pub advertised_port: u16,
    /// A static IPv4 address with prefix length, instead of DHCP.
    pub address: Option<(Ipv4Addr, u8)>,
    /// The default gateway with a static address.
    pub gateway: Option<IpAddr>,
    /// DNS servers with a static address.
    pub dns: Vec<IpAddr>,
    /// Kafka's cluster id for meta.properties; shared by every node of a cluster.
    pub cluster_id: Option<String>,
}

const KNOWN_KEYS: &[&str] = &[
    "id",
    "hostname",
    "servers",
    "advertised_host",
    "advertised_port",
    "address",
    "gateway",
    "dns",
    "cluster_id",
];

impl NodeFile {
    /// Parse and check the node file's text; the error tells the user what to write.
    pub fn parse(text: &str) -> Result<NodeFile, String> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| format!("{NODE_FILE} is not valid TOML: {e}"))?;
        if let Some(unknown) = table.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "{NODE_FILE}: unknown key `{unknown}` (known: {})",
                KNOWN_KEYS.join(", ")
            ));
        }
        let id = match table.get("id") {
            None => return Err(format!("{NODE_FILE} has no `id`: write a line such as `id = 1` (a number from 1 to 255, different on every node)")),
            Some(toml::Value::Integer(n)) if (1..=255).contains(n) => *n as u32,
            Some(other) => return Err(format!("{NODE_FILE}: `id = {}` is not a node id: use a number from 1 to 255, e.g. `id = 1`", show(other))),
        };
        let hostname = match string_key(&table, "hostname")? {
            Some(name) => check_hostname(&name)?,
            None => format!("bramble-{id}"),
        };
        let servers = parse_servers(table.get("servers"))?;
        if !servers.is_empty() && !servers.contains_key(&id) {
            let ids: Vec<String> = servers.keys().map(u32::to_string).collect();
            return Err(format!(
                "{NODE_FILE}: `id = {id}` is not one of the servers ({})",
                ids.join(", ")
            ));
        }
        let address = string_key(&table, "address")?
            .map(|a| parse_cidr(&a))
            .transpose()?;
        let gateway = string_key(&table, "gateway")?
            .map(|g| parse_ip("gateway", &g))
            .transpose()?;
        let dns = match table.get("dns") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| format!("{NODE_FILE}: `dns` entries must be strings"))
                        .and_then(|s| parse_ip("dns", s))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(format!(
                    "{NODE_FILE}: `dns` must be a list, e.g. dns = [\"192.168.1.1\"]"
                ))
            }
        };
        if (gateway.is_some() || !dns.is_empty()) && address.is_none() {
            return Err(format!(
                "{NODE_FILE}: `gateway` and `dns` need a static `address`"
            ));
        }
        let advertised_host = match string_key(&table, "advertised_host")? {
            Some(host) => host,
            None => match address {
                Some((ip, _)) => ip.to_string(),
                None => format!("{hostname}.local"),
            },
        };
        let advertised_port = match table.get("advertised_port") {
            None => 9092,
            Some(toml::Value::Integer(n)) if (1..=65535).contains(n) => *n as u16,
            Some(other) => {
                return Err(format!(
                "{NODE_FILE}: `advertised_port = {}` is not a port: use a number from 1 to 65535",
                show(other)
            ))
            }
        };
        let cluster_id = string_key(&table, "cluster_id")?;
        if let Some(cid) = &cluster_id {
            if Uuid::from_base64(cid).is_none() {
                return Err(format!("{NODE_FILE}: `cluster_id` must be a Kafka cluster id (22 base64url characters)"));
            }
        }
        Ok(NodeFile {
            id,
            hostname,
            servers,
            advertised_host,
            advertised_port,
            address,
            gateway,
            dns,
            cluster_id,
        })
    }

    /// The cluster id: the one given, else one derived from the server list (so every node
    /// of the cluster agrees without talking), else a fresh random one for a single node.
    fn cluster_id(&self) -> std::io::Result<String> {
        if let Some(id) = &self.cluster_id {
            return Ok(id.clone());
        }
        if self.servers.is_empty() {
            return Ok(Uuid::random()?.to_base64());
        }
        let mut text = String::new();
        for (id, addr) in &self.servers {
            let _ = writeln!(text, "{id}={addr}");
        }
        Ok(derived_uuid(text.as_bytes()).to_base64())
    }
}

fn string_key(table: &toml::Table, key: &str) -> Result<Option<String>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(format!(
            "{NODE_FILE}: `{key} = {}` must be a quoted string",
            show(other)
        )),
    }
}

/// A value as the user wrote it, roughly (this toml build has no serializer).
fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => format!("<{}>", other.type_str()),
    }
}

fn check_hostname(name: &str) -> Result<String, String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!("{NODE_FILE}: hostname {name:?} is not valid (letters, digits and '-', e.g. \"bramble-1\")"))
    }
}

/// `servers = { 1 = "pi1:2888", 2 = "pi2" }` or `servers = ["pi1", "pi2", "pi3"]` (ids 1..n).
fn parse_servers(value: Option<&toml::Value>) -> Result<BTreeMap<u32, String>, String> {
    let with_port = |host: &str| -> Result<String, String> {
        let host = host.trim();
        if host.is_empty() {
            return Err(format!("{NODE_FILE}: a server address is empty"));
        }
        match crate::config::split_host_port(host) {
            Ok(_) => Ok(host.to_string()),
            Err(_) if !host.contains(':') => Ok(format!("{host}:{QUORUM_PORT}")),
            Err(e) => Err(format!("{NODE_FILE}: servers: {e}")),
        }
    };
    let mut servers = BTreeMap::new();
    match value {
        None => {}
        Some(toml::Value::Table(table)) => {
            for (key, addr) in table {
                let id: u32 = key
                    .parse()
                    .ok()
                    .filter(|n| (1..=255).contains(n))
                    .ok_or_else(|| format!("{NODE_FILE}: servers key `{key}` is not a node id from 1 to 255"))?;
                let addr = addr.as_str().ok_or_else(|| format!("{NODE_FILE}: servers.{key} must be a quoted \"host:port\""))?;
                servers.insert(id, with_port(addr)?);
            }
        }
        Some(toml::Value::Array(items)) => {
            if items.len() > 255 {
                return Err(format!("{NODE_FILE}: at most 255 servers"));
            }
            for (i, item) in (1u32..).zip(items) {
                let addr = item.as_str().ok_or_else(|| format!("{NODE_FILE}: servers entries must be quoted hostnames"))?;
                servers.insert(i, with_port(addr)?);
            }
        }
        Some(_) => return Err(format!("{NODE_FILE}: `servers` must be a table {{ 1 = \"host:2888\", … }} or a list of hostnames")),
    }
    Ok(servers)
}

fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, prefix) = text.split_once('/').unwrap_or((text, "24"));
    let ip: Ipv4Addr = ip.parse().map_err(|_| {
        format!("{NODE_FILE}: address {text:?} is not an IPv4 address such as \"192.168.1.21/24\"")
    })?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=32).contains(p))
        .ok_or_else(|| format!("{NODE_FILE}: address {text:?} has a bad prefix length"))?;
    Ok((ip, prefix))
}

fn parse_ip(key: &str, text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("{NODE_FILE}: {key} {text:?} is not an IP address"))
}

/// A stable 128-bit id from some bytes (two FNV-1a 64-bit hashes), formatted like a random
/// Kafka id: version-4 bits set, never starting with '-'.
fn derived_uuid(bytes: &[u8]) -> Uuid {
    let fnv = |seed: u64| {
        bytes.iter().fold(seed, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&fnv(0xcbf2_9ce4_8422_2325).to_be_bytes());
    out[8..].copy_from_slice(&fnv(0x6c62_272e_07bb_0142).to_be_bytes());
    out[0] &= 0x7f;
    out[6] = (out[6] & 0x0f) | 0x40;
    out[8] = (out[8] & 0x3f) | 0x80;
    Uuid(out)
}

/// The daemon's config for this node: a single node without servers, a `[cluster]` section
/// with them. Paths and ports are the ones a Kafka + ZooKeeper install uses.
pub fn render_config(node: &NodeFile) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Written by `bramble node init` from {NODE_FILE} on the boot partition."
    );
    let _ = writeln!(
        text,
        "# Edit freely: first boot does not run again once /{STAMP} exists.\n"
    );
    let _ = writeln!(text, "[node]\nid = {}\n", node.id);
    let _ = writeln!(text, "[broker]\nlisteners = [\"0.0.0.0:9092\"]");
    let _ = writeln!(
        text,
        "advertised_listeners = [\"{}:{}\"]",
        node.advertised_host, node.advertised_port
    );
    let _ = writeln!(text, "log_dirs = [\"/var/lib/kafka-logs\"]");
    if !node.servers.is_empty() {
        // The recipe's settings for a replicated cluster, capped by its size.
        let replicas = node.servers.len().min(3);
        let _ = writeln!(text, "num_partitions = 3");
        let _ = writeln!(text, "default_replication_factor = {replicas}");
        let _ = writeln!(text, "min_insync_replicas = {}", replicas.min(2));
    }
    let _ = writeln!(
        text,
        "\n[coordinator]\ndata_dir = \"/var/lib/zookeeper\"\nlisten = \"0.0.0.0:2181\""
    );
    // Health and metrics for `bramble status --admin bramble-N.local:8080` from any machine
    // on the network (read-only, GET only: nothing the Kafka and ZooKeeper ports do not show).
    let _ = writeln!(text, "\n[admin]\nlisten = \"0.0.0.0:8080\"");
    if !node.servers.is_empty() {
        let entries: Vec<String> = node
            .servers
            .iter()
            .map(|(id, addr)| format!("{id} = \"{addr}\""))
            .collect();
        let _ = writeln!(
            text,
            "\n[cluster]\nlisten = \"0.0.0.0:{QUORUM_PORT}\"\nservers = {{ {} }}",
            entries.join(", ")
        );
    }
    text
}

/// `/etc/hosts` with this node's `127.0.1.1` line (Debian's convention), other lines kept.
fn render_hosts(existing: Option<&str>, hostname: &str) -> String {
    let existing =
        existing.unwrap_or("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n");
    let short = hostname.split('.').next().unwrap_or(hostname);
    let ours = if short == hostname {
        format!("127.0.1.1\t{hostname}")
    } else {
        format!("127.0.1.1\t{hostname} {short}")
    };
    let mut lines: Vec<String> = Vec::new();
    let mut placed = false;
    for line in existing.lines() {
        if line.split_whitespace().next() == Some("127.0.1.1") {
            if !placed {
                lines.push(ours.clone());
                placed = true;
            }
        } else {
            lines.push(line.to_string());
        }
    }
    if !placed {
        let after_localhost = lines
            .iter()
            .position(|l| l.starts_with("127.0.0.1"))
            .map_or(0, |i| i + 1);
        lines.insert(after_localhost, ours);
    }
    lines.join("\n") + "\n"
}

/// A systemd-networkd file giving the wired interface a static address.
fn render_network(node: &NodeFile) -> Option<String> {
    let (ip, prefix) = node.address?;
    let mut text = format!("# Written by `bramble node init` from {NODE_FILE}.\n[Match]\nName=eth0 en*\n\n[Network]\nAddress={ip}/{prefix}\n");
    if let Some(gateway) = node.gateway {
        let _ = writeln!(text, "Gateway={gateway}");
    }
    for dns in &node.dns {
        let _ = writeln!(text, "DNS={dns}");
    }
    Some(text)
}

/// The outcome of one `init`: which files it wrote (empty when the tree already matched).
#[derive(Debug, Default)]
pub struct InitReport {
    /// Files created or replaced, relative to the root.
    pub changed: Vec<PathBuf>,
}

/// Lay the node out under `root` from `node`; idempotent. Does not touch the running system.
pub fn apply(root: &Path, node: &NodeFile) -> anyhow::Result<InitReport> {
    let mut report = InitReport::default();
    let zk_dir = root.join("var/lib/zookeeper");
    let logs_dir = root.join("var/lib/kafka-logs");
    std::fs::create_dir_all(&zk_dir)?;
    std::fs::create_dir_all(&logs_dir)?;
    // myid first: it is what ZooKeeper habits look for, and what the daemon reads.
    write_if_changed(
        root,
        "var/lib/zookeeper/myid",
        format!("{}\n", node.id).as_bytes(),
        &mut report,
    )?;
    ensure_meta_properties(root, &logs_dir, node, &mut report)?;
    write_if_changed(
        root,
        "etc/hostname",
        format!("{}\n", node.hostname).as_bytes(),
        &mut report,
    )?;
    let hosts = std::fs::read_to_string(root.join("etc/hosts")).ok();
    write_if_changed(
        root,
        "etc/hosts",
        render_hosts(hosts.as_deref(), &node.hostname).as_bytes(),
        &mut report,
    )?;
    write_if_changed(
        root,
        "etc/bramble/bramble.toml",
        render_config(node).as_bytes(),
        &mut report,
    )?;
    if let Some(network) = render_network(node) {
        write_if_changed(
            root,
            "etc/systemd/network/10-bramble.network",
            network.as_bytes(),
            &mut report,
        )?;
    }
    Ok(report)
}

fn ensure_meta_properties(
    root: &Path,
    logs_dir: &Path,
    node: &NodeFile,
    report: &mut InitReport,
) -> anyhow::Result<()> {
    let path = logs_dir.join("meta.properties");
    let broker_id = i32::try_from(node.id)?;
    if let Some(meta) = checkpoint::read_meta_properties(&path)? {
        let same_cluster = node
            .cluster_id
            .as_ref()
            .is_none_or(|c| *c == meta.cluster_id);
        if meta.broker_id == broker_id && same_cluster {
            return Ok(());
        }
        // Only a log dir that holds nothing else may change identity (a first boot that was
        // cut short, then run again with a corrected id); anything else would mix two nodes.
        let only_meta = std::fs::read_dir(logs_dir)?
            .filter_map(Result::ok)
            .all(|e| e.file_name() == "meta.properties");
        anyhow::ensure!(
            only_meta,
            "{} belongs to broker.id={} of cluster {}, and the directory holds data; \
             this node is id {}: move the directory away to start this node empty",
            path.display(),
            meta.broker_id,
            meta.cluster_id,
            node.id
        );
    }
    let meta = MetaProperties {
        version: 0,
        broker_id,
        cluster_id: node.cluster_id()?,
    };
    checkpoint::write_meta_properties(&path, &meta)?;
    report
        .changed
        .push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
    Ok(())
}

/// Write `relative` under `root` atomically (tmp, fsync, rename, fsync dir) unless it already
/// holds exactly `contents`.
fn write_if_changed(
    root: &Path,
    relative: &str,
    contents: &[u8],
    report: &mut InitReport,
) -> anyhow::Result<()> {
    let path = root.join(relative);
    if std::fs::read(&path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    checkpoint::write_atomically(&path, contents)?;
    tracing::info!(path = %path.display(), "written");
    report.changed.push(PathBuf::from(relative));
    Ok(())
}

fn init(args: InitArgs) -> anyhow::Result<()> {
    crate::cli::serve::init_tracing();
    let node_file = args
        .node_file
        .clone()
        .unwrap_or_else(|| args.boot.join(NODE_FILE));
    let live = args.root == Path::new("/");
    let result = init_steps(&args, &node_file, live);
    match &result {
        Ok(None) => tracing::info!("first boot already complete; nothing changed"),
        Ok(Some(summary)) => boot_log(&args.boot, &format!("ok: {summary}")),
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), node_file = %node_file.display(), "first boot failed");
            boot_log(&args.boot, &format!("FAILED: {error:#}"));
            if live {
                show_fault_led();
            }
        }
    }
    result.map(|_| ())
}

/// The steps of first boot; Some(summary) when anything changed.
fn init_steps(args: &InitArgs, node_file: &Path, live: bool) -> anyhow::Result<Option<String>> {
    let text = std::fs::read_to_string(node_file).map_err(|e| {
        anyhow::anyhow!("cannot read {}: {e}; put a file {NODE_FILE} with a line `id = N` on the boot partition", node_file.display())
    })?;
    let node = NodeFile::parse(&text).map_err(anyhow::Error::msg)?;
    tracing::info!(id = node.id, hostname = %node.hostname, servers = node.servers.len(), "node file read");
    let mut report = apply(&args.root, &node)?;
    if live {
        set_live_hostname(&node.hostname);
        if !args.no_grow {
            grow_root();
        }
    } else {
        tracing::info!(root = %args.root.display(), "not the live root: hostname and root partition left alone");
    }
    let stamp = format!("id = {}\n", node.id);
    write_if_changed(&args.root, STAMP, stamp.as_bytes(), &mut report)?;
    if report.changed.is_empty() {
        return Ok(None);
    }
    let changed: Vec<String> = report
        .changed
        .iter()
        .map(|p| format!("/{}", p.display()))
        .collect();
    Ok(Some(format!(
        "node {} ({}) initialised; wrote {}",
        node.id,
        node.hostname,
        changed.join(", ")
    )))
}

/// Append one timestamped line to `bramble-firstboot.log` on the boot partition. Best effort:
/// the boot partition may be read-only or absent, and stderr has the message anyway.
fn boot_log(boot: &Path, message: &str) {
    let line = format!(
        "{} bramble node init: {}\n",
        utc_timestamp(),
        message.replace('\n', " ")
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(boot.join(BOOT_LOG))
        .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_all()));
    if let Err(error) = written {
        tracing::warn!(%error, boot = %boot.display(), "cannot append to {BOOT_LOG}");
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` from the system clock (a Pi without RTC may not have the date yet).
fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm, in u64/i64).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn set_live_hostname(hostname: &str) {
    if let Err(error) = std::fs::write("/proc/sys/kernel/hostname", hostname) {
        tracing::warn!(%error, hostname, "cannot set the running hostname; it applies from the next boot");
    }
}

/// Fault on the Pi's own LED: off and detached from SD-card activity (design: fault = off).
fn show_fault_led() {
    let led = Path::new("/sys/class/leds/ACT");
    if led.exists() {
        let _ = std::fs::write(led.join("trigger"), "none");
        let _ = std::fs::write(led.join("brightness"), "0");
    }
}

/// Grow the root partition to the end of the card (`growpart`, from cloud-guest-utils) and
/// its ext4 file system online (`resize2fs`). Best effort: a failure is logged, first boot
/// goes on, and the card simply keeps the image's size.
fn grow_root() {
    let Some(device) = root_device() else {
        tracing::warn!("cannot tell the root block device from /proc/self/mountinfo; not growing");
        return;
    };
    let Some((disk, number)) = split_partition(&device) else {
        tracing::warn!(device, "root is not a numbered partition; not growing");
        return;
    };
    let grow = std::process::Command::new("growpart")
        .arg(&disk)
        .arg(number.to_string())
        .output();
    match grow {
        Ok(out) if out.status.success() => {
            tracing::info!(disk, partition = number, "root partition grown")
        }
        // growpart exits 1 with NOCHANGE when the partition already fills the disk.
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("NOCHANGE") => {
            tracing::info!(
                disk,
                partition = number,
                "root partition already fills the card"
            )
        }
        Ok(out) => {
            tracing::warn!(disk, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "growpart failed; not growing");
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "growpart not found (package cloud-guest-utils); not growing");
            return;
        }
    }
    match std::process::Command::new("resize2fs")
        .arg(&device)
        .output()
    {
        Ok(out) if out.status.success() => tracing::info!(device, "root file system grown"),
        Ok(out) => {
            tracing::warn!(device, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "resize2fs failed")
        }
        Err(error) => tracing::warn!(%error, "resize2fs not found"),
    }
}

/// The block device mounted at `/` (field 10 of its mountinfo line).
fn root_device() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        (fields.get(4) == Some(&"/")).then(|| fields.get(dash + 2).map(|s| s.to_string()))?
    })
}

/// `/dev/mmcblk0p2` → (`/dev/mmcblk0`, 2); `/dev/sda2` → (`/dev/sda`, 2); `/dev/vda2` likewise.
fn split_partition(device: &str) -> Option<(String, u32)> {
    let digits = device.len() - device.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let (disk, number) = device.split_at(device.len() - digits);
    let number: u32 = number.parse().ok()?;
    let disk = match disk.strip_suffix('p') {
        Some(stem) if stem.ends_with(|c: char| c.is_ascii_digit()) => stem,
        _ => disk,
    };
    Some((disk.to_string(), number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_required_and_must_be_1_to_255() {
        assert!(NodeFile::parse("").unwrap_err().contains("has no `id`"));
        for bad in ["id = 0", "id = 256", "id = -1", "id = \"2\"", "id = 2.5"] {
            assert!(
                NodeFile::parse(bad).unwrap_err().contains("from 1 to 255"),
                "{bad}"
            );
        }
        assert!(NodeFile::parse("Id = 2")
            .unwrap_err()
            .contains("unknown key `Id`"));
        assert_eq!(NodeFile::parse("id = 255").unwrap().hostname, "bramble-255");
    }

    #[test]
    fn servers_are_a_table_or_a_list_and_must_include_this_node() {
        let table = NodeFile::parse(
            "id = 2\nservers = { 1 = \"pi1:2888\", 2 = \"pi2\", 3 = \"10.0.0.3:2999\" }",
        )
        .unwrap();
        assert_eq!(table.servers[&2], "pi2:2888");
        assert_eq!(table.servers[&3], "10.0.0.3:2999");
        let list = NodeFile::parse("id = 3\nservers = [\"a\", \"b\", \"c\"]").unwrap();
        assert_eq!(
            list.servers.values().collect::<Vec<_>>(),
            ["a:2888", "b:2888", "c:2888"]
        );
        assert!(NodeFile::parse("id = 4\nservers = [\"a\", \"b\", \"c\"]")
            .unwrap_err()
            .contains("not one of the servers"));
        assert!(NodeFile::parse("id = 1\nservers = { x = \"a\" }").is_err());
    }

    #[test]
    fn every_node_of_a_cluster_derives_the_same_cluster_id() {
        let a = NodeFile::parse("id = 1\nservers = [\"a\", \"b\", \"c\"]").unwrap();
        let b = NodeFile::parse("id = 2\nservers = [\"a\", \"b\", \"c\"]").unwrap();
        let id = a.cluster_id().unwrap();
        assert_eq!(id, b.cluster_id().unwrap());
        assert!(Uuid::from_base64(&id).is_some() && !id.starts_with('-'));
    }

    #[test]
    fn the_rendered_cluster_config_loads_its_node_and_broker_sections() {
        let node =
            NodeFile::parse("id = 2\nservers = [\"bramble-1\", \"bramble-2\", \"bramble-3\"]")
                .unwrap();
        let text = render_config(&node);
        assert!(text.contains("[cluster]\nlisten = \"0.0.0.0:2888\"\nservers = { 1 = \"bramble-1:2888\", 2 = \"bramble-2:2888\", 3 = \"bramble-3:2888\" }"));
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            parsed["cluster"]["servers"]["3"].as_str(),
            Some("bramble-3:2888")
        );
        // Everything but [cluster] is the daemon's schema today.
        let (without_cluster, _) = text.split_once("\n[cluster]").unwrap();
        let config = crate::config::Config::parse(without_cluster).unwrap();
        assert_eq!(config.node.id, Some(2));
        assert_eq!(config.broker.default_replication_factor, 3);
        assert_eq!(config.broker.advertised_listeners, ["bramble-2.local:9092"]);
    }

    #[test]
    fn an_advertised_port_behind_a_port_forward_reaches_the_config() {
        let node =
            NodeFile::parse("id = 1\nadvertised_host = \"127.0.0.1\"\nadvertised_port = 19092")
                .unwrap();
        assert_eq!(node.advertised_port, 19092);
        let config = crate::config::Config::parse(&render_config(&node)).unwrap();
        assert_eq!(config.broker.advertised_listeners, ["127.0.0.1:19092"]);
        // The listener itself stays on 9092.
        assert_eq!(config.broker.listeners, ["0.0.0.0:9092"]);
        assert_eq!(NodeFile::parse("id = 1").unwrap().advertised_port, 9092);
        for bad in ["0", "65536", "\"9092\""] {
            let error = NodeFile::parse(&format!("id = 1\nadvertised_port = {bad}")).unwrap_err();
            assert!(error.contains("is not a port"), "{error}");
        }
    }

    #[test]
    fn the_single_node_config_is_the_shipped_example() {
        let node = NodeFile::parse("id = 1").unwrap();
        let text = render_config(&node);
        crate::config::Config::parse(&text).unwrap();
        assert_eq!(text, include_str!("../../image/files/bramble.toml.example"));
    }

    #[test]
    fn hosts_gets_one_127_0_1_1_line() {
        let hosts = render_hosts(
            Some("127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost\n"),
            "bramble-2",
        );
        assert_eq!(
            hosts,
            "127.0.0.1\tlocalhost\n127.0.1.1\tbramble-2\n::1\tlocalhost\n"
        );
        assert_eq!(render_hosts(Some(&hosts), "bramble-2"), hosts);
        assert!(render_hosts(None, "pi.lan").contains("127.0.1.1\tpi.lan pi\n"));
    }

    #[test]
    fn static_addresses_become_a_networkd_file() {
        let node = NodeFile::parse(
            "id = 1\naddress = \"192.168.1.21/24\"\ngateway = \"192.168.1.1\"\ndns = [\"1.1.1.1\"]",
        )
        .unwrap();
        assert_eq!(node.advertised_host, "192.168.1.21");
        let network = render_network(&node).unwrap();
        assert!(network.contains("Address=192.168.1.21/24\nGateway=192.168.1.1\nDNS=1.1.1.1\n"));
        assert!(NodeFile::parse("id = 1\naddress = \"300.1.1.1\"").is_err());
        assert!(NodeFile::parse("id = 1\ngateway = \"10.0.0.1\"").is_err());
    }

    #[test]
    fn partitions_split_into_disk_and_number() {
        assert_eq!(
            split_partition("/dev/mmcblk0p2"),
            Some(("/dev/mmcblk0".into(), 2))
        );
        assert_eq!(split_partition("/dev/sda2"), Some(("/dev/sda".into(), 2)));
        assert_eq!(
            split_partition("/dev/nvme0n1p12"),
            Some(("/dev/nvme0n1".into(), 12))
        );
        assert_eq!(split_partition("/dev/root"), None);
    }

    #[test]
    fn timestamps_are_utc_iso_8601() {
        let stamp = utc_timestamp();
        assert_eq!(stamp.len(), 20, "{stamp}");
        assert!(stamp.starts_with("20") && stamp.ends_with('Z'));
    }
}

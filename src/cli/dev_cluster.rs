//! `bramble dev-cluster`: three nodes on this machine, for trying the cluster out and for
//! tests. Each node is a child process on its own loopback address (127.0.0.11, .12, .13)
//! with the default ports (Kafka 9092, ZooKeeper 2181, peers 2888) and its data under
//! `<dir>/node-N`. Ctrl-C stops all three cleanly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// Options of `bramble dev-cluster`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the nodes keep their config and data (`<dir>/node-N`).
    #[arg(long, default_value = "data")]
    dir: PathBuf,
    /// Number of nodes (1, 3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: u32,
}

/// The loopback address of node `id`.
fn host(id: u32) -> String {
    format!("127.0.0.{}", 10 + id)
}

/// The config of node `id` in a local cluster of `n` nodes.
pub fn node_config(dir: &Path, id: u32, n: u32) -> String {
    let servers: Vec<String> = (1..=n)
        .map(|i| format!("{i} = \"{}:2888\"", host(i)))
        .collect();
    let node_dir = dir.join(format!("node-{id}"));
    let h = host(id);
    format!(
        "[node]\nid = {id}\n\n[coordinator]\ndata_dir = \"{zk}\"\nlisten = \"{h}:2181\"\n\n\
         [broker]\nlisteners = [\"{h}:9092\"]\nlog_dirs = [\"{kafka}\"]\n\n\
         [cluster]\nlisten = \"{h}:2888\"\nservers = {{ {servers} }}\n",
        zk = node_dir.join("zookeeper").display(),
        kafka = node_dir.join("kafka-logs").display(),
        servers = servers.join(", "),
    )
}

/// Starts the nodes and waits for Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    if ![1, 3, 5].contains(&args.nodes) {
        anyhow::bail!("--nodes must be 1, 3 or 5");
    }
    let exe = std::env::current_exe()?;
    let dir = std::path::absolute(&args.dir)?;
    let mut children: Vec<Child> = Vec::new();
    for id in 1..=args.nodes {
        let node_dir = dir.join(format!("node-{id}"));
        std::fs::create_dir_all(&node_dir)?;
        let config = node_dir.join("bramble.toml");
        std::fs::write(&config, node_config(&dir, id, args.nodes))?;
        let log = std::fs::File::create(node_dir.join("bramble.log"))?;
        let child = Command::new(&exe)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        children.push(child);
    }
    let zk: Vec<String> = (1..=args.nodes)
        .map(|i| format!("{}:2181", host(i)))
        .collect();
    let kafka: Vec<String> = (1..=args.nodes)
        .map(|i| format!("{}:9092", host(i)))
        .collect();
    println!(
        "bramble dev-cluster: {} nodes, data and logs under {}",
        args.nodes,
        dir.display()
    );
    println!("  ZooKeeper: {}", zk.join(","));
    println!("  Kafka:     {}", kafka.join(","));
    println!(
        "  try: bramble zk --server {} ls /     (Ctrl-C stops the cluster)",
        zk[0]
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    for child in &mut children {
        // SIGTERM (not kill()'s SIGKILL) so each node shuts down cleanly.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    for mut child in children {
        let _ = child.wait();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_configs_parse_and_name_every_member() {
        let text = super::node_config(std::path::Path::new("/tmp/x"), 2, 3);
        let config = crate::config::Config::parse(&text).unwrap();
        let cluster = config.cluster.unwrap();
        cluster.validate(2).unwrap();
        assert_eq!(cluster.members().unwrap().len(), 3);
    }
}

//! Subcommands: `serve` runs the daemon; the rest are clients of a running node, in the
//! habits of kafka-topics.sh, kafka-console-producer/consumer.sh, kafka-consumer-groups.sh and
//! zkCli.sh.

pub mod certs;
pub mod client;
pub mod consume;
pub mod dev_cluster;
pub mod group;
pub mod node;
pub mod produce;
pub mod serve;
pub mod status;
pub mod topic;
pub mod user;
pub mod zk;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Kafka and ZooKeeper for a Raspberry Pi cluster, in one daemon.
#[derive(Debug, Parser)]
#[command(name = "bramble", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (no --config: one node on 127.0.0.1 with data under ./data).
    Serve(serve::Args),
    /// Three local nodes on 127.0.0.11-13 forming a cluster (Ctrl-C stops them).
    DevCluster(dev_cluster::Args),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(topic::Command),
    /// Produce lines from standard input to a topic.
    Produce(produce::Args),
    /// Print a topic's records.
    Consume(consume::Args),
    /// List, describe and delete consumer groups; reset their offsets.
    #[command(subcommand)]
    Group(group::Command),
    /// Add, delete and list SASL/SCRAM users (kept hashed in the coordinator).
    #[command(subcommand)]
    User(user::Command),
    /// ZooKeeper client: ls, get, stat, create, set, delete (like zkCli.sh).
    Zk(zk::Args),
    /// The cluster at a glance: nodes (state, role, memory, disk, temperature) and topics.
    Status(status::Args),
    /// Set up this machine as a node: `bramble node init` runs on first boot.
    #[command(subcommand)]
    Node(node::Command),
    /// Make a cluster CA, node and client certificates for `[tls]`.
    #[command(subcommand)]
    Certs(certs::Command),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::DevCluster(args) => dev_cluster::run(args),
        Command::Topic(command) => client_runtime(topic::run(command)),
        Command::Produce(args) => client_runtime(produce::run(args)),
        Command::Consume(args) => client_runtime(consume::run(args)),
        Command::Group(command) => client_runtime(group::run(command)),
        Command::User(command) => client_runtime(user::run(command)),
        Command::Zk(args) => client_runtime(zk::run(args)),
        Command::Status(args) => client_runtime(status::run(args)),
        Command::Node(command) => node::run(command),
        Command::Certs(command) => certs::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bramble: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Run a client command on a small single-threaded runtime.
fn client_runtime(
    future: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

//! `bramble certs`: a small cluster CA, node certificates signed by it (for every TLS listener
//! and the peer port) and client certificates, written as PEM files for `[tls]`.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::tls::certs::Ca;

/// `bramble certs ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a cluster CA: DIR/ca.pem (give to every node and client) and DIR/ca.key (keep
    /// it off the nodes).
    Ca {
        /// Where to write ca.pem and ca.key.
        #[arg(long)]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "bramble cluster CA")]
        name: String,
    },
    /// Make a node certificate signed by the CA: OUT/node.pem, OUT/node.key, OUT/ca.pem.
    Node {
        /// The CA's directory (ca.pem, ca.key).
        #[arg(long)]
        ca: PathBuf,
        /// The node id (the certificate is named bramble-node-ID).
        #[arg(long)]
        id: u32,
        /// A host name clients and peers dial this node by (repeat for more).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// An IP address clients and peers dial this node by (repeat for more).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// Where to write the files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a client certificate whose common name is the user: OUT/NAME.pem, OUT/NAME.key,
    /// OUT/ca.pem.
    Client {
        /// The CA's directory (ca.pem, ca.key).
        #[arg(long)]
        ca: PathBuf,
        /// The user (the certificate's common name).
        #[arg(long)]
        name: String,
        /// Where to write the files.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Run a `bramble certs` command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ca { out, name } => {
            Ca::new(&name)?.write(&out)?;
            println!(
                "wrote {} and {}",
                out.join("ca.pem").display(),
                out.join("ca.key").display()
            );
        }
        Command::Node {
            ca,
            id,
            hosts,
            ips,
            out,
        } => {
            if hosts.is_empty() && ips.is_empty() {
                anyhow::bail!("give at least one --host or --ip: the names peers and clients dial this node by");
            }
            let ca = Ca::load(&ca)?;
            let written = ca.node(id, &hosts, &ips)?.write(&out, "node", &ca)?;
            print_written(&written);
        }
        Command::Client { ca, name, out } => {
            if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
                anyhow::bail!("--name `{name}` cannot be used as a file name");
            }
            let ca = Ca::load(&ca)?;
            let written = ca.client(&name)?.write(&out, &name, &ca)?;
            print_written(&written);
        }
    }
    Ok(())
}

fn print_written(paths: &[PathBuf]) {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    println!("wrote {}", names.join(", "));
}

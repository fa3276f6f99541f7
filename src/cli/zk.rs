//! `bramble zk ls|get|stat|create|set|delete PATH [--server HOST:PORT[/chroot]]`: a small
//! ZooKeeper client, in the habits of zkCli.sh, that works against any ZooKeeper-protocol
//! server (bramble or ZooKeeper itself).

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::coordinator::{Acl, ErrorCode, Stat, WriteOp};
use crate::zk::connect::{ConnectRequest, ConnectResponse};
use crate::zk::jute::Writer;
use crate::zk::{client, op, read_stat, write};

/// Options of `bramble zk`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server, `HOST:PORT`, optionally followed by a chroot (`host:2181/kafka-broker`).
    #[arg(long, global = true, default_value = "127.0.0.1:2181")]
    server: String,
    #[command(subcommand)]
    command: Command,
}

/// The znode commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List a node's children.
    Ls {
        /// Node path.
        path: String,
    },
    /// Print a node's data.
    Get {
        /// Node path.
        path: String,
    },
    /// Print a node's stat.
    Stat {
        /// Node path.
        path: String,
    },
    /// Create a node.
    Create {
        /// Node path.
        path: String,
        /// Data (UTF-8); empty when absent.
        data: Option<String>,
        /// Ephemeral: deleted when this command's session ends (so mostly for testing).
        #[arg(short, long)]
        ephemeral: bool,
        /// Sequential: a 10-digit counter is appended to the name.
        #[arg(short, long)]
        sequential: bool,
    },
    /// Replace a node's data.
    Set {
        /// Node path.
        path: String,
        /// New data (UTF-8).
        data: String,
        /// Expected version (-1: any).
        #[arg(short, long, default_value_t = -1, allow_hyphen_values = true)]
        version: i32,
    },
    /// Delete a node.
    Delete {
        /// Node path.
        path: String,
        /// Expected version (-1: any).
        #[arg(short, long, default_value_t = -1, allow_hyphen_values = true)]
        version: i32,
    },
}

/// A connected session.
struct Session {
    stream: TcpStream,
    xid: i32,
    max_frame: u32,
}

impl Session {
    async fn connect(addr: &str) -> anyhow::Result<Session> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let mut s = Session {
            stream,
            xid: 0,
            max_frame: 16 << 20,
        };
        let req = ConnectRequest::new_session(10_000);
        s.stream.write_all(&req.encode()).await?;
        let resp = ConnectResponse::decode(&s.frame().await?)?;
        if resp.timeout_ms <= 0 {
            bail!("{addr} refused the session");
        }
        Ok(s)
    }

    async fn frame(&mut self) -> anyhow::Result<Vec<u8>> {
        let len = self
            .stream
            .read_u32()
            .await
            .context("server closed the connection")?;
        if len > self.max_frame {
            bail!(
                "reply of {len} bytes is larger than {} bytes",
                self.max_frame
            );
        }
        let mut buf = vec![0; len as usize];
        self.stream.read_exact(&mut buf).await?;
        Ok(buf)
    }

    /// Sends one request and returns the reply body (after the header) or the error code.
    async fn call(
        &mut self,
        code: i32,
        body: impl FnOnce(&mut Writer),
    ) -> anyhow::Result<Result<Vec<u8>, ErrorCode>> {
        self.xid += 1;
        let xid = self.xid;
        self.stream
            .write_all(&client::request(xid, code, body))
            .await?;
        loop {
            let f = self.frame().await?;
            let (h, r) = client::reply(&f)?;
            if h.xid != xid {
                continue; // a notification or ping
            }
            if h.err != 0 {
                return Ok(Err(ErrorCode::from_code(h.err)));
            }
            let rest = f[f.len() - r.remaining()..].to_vec();
            return Ok(Ok(rest));
        }
    }

    async fn close(mut self) {
        let _ = self.call(op::CLOSE_SESSION, |_| {}).await;
    }
}

fn check(path: &str, r: Result<Vec<u8>, ErrorCode>) -> anyhow::Result<Vec<u8>> {
    r.map_err(|e| match e {
        ErrorCode::NoNode => anyhow::anyhow!("Node does not exist: {path}"),
        ErrorCode::NodeExists => anyhow::anyhow!("Node already exists: {path}"),
        ErrorCode::NotEmpty => anyhow::anyhow!("Node not empty: {path}"),
        ErrorCode::BadVersion => anyhow::anyhow!("version mismatch for {path}"),
        ErrorCode::NoAuth => anyhow::anyhow!("Insufficient permission: {path}"),
        other => anyhow::anyhow!("{path}: ZooKeeper error {} ({other:?})", other.code()),
    })
}

/// zkCli-style stat lines.
pub fn format_stat(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\ndataLength = {}\nnumChildren = {}\n",
        s.czxid, s.ctime, s.mzxid, s.mtime, s.pzxid, s.cversion, s.version, s.aversion, s.ephemeral_owner, s.data_length, s.num_children
    )
}

/// Runs a `bramble zk` command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let (addr, chroot) = match args.server.find('/') {
        Some(i) => (
            &args.server[..i],
            args.server[i..].trim_end_matches('/').to_string(),
        ),
        None => (args.server.as_str(), String::new()),
    };
    let full = |p: &str| {
        if p == "/" && !chroot.is_empty() {
            chroot.clone()
        } else {
            format!("{chroot}{p}")
        }
    };
    let mut s = Session::connect(addr).await?;
    let result = async {
        match &args.command {
            Command::Ls { path } => {
                let body = check(
                    path,
                    s.call(op::GET_CHILDREN2, |w| {
                        w.string(&full(path)).bool(false);
                    })
                    .await?,
                )?;
                let (mut kids, _) =
                    client::get_children2(&mut crate::zk::jute::Reader::new(&body))?;
                kids.sort();
                println!("[{}]", kids.join(", "));
            }
            Command::Get { path } => {
                let body = check(
                    path,
                    s.call(op::GET_DATA, |w| {
                        w.string(&full(path)).bool(false);
                    })
                    .await?,
                )?;
                let (data, _) = client::get_data(&mut crate::zk::jute::Reader::new(&body))?;
                println!("{}", String::from_utf8_lossy(&data));
            }
            Command::Stat { path } => {
                let body = check(
                    path,
                    s.call(op::EXISTS, |w| {
                        w.string(&full(path)).bool(false);
                    })
                    .await?,
                )?;
                print!(
                    "{}",
                    format_stat(&read_stat(&mut crate::zk::jute::Reader::new(&body))?)
                );
            }
            Command::Create {
                path,
                data,
                ephemeral,
                sequential,
            } => {
                let flags = (*ephemeral as i32) | ((*sequential as i32) << 1);
                let wop = WriteOp::Create {
                    path: full(path),
                    data: data.clone().unwrap_or_default().into_bytes(),
                    acl: Acl::open(),
                    flags,
                    ttl_ms: -1,
                    op: op::CREATE,
                };
                let body = check(
                    path,
                    s.call(op::CREATE, |w| write::encode(op::CREATE, &wop, w))
                        .await?,
                )?;
                let created = crate::zk::jute::Reader::new(&body).string()?;
                println!(
                    "Created {}",
                    created
                        .strip_prefix(&chroot)
                        .filter(|p| !p.is_empty())
                        .unwrap_or(&created)
                );
            }
            Command::Set {
                path,
                data,
                version,
            } => {
                let wop = WriteOp::SetData {
                    path: full(path),
                    data: data.clone().into_bytes(),
                    version: *version,
                };
                check(
                    path,
                    s.call(op::SET_DATA, |w| write::encode(op::SET_DATA, &wop, w))
                        .await?,
                )?;
            }
            Command::Delete { path, version } => {
                let wop = WriteOp::Delete {
                    path: full(path),
                    version: *version,
                };
                check(
                    path,
                    s.call(op::DELETE, |w| write::encode(op::DELETE, &wop, w))
                        .await?,
                )?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    s.close().await;
    result
}

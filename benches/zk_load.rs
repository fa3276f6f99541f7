//! ZooKeeper load client: drives any ZooKeeper-protocol server (bramble or ZooKeeper) with
//! many requests in flight and reports throughput per operation and single-request latency.
//! Uses bramble's own jute codec (client side), so both servers see the same client.
//!
//! `cargo bench --bench zk_load -- --server 127.0.0.1:2181[,host:port...] [--nodes 100000] [--connections 8]
//!  [--in-flight 64] [--value-bytes 100] [--latency-ops 2000]`
//! Prints one `key value` line per figure (bench/zk.py collects them).

use std::time::{Duration, Instant};

use bramble::coordinator::{Acl, WriteOp};
use bramble::zk::connect::{ConnectRequest, ConnectResponse};
use bramble::zk::{client, op, write};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

struct Opts {
    server: String,
    nodes: u32,
    connections: u32,
    in_flight: u32,
    value_bytes: usize,
    latency_ops: u32,
}

fn opts() -> Opts {
    let mut o = Opts {
        server: "127.0.0.1:2181".into(),
        nodes: 100_000,
        connections: 8,
        in_flight: 64,
        value_bytes: 100,
        latency_ops: 2000,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--server" => o.server = v,
            "--nodes" => o.nodes = v.parse().expect("--nodes N"),
            "--connections" => o.connections = v.parse().expect("--connections N"),
            "--in-flight" => o.in_flight = v.parse().expect("--in-flight N"),
            "--value-bytes" => o.value_bytes = v.parse().expect("--value-bytes N"),
            "--latency-ops" => o.latency_ops = v.parse().expect("--latency-ops N"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

async fn connect(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let req = ConnectRequest::new_session(30_000);
    s.write_all(&req.encode()).await.expect("send connect");
    let f = read_frame(&mut s).await;
    assert!(
        ConnectResponse::decode(&f)
            .expect("connect response")
            .timeout_ms
            > 0,
        "session refused"
    );
    s
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> Vec<u8> {
    let n = r.read_u32().await.expect("read length");
    let mut b = vec![0; n as usize];
    r.read_exact(&mut b).await.expect("read frame");
    b
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Create,
    Get,
    Set,
    Delete,
}

fn request(kind: Kind, xid: i32, path: &str, value: &[u8]) -> Vec<u8> {
    match kind {
        Kind::Create => {
            let w = WriteOp::Create {
                path: path.into(),
                data: value.to_vec(),
                acl: Acl::open(),
                flags: 0,
                ttl_ms: -1,
                op: op::CREATE,
            };
            client::request(xid, op::CREATE, |b| write::encode(op::CREATE, &w, b))
        }
        Kind::Get => client::request(xid, op::GET_DATA, |b| {
            b.string(path).bool(false);
        }),
        Kind::Set => client::request(xid, op::SET_DATA, |b| {
            b.string(path).buffer(value).i32(-1);
        }),
        Kind::Delete => client::request(xid, op::DELETE, |b| {
            b.string(path).i32(-1);
        }),
    }
}

/// Runs `paths` through one connection with up to `in_flight` requests outstanding.
async fn pipeline(
    stream: TcpStream,
    kind: Kind,
    paths: Vec<String>,
    value: Vec<u8>,
    in_flight: usize,
) -> u64 {
    let (mut rd, wr) = stream.into_split();
    let mut wr = BufWriter::new(wr);
    let mut sent = 0usize;
    let mut done = 0usize;
    let mut errors = 0u64;
    while done < paths.len() {
        while sent < paths.len() && sent - done < in_flight {
            wr.write_all(&request(kind, sent as i32 + 1, &paths[sent], &value))
                .await
                .expect("send");
            sent += 1;
        }
        wr.flush().await.expect("flush");
        let f = read_frame(&mut rd).await;
        let (h, _) = client::reply(&f).expect("reply header");
        if h.xid < 0 {
            continue;
        }
        if h.err != 0 {
            errors += 1;
        }
        done += 1;
    }
    errors
}

async fn phase(o: &Opts, kind: Kind, root: &str, value: &[u8]) -> (f64, u64) {
    let mut conns = Vec::new();
    // A comma-separated --server (an ensemble) spreads the connections over its members.
    let servers: Vec<&str> = o.server.split(',').collect();
    for c in 0..o.connections as usize {
        conns.push(connect(servers[c % servers.len()]).await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, stream) in conns.into_iter().enumerate() {
        let paths: Vec<String> = (0..o.nodes)
            .filter(|i| i % o.connections == c as u32)
            .map(|i| format!("{root}/n{i}"))
            .collect();
        tasks.push(tokio::spawn(pipeline(
            stream,
            kind,
            paths,
            value.to_vec(),
            o.in_flight as usize,
        )));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await.expect("task");
    }
    (o.nodes as f64 / start.elapsed().as_secs_f64(), errors)
}

async fn latency(o: &Opts, kind: Kind, path: &str, value: &[u8]) -> (f64, f64) {
    let mut s = connect(o.server.split(',').next().unwrap_or_default()).await;
    let mut samples = Vec::with_capacity(o.latency_ops as usize);
    for i in 0..o.latency_ops {
        let t = Instant::now();
        s.write_all(&request(kind, i as i32 + 1, path, value))
            .await
            .expect("send");
        let f = read_frame(&mut s).await;
        let (h, _) = client::reply(&f).expect("reply");
        assert_eq!(h.err, 0, "latency op failed");
        samples.push(t.elapsed());
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (pick(0.5), pick(0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = opts();
    let value = vec![b'v'; o.value_bytes];
    let root = format!("/bench-{}", std::process::id());
    let mut s = connect(o.server.split(',').next().unwrap_or_default()).await;
    s.write_all(&request(Kind::Create, 1, &root, b""))
        .await
        .expect("send");
    let _ = read_frame(&mut s).await;
    for (name, kind) in [
        ("create", Kind::Create),
        ("get", Kind::Get),
        ("set", Kind::Set),
    ] {
        let (rate, errors) = phase(&o, kind, &root, &value).await;
        println!("{name}_ops_per_s {rate:.0}");
        assert_eq!(errors, 0, "{name}: {errors} errors");
    }
    println!("ready_for_rss 1");
    // The driver samples RSS with the tree at its fullest: give it a moment.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let probe = format!("{root}/n0");
    let (p50, p99) = latency(&o, Kind::Get, &probe, &value).await;
    println!("get_latency_p50_us {p50:.0}\nget_latency_p99_us {p99:.0}");
    let (p50, p99) = latency(&o, Kind::Set, &probe, &value).await;
    println!("set_latency_p50_us {p50:.0}\nset_latency_p99_us {p99:.0}");
    let (rate, errors) = phase(&o, Kind::Delete, &root, &value).await;
    println!("delete_ops_per_s {rate:.0}");
    assert_eq!(errors, 0, "delete: {errors} errors");
}

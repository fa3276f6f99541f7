//! Starting a real `bramble serve` process for integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A bramble process on a free loopback port, killed on drop.
pub struct Node {
    pub child: Child,
    pub kafka: SocketAddr,
    pub dir: tempfile::TempDir,
    limit: String,
}

fn spawn(dir: &tempfile::TempDir, limit: &str) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("bramble.log"))
        .unwrap();
    Command::new("sh")
        .arg("-c")
        .arg(format!("{limit}exec \"$0\" serve --config \"$1\""))
        .arg(env!("CARGO_BIN_EXE_bramble"))
        .arg(dir.path().join("bramble.toml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    pub fn start(extra_broker_config: &str) -> Node {
        Node::start_limited(extra_broker_config, None)
    }

    /// Start with an address-space limit (KiB), as a small device has: an allocation the
    /// limit cannot hold fails, and the process aborts, instead of being lazily overcommitted.
    pub fn start_limited(extra_broker_config: &str, address_space_kib: Option<u64>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let kafka: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // The ZooKeeper listener is always on: give it its own port and data dir.
        let zk: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = format!(
            "[coordinator]\nlisten = \"{zk}\"\ndata_dir = \"{}\"\n[node]\nid = 1\n[broker]\nlisteners = [\"{kafka}\"]\nlog_dirs = [\"{}\"]\n{extra_broker_config}\n",
            dir.path().join("zookeeper").display(),
            dir.path().join("kafka-logs").display()
        );
        let config_path: PathBuf = dir.path().join("bramble.toml");
        std::fs::write(&config_path, config).unwrap();
        let limit = address_space_kib
            .map(|k| format!("ulimit -v {k}; "))
            .unwrap_or_default();
        let child = spawn(&dir, &limit);
        let node = Node {
            child,
            kafka,
            dir,
            limit,
        };
        node.wait_listening();
        node
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(self.kafka).is_err() {
            assert!(
                Instant::now() < deadline,
                "bramble did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the process (SIGTERM: a clean shutdown, or SIGKILL: a crash) and start it again
    /// on the same data and port.
    pub fn restart(&mut self, clean: bool) {
        if clean {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.child = spawn(&self.dir, &self.limit);
        self.wait_listening();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bramble.log")).unwrap_or_default()
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.kafka).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send raw bytes (already length-prefixed) and read one length-prefixed response body.
pub fn roundtrip(stream: &mut TcpStream, frame: &[u8]) -> Option<Vec<u8>> {
    stream.write_all(frame).ok()?;
    read_frame(stream)
}

/// Read one response body, or None if the server closed the connection.
pub fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// True once the server has closed this connection.
pub fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

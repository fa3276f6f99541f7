//! `bramble serve` speaks systemd's notification protocol: READY=1 once its listeners are
//! bound, WATCHDOG=1 at half the watchdog interval, STOPPING=1 on SIGTERM.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::free_port;

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .expect("no notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn serve_notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&notify_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let kafka = format!("127.0.0.1:{}", free_port());
    let zk = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "[coordinator]\nlisten = \"{zk}\"\ndata_dir = \"{}\"\n[node]\nid = 7\n[broker]\nlisteners = [\"{kafka}\"]\nlog_dirs = [\"{}\"]\n",
        dir.path().join("zookeeper").display(),
        dir.path().join("kafka-logs").display()
    );
    let config_path = dir.path().join("bramble.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bramble"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let ready = receive(&socket);
    // READY is sent only after both listeners are bound.
    assert!(
        std::net::TcpStream::connect(&kafka).is_ok() && std::net::TcpStream::connect(&zk).is_ok()
    );
    let mut messages = vec![ready];
    let deadline = Instant::now() + Duration::from_secs(5);
    while messages.iter().filter(|m| *m == "WATCHDOG=1").count() < 2 && Instant::now() < deadline {
        messages.push(receive(&socket));
    }
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("READY=1\nSTATUS=serving as node 7")),
        "{messages:?}"
    );
    assert!(
        messages.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2,
        "{messages:?}"
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let mut last = receive(&socket);
    while last == "WATCHDOG=1" {
        last = receive(&socket);
    }
    assert!(last.starts_with("STOPPING=1"), "{last:?}");
    assert!(child.wait().unwrap().success());
}

//! systemd's notification protocol (`sd_notify`), without libsystemd: one datagram of
//! `KEY=value` lines to the unix socket named by `$NOTIFY_SOCKET`.
//!
//! `bramble.service` is `Type=notify` with `WatchdogSec=`: systemd considers the unit started
//! only when `READY=1` arrives (after every listener is bound), and restarts it when
//! `WATCHDOG=1` stops arriving for longer than the watchdog interval. The keep-alive is sent
//! from a task on the server's runtime, so a wedged runtime stops it and systemd notices.
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call here does nothing.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

/// Where notifications go: a socket path, or a Linux abstract socket name (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifySocket {
    /// A socket file, e.g. `/run/systemd/notify`.
    Path(PathBuf),
    /// An abstract socket name, without the leading `@`.
    Abstract(Vec<u8>),
}

impl NotifySocket {
    /// Read `$NOTIFY_SOCKET`; None when unset or empty (not run by systemd as Type=notify).
    pub fn from_env() -> Option<NotifySocket> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        NotifySocket::parse(&value.to_string_lossy())
    }

    /// Interpret a `$NOTIFY_SOCKET` value: `@name` is abstract, anything else a path.
    pub fn parse(value: &str) -> Option<NotifySocket> {
        match value.strip_prefix('@') {
            _ if value.is_empty() => None,
            Some(name) => Some(NotifySocket::Abstract(name.as_bytes().to_vec())),
            None => Some(NotifySocket::Path(PathBuf::from(value))),
        }
    }

    /// Send one notification (`KEY=value` lines).
    pub fn send(&self, message: &str) -> std::io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        match self {
            NotifySocket::Path(path) => socket.send_to(message.as_bytes(), path)?,
            NotifySocket::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(message.as_bytes(), &addr)?
            }
        };
        Ok(())
    }
}

/// Send `message` to systemd if it is listening; a failure is logged, never fatal.
fn send(message: &str) {
    let Some(socket) = NotifySocket::from_env() else { return };
    if let Err(error) = socket.send(message) {
        tracing::warn!(%error, socket = ?socket, "sd_notify failed");
    }
}

/// Tell systemd the node is serving: every listener is bound.
pub fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// Update the one-line status `systemctl status bramble` shows.
pub fn status(status: &str) {
    send(&format!("STATUS={}", one_line(status)));
}

/// Tell systemd the node is shutting down cleanly.
pub fn stopping() {
    send("STOPPING=1\nSTATUS=shutting down");
}

/// The keep-alive period: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises; None
/// when systemd set no watchdog for this process.
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok()) {
        if pid != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Send `WATCHDOG=1` every half watchdog interval until `shutdown`; returns at once when
/// systemd asked for no watchdog. Runs on the server's runtime, so it stops if that wedges.
pub async fn watchdog_loop(mut shutdown: watch::Receiver<bool>) {
    let Some(period) = watchdog_period() else { return };
    tracing::info!(period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX), "systemd watchdog on");
    loop {
        send("WATCHDOG=1");
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// A status line must not break the `KEY=value` framing.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_values_are_paths_or_abstract_names() {
        assert_eq!(NotifySocket::parse(""), None);
        assert_eq!(NotifySocket::parse("/run/systemd/notify"), Some(NotifySocket::Path("/run/systemd/notify".into())));
        assert_eq!(NotifySocket::parse("@sd-notify-1"), Some(NotifySocket::Abstract(b"sd-notify-1".to_vec())));
    }

    #[test]
    fn a_notification_arrives_on_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        NotifySocket::Path(path).send("READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
    }

    #[test]
    fn a_notification_arrives_on_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("bramble-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        NotifySocket::parse(&format!("@{name}")).unwrap().send("WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn status_lines_stay_one_line() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
    }
}

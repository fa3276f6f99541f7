//! The peer listener (port 2888): one port for node-to-node traffic. The first four bytes
//! of a connection name its protocol: `BRFT` (Raft and coordinator forwarding, answered
//! by [`crate::cluster::Cluster::handle_peer`]) or `BRKF` (partition replication, handed to
//! whoever took [`crate::cluster::Cluster::take_brkf_inbound`]); anything else is closed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::cluster::network::{
    read_frame, write_frame, PeerRequest, PREAMBLE_KAFKA, PREAMBLE_RAFT,
};
use crate::cluster::Cluster;

/// Most peer connections served at once (a 5-node cluster needs a few dozen).
pub const PEER_CONNECTIONS_MAX: usize = 256;
/// A connection must name its protocol within this time.
const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves peers on `listener` until `shutdown` turns true; with `tls` (`[cluster] tls`),
/// each connection completes mutual TLS before its preamble.
pub async fn serve(
    listener: TcpListener,
    cluster: Arc<Cluster>,
    tls: Option<crate::tls::Acceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(addr = ?listener.local_addr().ok(), node = cluster.id(), tls = tls.is_some(), "peer listener up");
    let slots = Arc::new(Semaphore::new(PEER_CONNECTIONS_MAX));
    loop {
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { return },
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "peer accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(peer = %peer, limit = PEER_CONNECTIONS_MAX, "too many peer connections");
                    continue;
                };
                let cluster = cluster.clone();
                let sd = shutdown.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let served = async {
                        let (stream, identity) = crate::tls::accept(tls.as_ref(), stream)
                            .await
                            .inspect_err(|e| tracing::warn!(peer = %peer, error = %e, "peer TLS handshake failed; a node needs a certificate from the cluster CA"))?;
                        if let Some(name) = identity.common_name {
                            tracing::debug!(peer = %peer, certificate = %name, "peer connected over TLS");
                        }
                        connection(stream, cluster, sd).await
                    };
                    if let Err(e) = served.await {
                        tracing::debug!(peer = %peer, error = %e, "peer connection ended");
                    }
                    drop(permit);
                });
            }
        }
    }
}

async fn connection(
    mut stream: crate::tls::Stream,
    cluster: Arc<Cluster>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut preamble = [0u8; 4];
    tokio::time::timeout(PREAMBLE_TIMEOUT, stream.read_exact(&mut preamble))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no preamble"))??;
    if preamble == PREAMBLE_KAFKA {
        cluster.accept_brkf(stream);
        return Ok(());
    }
    if preamble != PREAMBLE_RAFT {
        tracing::warn!(preamble = ?preamble, "unknown peer protocol; closing");
        return Ok(());
    }
    loop {
        let req: PeerRequest = tokio::select! {
            r = read_frame(&mut stream) => match r? { Some(req) => req, None => return Ok(()) },
            _ = shutdown.changed() => return Ok(()),
        };
        let resp = cluster.handle_peer(req).await;
        write_frame(&mut stream, &resp).await?;
    }
}

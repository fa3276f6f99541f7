//! TLS for the listeners and between peers: the `[tls]` section, certificates and keys read
//! from PEM files, rustls server and client configurations (ring provider), and [`Stream`],
//! a connection that is plain TCP or TLS so the protocol code above it does not care.
//!
//! One certificate and key serve every TLS listener of a node (Kafka `SSL://`, the ZooKeeper
//! secure port, MQTT over TLS, admin HTTPS) and, with `[cluster] tls = true`, the peer port,
//! where both ends must present a certificate signed by `ca_file` (mutual TLS). [`certs`] makes
//! a small cluster CA and its node and client certificates for `bramble certs`.

pub mod certs;
pub mod subject;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// `[tls]`: the node's certificate, key and the CA its clients and peers are checked against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain of this node (its own certificate first).
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// PEM certificate(s) of the CA that client (and peer) certificates must chain to.
    pub ca_file: Option<PathBuf>,
    /// Whether TLS clients must present a certificate (Kafka's `ssl.client.auth`).
    pub client_auth: ClientAuth,
    /// A connection that has not finished its TLS handshake by then is closed.
    pub handshake_timeout_ms: u32,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            ca_file: None,
            client_auth: ClientAuth::None,
            handshake_timeout_ms: 10_000,
        }
    }
}

/// Client certificates on TLS listeners, named as Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Not asked for.
    #[default]
    None,
    /// Asked for; a client without one is served, one with a certificate the CA did not sign
    /// is refused.
    Requested,
    /// A client must present a certificate signed by `ca_file`.
    Required,
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A `[tls]` key a listener needs is not set.
    #[error("{what} needs [tls] {keys}")]
    Missing {
        /// The listener or setting that needs it.
        what: String,
        /// The keys to set.
        keys: &'static str,
    },
    /// A PEM file could not be read or held nothing usable.
    #[error("[tls] {key} = {path}: {message}")]
    File {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificate, key or CA.
    #[error("[tls]: {0}")]
    Rustls(rustls::Error),
    /// The CA certificates could not be used to check clients or servers.
    #[error("[tls] ca_file: {0}")]
    Verifier(String),
}

// Not `#[from]`: that would also make it the cause, and `{:#}` would print it twice.
impl From<rustls::Error> for TlsError {
    fn from(error: rustls::Error) -> Self {
        TlsError::Rustls(error)
    }
}

impl TlsConfig {
    /// Check that what `what` needs is set: a certificate and key, and a CA when clients must
    /// present certificates (or when `mutual` asks for both ends to).
    pub fn check(&self, what: &str, mutual: bool) -> Result<(), TlsError> {
        if self.cert_file.is_none() || self.key_file.is_none() {
            return Err(TlsError::Missing {
                what: what.to_string(),
                keys: "cert_file and key_file",
            });
        }
        if (mutual || self.client_auth != ClientAuth::None) && self.ca_file.is_none() {
            return Err(TlsError::Missing {
                what: if mutual {
                    what.to_string()
                } else {
                    format!("{what} with client_auth = {:?}", self.client_auth).to_lowercase()
                },
                keys: "ca_file",
            });
        }
        Ok(())
    }

    /// The acceptor of a client listener (Kafka, ZooKeeper, MQTT, admin): this node's
    /// certificate, client certificates as `client_auth` says.
    pub fn acceptor(&self, what: &str) -> Result<Acceptor, TlsError> {
        self.check(what, false)?;
        self.build_acceptor(self.client_auth)
    }

    /// The acceptor of the peer port: a peer must present a certificate signed by the CA.
    pub fn peer_acceptor(&self) -> Result<Acceptor, TlsError> {
        self.check("[cluster] tls", true)?;
        self.build_acceptor(ClientAuth::Required)
    }

    /// The connector a node dials its peers with: it presents this node's certificate and
    /// accepts only a peer whose certificate the CA signed for the address dialled.
    pub fn peer_connector(&self) -> Result<Connector, TlsError> {
        self.check("[cluster] tls", true)?;
        let config = self
            .verifying_client()?
            .with_client_auth_cert(self.chain()?, self.key()?)?;
        Ok(self.connector(config))
    }

    /// A client configuration that accepts only servers whose certificate `ca_file` signed
    /// for the address dialled (its client certificate still to choose).
    fn verifying_client(
        &self,
    ) -> Result<
        rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
        TlsError,
    > {
        let roots = Arc::new(self.roots()?);
        let provider = provider();
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_webpki_verifier(verifier))
    }

    fn connector(&self, config: rustls::ClientConfig) -> Connector {
        Connector {
            inner: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout: self.handshake_timeout(),
        }
    }

    /// The connector of a command-line client (`bramble status` to an HTTPS admin
    /// listener): the server's certificate must chain to `ca_file` and name the address
    /// dialled; with `cert_file` and `key_file` it presents that client certificate.
    pub fn client_connector(&self) -> Result<Connector, TlsError> {
        if self.ca_file.is_none() {
            return Err(TlsError::Missing {
                what: "a TLS client".into(),
                keys: "a CA file",
            });
        }
        let builder = self.verifying_client()?;
        let config = match (&self.cert_file, &self.key_file) {
            (Some(_), Some(_)) => builder.with_client_auth_cert(self.chain()?, self.key()?)?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Missing {
                    what: "a TLS client certificate".into(),
                    keys: "both a certificate and its key",
                })
            }
        };
        Ok(self.connector(config))
    }

    fn build_acceptor(&self, client_auth: ClientAuth) -> Result<Acceptor, TlsError> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Requested | ClientAuth::Required => {
                let roots = Arc::new(self.roots()?);
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if client_auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .map_err(|e| TlsError::Verifier(e.to_string()))?,
                )
            }
        };
        let config = builder.with_single_cert(self.chain()?, self.key()?)?;
        Ok(Acceptor {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            timeout: self.handshake_timeout(),
        })
    }

    fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.handshake_timeout_ms.max(1)))
    }

    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let path = self.cert_file.as_deref().expect("checked");
        read_certs("cert_file", path)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        let path = self.key_file.as_deref().expect("checked");
        PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
            key: "key_file",
            path: path.to_path_buf(),
            message: format!("no usable private key ({e})"),
        })
    }

    fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let path = self.ca_file.as_deref().expect("checked");
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs("ca_file", path)? {
            roots.add(cert).map_err(|e| TlsError::File {
                key: "ca_file",
                path: path.to_path_buf(),
                message: format!("not a usable CA certificate ({e})"),
            })?;
        }
        Ok(roots)
    }
}

/// The certificates of a PEM file, refusing a file with none.
fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError::File {
        key,
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no CERTIFICATE block in the file".into()));
    }
    Ok(certs)
}

/// The one crypto provider: ring (aws-lc-rs needs cmake and a C toolchain per target).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The most encrypted output a TLS connection buffers while its socket is congested
/// (rustls' default is 64 KiB): one full record. Writes past it wait for the socket.
pub const SEND_BUFFER_BYTES: usize = 16 << 10;

/// What one TLS connection keeps in memory beyond a plain one, counted in the pool its
/// listener draws from for as long as it is open: session state and keys (about 10 KiB
/// per connection measured with 300 idle Kafka clients), a full incoming record being
/// decrypted (16 KiB plus its header) and the send buffer ([`SEND_BUFFER_BYTES`]),
/// rounded up.
pub const CONNECTION_BYTES: u64 = 48 << 10;

/// The bytes a connection accepted by `acceptor` holds from `pool` while it is open:
/// [`CONNECTION_BYTES`] for TLS, nothing for plain TCP. TLS connections together take at
/// most 40% of the pool ([`crate::memory::pool::CONNECTION_SHARE_PERCENT`]); past that a new
/// one waits before its handshake for another to close (nothing is refused).
pub async fn connection_grant(
    acceptor: Option<&Acceptor>,
    pool: &Arc<crate::memory::Pool>,
) -> Option<crate::memory::Grant> {
    match acceptor {
        Some(_) => Some(pool.acquire_for_connection(CONNECTION_BYTES).await),
        None => None,
    }
}

/// Takes TLS handshakes on accepted sockets.
#[derive(Clone)]
pub struct Acceptor {
    inner: tokio_rustls::TlsAcceptor,
    timeout: Duration,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").finish_non_exhaustive()
    }
}

/// Who is at the other end of a TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject common name of the client's certificate, when it presented one.
    pub common_name: Option<String>,
}

impl Acceptor {
    /// Complete the server side of a handshake within the configured timeout.
    pub async fn accept(&self, socket: TcpStream) -> io::Result<(Stream, PeerIdentity)> {
        let mut tls = tokio::time::timeout(self.timeout, self.inner.accept(socket))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        tls.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_BYTES));
        let identity = PeerIdentity {
            common_name: tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| subject::common_name(cert)),
        };
        Ok((Stream::Tls(Box::new(tls.into())), identity))
    }
}

/// Wrap an accepted socket in TLS when the listener has an acceptor; pass it through otherwise.
pub async fn accept(
    acceptor: Option<&Acceptor>,
    socket: TcpStream,
) -> io::Result<(Stream, PeerIdentity)> {
    match acceptor {
        Some(acceptor) => acceptor.accept(socket).await,
        None => Ok((Stream::Plain(socket), PeerIdentity::default())),
    }
}

/// Opens TLS connections to peers.
#[derive(Clone)]
pub struct Connector {
    inner: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// The client side of a handshake with `addr` (`host:port`); the peer's certificate must
    /// name `host` (a DNS name or an IP address).
    pub async fn connect(&self, addr: &str, socket: TcpStream) -> io::Result<Stream> {
        let host = crate::config::split_host_port(addr)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            .0;
        let name = ServerName::try_from(host)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut tls = tokio::time::timeout(self.timeout, self.inner.connect(name, socket))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        tls.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_BYTES));
        Ok(Stream::Tls(Box::new(tls.into())))
    }
}

/// A connection: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum Stream {
    /// No TLS.
    Plain(TcpStream),
    /// TLS, either side.
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Owned read and write halves, for a reader and a writer task. A plain socket splits
    /// without a lock; TLS keeps one session, so its halves share it through tokio's split.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(s);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }
}

/// The reading half of a [`Stream`].
#[derive(Debug)]
pub enum ReadHalf {
    /// No TLS.
    Plain(tokio::net::tcp::OwnedReadHalf),
    /// TLS.
    Tls(tokio::io::ReadHalf<Box<tokio_rustls::TlsStream<TcpStream>>>),
}

/// The writing half of a [`Stream`].
#[derive(Debug)]
pub enum WriteHalf {
    /// No TLS.
    Plain(tokio::net::tcp::OwnedWriteHalf),
    /// TLS.
    Tls(tokio::io::WriteHalf<Box<tokio_rustls::TlsStream<TcpStream>>>),
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ReadHalf::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(s) => Pin::new(s).poll_write(cx, buf),
            WriteHalf::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(s) => Pin::new(s).poll_flush(cx),
            WriteHalf::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(s) => Pin::new(s).poll_shutdown(cx),
            WriteHalf::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            WriteHalf::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteHalf::Plain(s) => s.is_write_vectored(),
            WriteHalf::Tls(s) => s.is_write_vectored(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A node's `[tls]` section over certificates made by [`certs`] in `dir`.
    fn node_config(dir: &Path, ca: &certs::Ca, id: u32) -> TlsConfig {
        let node = ca
            .node(id, &["localhost".into()], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        TlsConfig {
            cert_file: Some(write(dir, &format!("n{id}.pem"), &node.cert_pem)),
            key_file: Some(write(dir, &format!("n{id}.key"), &node.key_pem)),
            ca_file: Some(write(dir, &format!("ca{id}.pem"), &ca.cert_pem)),
            ..TlsConfig::default()
        }
    }

    async fn pair(
        acceptor: Acceptor,
        connector: Connector,
    ) -> (io::Result<(Stream, PeerIdentity)>, io::Result<Stream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = async {
            let (socket, _) = listener.accept().await.unwrap();
            let mut accepted = acceptor.accept(socket).await;
            if let Ok((stream, _)) = &mut accepted {
                // Complete the exchange so the client's own checks have run.
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await.ok();
                stream.write_all(&byte).await.ok();
                stream.flush().await.ok();
            }
            accepted
        };
        let client = async {
            let socket = TcpStream::connect(&addr).await.unwrap();
            let mut stream = connector.connect(&addr, socket).await?;
            stream.write_all(b"x").await?;
            stream.flush().await?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await?;
            Ok(stream)
        };
        tokio::join!(server, client)
    }

    #[tokio::test]
    async fn peers_of_one_ca_complete_mutual_tls_and_name_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let ca = certs::Ca::new("test cluster").unwrap();
        let a = node_config(dir.path(), &ca, 1);
        let b = node_config(dir.path(), &ca, 2);
        let (server, client) = pair(a.peer_acceptor().unwrap(), b.peer_connector().unwrap()).await;
        client.unwrap();
        let (_, identity) = server.unwrap();
        assert_eq!(identity.common_name.as_deref(), Some("bramble-node-2"));
    }

    #[tokio::test]
    async fn a_peer_certified_by_another_ca_is_refused_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let ours = node_config(dir.path(), &certs::Ca::new("ours").unwrap(), 1);
        let stranger = node_config(dir.path(), &certs::Ca::new("theirs").unwrap(), 2);
        let (server, client) = pair(
            ours.peer_acceptor().unwrap(),
            stranger.peer_connector().unwrap(),
        )
        .await;
        assert!(server.is_err() || client.is_err());
        let (server, client) = pair(
            stranger.peer_acceptor().unwrap(),
            ours.peer_connector().unwrap(),
        )
        .await;
        assert!(server.is_err() || client.is_err());
    }

    #[test]
    fn missing_keys_are_named() {
        let error = TlsConfig::default().acceptor("SSL listener").unwrap_err();
        assert!(
            error.to_string().contains("cert_file and key_file"),
            "{error}"
        );
        let config = TlsConfig {
            cert_file: Some("a".into()),
            key_file: Some("b".into()),
            ..TlsConfig::default()
        };
        let error = config.peer_acceptor().unwrap_err();
        assert!(error.to_string().contains("ca_file"), "{error}");
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = TlsConfig {
            cert_file: Some(write(dir.path(), "c.pem", "not pem")),
            key_file: Some(dir.path().join("absent.key")),
            ..TlsConfig::default()
        };
        let error = config.acceptor("x").unwrap_err().to_string();
        assert!(error.contains("cert_file"), "{error}");
    }
}

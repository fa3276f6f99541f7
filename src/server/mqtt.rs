//! The MQTT listener: an accept loop with a connection cap, and per connection a reader
//! (frames → protocol rules → sink) and a writer (acknowledgements, each sent only once
//! the records it stands for are committed, in publish order).
//!
//! Backpressure: a publish is read only once it has a slot of the client's in-flight window
//! (QoS 1 and 2) and its bytes in the MQTT memory pool; both are released when its
//! acknowledgement is written. A full window or pool stops this socket's reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::tls::WriteHalf as OwnedWriteHalf;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::broker::now_ms;
use crate::memory::Grant;
use crate::mqtt::codec::{self, reason, DecodeError, Packet, Publish, Version};
use crate::mqtt::session::{self, AckKind, ClientSession, PublishAction, Qos2Pending, Violation};
use crate::mqtt::sink::{Commit, Source};
use crate::mqtt::Ingest;

/// Publishes gathered from one read before they are handed to the sink together.
const BATCH_MESSAGES_MAX: usize = 1024;
/// Payload bytes gathered from one read before they are handed to the sink together.
const BATCH_BYTES_MAX: usize = 512 * 1024;
/// How long a closing connection may take to send its last acknowledgements.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Accept MQTT connections until `shutdown` turns true, each after a TLS handshake when
/// `tls` is given; `connections` (shared by the plain and TLS listeners) caps how many are
/// open at once.
pub async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    tls: Option<crate::tls::Acceptor>,
    connections: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "MQTT accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = ingest.config.max_connections, "MQTT connection limit reached; closing new connection");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let ingest = ingest.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            ingest
                .metrics
                .connections_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let served = async {
                // A TLS connection's buffers are counted in the MQTT pool while it is open.
                let _tls_bytes = crate::tls::connection_grant(tls.as_ref(), &ingest.pool).await;
                let (stream, _) = crate::tls::accept(tls.as_ref(), socket).await.inspect_err(
                    |error| tracing::warn!(%peer, %error, "MQTT TLS handshake failed"),
                )?;
                connection(stream, peer, ingest, shutdown).await
            };
            if let Err(error) = served.await {
                tracing::debug!(%peer, %error, "MQTT connection ended");
            }
            drop(permit);
        });
    }
}

/// One acknowledgement owed for a publish.
#[derive(Debug, Clone, Copy)]
struct OwedAck {
    kind: AckKind,
    packet_id: u16,
    routed: bool,
}

/// What the reader hands the writer, in order.
enum Outgoing {
    /// Acknowledge once `commit` is committed; the permits are released then.
    Acks {
        commit: Commit,
        acks: Vec<OwedAck>,
        _permits: Permits,
    },
    /// PUBREC for a resent QoS 2 publish, once the first copy's commit is known and done.
    ResentQos2 {
        pending: Qos2Pending,
        packet_id: u16,
    },
    /// Send now (after everything before it).
    Packet(Packet),
    /// Send this last packet, if any, and close.
    Close(Option<Packet>),
}

/// In-flight slots and pool bytes held by publishes until they are acknowledged.
#[derive(Default)]
struct Permits {
    inflight: Option<OwnedSemaphorePermit>,
    grants: Vec<Grant>,
}

impl Permits {
    fn add(&mut self, inflight: Option<OwnedSemaphorePermit>, grant: Grant) {
        match (self.inflight.as_mut(), inflight) {
            (Some(held), Some(more)) => held.merge(more),
            (None, more) => self.inflight = more,
            (Some(_), None) => {}
        }
        self.grants.push(grant);
    }
}

/// What one publish holds while it waits: an in-flight slot (QoS 1 and 2) and its bytes.
type Reserved = (Option<OwnedSemaphorePermit>, Grant);

/// Publishes read but not yet handed to the sink.
#[derive(Default)]
struct Batch {
    messages: Vec<Publish>,
    acks: Vec<Option<AckKind>>,
    qos2: Vec<(u16, watch::Sender<Option<Commit>>)>,
    permits: Permits,
    bytes: usize,
}

/// How the reader loop ended.
enum End {
    /// The client sent DISCONNECT.
    Disconnected,
    /// The client closed the socket, or the writer stopped.
    Closed,
    /// Close with this violation (v5 clients get a DISCONNECT first).
    Violation(Violation),
}

struct Conn {
    peer: SocketAddr,
    ingest: Arc<Ingest>,
    client: ClientSession,
    out: mpsc::Sender<Outgoing>,
    inflight: Arc<Semaphore>,
    taken_over: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    routed: Vec<bool>,
    /// `User:<name>` when `require_auth` logged the client in: its publishes need Write.
    principal: Option<String>,
    /// `security.max_requests_per_second_per_connection`, counted in packets.
    rate: crate::security::rate::ConnectionRate,
}

async fn connection(
    socket: crate::tls::Stream,
    peer: SocketAddr,
    ingest: Arc<Ingest>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (mut reader, mut writer) = socket.into_split();
    let max_packet = ingest.config.max_packet_bytes as usize;
    let mut buf = BytesMut::with_capacity(4096);
    let connect_timeout = Duration::from_millis(ingest.config.connect_timeout_ms);
    let first = match tokio::time::timeout(
        connect_timeout,
        read_frame(&mut reader, &mut buf, max_packet),
    )
    .await
    {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(error)) => {
            ingest
                .metrics
                .protocol_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%peer, %error, "bad first packet; closing connection");
            return Ok(());
        }
        Err(_) => {
            tracing::debug!(%peer, "no CONNECT in time; closing connection");
            return Ok(());
        }
    };
    let connect = match codec::decode(first, Version::V311) {
        Ok(Packet::Connect(connect)) => connect,
        Ok(other) => {
            ingest
                .metrics
                .protocol_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%peer, packet = other.name(), "first packet is not CONNECT; closing connection");
            return Ok(());
        }
        Err(DecodeError::UnsupportedProtocol { name, level }) => {
            tracing::warn!(%peer, %name, level, "unsupported MQTT protocol; refusing");
            let code = if level & 0x7f >= 5 {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            } else {
                codec::return_code::UNACCEPTABLE_PROTOCOL_VERSION
            };
            send_now(&mut writer, &session::connack_refused(code), Version::V311).await?;
            return Ok(());
        }
        Err(error) => {
            ingest
                .metrics
                .protocol_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%peer, %error, "malformed CONNECT; closing connection");
            return Ok(());
        }
    };
    let version = connect.version;
    if ingest.config.require_auth {
        if let Err(refusal) = crate::security::mqtt::login(&ingest.security, &connect, peer).await {
            tracing::warn!(%peer, client = %connect.client_id, ?refusal, "MQTT login refused");
            send_now(
                &mut writer,
                &session::connack_refused(refusal.code(version)),
                version,
            )
            .await?;
            return Ok(());
        }
    }
    let principal = ingest
        .config
        .require_auth
        .then(|| format!("User:{}", connect.username.as_deref().unwrap_or_default()));
    if let (Some(principal), Some(will)) = (&principal, &connect.will) {
        if !crate::security::mqtt::may_publish(&ingest, principal, peer, &will.topic) {
            tracing::warn!(%peer, client = %connect.client_id, topic = %will.topic, "MQTT will topic not authorized");
            let refusal = session::Refusal::NotAuthorized;
            send_now(
                &mut writer,
                &session::connack_refused(refusal.code(version)),
                version,
            )
            .await?;
            return Ok(());
        }
    }
    let admission = match session::admit(&connect, &ingest.config, || ingest.assign_client_id()) {
        Ok(admission) => admission,
        Err(refusal) => {
            tracing::warn!(%peer, client = %connect.client_id, ?refusal, "MQTT connection refused");
            send_now(
                &mut writer,
                &session::connack_refused(refusal.code(version)),
                version,
            )
            .await?;
            return Ok(());
        }
    };
    let attached = ingest.sessions.attach(
        &admission.client_id,
        connect.clean_start,
        admission.expiry,
        now_ms() as u64,
    );
    let client = ClientSession::new(
        &connect,
        &admission,
        attached.state.clone(),
        ingest.config.max_inflight_messages,
    );
    send_now(
        &mut writer,
        &session::connack_accepted(
            &connect,
            &admission,
            attached.session_present,
            &ingest.config,
        ),
        version,
    )
    .await?;
    tracing::info!(
        %peer,
        client = %admission.client_id,
        version = version.level(),
        bridge = connect.bridge,
        session_present = attached.session_present,
        keep_alive_secs = connect.keep_alive_secs,
        "MQTT client connected"
    );
    ingest
        .metrics
        .connected_clients
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let (out, out_rx) = mpsc::channel(usize::from(ingest.config.max_inflight_messages) + 16);
    let writer_task = tokio::spawn(write_loop(writer, out_rx, version, ingest.clone()));
    let mut conn = Conn {
        peer,
        ingest: ingest.clone(),
        client,
        out,
        inflight: Arc::new(Semaphore::new(usize::from(
            ingest.config.max_inflight_messages,
        ))),
        taken_over: attached.taken_over.clone(),
        shutdown,
        routed: Vec::new(),
        principal,
        rate: crate::security::rate::ConnectionRate::new(
            ingest
                .security
                .config
                .max_requests_per_second_per_connection,
            crate::security::rate::Listener::Mqtt,
            peer,
        ),
    };
    let keep_alive = (connect.keep_alive_secs > 0)
        .then(|| Duration::from_millis(u64::from(connect.keep_alive_secs) * 1500));
    let end = conn
        .read_loop(&mut reader, buf, max_packet, keep_alive)
        .await;
    let publish_will = match end {
        Ok(End::Disconnected) => false,
        Ok(End::Closed) => true,
        Ok(End::Violation(violation)) => {
            if violation.reason != reason::SESSION_TAKEN_OVER
                && violation.reason != reason::SERVER_SHUTTING_DOWN
            {
                ingest
                    .metrics
                    .protocol_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(%peer, client = %conn.client.client_id, reason = violation.reason, error = %violation, "closing MQTT connection");
            } else {
                tracing::info!(%peer, client = %conn.client.client_id, error = %violation, "closing MQTT connection");
            }
            let last = conn
                .client
                .server_disconnect(violation.reason, violation.message);
            let _ = conn.out.send(Outgoing::Close(last)).await;
            // No wills while the logs are being closed.
            violation.reason != reason::SERVER_SHUTTING_DOWN
        }
        Err(error) => {
            tracing::debug!(%peer, %error, "MQTT read failed");
            true
        }
    };
    let Conn { client, out, .. } = conn;
    drop(out);
    // Let the writer send what is committed; a commit that fails ends it without acks.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, writer_task).await;
    ingest.sessions.detach(
        &client.client_id,
        attached.connection,
        client.expiry,
        now_ms() as u64,
    );
    ingest
        .metrics
        .connected_clients
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(%peer, client = %client.client_id, "MQTT client disconnected");
    if publish_will {
        if let Some(will) = client.will.clone() {
            tokio::spawn(publish_will_message(
                ingest,
                client.client_id.clone(),
                attached.connection,
                will,
            ));
        }
    }
    Ok(())
}

/// Read until one whole frame is buffered; `None` at a clean end of stream.
async fn read_frame(
    reader: &mut crate::tls::ReadHalf,
    buf: &mut BytesMut,
    max_packet: usize,
) -> anyhow::Result<Option<Bytes>> {
    loop {
        if let Some(total) = codec::frame_len(buf)? {
            if total > max_packet {
                anyhow::bail!(
                    "packet of {total} bytes exceeds mqtt.max_packet_bytes ({max_packet})"
                );
            }
            if buf.len() >= total {
                return Ok(Some(buf.split_to(total).freeze()));
            }
            buf.reserve(total - buf.len());
        } else {
            buf.reserve(64);
        }
        if reader.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn send_now(
    writer: &mut OwnedWriteHalf,
    packet: &Packet,
    version: Version,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(64);
    codec::encode(packet, version, &mut out);
    writer.write_all(&out).await?;
    writer.flush().await
}

impl Conn {
    async fn read_loop(
        &mut self,
        reader: &mut crate::tls::ReadHalf,
        mut buf: BytesMut,
        max_packet: usize,
        keep_alive: Option<Duration>,
    ) -> anyhow::Result<End> {
        let mut batch = Batch::default();
        loop {
            // Everything already buffered first: it becomes one batch.
            loop {
                let total = match codec::frame_len(&buf) {
                    Ok(Some(total)) => total,
                    Ok(None) => break,
                    Err(error) => return Ok(End::Violation(malformed(&error))),
                };
                if total > max_packet {
                    return Ok(End::Violation(Violation {
                        reason: reason::PACKET_TOO_LARGE,
                        message: "packet exceeds the maximum packet size",
                    }));
                }
                if buf.len() < total {
                    buf.reserve(total - buf.len());
                    break;
                }
                // Over its packet rate, the connection is not read until a token is back;
                // what it already sent is acknowledged first.
                if self.rate.would_wait() {
                    self.flush(&mut batch).await?;
                }
                self.rate.pace().await;
                let permits = if buf[0] >> 4 == 3 {
                    let qos = (buf[0] >> 1) & 0x03;
                    match self.reserve(&mut batch, qos > 0, total).await? {
                        Some(permits) => Some(permits),
                        None => return Ok(End::Violation(self.interrupted())),
                    }
                } else {
                    None
                };
                let frame = buf.split_to(total).freeze();
                let packet = match codec::decode(frame, self.client.version) {
                    Ok(packet) => packet,
                    Err(error) => return Ok(End::Violation(malformed(&error))),
                };
                if let Some(end) = self.handle(packet, permits, &mut batch).await? {
                    return Ok(end);
                }
            }
            self.flush(&mut batch).await?;
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(8192);
            }
            let read = reader.read_buf(&mut buf);
            let timeout = async {
                match keep_alive {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = read => {
                    if read? == 0 {
                        return Ok(End::Closed);
                    }
                }
                _ = timeout => {
                    return Ok(End::Violation(Violation { reason: reason::KEEP_ALIVE_TIMEOUT, message: "nothing received within 1.5 × keep-alive" }));
                }
                _ = self.taken_over.notified() => return Ok(End::Violation(taken_over())),
                _ = self.shutdown.changed() => return Ok(End::Violation(shutting_down())),
                _ = self.out.closed() => return Ok(End::Closed),
            }
        }
    }

    /// Take an in-flight slot (QoS 1/2) and `bytes` of the MQTT pool for the next publish.
    /// When they are not free, hand the batch over first (its acks free them) and wait.
    /// `None` when the connection must end meanwhile.
    async fn reserve(
        &mut self,
        batch: &mut Batch,
        needs_slot: bool,
        bytes: usize,
    ) -> anyhow::Result<Option<Reserved>> {
        let slot = if needs_slot {
            match self.inflight.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.flush(batch).await?;
                    let acquire = self.inflight.clone().acquire_owned();
                    tokio::select! {
                        permit = acquire => Some(permit?),
                        _ = self.taken_over.notified() => return Ok(None),
                        _ = self.shutdown.changed() => return Ok(None),
                    }
                }
            }
        } else {
            None
        };
        let pool = self.ingest.pool.clone();
        let grant = match pool.try_acquire(bytes as u64) {
            Some(grant) => grant,
            None => {
                self.flush(batch).await?;
                tokio::select! {
                    grant = pool.acquire(bytes as u64) => grant,
                    _ = self.taken_over.notified() => return Ok(None),
                    _ = self.shutdown.changed() => return Ok(None),
                }
            }
        };
        Ok(Some((slot, grant)))
    }

    fn interrupted(&self) -> Violation {
        if *self.shutdown.borrow() {
            shutting_down()
        } else {
            taken_over()
        }
    }

    /// Apply one packet. `Some` ends the connection.
    async fn handle(
        &mut self,
        packet: Packet,
        permits: Option<Reserved>,
        batch: &mut Batch,
    ) -> anyhow::Result<Option<End>> {
        match packet {
            Packet::Publish(publish) => {
                if let Some(principal) = &self.principal {
                    let ingest = &self.ingest;
                    if !crate::security::mqtt::may_publish(
                        ingest,
                        principal,
                        self.peer,
                        &publish.topic,
                    ) {
                        tracing::warn!(peer = %self.peer, client = %self.client.client_id, topic = %publish.topic, "MQTT publish not authorized; closing connection");
                        self.flush(batch).await?;
                        return Ok(Some(End::Violation(Violation {
                            reason: reason::NOT_AUTHORIZED,
                            message: "not authorized to publish to this topic",
                        })));
                    }
                }
                let (slot, grant) = permits.expect("a publish was given permits");
                match self.client.on_publish(&publish) {
                    Err(violation) => return Ok(Some(End::Violation(violation))),
                    Ok(PublishAction::Duplicate(pending)) => {
                        self.flush(batch).await?;
                        drop((slot, grant));
                        self.send(Outgoing::ResentQos2 {
                            pending,
                            packet_id: publish.packet_id,
                        })
                        .await?;
                    }
                    Ok(PublishAction::Ingest { ack, qos2 }) => {
                        if let Some(sender) = qos2 {
                            batch.qos2.push((publish.packet_id, sender));
                        }
                        batch.bytes += publish.payload.len();
                        batch.acks.push(ack);
                        batch.messages.push(publish);
                        batch.permits.add(slot, grant);
                        if batch.messages.len() >= BATCH_MESSAGES_MAX
                            || batch.bytes >= BATCH_BYTES_MAX
                        {
                            self.flush(batch).await?;
                        }
                    }
                }
            }
            Packet::PubRel(release) => {
                self.flush(batch).await?;
                let reply = self.client.on_pubrel(release.packet_id);
                self.send(Outgoing::Packet(reply)).await?;
            }
            Packet::PingReq => {
                self.flush(batch).await?;
                self.send(Outgoing::Packet(Packet::PingResp)).await?;
            }
            Packet::Subscribe(subscribe) => {
                tracing::info!(peer = %self.peer, client = %self.client.client_id, filters = subscribe.filters.len(), "subscription refused: bramble ingests MQTT only");
                self.flush(batch).await?;
                let reply = self.client.on_subscribe(&subscribe);
                self.send(Outgoing::Packet(reply)).await?;
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.flush(batch).await?;
                let reply = self.client.on_unsubscribe(&unsubscribe);
                self.send(Outgoing::Packet(reply)).await?;
            }
            Packet::Disconnect(disconnect) => {
                self.flush(batch).await?;
                if let Err(violation) = self.client.on_disconnect(&disconnect) {
                    return Ok(Some(End::Violation(violation)));
                }
                return Ok(Some(if self.client.will.is_some() {
                    End::Closed
                } else {
                    End::Disconnected
                }));
            }
            // bramble never publishes to clients, so acknowledgements from them are stray.
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) => {
                return Ok(Some(End::Violation(Violation {
                    reason: reason::PROTOCOL_ERROR,
                    message: "acknowledgement for a publish never sent",
                })));
            }
            Packet::Connect(_) => {
                return Ok(Some(End::Violation(Violation {
                    reason: reason::PROTOCOL_ERROR,
                    message: "second CONNECT",
                })));
            }
            Packet::Auth(_) => {
                return Ok(Some(End::Violation(Violation {
                    reason: reason::PROTOCOL_ERROR,
                    message: "AUTH without enhanced authentication",
                })));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return Ok(Some(End::Violation(Violation {
                    reason: reason::PROTOCOL_ERROR,
                    message: "server-to-client packet sent by a client",
                })));
            }
        }
        Ok(None)
    }

    /// Hand the batch to the sink and queue its acknowledgements behind its commit.
    async fn flush(&mut self, batch: &mut Batch) -> anyhow::Result<()> {
        if batch.messages.is_empty() {
            return Ok(());
        }
        let source = Source {
            client_id: &self.client.client_id,
            only_route: None,
        };
        let result = self
            .ingest
            .sink
            .ingest(source, &batch.messages, &mut self.routed)
            .await;
        let commit = match result {
            Ok(commit) => commit,
            Err(error) => {
                for (packet_id, _) in batch.qos2.drain(..) {
                    self.client.forget_qos2(packet_id);
                }
                tracing::error!(peer = %self.peer, client = %self.client.client_id, %error, "MQTT ingest failed; closing connection without acknowledging");
                let last = self
                    .client
                    .server_disconnect(reason::UNSPECIFIED_ERROR, "the log cannot take writes");
                let _ = self.out.send(Outgoing::Close(last)).await;
                anyhow::bail!("ingest failed: {error}");
            }
        };
        for (_, sender) in batch.qos2.drain(..) {
            sender.send_replace(Some(commit.clone()));
        }
        let acks: Vec<OwedAck> = batch
            .messages
            .iter()
            .zip(&batch.acks)
            .zip(&self.routed)
            .filter_map(|((message, ack), routed)| {
                ack.map(|kind| OwedAck {
                    kind,
                    packet_id: message.packet_id,
                    routed: *routed,
                })
            })
            .collect();
        batch.messages.clear();
        batch.acks.clear();
        batch.bytes = 0;
        let permits = std::mem::take(&mut batch.permits);
        if !acks.is_empty() {
            self.send(Outgoing::Acks {
                commit,
                acks,
                _permits: permits,
            })
            .await?;
        }
        Ok(())
    }

    async fn send(&self, item: Outgoing) -> anyhow::Result<()> {
        self.out
            .send(item)
            .await
            .map_err(|_| anyhow::anyhow!("MQTT writer stopped"))
    }
}

fn malformed(error: &DecodeError) -> Violation {
    Violation {
        reason: error.reason_code(),
        message: match error {
            DecodeError::Malformed(m) | DecodeError::Protocol(m) => m,
            DecodeError::UnsupportedProtocol { .. } => "second CONNECT",
        },
    }
}

fn taken_over() -> Violation {
    Violation {
        reason: reason::SESSION_TAKEN_OVER,
        message: "another connection took this client id",
    }
}

fn shutting_down() -> Violation {
    Violation {
        reason: reason::SERVER_SHUTTING_DOWN,
        message: "bramble is shutting down",
    }
}

/// Write acknowledgements in order, each once its commit is done. A commit that fails
/// ends the connection without acknowledging, so the client sends the messages again.
async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut items: mpsc::Receiver<Outgoing>,
    version: Version,
    ingest: Arc<Ingest>,
) -> anyhow::Result<()> {
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    while let Some(item) = items.recv().await {
        match item {
            Outgoing::Acks {
                commit,
                acks: owed,
                _permits,
            } => {
                if !commit.is_empty() {
                    write_out(&mut writer, &mut out).await?;
                }
                if let Err(error) = ingest.sink.wait(&commit).await {
                    tracing::error!(%error, "commit failed; closing MQTT connection without acknowledging");
                    return Err(error.into());
                }
                // Released before the write: the records are committed; only the ack is left.
                drop(_permits);
                for ack in owed {
                    let packet = session::ack_packet(version, ack.kind, ack.packet_id, ack.routed);
                    codec::encode(&packet, version, &mut out);
                }
            }
            Outgoing::ResentQos2 {
                mut pending,
                packet_id,
            } => {
                write_out(&mut writer, &mut out).await?;
                let commit = match pending.wait_for(Option::is_some).await {
                    Ok(commit) => commit.clone().unwrap_or_default(),
                    Err(_) => {
                        anyhow::bail!("the first copy of QoS 2 message {packet_id} was not written")
                    }
                };
                ingest.sink.wait(&commit).await?;
                codec::encode(
                    &Packet::PubRec(codec::Ack::new(packet_id)),
                    version,
                    &mut out,
                );
            }
            Outgoing::Packet(packet) => codec::encode(&packet, version, &mut out),
            Outgoing::Close(last) => {
                if let Some(packet) = last {
                    codec::encode(&packet, version, &mut out);
                }
                write_out(&mut writer, &mut out).await?;
                let _ = writer.shutdown().await;
                return Ok(());
            }
        }
        if items.is_empty() || out.len() >= 64 * 1024 {
            write_out(&mut writer, &mut out).await?;
        }
    }
    write_out(&mut writer, &mut out).await?;
    Ok(())
}

async fn write_out(writer: &mut OwnedWriteHalf, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        writer.write_all(out).await?;
        // A no-op on plain TCP; over TLS it pushes out the last record.
        writer.flush().await?;
        out.clear();
    }
    Ok(())
}

/// Publish a will: after its v5 delay, unless the client came back meanwhile.
async fn publish_will_message(
    ingest: Arc<Ingest>,
    client_id: String,
    connection: u64,
    will: codec::Will,
) {
    if let Some(delay) = will.properties.will_delay_interval.filter(|d| *d > 0) {
        tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
        if ingest
            .sessions
            .owner(&client_id)
            .is_some_and(|owner| owner != connection)
        {
            tracing::debug!(client = %client_id, "client reconnected within the will delay; will not published");
            return;
        }
    }
    let message = Publish {
        dup: false,
        qos: will.qos,
        retain: will.retain,
        topic: will.topic,
        packet_id: 0,
        properties: will.properties,
        payload: will.payload,
    };
    let mut routed = Vec::new();
    let source = Source {
        client_id: &client_id,
        only_route: None,
    };
    match ingest
        .sink
        .ingest(source, std::slice::from_ref(&message), &mut routed)
        .await
    {
        Ok(commit) => match ingest.sink.wait(&commit).await {
            Ok(()) => {
                tracing::info!(client = %client_id, topic = %message.topic, routed = routed.first().copied().unwrap_or(false), "will message published")
            }
            Err(error) => {
                tracing::error!(client = %client_id, %error, "will message not committed")
            }
        },
        Err(error) => tracing::error!(client = %client_id, %error, "will message not written"),
    }
}

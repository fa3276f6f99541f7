//! The Kafka listener: an accept loop with a connection cap, and one task per connection
//! that reads a frame, has it answered, and writes the response, in order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use kafka_protocol::messages::ApiKey;

use crate::kafka::{self, frame, Context};
use crate::memory::{Grant, Pool};
use crate::security::rate::{ConnectionRate, Listener};
use crate::security::sasl::{ConnectionAuth, Gate, RawStep};

/// Limits the listener enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: u32,
    /// Largest request frame.
    pub request_max_bytes: u32,
}

/// Accept connections until `shutdown` turns true; with `tls`, each completes a TLS
/// handshake first (`ctx.protocol` says how the listener is secured).
pub async fn serve(
    listener: TcpListener,
    ctx: Context,
    limits: Limits,
    request_pool: Arc<Pool>,
    tls: Option<crate::tls::Acceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections as usize));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection limit reached; closing new connection");
            continue;
        };
        let Some(ip_slot) = ctx.security.connections_per_ip.acquire(peer.ip()) else {
            tracing::warn!(%peer, "broker.max_connections_per_ip reached for this address; closing new connection");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let mut ctx = ctx.clone();
        ctx.peer = Some(peer);
        let request_pool = request_pool.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = async {
                // A TLS connection's buffers are counted in the request pool while it is open.
                let _tls_bytes = crate::tls::connection_grant(tls.as_ref(), &request_pool).await;
                let (stream, identity) = crate::tls::accept(tls.as_ref(), socket)
                    .await
                    .inspect_err(|error| tracing::warn!(%peer, %error, "TLS handshake failed"))?;
                ctx.tls_client_cn = identity.common_name;
                connection(stream, peer, ctx, limits, request_pool, shutdown).await
            };
            if let Err(error) = served.await {
                tracing::debug!(%peer, %error, "connection closed");
            }
            drop(permit);
            drop(ip_slot);
        });
    }
}

/// What a partition-replication connection from another node may ask: it is trusted
/// past ACLs (see [`crate::security::authorize::check`]), so it gets nothing else.
const REPLICA_APIS: [ApiKey; 3] = [
    ApiKey::ApiVersions,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::Fetch,
];

/// Serve the partition-replication (`BRKF`) connections other nodes open to the peer port,
/// already past their preamble (and their TLS handshake with `[cluster] tls`).
pub async fn serve_peers(
    mut inbound: tokio::sync::mpsc::Receiver<crate::tls::Stream>,
    mut ctx: Context,
    limits: Limits,
    request_pool: Arc<Pool>,
    mut shutdown: watch::Receiver<bool>,
) {
    ctx.inter_broker = true;
    loop {
        let stream = tokio::select! {
            stream = inbound.recv() => match stream {
                Some(stream) => stream,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        let Ok(peer) = stream.tcp().peer_addr() else {
            continue;
        };
        let mut ctx = ctx.clone();
        ctx.peer = Some(peer);
        let request_pool = request_pool.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = connection(stream, peer, ctx, limits, request_pool, shutdown).await
            {
                tracing::debug!(%peer, %error, "replication connection closed");
            }
        });
    }
}

/// Requests read ahead of their answers on one connection (a producer pipelining while its
/// earlier appends wait for fsync). Beyond this the connection stops reading.
const MAX_PIPELINED: usize = 16;

/// An encoded response and the memory grants it holds until it has been written.
struct Answer {
    bytes: BytesMut,
    _held: Vec<Grant>,
}

/// An answer on its way.
type PendingAnswer =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Answer>> + Send>>;

fn ready(bytes: anyhow::Result<BytesMut>, held: Vec<Grant>) -> PendingAnswer {
    Box::pin(async move { bytes.map(|bytes| Answer { bytes, _held: held }) })
}

async fn connection(
    stream: crate::tls::Stream,
    peer: SocketAddr,
    mut ctx: Context,
    limits: Limits,
    request_pool: Arc<Pool>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (mut reader, writer) = stream.into_split();
    // Answers are written in request order by their own task, so the reader can take the
    // next request while an earlier one waits for its fsync.
    let (answers, pending) = tokio::sync::mpsc::channel::<PendingAnswer>(MAX_PIPELINED);
    let mut write_task = tokio::spawn(write_answers(writer, pending));
    let mut writer_gone = false;
    let mut auth = ConnectionAuth::new(ctx.security.clone(), ctx.protocol, peer.ip());
    // Replication connections from other nodes are the cluster's own: not rate limited.
    let per_second = if ctx.inter_broker {
        0
    } else {
        ctx.security.config.max_requests_per_second_per_connection
    };
    let mut rate = ConnectionRate::new(per_second, Listener::Kafka, peer);
    let result = async {
        loop {
            let length = tokio::select! {
                length = reader.read_i32() => match length {
                    Ok(length) => length,
                    Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(error) => return Err(error.into()),
                },
                _ = shutdown.changed() => return Ok(()),
                _ = &mut write_task => {
                    writer_gone = true;
                    return Ok(());
                }
            };
            if length < 0 || length as u32 > limits.request_max_bytes {
                tracing::warn!(%peer, length, max = limits.request_max_bytes, "request frame too large; closing connection");
                return Ok(());
            }
            // Hold the frame against the request pool until its answer is written: twice its
            // size, for the frame and what is decoded or copied from it (a Produce copies its
            // records once). A full pool stops this reader: TCP backpressure.
            let grant = request_pool.acquire(2 * length as u64).await;
            // The frame waited for the pool: its Produce answer asks the client to slow down.
            let pressured = grant.pressured();
            let mut body = BytesMut::zeroed(length as usize);
            reader.read_exact(&mut body).await?;
            // Over its request rate, the connection is not read until a token is back; the
            // answer says how long it was held.
            let held_ms = i32::try_from(rate.pace().await.as_millis()).unwrap_or(i32::MAX);
            if auth.expects_raw_token() {
                // After SaslHandshake v0 the exchange goes on in raw tokens.
                let RawStep::Reply(bytes) = auth.raw_token(body.freeze()).await else {
                    return Ok(());
                };
                ctx.principal = auth.principal().clone();
                if answers.send(ready(Ok(bytes), vec![grant])).await.is_err() {
                    return Ok(());
                }
                continue;
            }
            let answer: PendingAnswer = match frame::decode_request(Bytes::from(body)) {
                Ok(request) => {
                    let header = request.header.clone();
                    let request = match auth.gate(request).await {
                        Gate::Pass(request) => request,
                        Gate::Answer { response, close } => {
                            ctx.principal = auth.principal().clone();
                            let bytes = frame::encode_response(&header, header_key(&header), &response);
                            if answers.send(ready(bytes, vec![grant])).await.is_err() || close {
                                return Ok(());
                            }
                            continue;
                        }
                        Gate::Close(reason) => {
                            tracing::info!(%peer, %reason, "closing connection");
                            return Ok(());
                        }
                    };
                    if ctx.inter_broker && !REPLICA_APIS.contains(&request.api_key) {
                        tracing::warn!(%peer, api = ?request.api_key, "a peer-port replication connection may only fetch replicas; closing it");
                        return Ok(());
                    }
                    let api_key = request.api_key;
                    let started = std::time::Instant::now();
                    let metrics = crate::health::metrics::kafka();
                    match kafka::handle(&ctx, request).await {
                        kafka::Reply::Nothing => {
                            metrics.request(api_key as i16, started.elapsed());
                            continue;
                        }
                        kafka::Reply::Now(mut response) => {
                            metrics.request(api_key as i16, started.elapsed());
                            if pressured {
                                kafka::throttle_for_memory(&mut response);
                            }
                            kafka::throttle(&mut response, held_ms);
                            ready(frame::encode_response(&header, api_key, &response), vec![grant])
                        }
                        kafka::Reply::Held(mut response, fetch_grant) => {
                            metrics.request(api_key as i16, started.elapsed());
                            kafka::throttle(&mut response, held_ms);
                            ready(frame::encode_response(&header, api_key, &response), vec![grant, fetch_grant])
                        }
                        kafka::Reply::Later(response) => Box::pin(async move {
                            let mut response = response.await;
                            if pressured {
                                kafka::throttle_for_memory(&mut response);
                            }
                            kafka::throttle(&mut response, held_ms);
                            metrics.request(api_key as i16, started.elapsed());
                            let bytes = frame::encode_response(&header, api_key, &response)?;
                            Ok(Answer { bytes, _held: vec![grant] })
                        }),
                    }
                }
                Err(frame::FrameError::ApiVersionsUnsupported { correlation_id, version }) => {
                    tracing::debug!(%peer, version, "ApiVersions at an unsupported version");
                    ready(frame::encode_api_versions_unsupported(correlation_id), vec![grant])
                }
                Err(frame::FrameError::Close(reason)) => {
                    tracing::warn!(%peer, %reason, "bad request; closing connection");
                    return Ok(());
                }
            };
            if answers.send(answer).await.is_err() {
                return Ok(());
            }
        }
    }
    .await;
    // Let the answers already promised go out before the connection closes.
    drop(answers);
    if !writer_gone {
        let _ = write_task.await;
    }
    result
}

/// Write answers in the order their requests arrived; flush when none is waiting.
async fn write_answers(
    writer: crate::tls::WriteHalf,
    mut pending: tokio::sync::mpsc::Receiver<PendingAnswer>,
) -> anyhow::Result<()> {
    let mut writer = BufWriter::new(writer);
    while let Some(answer) = pending.recv().await {
        let answer = answer.await?;
        writer.write_all(&answer.bytes).await?;
        // The answer's grants go back to their pools here, once its bytes are out.
        drop(answer);
        if pending.is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    Ok(())
}

/// The API a request header names (the gate only answers APIs that decoded).
fn header_key(
    header: &kafka_protocol::messages::RequestHeader,
) -> kafka_protocol::messages::ApiKey {
    kafka_protocol::messages::ApiKey::try_from(header.request_api_key)
        .expect("a decoded request has a known API key")
}

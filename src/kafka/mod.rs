//! Kafka wire handling: framing, one file per API, and the dispatch between them. No socket
//! I/O here: the server reads frames and writes the bytes these functions return.

pub mod acls;
pub mod alter_configs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod errors;
pub mod fetch;
pub mod find_coordinator;
pub mod frame;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod wire_guard;

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};

use crate::broker::producer_ids::ProducerIdAllocator;
use crate::broker::{Broker, Topic};
use crate::group::GroupCoordinator;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Context {
    /// Topics and partitions.
    pub broker: Arc<Broker>,
    /// Consumer groups and committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// Producer ids for InitProducerId.
    pub producer_ids: Arc<ProducerIdAllocator>,
    /// The client's address (set per connection; DescribeGroups shows it).
    pub peer: Option<SocketAddr>,
    /// How the listener this connection came in on is secured.
    pub protocol: crate::config::SecurityProtocol,
    /// Which of `broker.listeners` the connection came in on (Metadata and FindCoordinator
    /// answer with that listener's advertised address).
    pub listener: usize,
    /// The subject common name of the client's TLS certificate, when it presented one (the
    /// listener's CA has verified it).
    pub tls_client_cn: Option<String>,
    /// A partition-replication connection from another node, through the peer port (mutual
    /// TLS with `[cluster] tls`), not a client listener: the broker itself is asking.
    pub inter_broker: bool,
    /// The memory budget (fetch responses draw from its pool).
    pub memory: Arc<crate::memory::Budget>,
    /// Cluster mode: broker metadata and partition replication (None on a single node).
    pub replication: Option<Arc<crate::replication::Replication>>,
    /// Users, SASL mechanisms and failed-login back-off.
    pub security: Arc<crate::security::Security>,
    /// Who the connection is: `User:<name>` once SASL has authenticated it, else
    /// `User:ANONYMOUS`.
    pub principal: Arc<str>,
}

impl Context {
    /// The client's host as Kafka shows it (`/127.0.0.1`).
    pub fn client_host(&self) -> String {
        self.peer
            .map_or_else(|| "/unknown".to_string(), |p| format!("/{}", p.ip()))
    }
}

/// throttle_time_ms of a Produce or Fetch answered while its memory pool was short (the
/// request frame waited for the request pool, or the fetch was served smaller or waited).
/// Clients honour it (KIP-219) by holding their next request to this broker that long.
pub const POOL_THROTTLE_MS: i32 = 100;

/// Sets [`POOL_THROTTLE_MS`] on a Produce or Fetch response and counts it (other responses
/// carry no throttle that helps memory).
pub fn throttle_for_memory(response: &mut ResponseKind) {
    let api_key = match response {
        ResponseKind::Produce(r) => {
            r.throttle_time_ms = r.throttle_time_ms.max(POOL_THROTTLE_MS);
            kafka_protocol::messages::ApiKey::Produce
        }
        ResponseKind::Fetch(r) => {
            r.throttle_time_ms = r.throttle_time_ms.max(POOL_THROTTLE_MS);
            kafka_protocol::messages::ApiKey::Fetch
        }
        _ => return,
    };
    crate::health::metrics::kafka().throttled(api_key as i16);
}

/// A response still being made: a Produce waits for its fsync after the append.
pub type LaterResponse = std::pin::Pin<Box<dyn std::future::Future<Output = ResponseKind> + Send>>;

/// What a handler gives back.
// A response is moved once per request; boxing the large variant would cost an allocation
// on every request instead.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// The response is ready.
    Now(ResponseKind),
    /// The request's work is done (e.g. appended) but the answer waits for something else
    /// (durability). The connection keeps reading and answers in order, so one producer's
    /// pipelined requests share fsyncs.
    Later(LaterResponse),
    /// The protocol wants no response (Produce with acks=0).
    Nothing,
    /// The response is ready and its buffers are counted in a memory pool until it is
    /// written (Fetch).
    Held(ResponseKind, crate::memory::Grant),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Now(response) => f.debug_tuple("Now").field(response).finish(),
            Reply::Later(_) => f.write_str("Later"),
            Reply::Nothing => f.write_str("Nothing"),
            Reply::Held(response, grant) => {
                f.debug_tuple("Held").field(response).field(grant).finish()
            }
        }
    }
}

/// Answer one request, after the ACL check of [`crate::security::authorize`]: refused
/// parts of the request are answered with Kafka's authorization errors.
pub async fn handle(ctx: &Context, mut request: frame::Request) -> Reply {
    use crate::security::authorize;
    let decision = authorize::check(ctx, &mut request.body);
    if let authorize::Decision::Refused(response) = decision {
        return Reply::Now(*response);
    }
    if matches!(decision, authorize::Decision::Allowed) {
        return dispatch(ctx, request).await;
    }
    match dispatch(ctx, request).await {
        Reply::Now(mut r) => {
            authorize::patch(ctx, &decision, &mut r);
            Reply::Now(r)
        }
        Reply::Held(mut r, grant) => {
            authorize::patch(ctx, &decision, &mut r);
            Reply::Held(r, grant)
        }
        Reply::Later(later) => {
            let ctx = ctx.clone();
            Reply::Later(Box::pin(async move {
                let mut r = later.await;
                authorize::patch(&ctx, &decision, &mut r);
                r
            }))
        }
        Reply::Nothing => Reply::Nothing,
    }
}

/// Hand a request to its API's handler.
async fn dispatch(ctx: &Context, request: frame::Request) -> Reply {
    let version = request.header.request_api_version;
    let response = match request.body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(r)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(ctx, r, version).await),
        RequestKind::Produce(r) => return produce::handle(ctx, r).await,
        RequestKind::Fetch(r) => {
            let (response, grant) = fetch::handle(ctx, r).await;
            let mut response = ResponseKind::Fetch(response);
            if grant.pressured() && grant.pool_name() == "fetch_responses" {
                throttle_for_memory(&mut response);
            }
            return Reply::Held(response, grant);
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(ctx, r, version))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(ctx, r, version).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics::handle(ctx, r, version).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(ctx, r))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(ctx, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(ctx, r, version).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(join_group::handle(ctx, r, &request.header, version).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group::handle(ctx, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(ctx, r)),
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(leave_group::handle(ctx, r, version))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offset_commit::handle(ctx, r, version).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(ctx, r, version))
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offset_delete::handle(ctx, r).await)
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list_groups::handle(ctx, r)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups::handle(ctx, r))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(delete_groups::handle(ctx, r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(ctx, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs::handle(ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(ctx, r).await)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(ctx, r).await)
        }
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create(ctx, r).await),
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe(ctx, r)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete(ctx, r).await),
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            describe_user_scram_credentials::handle(ctx, r),
        ),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            alter_user_scram_credentials::handle(ctx, r).await,
        ),
        other => {
            // frame::decode_request only lets served APIs through.
            unreachable!("request {other:?} passed the served-API check")
        }
    };
    Reply::Now(response)
}

/// Find a topic, creating it with the broker defaults when allowed. The error is the
/// Kafka code to answer with.
pub async fn resolve_topic(
    ctx: &Context,
    name: &str,
    allow_create: bool,
) -> Result<Arc<Topic>, i16> {
    if let Some(topic) = ctx.broker.topic(name) {
        return Ok(topic);
    }
    if let Err(reason) = crate::broker::topic::validate_topic_name(name) {
        tracing::debug!(topic = name, %reason, "invalid topic name");
        return Err(errors::INVALID_TOPIC_EXCEPTION);
    }
    if !allow_create {
        return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let created = match &ctx.replication {
        Some(r) => {
            r.create_topic(name, -1, -1, Default::default(), false)
                .await
        }
        None => {
            ctx.broker
                .create_topic(name, -1, -1, Default::default(), false)
                .await
        }
    };
    match created {
        Ok(topic) => Ok(topic),
        // Another request created it first.
        Err(crate::broker::TopicError::AlreadyExists(_)) => ctx
            .broker
            .topic(name)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION),
        Err(error) => {
            tracing::warn!(topic = name, %error, "auto-create failed");
            Err(errors::from_topic_error(&error))
        }
    }
}

/// The topic id in the protocol's type.
pub fn topic_response_id(topic: &Topic) -> uuid::Uuid {
    uuid::Uuid::from_bytes(topic.id.0)
}

/// A topic's replication factor when this node is part of a cluster (from partition 0's
/// assignment), `None` on a single node.
pub fn replication_factor(ctx: &Context, topic: &str) -> Option<usize> {
    let replication = ctx.replication.as_ref()?;
    Some(
        replication
            .describe(topic, 0)
            .map_or(1, |(_, _, replicas, _)| replicas.len()),
    )
}

/// Compare the leader epoch a client believes in with the partition's: -1 means "not
/// known" and always passes.
pub fn check_leader_epoch(client_epoch: i32, leader_epoch: i32) -> Result<(), i16> {
    match client_epoch {
        -1 => Ok(()),
        e if e < leader_epoch => Err(errors::FENCED_LEADER_EPOCH),
        e if e > leader_epoch => Err(errors::UNKNOWN_LEADER_EPOCH),
        _ => Ok(()),
    }
}

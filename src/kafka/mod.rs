//! Kafka wire handling: framing, one file per API, and the dispatch between them. No socket
//! I/O here: the server reads frames and writes the bytes these functions return.

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_configs;
pub mod errors;
pub mod fetch;
pub mod frame;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod wire_guard;

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};

use crate::broker::{Broker, Topic};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Context {
    /// Topics and partitions.
    pub broker: Arc<Broker>,
}

/// Answer one request; `None` means the protocol wants no response (Produce with acks=0).
pub async fn handle(ctx: &Context, request: frame::Request) -> Option<ResponseKind> {
    let version = request.header.request_api_version;
    let response = match request.body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(r)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(ctx, r, version).await),
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(ctx, r).await?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(ctx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(ctx, r, version)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::handle(ctx, r, version).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::handle(ctx, r, version).await),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(create_partitions::handle(ctx, r).await),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(describe_configs::handle(ctx, r)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(ctx, r))
        }
        other => {
            // frame::decode_request only lets served APIs through.
            unreachable!("request {other:?} passed the served-API check")
        }
    };
    Some(response)
}

/// Find a topic, creating it with the broker defaults when allowed. The error is the
/// Kafka code to answer with.
pub async fn resolve_topic(ctx: &Context, name: &str, allow_create: bool) -> Result<Arc<Topic>, i16> {
    ctx.broker.resolve_topic(name, allow_create).await.map_err(|error| {
        match &error {
            crate::broker::TopicError::InvalidName(reason) => tracing::debug!(topic = name, %reason, "invalid topic name"),
            crate::broker::TopicError::Unknown(_) => {}
            _ => tracing::warn!(topic = name, %error, "auto-create failed"),
        }
        errors::from_topic_error(&error)
    })
}

/// The topic id in the protocol's type.
pub fn topic_response_id(topic: &Topic) -> uuid::Uuid {
    uuid::Uuid::from_bytes(topic.id.0)
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

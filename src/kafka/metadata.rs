//! Metadata: the brokers, the controller, and each topic's partitions with leader, epoch,
//! replicas and ISR. Unknown topics are created when the client and the broker allow it.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{errors, resolve_topic, topic_response_id, Context};
use crate::broker::Topic;
use crate::ids::Uuid;

/// Handle a Metadata request.
pub async fn handle(ctx: &Context, request: MetadataRequest, version: i16) -> MetadataResponse {
    let broker = &ctx.broker;
    let node = BrokerId(broker.node_id);
    let own = || {
        broker
            .config
            .advertised_for(ctx.listener)
            .into_iter()
            .map(|(host, port)| {
                MetadataResponseBroker::default()
                    .with_node_id(node)
                    .with_host(StrBytes::from_string(host))
                    .with_port(i32::from(port))
            })
    };
    let brokers = match &ctx.replication {
        Some(r) => {
            let mut live: Vec<MetadataResponseBroker> = r
                .live_brokers()
                .into_iter()
                .map(|(id, info)| {
                    let (host, port) = info.endpoint(ctx.listener);
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(i32::from(port))
                })
                .collect();
            // The node answering is alive even before its registration is in the tree (the
            // first moments after start, or after its session was replaced): never an empty
            // or self-less broker list, which clients take for a broken answer.
            if !live.iter().any(|b| b.node_id == node) {
                live.extend(own());
                live.sort_by_key(|b| b.node_id.0);
            }
            live
        }
        None => own().collect(),
    };
    let controller = ctx
        .replication
        .as_ref()
        .map_or(node, |r| BrokerId(r.controller()));
    // v0: an empty list means every topic; v1+: null means every topic.
    let wanted = match request.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(list),
    };
    let topics = match wanted {
        None => broker
            .topics()
            .iter()
            .map(|t| describe_topic(ctx, t))
            .collect(),
        Some(list) => {
            let allow_create = broker.config.auto_create_topics_enable
                && (version < 4 || request.allow_auto_topic_creation);
            let mut topics = Vec::with_capacity(list.len());
            for wanted in list {
                let found = match &wanted.name {
                    Some(name) => resolve_topic(ctx, name.0.as_str(), allow_create).await,
                    None => broker
                        .topic_by_id(Uuid(*wanted.topic_id.as_bytes()))
                        .ok_or(errors::UNKNOWN_TOPIC_ID),
                };
                topics.push(match found {
                    Ok(topic) => describe_topic(ctx, &topic),
                    Err(code) => MetadataResponseTopic::default()
                        .with_error_code(code)
                        .with_name(wanted.name)
                        .with_topic_id(wanted.topic_id),
                });
            }
            topics
        }
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(
            ctx.replication
                .as_ref()
                .map_or_else(|| Some(broker.cluster_id.clone()), |r| r.cluster_id())
                .map(StrBytes::from_string),
        )
        .with_controller_id(controller)
        .with_topics(topics)
}

fn describe_topic(ctx: &Context, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(ctx.broker.node_id);
    let partitions = topic
        .partitions
        .iter()
        .map(|partition| {
            if let Some((leader, epoch, replicas, isr)) = ctx
                .replication
                .as_ref()
                .and_then(|r| r.describe(&topic.name, partition.index))
            {
                return MetadataResponsePartition::default()
                    .with_error_code(if leader < 0 {
                        errors::LEADER_NOT_AVAILABLE
                    } else {
                        0
                    })
                    .with_partition_index(partition.index)
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch)
                    .with_replica_nodes(replicas.into_iter().map(BrokerId).collect())
                    .with_isr_nodes(isr.into_iter().map(BrokerId).collect());
            }
            MetadataResponsePartition::default()
                .with_partition_index(partition.index)
                .with_leader_id(node)
                .with_leader_epoch(partition.leader_epoch())
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic_response_id(topic))
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
}

//! CreateTopics: create each topic with its partition count, replication factor and config
//! overrides, or check them all with `validate_only`.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{errors, topic_response_id, Context};
use crate::broker::TopicError;

/// Config sources in DescribeConfigs/CreateTopics answers.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
/// A static broker setting.
pub const SOURCE_STATIC_BROKER: i8 = 4;
/// Kafka's built-in default.
pub const SOURCE_DEFAULT: i8 = 5;

/// Handle a CreateTopics request.
pub async fn handle(
    ctx: &Context,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let name = wanted.name.0.as_str().to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(wanted.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let mut configs = BTreeMap::new();
        for entry in &wanted.configs {
            if let Some(value) = &entry.value {
                configs.insert(entry.name.as_str().to_string(), value.as_str().to_string());
            }
        }
        let (partitions, replication_factor) = if wanted.assignments.is_empty() {
            (wanted.num_partitions, wanted.replication_factor)
        } else {
            // A manual assignment names the replicas of each partition; here each must be
            // exactly this node.
            let node = ctx.broker.node_id;
            let valid = wanted.assignments.iter().enumerate().all(|(i, a)| {
                a.partition_index == i as i32 && a.broker_ids.iter().map(|b| b.0).eq([node])
            });
            if !valid || wanted.num_partitions != -1 || wanted.replication_factor != -1 {
                result.error_code = errors::INVALID_REPLICA_ASSIGNMENT;
                result.error_message = Some(StrBytes::from_string(format!(
                    "replica assignments must list partitions 0..n in order, each on broker {node}, with num_partitions and replication_factor -1"
                )));
                results.push(result);
                continue;
            }
            (wanted.assignments.len() as i32, 1)
        };
        let created = match &ctx.replication {
            Some(r) => {
                r.create_topic(
                    &name,
                    partitions,
                    replication_factor,
                    configs,
                    request.validate_only,
                )
                .await
            }
            None => {
                ctx.broker
                    .create_topic(
                        &name,
                        partitions,
                        replication_factor,
                        configs,
                        request.validate_only,
                    )
                    .await
            }
        };
        match created {
            Ok(topic) => {
                result.topic_id = topic_response_id(&topic);
                result.num_partitions = if request.validate_only {
                    if partitions == -1 {
                        ctx.broker.config.num_partitions as i32
                    } else {
                        partitions
                    }
                } else {
                    topic.partitions.len() as i32
                };
                let replicas = super::replication_factor(ctx, &name);
                result.replication_factor = replicas.unwrap_or(1) as i16;
                if version >= 5 {
                    let configs = topic
                        .config
                        .describe(&ctx.broker.config, replicas)
                        .into_iter()
                        .map(|(key, value, is_default)| {
                            CreatableTopicConfigs::default()
                                .with_name(StrBytes::from_string(key))
                                .with_value(Some(StrBytes::from_string(value)))
                                .with_config_source(if is_default {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_DYNAMIC_TOPIC
                                })
                        })
                        .collect();
                    result.configs = Some(configs);
                }
            }
            Err(error) => {
                result.error_code = errors::from_topic_error(&error);
                result.error_message = Some(StrBytes::from_string(error.to_string()));
                if matches!(error, TopicError::Storage(_)) {
                    tracing::error!(topic = %name, %error, "topic creation failed");
                }
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

//! DescribeConfigs: a topic's effective settings (overrides and defaults) and the broker's
//! static settings, under Kafka's names.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::{SOURCE_DEFAULT, SOURCE_DYNAMIC_TOPIC, SOURCE_STATIC_BROKER};
use super::{errors, Context};

/// Resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// (key, value, source, read-only)
type ConfigEntry = (String, String, i8, bool);

/// Handle a DescribeConfigs request.
pub fn handle(ctx: &Context, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.as_str().to_string();
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries: Result<Vec<ConfigEntry>, (i16, String)> = match resource.resource_type {
                RESOURCE_TOPIC => match ctx.broker.topic(&name) {
                    Some(topic) => Ok(topic
                        .config
                        .describe(&ctx.broker.config, super::replication_factor(ctx, &name))
                        .into_iter()
                        .map(|(key, value, is_default)| {
                            let source = if is_default {
                                SOURCE_DEFAULT
                            } else {
                                SOURCE_DYNAMIC_TOPIC
                            };
                            (key, value, source, false)
                        })
                        .collect()),
                    None => Err((
                        errors::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic {name} does not exist"),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() || name == ctx.broker.node_id.to_string() => {
                    Ok(broker_configs(ctx))
                }
                RESOURCE_BROKER => Err((
                    errors::INVALID_REQUEST,
                    format!("this is broker {}, not {name}", ctx.broker.node_id),
                )),
                other => Err((
                    errors::INVALID_REQUEST,
                    format!("resource type {other} is not served"),
                )),
            };
            match entries {
                Ok(entries) => {
                    let keys = resource.configuration_keys.as_ref();
                    result.configs = entries
                        .into_iter()
                        .filter(|(key, ..)| {
                            keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
                        })
                        .map(|(key, value, source, read_only)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_string(key))
                                .with_value(Some(StrBytes::from_string(value)))
                                .with_config_source(source)
                                .with_read_only(read_only)
                        })
                        .collect();
                }
                Err((code, message)) => {
                    result.error_code = code;
                    result.error_message = Some(StrBytes::from_string(message));
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn broker_configs(ctx: &Context) -> Vec<ConfigEntry> {
    let c = &ctx.broker.config;
    let dirs: Vec<String> = c.log_dirs.iter().map(|d| d.display().to_string()).collect();
    [
        ("broker.id", ctx.broker.node_id.to_string()),
        ("log.dirs", dirs.join(",")),
        ("num.partitions", c.num_partitions.to_string()),
        (
            "default.replication.factor",
            c.default_replication_factor.to_string(),
        ),
        (
            "min.insync.replicas",
            c.min_insync_for(
                usize::from(c.default_replication_factor),
                ctx.replication.is_some(),
            )
            .to_string(),
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
        ),
        ("message.max.bytes", c.message_max_bytes.to_string()),
        ("log.segment.bytes", c.log_segment_bytes.to_string()),
        ("log.roll.hours", c.log_roll_hours.to_string()),
        ("log.retention.hours", c.log_retention_hours.to_string()),
        ("log.retention.bytes", c.log_retention_bytes.to_string()),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
        ),
        ("fetch.max.bytes", c.fetch_max_bytes.to_string()),
        (
            "offsets.topic.num.partitions",
            c.offsets_topic_num_partitions.to_string(),
        ),
        (
            "offsets.retention.minutes",
            c.offsets_retention_minutes.to_string(),
        ),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
        ),
        (
            "group.min.session.timeout.ms",
            c.group_min_session_timeout_ms.to_string(),
        ),
        (
            "group.max.session.timeout.ms",
            c.group_max_session_timeout_ms.to_string(),
        ),
        ("group.max.size", c.group_max_size.to_string()),
        (
            "producer.id.expiration.ms",
            c.producer_id_expiration_ms.to_string(),
        ),
        ("log.cleaner.enable", c.log_cleaner_enable.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value, SOURCE_STATIC_BROKER, true))
    .collect()
}

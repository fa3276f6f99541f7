//! Produce: validate and append each partition's batches, then answer once the data is
//! durable (acks 1 and -1) or not at all (acks 0).

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use kafka_protocol::messages::ResponseKind;

use super::{errors, resolve_topic, Context, Reply};
use crate::broker::now_ms;

/// Handle a Produce request: append now; answer later, once durable (acks 1 and -1), or
/// not at all (acks 0).
pub async fn handle(ctx: &Context, request: ProduceRequest) -> Reply {
    let acks = request.acks;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    // (topic index, partition index in response, partition, end offset to wait for)
    let mut waits = Vec::new();
    for topic_data in request.topic_data {
        let name = topic_data.name.0.as_str().to_string();
        let topic = resolve_topic(ctx, &name, ctx.broker.config.auto_create_topics_enable).await;
        let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let mut response = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let refuse = |code: i16, message: String| {
                tracing::debug!(topic = %name, partition = data.index, code, %message, "produce refused");
                PartitionProduceResponse::default()
                    .with_index(data.index)
                    .with_error_code(code)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1)
                    .with_error_message(Some(StrBytes::from_string(message)))
            };
            if request.transactional_id.is_some() {
                partition_responses.push(refuse(
                    errors::INVALID_REQUEST,
                    "transactions are not supported by bramble".into(),
                ));
                continue;
            }
            if !matches!(acks, -1..=1) {
                partition_responses.push(refuse(
                    errors::INVALID_REQUIRED_ACKS,
                    format!("acks={acks}"),
                ));
                continue;
            }
            if matches!(&topic, Ok(t) if t.is_internal()) {
                partition_responses.push(refuse(
                    errors::INVALID_TOPIC_EXCEPTION,
                    format!("{name} is internal"),
                ));
                continue;
            }
            let partition = match &topic {
                Ok(topic) => usize::try_from(data.index)
                    .ok()
                    .and_then(|i| topic.partitions.get(i).cloned()),
                Err(code) => {
                    partition_responses.push(refuse(*code, format!("topic {name}")));
                    continue;
                }
            };
            let Some(partition) = partition else {
                partition_responses.push(refuse(
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("{name}-{} does not exist", data.index),
                ));
                continue;
            };
            if let Some(r) = &ctx.replication {
                if let Err(code) = r.check_produce(&name, data.index, acks) {
                    partition_responses.push(refuse(
                        code,
                        format!("{name}-{} on node {}", data.index, ctx.broker.node_id),
                    ));
                    continue;
                }
            }
            let Some(records) = data.records else {
                partition_responses.push(refuse(errors::CORRUPT_MESSAGE, "no records".into()));
                continue;
            };
            // The log rewrites offsets in place, so it needs its own copy of the bytes.
            let mut batches = records.to_vec();
            match partition.append(&mut batches, now_ms()) {
                Ok(info) => {
                    let messages =
                        u64::try_from(info.last_offset - info.base_offset + 1).unwrap_or(0);
                    crate::health::metrics::kafka().produced(&name, messages, batches.len() as u64);
                    response.base_offset = info.base_offset;
                    response.log_start_offset = partition.log_start_offset();
                    waits.push((
                        responses.len(),
                        partition_responses.len(),
                        partition,
                        info.last_offset + 1,
                    ));
                    partition_responses.push(response);
                }
                Err(error) => {
                    let code = errors::from_append_error(&error);
                    if code == errors::KAFKA_STORAGE_ERROR {
                        tracing::error!(topic = %name, partition = data.index, %error, "append failed");
                        crate::health::report_storage_error(format_args!(
                            "append to {name}-{}: {error}",
                            data.index
                        ));
                    }
                    partition_responses.push(refuse(code, error.to_string()));
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        return Reply::Nothing;
    }
    let replication = ctx.replication.clone();
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    if replication.is_some() && acks == -1 && !waits.is_empty() {
        return Reply::Later(Box::pin(async move {
            let replication = replication.expect("checked");
            let deadline = tokio::time::Instant::now() + timeout;
            for (topic_index, partition_index, partition, end_offset) in waits {
                let response = &mut responses[topic_index].partition_responses[partition_index];
                // acks=all: answered once the high watermark (the ISR) has the batch.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if let Err(code) = replication
                    .wait_replicated(&partition, end_offset, left)
                    .await
                {
                    tracing::debug!(topic = %partition.topic, partition = partition.index, end_offset, code, "acks=all not reached");
                    response.error_code = code;
                    response.base_offset = -1;
                }
            }
            ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
        }));
    }
    if !ctx.broker.config.log_flush_on_ack || waits.is_empty() {
        return Reply::Now(ResponseKind::Produce(
            ProduceResponse::default().with_responses(responses),
        ));
    }
    // The same wait as MQTT ingest's: what acks=all needs (see Broker::wait_committed).
    let broker = ctx.broker.clone();
    Reply::Later(Box::pin(async move {
        for (topic_index, partition_index, partition, end_offset) in waits {
            if let Err(error) = broker.wait_committed(&partition, end_offset).await {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "fsync failed");
                crate::health::report_storage_error(format_args!(
                    "fsync of {}-{}: {error}",
                    partition.topic, partition.index
                ));
                let response = &mut responses[topic_index].partition_responses[partition_index];
                response.error_code = errors::KAFKA_STORAGE_ERROR;
                response.base_offset = -1;
                response.error_message =
                    Some(StrBytes::from_string(format!("fsync failed: {error}")));
            }
        }
        ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
    }))
}

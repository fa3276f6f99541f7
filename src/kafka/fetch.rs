//! Fetch: read stored batches as they are on disk, long-polling until `min_bytes` arrive or
//! `max_wait_ms` passes, within `max_bytes` (at least one batch, per KIP-74).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::{check_leader_epoch, errors, Context};
use crate::memory::Grant;

/// Handle a Fetch request from a consumer or a follower. The response's buffers are counted
/// in the fetch pool, or the replication pool for a follower (the grant is held until the
/// response is written): under memory pressure a fetcher gets smaller responses, and waits
/// for at least one batch's worth.
pub async fn handle(ctx: &Context, request: FetchRequest) -> (FetchResponse, Grant) {
    let config = &ctx.broker.config;
    let max_wait = Duration::from_millis(
        request
            .max_wait_ms
            .clamp(0, config.fetch_max_wait_ms as i32) as u64,
    );
    let deadline = tokio::time::Instant::now() + max_wait;
    let wanted = (request.max_bytes.max(0) as u32).min(config.fetch_max_bytes);
    // Twice the bytes: the records read from the log, then their copy in the encoded response.
    // A follower's fetch (replica_id >= 0) is replication: it draws from that pool, so
    // consumers cannot starve the ISR of memory, nor followers the consumers.
    let pool = if ctx.replication.is_some() && request.replica_id.0 >= 0 {
        &ctx.memory.replication
    } else {
        &ctx.memory.fetch_responses
    };
    let grant = pool
        .acquire_up_to(
            2 * u64::from(wanted),
            2 * u64::from(config.message_max_bytes),
        )
        .await;
    let max_bytes = u32::try_from(grant.bytes() / 2)
        .unwrap_or(u32::MAX)
        .min(wanted.max(1));
    let response = long_poll(ctx, &request, max_bytes, min_bytes(&request), deadline).await;
    (response, grant)
}

fn min_bytes(request: &FetchRequest) -> usize {
    request.min_bytes.max(0) as usize
}

async fn long_poll(
    ctx: &Context,
    request: &FetchRequest,
    max_bytes: u32,
    min_bytes: usize,
    deadline: tokio::time::Instant,
) -> FetchResponse {
    let mut arrivals = ctx.broker.data_arrived();
    loop {
        arrivals.borrow_and_update();
        let (responses, total, any_error) = read_all(ctx, request, max_bytes);
        let timed_out = tokio::time::Instant::now() >= deadline;
        if total >= min_bytes.max(1) || any_error || timed_out || min_bytes == 0 {
            count_out(ctx, &responses);
            return FetchResponse::default().with_responses(responses);
        }
        if tokio::time::timeout_at(deadline, arrivals.changed())
            .await
            .is_err()
        {
            let (responses, _, _) = read_all(ctx, request, max_bytes);
            count_out(ctx, &responses);
            return FetchResponse::default().with_responses(responses);
        }
    }
}

/// Count the records going out, per topic, for `/metrics`.
fn count_out(ctx: &Context, responses: &[FetchableTopicResponse]) {
    let metrics = crate::health::metrics::kafka();
    for topic in responses {
        let by_id;
        let name = if topic.topic.0.is_empty() {
            by_id = ctx
                .broker
                .topic_by_id(crate::ids::Uuid(*topic.topic_id.as_bytes()));
            match &by_id {
                Some(t) => t.name.as_str(),
                None => continue,
            }
        } else {
            topic.topic.0.as_str()
        };
        for partition in &topic.partitions {
            if let Some(records) = &partition.records {
                metrics.fetched(name, records);
            }
        }
    }
}

/// One pass over every requested partition: (responses, bytes of records, any error).
fn read_all(
    ctx: &Context,
    request: &FetchRequest,
    max_bytes: u32,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut any_error = false;
    let mut first_data = true;
    let mut responses = Vec::with_capacity(request.topics.len());
    for fetch_topic in &request.topics {
        let topic = ctx.broker.topic(fetch_topic.topic.0.as_str());
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for wanted in &fetch_topic.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(wanted.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_records(Some(Bytes::new()));
            let partition = topic.as_ref().and_then(|topic| {
                usize::try_from(wanted.partition)
                    .ok()
                    .and_then(|i| topic.partitions.get(i).cloned())
            });
            let Some(partition) = partition else {
                data.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                any_error = true;
                partitions.push(data);
                continue;
            };
            if let Some(r) = &ctx.replication {
                if let Err(code) = r.check_fetch(
                    fetch_topic.topic.0.as_str(),
                    &partition,
                    request.replica_id.0,
                    wanted.fetch_offset,
                ) {
                    data.error_code = code;
                    any_error = true;
                    partitions.push(data);
                    continue;
                }
            }
            let high_watermark = partition.high_watermark();
            data.high_watermark = high_watermark;
            data.last_stable_offset = high_watermark;
            data.log_start_offset = partition.log_start_offset();
            if let Err(code) =
                check_leader_epoch(wanted.current_leader_epoch, partition.leader_epoch())
            {
                data.error_code = code;
                any_error = true;
                partitions.push(data);
                continue;
            }
            // Once the response is full, later partitions answer with no records.
            if remaining == 0 {
                partitions.push(data);
                continue;
            }
            let limit = (wanted.partition_max_bytes.max(0) as u32).min(remaining);
            // KIP-74: the first partition with data may exceed the limits by one batch.
            let limit = if first_data { limit.max(1) } else { limit };
            let read = if ctx.replication.is_some() && request.replica_id.0 >= 0 {
                partition.read_for_follower(wanted.fetch_offset, limit)
            } else {
                partition.read(wanted.fetch_offset, limit)
            };
            match read {
                Ok(records) => {
                    // The log always gives one whole batch; only the first may overflow.
                    let records = if !first_data && records.len() > limit as usize {
                        Vec::new()
                    } else {
                        records
                    };
                    if !records.is_empty() {
                        first_data = false;
                        remaining = remaining.saturating_sub(records.len() as u32);
                        total += records.len();
                    }
                    data.records = Some(Bytes::from(records));
                }
                Err(error) => {
                    data.error_code = errors::from_log_error(&error);
                    any_error = true;
                }
            }
            partitions.push(data);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(fetch_topic.topic.clone())
                .with_topic_id(fetch_topic.topic_id)
                .with_partitions(partitions),
        );
    }
    (responses, total, any_error)
}

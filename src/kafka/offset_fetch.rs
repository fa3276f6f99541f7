//! OffsetFetch: committed offsets of one group (v1–7) or several (v8+); -1 where nothing is
//! committed. `require_stable` needs nothing here: without transactions no commit is pending.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Context;
use crate::group::coordinator::FetchedOffsets as Found;
use crate::group::CommittedOffset;

/// Handle an OffsetFetch request.
pub fn handle(ctx: &Context, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes))
                        .collect()
                });
                if let Err(error) = ctx.groups.check_coordinator(g.group_id.0.as_str()) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(crate::kafka::errors::from_group_error(error));
                }
                let found = ctx.groups.fetch(g.group_id.0.as_str(), wanted);
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(group_topics(found))
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes))
            .collect()
    });
    if let Err(error) = ctx.groups.check_coordinator(request.group_id.0.as_str()) {
        return OffsetFetchResponse::default()
            .with_error_code(crate::kafka::errors::from_group_error(error));
    }
    let found = ctx.groups.fetch(request.group_id.0.as_str(), wanted);
    let topics = found
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, offset)| {
                    let (committed, epoch, metadata) = fields(offset);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(committed)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

fn group_topics(found: Found) -> Vec<OffsetFetchResponseTopics> {
    found
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, offset)| {
                    let (committed, epoch, metadata) = fields(offset);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(index)
                        .with_committed_offset(committed)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .collect()
}

/// (offset, leader epoch, metadata) as answered: -1, -1, "" when nothing is committed.
fn fields(offset: Option<CommittedOffset>) -> (i64, i32, StrBytes) {
    match offset {
        Some(o) => (o.offset, o.leader_epoch, StrBytes::from_string(o.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

//! OffsetCommit: a group's consumed positions, answered once they are durable in
//! `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::{errors, Context};
use crate::group::coordinator::OffsetCommit;

/// Handle an OffsetCommit request.
pub async fn handle(
    ctx: &Context,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let offsets: Vec<OffsetCommit> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| OffsetCommit {
                topic: t.name.0.as_str().to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default(),
            })
        })
        .collect();
    let count = offsets.len();
    let results = ctx
        .groups
        .commit(
            request.group_id.0.as_str(),
            request.generation_id_or_member_epoch,
            request.member_id.as_str(),
            request.group_instance_id.as_ref().map(|s| s.as_str()),
            offsets,
        )
        .await;
    let codes: Vec<i16> = match results {
        Ok(results) => results
            .into_iter()
            .map(|r| r.err().map_or(errors::NONE, errors::from_group_error))
            .collect(),
        Err(error) => vec![errors::from_group_error(error); count],
    };
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().unwrap_or(errors::UNKNOWN_SERVER_ERROR))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

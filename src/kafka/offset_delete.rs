//! OffsetDelete: removes committed offsets of topics a group no longer consumes.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::{errors, Context};

/// Handle an OffsetDelete request.
pub async fn handle(ctx: &Context, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let wanted: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.as_str().to_string(), p.partition_index))
        })
        .collect();
    let results = match ctx
        .groups
        .delete_offsets(request.group_id.0.as_str(), &wanted)
        .await
    {
        Ok(results) => results,
        Err(error) => {
            return OffsetDeleteResponse::default().with_error_code(errors::from_group_error(error))
        }
    };
    let mut codes = results
        .into_iter()
        .map(|(_, r)| r.err().map_or(errors::NONE, errors::from_group_error));
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().unwrap_or(errors::UNKNOWN_SERVER_ERROR))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

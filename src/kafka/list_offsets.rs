//! ListOffsets: earliest (-2), latest (-1), the newest timestamp (-3), or the first offset
//! at or after a timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{check_leader_epoch, errors, Context};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// Handle a ListOffsets request.
pub fn handle(ctx: &Context, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = ctx.broker.topic(wanted.name.0.as_str());
            let partitions = wanted
                .partitions
                .iter()
                .map(|p| {
                    let mut response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let partition = topic.as_ref().and_then(|topic| {
                        usize::try_from(p.partition_index)
                            .ok()
                            .and_then(|i| topic.partitions.get(i).cloned())
                    });
                    let Some(partition) = partition else {
                        response.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                        return response;
                    };
                    // In a cluster consumers ask the leader (a replica's id means a broker
                    // asking, which any replica may answer).
                    if let Some(r) = &ctx.replication {
                        if request.replica_id.0 < 0 {
                            if let Err(code) =
                                r.check_leader(wanted.name.0.as_str(), p.partition_index)
                            {
                                response.error_code = code;
                                return response;
                            }
                        }
                    }
                    if let Err(code) =
                        check_leader_epoch(p.current_leader_epoch, partition.leader_epoch())
                    {
                        response.error_code = code;
                        return response;
                    }
                    // The field exists from v4; earlier versions must leave it at -1.
                    if version >= 4 {
                        response.leader_epoch = partition.leader_epoch();
                    }
                    let found = match p.timestamp {
                        LATEST => Ok(Some((partition.high_watermark(), -1))),
                        EARLIEST => Ok(Some((partition.log_start_offset(), -1))),
                        MAX_TIMESTAMP => Ok(partition
                            .max_timestamp_and_offset()
                            .map(|(timestamp, offset)| (offset, timestamp))),
                        timestamp if timestamp >= 0 => partition.offset_for_timestamp(timestamp),
                        _ => Ok(None),
                    };
                    match found {
                        Ok(Some((offset, timestamp))) => {
                            response.offset = offset;
                            response.timestamp = timestamp;
                        }
                        Ok(None) => {}
                        Err(error) => response.error_code = errors::from_log_error(&error),
                    }
                    response
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

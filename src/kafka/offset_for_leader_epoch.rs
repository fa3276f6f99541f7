//! OffsetForLeaderEpoch: where a leader epoch ended, so a client (librdkafka 2.1+ sends v2
//! whenever it knows an epoch) or a follower can detect and cut a diverged log.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{check_leader_epoch, errors, Context};

/// Handle an OffsetForLeaderEpoch request.
pub fn handle(ctx: &Context, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let partitions = wanted
                .partitions
                .iter()
                .map(|p| {
                    let mut result = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) =
                        ctx.broker.partition(wanted.topic.0.as_str(), p.partition)
                    else {
                        result.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
                        return result;
                    };
                    if let Err(code) =
                        check_leader_epoch(p.current_leader_epoch, partition.leader_epoch())
                    {
                        result.error_code = code;
                        return result;
                    }
                    if let Some((epoch, end_offset)) =
                        partition.end_offset_for_epoch(p.leader_epoch)
                    {
                        result.leader_epoch = epoch;
                        result.end_offset = end_offset;
                    }
                    result
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(wanted.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

//! ElectLeaders: preferred or unclean leader elections on a cluster (what
//! `kafka-leader-election.sh` and AdminClient `electLeaders` send). Any node takes it; the
//! new state goes through the quorum. On a single node every partition already has its
//! only possible leader.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Context};
use crate::replication::ElectionKind;

/// Handle an ElectLeaders request.
pub async fn handle(ctx: &Context, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let kind = match request.election_type {
        0 => ElectionKind::Preferred,
        1 => ElectionKind::Unclean,
        other => {
            tracing::debug!(election_type = other, "unknown election type");
            // election_type exists from v1 on, and so does the top-level error code.
            return ElectLeadersResponse::default().with_error_code(errors::INVALID_REQUEST);
        }
    };
    // None: every partition (results only for those where an election was held or failed,
    // as Kafka answers).
    let all = request.topic_partitions.is_none();
    let asked: Vec<(String, Vec<i32>)> = match request.topic_partitions {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.as_str().to_string(), t.partitions))
            .collect(),
        None => {
            let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
            let partitions = match &ctx.replication {
                Some(r) => r.all_partitions(),
                None => Vec::new(),
            };
            for (topic, partition) in partitions {
                by_topic.entry(topic).or_default().push(partition);
            }
            by_topic.into_iter().collect()
        }
    };
    let mut results = Vec::with_capacity(asked.len());
    for (topic, partitions) in asked {
        let mut partition_results = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let outcome = elect(ctx, &topic, partition, kind).await;
            if all && matches!(outcome, Err((errors::ELECTION_NOT_NEEDED, _))) {
                continue;
            }
            let result = PartitionResult::default().with_partition_id(partition);
            partition_results.push(match outcome {
                Ok(()) => result,
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            });
        }
        if !partition_results.is_empty() {
            results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partition_result(partition_results),
            );
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}

async fn elect(
    ctx: &Context,
    topic: &str,
    partition: i32,
    kind: ElectionKind,
) -> Result<(), (i16, String)> {
    match &ctx.replication {
        Some(r) => r.elect(topic, partition, kind).await,
        None => match ctx.broker.partition(topic, partition) {
            Some(_) => Err((
                errors::ELECTION_NOT_NEEDED,
                "a single node leads all its partitions".into(),
            )),
            None => Err((
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("{topic}-{partition} does not exist"),
            )),
        },
    }
}

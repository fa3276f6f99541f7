//! CreatePartitions: grow a topic's partition count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Context};

/// Handle a CreatePartitions request.
pub async fn handle(ctx: &Context, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let mut result = CreatePartitionsTopicResult::default().with_name(wanted.name.clone());
        if let Some(r) = &ctx.replication {
            // Replicas are placed by the cluster (round robin), not by the request.
            let outcome = if wanted.assignments.is_some() {
                Err((
                    errors::INVALID_REPLICA_ASSIGNMENT,
                    "explicit replica assignments are not supported; bramble places replicas round robin".to_string(),
                ))
            } else {
                r.create_partitions(wanted.name.0.as_str(), wanted.count, request.validate_only)
                    .await
                    .map_err(|error| (errors::from_topic_error(&error), error.to_string()))
            };
            if let Err((code, message)) = outcome {
                result.error_code = code;
                result.error_message = Some(StrBytes::from_string(message));
            }
            results.push(result);
            continue;
        }
        let node = ctx.broker.node_id;
        let assignments_ok = wanted.assignments.as_ref().is_none_or(|list| {
            list.iter()
                .all(|a| a.broker_ids.iter().map(|b| b.0).eq([node]))
        });
        let outcome = if assignments_ok {
            ctx.broker
                .create_partitions(wanted.name.0.as_str(), wanted.count, request.validate_only)
                .await
                .map_err(|error| (errors::from_topic_error(&error), error.to_string()))
        } else {
            Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                format!("new partitions must be placed on broker {node}"),
            ))
        };
        if let Err((code, message)) = outcome {
            result.error_code = code;
            result.error_message = Some(StrBytes::from_string(message));
        }
        results.push(result);
    }
    CreatePartitionsResponse::default().with_results(results)
}

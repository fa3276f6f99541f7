//! SyncGroup: the leader hands in assignments, everyone gets theirs.

use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Context};
use crate::group::SyncRequest;

/// Handle a SyncGroup request.
pub async fn handle(ctx: &Context, request: SyncGroupRequest) -> SyncGroupResponse {
    let req = SyncRequest {
        group_id: request.group_id.0.as_str().to_string(),
        member_id: request.member_id.as_str().to_string(),
        instance_id: request
            .group_instance_id
            .as_ref()
            .map(|s| s.as_str().to_string()),
        generation: request.generation_id,
        protocol_type: request
            .protocol_type
            .as_ref()
            .map(|s| s.as_str().to_string()),
        protocol_name: request
            .protocol_name
            .as_ref()
            .map(|s| s.as_str().to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|a| {
                (
                    a.member_id.as_str().to_string(),
                    Bytes::clone(&a.assignment),
                )
            })
            .collect(),
    };
    // A parked sync is answered by the leader's sync or, at the latest, by the group's sync
    // deadline (a rebalance timeout); this bound only guards against a lost answer.
    let wait_ms = u64::from(ctx.broker.config.group_max_session_timeout_ms) + 5_000;
    match ctx.groups.sync(req, wait_ms).await {
        Ok((protocol_type, protocol_name, assignment)) => SyncGroupResponse::default()
            .with_protocol_type(protocol_type.map(StrBytes::from_string))
            .with_protocol_name(protocol_name.map(StrBytes::from_string))
            .with_assignment(assignment),
        Err(error) => SyncGroupResponse::default().with_error_code(errors::from_group_error(error)),
    }
}

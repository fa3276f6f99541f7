//! Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{errors, Context};

/// Handle a Heartbeat request.
pub fn handle(ctx: &Context, request: HeartbeatRequest) -> HeartbeatResponse {
    let result = ctx.groups.heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|s| s.as_str()),
        request.generation_id,
    );
    HeartbeatResponse::default()
        .with_error_code(result.err().map_or(errors::NONE, errors::from_group_error))
}

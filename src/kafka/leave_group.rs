//! LeaveGroup: one member (v0–2) or several, static ones by instance id (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Context};

/// Handle a LeaveGroup request.
pub fn handle(ctx: &Context, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.as_str().to_string(),
                    m.group_instance_id.as_ref().map(|s| s.as_str().to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.as_str().to_string(), None)]
    };
    let results = match ctx.groups.leave(request.group_id.0.as_str(), &leaving) {
        Ok(results) => results,
        Err(error) => {
            return LeaveGroupResponse::default().with_error_code(errors::from_group_error(error))
        }
    };
    if version < 3 {
        let code = results
            .first()
            .and_then(|r| r.err())
            .map_or(errors::NONE, errors::from_group_error);
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = leaving
        .into_iter()
        .zip(results)
        .map(|((member_id, instance_id), result)| {
            MemberResponse::default()
                .with_member_id(StrBytes::from_string(member_id))
                .with_group_instance_id(instance_id.map(StrBytes::from_string))
                .with_error_code(result.err().map_or(errors::NONE, errors::from_group_error))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

//! JoinGroup: decode into a [`JoinRequest`] for the coordinator, which parks it until the
//! group's join phase completes.

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Context};
use crate::group::JoinRequest;

/// Handle a JoinGroup request.
pub async fn handle(
    ctx: &Context,
    request: JoinGroupRequest,
    header: &RequestHeader,
    version: i16,
) -> JoinGroupResponse {
    let client_id = header
        .client_id
        .as_ref()
        .map(|c| c.as_str().to_string())
        .unwrap_or_default();
    let new_member_id = match crate::ids::Uuid::random() {
        Ok(uuid) => format!("{client_id}-{}", uuid_text(uuid.0)),
        Err(error) => {
            tracing::error!(%error, "no randomness for a member id");
            return JoinGroupResponse::default()
                .with_error_code(errors::COORDINATOR_NOT_AVAILABLE)
                .with_generation_id(-1);
        }
    };
    let req = JoinRequest {
        group_id: request.group_id.0.as_str().to_string(),
        member_id: request.member_id.as_str().to_string(),
        instance_id: request
            .group_instance_id
            .as_ref()
            .map(|s| s.as_str().to_string()),
        client_id,
        client_host: ctx.client_host(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves, as in Kafka.
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: request.protocol_type.as_str().to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), Bytes::clone(&p.metadata)))
            .collect(),
        require_known_member_id: version >= 4,
        new_member_id,
    };
    let result = ctx.groups.join(req).await;
    let code = result.error.map_or(errors::NONE, errors::from_group_error);
    // Before v7 the protocol name is not nullable.
    let protocol_name = match (&result.protocol_name, version >= 7) {
        (Some(name), _) => Some(StrBytes::from_string(name.clone())),
        (None, true) => None,
        (None, false) => Some(StrBytes::default()),
    };
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(result.generation)
        .with_protocol_type(result.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(protocol_name)
        .with_leader(StrBytes::from_string(result.leader))
        .with_member_id(StrBytes::from_string(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

/// A UUID in its usual text form (what Kafka puts after the client id in member ids).
fn uuid_text(b: [u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

//! DescribeGroups: state, protocol and members (with metadata and assignments once Stable).
//! An unknown group is described as Dead, as Kafka does before v6.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Context;

/// Authorized operations when the client did not ask for them.
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

/// Handle a DescribeGroups request.
pub fn handle(ctx: &Context, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            if let Err(error) = ctx.groups.check_coordinator(id.0.as_str()) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(super::errors::from_group_error(error))
                    .with_authorized_operations(OPERATIONS_NOT_ASKED);
            }
            let description = ctx.groups.describe(id.0.as_str());
            let members = description
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                        .with_client_id(StrBytes::from_string(m.client_id))
                        .with_client_host(StrBytes::from_string(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(StrBytes::from_static_str(description.state.name()))
                .with_protocol_type(StrBytes::from_string(description.protocol_type))
                .with_protocol_data(StrBytes::from_string(description.protocol))
                .with_members(members)
                .with_authorized_operations(OPERATIONS_NOT_ASKED)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

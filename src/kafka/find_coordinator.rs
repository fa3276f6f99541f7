//! FindCoordinator: every group's coordinator is this node (single node; the cluster layer
//! will answer with the leader of the group's `__consumer_offsets` partition). v4+ asks for
//! several keys at once (KIP-699). Transaction coordinators are refused with a clear error:
//! bramble does not support transactions.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Context};

/// `key_type` of a consumer group.
const KEY_GROUP: i8 = 0;
/// `key_type` of a transactional id.
const KEY_TRANSACTION: i8 = 1;

/// Handle a FindCoordinator request.
pub async fn handle(
    ctx: &Context,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        request.coordinator_keys.clone()
    } else {
        vec![request.key.clone()]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        coordinators.push(find(ctx, request.key_type, key).await);
    }
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let one = coordinators.pop().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(one.error_code)
        .with_error_message(one.error_message)
        .with_node_id(one.node_id)
        .with_host(one.host)
        .with_port(one.port)
}

async fn find(ctx: &Context, key_type: i8, key: StrBytes) -> Coordinator {
    let refuse = |code: i16, message: &str| {
        Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::from_static_str(""))
            .with_port(-1)
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message.to_string())))
    };
    match key_type {
        KEY_GROUP => {}
        KEY_TRANSACTION => {
            return refuse(
                errors::INVALID_REQUEST,
                "transactions are not supported by bramble",
            )
        }
        other => {
            return refuse(
                errors::INVALID_REQUEST,
                &format!("unknown coordinator key type {other}"),
            )
        }
    }
    // Kafka creates the offsets topic here, so the first commit does not wait for it.
    if let Err(error) = ctx.groups.offsets_topic().await {
        return refuse(errors::from_group_error(error), &error.to_string());
    }
    let Some((host, port)) = ctx.broker.config.advertised_for(ctx.protocol) else {
        return refuse(errors::COORDINATOR_NOT_AVAILABLE, "no advertised listener");
    };
    Coordinator::default()
        .with_key(key)
        .with_node_id(BrokerId(ctx.broker.node_id))
        .with_host(StrBytes::from_string(host))
        .with_port(i32::from(port))
}

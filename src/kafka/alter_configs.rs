//! AlterConfigs: replace a topic's whole set of overrides (Kafka's legacy semantics: keys
//! not named go back to their defaults). Broker settings are static (bramble.toml). On a
//! cluster the overrides go through the quorum to `/config/topics/<t>`, for every node.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{errors, Context};

/// Handle an AlterConfigs request.
pub async fn handle(ctx: &Context, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let overrides: BTreeMap<String, String> = resource
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.as_str().to_string(), v.as_str().to_string()))
            })
            .collect();
        let result = alter(
            ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            overrides,
            request.validate_only,
        )
        .await;
        responses.push(response(
            resource.resource_type,
            resource.resource_name,
            result,
        ));
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Sets a resource's overrides; the error is (code, message).
pub async fn alter(
    ctx: &Context,
    resource_type: i8,
    name: &str,
    overrides: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => match &ctx.replication {
            Some(replication) => {
                replication
                    .set_topic_config(name, overrides, validate_only)
                    .await
            }
            None => {
                ctx.broker
                    .set_topic_config(name, overrides, validate_only)
                    .await
            }
        }
        .map_err(|e| (errors::from_topic_error(&e), e.to_string())),
        RESOURCE_BROKER => Err((
            errors::INVALID_REQUEST,
            "broker settings are static in bramble: edit [broker] in bramble.toml and restart"
                .into(),
        )),
        other => Err((
            errors::INVALID_REQUEST,
            format!("resource type {other} is not served"),
        )),
    }
}

/// A per-resource answer.
pub fn response(
    resource_type: i8,
    name: StrBytes,
    result: Result<(), (i16, String)>,
) -> AlterConfigsResourceResponse {
    let response = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(name);
    match result {
        Ok(()) => response,
        Err((code, message)) => {
            tracing::debug!(code, %message, "config change refused");
            response
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
        }
    }
}

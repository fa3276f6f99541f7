//! DeleteTopics: by name (all versions) or by topic id (v6).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{errors, Context};
use crate::ids::Uuid;

/// Handle a DeleteTopics request.
pub async fn handle(
    ctx: &Context,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let wanted: Vec<(
        Option<TopicName>,
        kafka_protocol::messages::delete_topics_request::DeleteTopicState,
    )> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|name| (Some(name.clone()), Default::default()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, state) in wanted {
        let mut result = DeletableTopicResult::default()
            .with_name(name.clone())
            .with_topic_id(state.topic_id);
        let name = match name {
            Some(name) => Some(name.0.as_str().to_string()),
            None => ctx
                .broker
                .topic_by_id(Uuid(*state.topic_id.as_bytes()))
                .map(|topic| topic.name.clone()),
        };
        let Some(name) = name else {
            result.error_code = errors::UNKNOWN_TOPIC_ID;
            responses.push(result);
            continue;
        };
        result.name = Some(TopicName(StrBytes::from_string(name.clone())));
        if name.starts_with("__") {
            result.error_code = errors::POLICY_VIOLATION;
            result.error_message = Some(StrBytes::from_string(format!(
                "{name} is an internal topic"
            )));
            responses.push(result);
            continue;
        }
        let deleted = match &ctx.replication {
            Some(r) => r.delete_topic(&name).await,
            None => ctx.broker.delete_topic(&name).await,
        };
        match deleted {
            Ok(id) => result.topic_id = uuid::Uuid::from_bytes(id.0),
            Err(error) => {
                result.error_code = errors::from_topic_error(&error);
                result.error_message = Some(StrBytes::from_string(error.to_string()));
            }
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

//! IncrementalAlterConfigs: set, delete, append to or subtract from single topic settings
//! (append and subtract work on list settings such as `cleanup.policy`).

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::RESOURCE_TOPIC;
use super::{alter_configs, errors, Context};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Topic settings whose value is a comma-separated list.
const LIST_KEYS: &[&str] = &["cleanup.policy"];

/// Handle an IncrementalAlterConfigs request.
pub async fn handle(
    ctx: &Context,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.as_str().to_string();
        let result = match ctx.broker.topic(&name) {
            Some(topic) if resource.resource_type == RESOURCE_TOPIC => {
                let mut overrides = topic.config.overrides.clone();
                let applied = resource.configs.iter().try_for_each(|c| {
                    apply(
                        &mut overrides,
                        c.name.as_str(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.as_str()),
                    )
                });
                match applied {
                    Ok(()) => {
                        alter_configs::alter(
                            ctx,
                            RESOURCE_TOPIC,
                            &name,
                            overrides,
                            request.validate_only,
                        )
                        .await
                    }
                    Err(message) => Err((errors::INVALID_CONFIG, message)),
                }
            }
            None if resource.resource_type == RESOURCE_TOPIC => Err((
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {name} does not exist"),
            )),
            _ => {
                alter_configs::alter(ctx, resource.resource_type, &name, Default::default(), true)
                    .await
            }
        };
        let legacy =
            alter_configs::response(resource.resource_type, resource.resource_name, result);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(legacy.resource_type)
                .with_resource_name(legacy.resource_name)
                .with_error_code(legacy.error_code)
                .with_error_message(legacy.error_message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Applies one operation to a topic's overrides.
fn apply(
    overrides: &mut std::collections::BTreeMap<String, String>,
    key: &str,
    op: i8,
    value: Option<&str>,
) -> Result<(), String> {
    let list = |v: Option<&String>| -> Vec<String> {
        v.map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
    };
    match op {
        OP_SET => {
            let value = value.ok_or_else(|| format!("SET of {key} needs a value"))?;
            overrides.insert(key.to_string(), value.to_string());
        }
        OP_DELETE => {
            overrides.remove(key);
        }
        OP_APPEND | OP_SUBTRACT => {
            if !LIST_KEYS.contains(&key) {
                return Err(format!(
                    "{key} is not a list setting; APPEND and SUBTRACT apply to {}",
                    LIST_KEYS.join(", ")
                ));
            }
            let value = value.ok_or_else(|| format!("APPEND/SUBTRACT of {key} needs a value"))?;
            let mut items = list(overrides.get(key));
            if items.is_empty() && op == OP_APPEND {
                items.push("delete".to_string());
            }
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if op == OP_APPEND && !items.iter().any(|i| i == item) {
                    items.push(item.to_string());
                }
                if op == OP_SUBTRACT {
                    items.retain(|i| i != item);
                }
            }
            if items.is_empty() {
                overrides.remove(key);
            } else {
                overrides.insert(key.to_string(), items.join(","));
            }
        }
        other => return Err(format!("unknown config operation {other}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_operations_on_cleanup_policy() {
        let mut o = std::collections::BTreeMap::new();
        apply(&mut o, "cleanup.policy", OP_APPEND, Some("compact")).unwrap();
        assert_eq!(o["cleanup.policy"], "delete,compact");
        apply(&mut o, "cleanup.policy", OP_SUBTRACT, Some("delete")).unwrap();
        assert_eq!(o["cleanup.policy"], "compact");
        apply(&mut o, "retention.ms", OP_SET, Some("1000")).unwrap();
        apply(&mut o, "retention.ms", OP_DELETE, None).unwrap();
        assert!(!o.contains_key("retention.ms"));
        assert!(apply(&mut o, "retention.ms", OP_APPEND, Some("1")).is_err());
    }
}

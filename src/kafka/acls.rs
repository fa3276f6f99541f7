//! CreateAcls, DescribeAcls and DeleteAcls (what `kafka-acls.sh` and AdminClient's
//! create/describe/delete ACL calls send). They need Alter (create, delete) or Describe on
//! the cluster. The ACLs themselves are kept by [`crate::security::acl`].

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Context;
use crate::security::acl::{
    operation_code, operation_name, storable_name, Binding, Entry, Operation, PatternType,
    ResourceType, CLUSTER_NAME,
};

/// CLUSTER_AUTHORIZATION_FAILED.
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
/// INVALID_REQUEST.
const INVALID_REQUEST: i16 = 42;
/// SECURITY_DISABLED is not used: ACLs are always available.
const UNKNOWN_SERVER_ERROR: i16 = -1;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn permission_name(code: i8) -> Option<&'static str> {
    match code {
        2 => Some("Deny"),
        3 => Some("Allow"),
        _ => None,
    }
}

fn permission_code(name: &str) -> i8 {
    if name == "Deny" {
        2
    } else {
        3
    }
}

/// One filter of DescribeAcls or DeleteAcls.
struct Filter {
    resource_type: i8,
    name: Option<String>,
    pattern: i8,
    principal: Option<String>,
    host: Option<String>,
    operation: i8,
    permission: i8,
}

impl Filter {
    fn binding_matches(&self, b: &Binding) -> bool {
        if self.resource_type != 1 && self.resource_type != b.resource_type.code() {
            return false;
        }
        match (self.pattern, &self.name) {
            // ANY, with or without a name.
            (1, None) => true,
            (1, Some(n)) => *n == b.name,
            // MATCH: the ACLs that apply to the name (literal, `*`, prefixes).
            (2, None) => true,
            (2, Some(n)) => match b.pattern {
                PatternType::Literal => *n == b.name || b.name == "*",
                PatternType::Prefixed => n.starts_with(&b.name),
            },
            (code, name) => {
                PatternType::from_code(code) == Some(b.pattern)
                    && name.as_ref().is_none_or(|n| *n == b.name)
            }
        }
    }

    fn entry_matches(&self, e: &Entry) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == e.principal)
            && self.host.as_ref().is_none_or(|h| *h == e.host)
            && (self.operation == 1 || operation_code(&e.operation) == self.operation)
            && (self.permission == 1 || permission_code(&e.permission) == self.permission)
    }

    fn valid(&self) -> bool {
        (self.resource_type == 1 || ResourceType::from_code(self.resource_type).is_some())
            && (1..=4).contains(&self.pattern)
            && (self.operation == 1 || operation_name(self.operation).is_some())
            && (1..=3).contains(&self.permission)
    }
}

fn cluster_allowed(ctx: &Context, op: Operation) -> bool {
    ctx.security.authorizer().allows(
        &ctx.principal,
        ctx.peer.map(|p| p.ip()),
        op,
        ResourceType::Cluster,
        CLUSTER_NAME,
    )
}

/// Handle CreateAcls.
pub async fn create(ctx: &Context, request: CreateAclsRequest) -> CreateAclsResponse {
    let allowed = cluster_allowed(ctx, Operation::Alter);
    let mut results = Vec::with_capacity(request.creations.len());
    for c in request.creations {
        let fail = |code: i16, message: &str| {
            AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(Some(s(message)))
        };
        if !allowed {
            results.push(fail(
                CLUSTER_AUTHORIZATION_FAILED,
                "Alter on the cluster is needed",
            ));
            continue;
        }
        let (Some(t), Some(pattern), Some(operation), Some(permission)) = (
            ResourceType::from_code(c.resource_type),
            PatternType::from_code(c.resource_pattern_type),
            operation_name(c.operation),
            permission_name(c.permission_type),
        ) else {
            results.push(fail(
                INVALID_REQUEST,
                "unknown resource type, pattern, operation or permission",
            ));
            continue;
        };
        let name = c.resource_name.to_string();
        let principal = c.principal.to_string();
        if !storable_name(&name)
            || (t == ResourceType::Cluster && name != CLUSTER_NAME)
            || !principal.starts_with("User:")
        {
            results.push(fail(
                INVALID_REQUEST,
                "the resource name must hold no `/` (cluster: kafka-cluster) and the principal be User:NAME",
            ));
            continue;
        }
        let entry = Entry {
            principal,
            permission: permission.to_string(),
            operation: operation.to_string(),
            host: c.host.to_string(),
        };
        match ctx.security.acls.add(pattern, t, &name, &[entry]).await {
            Ok(()) => {
                tracing::info!(resource = %name, ?t, by = %ctx.principal, "ACL created");
                results.push(AclCreationResult::default());
            }
            Err(e) => results.push(fail(UNKNOWN_SERVER_ERROR, &format!("{e:?}"))),
        }
    }
    CreateAclsResponse::default().with_results(results)
}

/// Handle DescribeAcls.
pub fn describe(ctx: &Context, r: DescribeAclsRequest) -> DescribeAclsResponse {
    if !cluster_allowed(ctx, Operation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(s("Describe on the cluster is needed")));
    }
    let filter = Filter {
        resource_type: r.resource_type_filter,
        name: r.resource_name_filter.map(|n| n.to_string()),
        pattern: r.pattern_type_filter,
        principal: r.principal_filter.map(|n| n.to_string()),
        host: r.host_filter.map(|n| n.to_string()),
        operation: r.operation,
        permission: r.permission_type,
    };
    if !filter.valid() {
        return DescribeAclsResponse::default()
            .with_error_code(INVALID_REQUEST)
            .with_error_message(Some(s("invalid ACL filter")));
    }
    let resources = ctx
        .security
        .acls
        .all()
        .into_iter()
        .filter(|b| filter.binding_matches(b))
        .filter_map(|b| {
            let acls: Vec<AclDescription> = b
                .entries
                .iter()
                .filter(|e| filter.entry_matches(e))
                .map(|e| {
                    AclDescription::default()
                        .with_principal(s(&e.principal))
                        .with_host(s(&e.host))
                        .with_operation(operation_code(&e.operation))
                        .with_permission_type(permission_code(&e.permission))
                })
                .collect();
            (!acls.is_empty()).then(|| {
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type.code())
                    .with_resource_name(s(&b.name))
                    .with_pattern_type(b.pattern.code())
                    .with_acls(acls)
            })
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

/// Handle DeleteAcls.
pub async fn delete(ctx: &Context, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let allowed = cluster_allowed(ctx, Operation::Alter);
    let mut results = Vec::with_capacity(request.filters.len());
    for f in request.filters {
        if !allowed {
            results.push(
                DeleteAclsFilterResult::default()
                    .with_error_code(CLUSTER_AUTHORIZATION_FAILED)
                    .with_error_message(Some(s("Alter on the cluster is needed"))),
            );
            continue;
        }
        let filter = Filter {
            resource_type: f.resource_type_filter,
            name: f.resource_name_filter.map(|n| n.to_string()),
            pattern: f.pattern_type_filter,
            principal: f.principal_filter.map(|n| n.to_string()),
            host: f.host_filter.map(|n| n.to_string()),
            operation: f.operation,
            permission: f.permission_type,
        };
        if !filter.valid() {
            results.push(
                DeleteAclsFilterResult::default()
                    .with_error_code(INVALID_REQUEST)
                    .with_error_message(Some(s("invalid ACL filter"))),
            );
            continue;
        }
        let mut matching = Vec::new();
        let mut error = None;
        for b in ctx.security.acls.all() {
            if !filter.binding_matches(&b) {
                continue;
            }
            let gone = match ctx
                .security
                .acls
                .remove_matching(b.pattern, b.resource_type, &b.name, |e| {
                    filter.entry_matches(e)
                })
                .await
            {
                Ok(gone) => gone,
                Err(e) => {
                    error = Some(format!("{e:?}"));
                    continue;
                }
            };
            for e in gone {
                matching.push(
                    DeleteAclsMatchingAcl::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(s(&b.name))
                        .with_pattern_type(b.pattern.code())
                        .with_principal(s(&e.principal))
                        .with_host(s(&e.host))
                        .with_operation(operation_code(&e.operation))
                        .with_permission_type(permission_code(&e.permission)),
                );
            }
        }
        let mut result = DeleteAclsFilterResult::default().with_matching_acls(matching);
        if let Some(message) = error {
            result = result
                .with_error_code(UNKNOWN_SERVER_ERROR)
                .with_error_message(Some(s(&message)));
        }
        results.push(result);
    }
    DeleteAclsResponse::default().with_filter_results(results)
}

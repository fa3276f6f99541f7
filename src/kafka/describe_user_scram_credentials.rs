//! DescribeUserScramCredentials: which SCRAM mechanisms each user has, with their
//! iterations (never the credential itself).

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Context;

/// RESOURCE_NOT_FOUND: a named user has no credential.
const RESOURCE_NOT_FOUND: i16 = 91;
/// DUPLICATE_RESOURCE: a user named twice.
const DUPLICATE_RESOURCE: i16 = 92;

/// Describe the named users, or every user when none is named.
pub fn handle(
    ctx: &Context,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let users = &ctx.security.users;
    let named: Vec<String> = match &request.users {
        Some(list) if !list.is_empty() => list.iter().map(|u| u.name.to_string()).collect(),
        _ => users.users(),
    };
    let mut results = Vec::with_capacity(named.len());
    for (i, name) in named.iter().enumerate() {
        let result = DescribeUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(name.clone()));
        if named[..i].contains(name) {
            results.push(
                result
                    .with_error_code(DUPLICATE_RESOURCE)
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "`{name}` is named twice"
                    )))),
            );
            continue;
        }
        let infos: Vec<CredentialInfo> = users
            .mechanisms(name)
            .into_iter()
            .map(|(m, iterations)| {
                CredentialInfo::default()
                    .with_mechanism(m.code())
                    .with_iterations(iterations as i32)
            })
            .collect();
        results.push(if infos.is_empty() {
            result
                .with_error_code(RESOURCE_NOT_FOUND)
                .with_error_message(Some(StrBytes::from_string(format!(
                    "attempt to describe a user credential that does not exist: {name}"
                ))))
        } else {
            result.with_credential_infos(infos)
        });
    }
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

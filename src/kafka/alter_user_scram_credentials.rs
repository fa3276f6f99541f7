//! AlterUserScramCredentials: add, replace or delete users' SCRAM credentials (what
//! `kafka-configs.sh --alter --entity-type users` and AdminClient's
//! alterUserScramCredentials send). The client sends the salted password, never the
//! password; the broker keeps only the salt, iterations, StoredKey and ServerKey.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Context;
use crate::security::scram::{self, Credential, Mechanism};
use crate::security::users::validate_name;

/// UNSUPPORTED_SASL_MECHANISM.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// RESOURCE_NOT_FOUND: deleting a credential that does not exist.
const RESOURCE_NOT_FOUND: i16 = 91;
/// DUPLICATE_RESOURCE: one user named twice for one mechanism in a request.
const DUPLICATE_RESOURCE: i16 = 92;
/// UNACCEPTABLE_CREDENTIAL: iterations out of range, empty salt or password.
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

/// Apply the deletions and upsertions; one result per user.
pub async fn handle(
    ctx: &Context,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut errors: BTreeMap<String, (i16, String)> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    fn fail(errors: &mut BTreeMap<String, (i16, String)>, user: &str, code: i16, message: String) {
        errors.entry(user.to_string()).or_insert((code, message));
    }
    // Check everything first, as Kafka does: a user with any bad entry gets no change.
    let mut deletions = Vec::new();
    for d in &request.deletions {
        let user = d.name.as_str();
        match check(user, d.mechanism, &mut seen) {
            Ok(m) => deletions.push((user.to_string(), m)),
            Err((code, message)) => fail(&mut errors, user, code, message),
        }
    }
    let mut upsertions = Vec::new();
    for u in &request.upsertions {
        let user = u.name.as_str();
        let m = match check(user, u.mechanism, &mut seen) {
            Ok(m) => m,
            Err((code, message)) => {
                fail(&mut errors, user, code, message);
                continue;
            }
        };
        let iterations = u32::try_from(u.iterations).unwrap_or(0);
        if !(scram::ITERATIONS_MIN..=scram::ITERATIONS_MAX).contains(&iterations) {
            fail(
                &mut errors,
                user,
                UNACCEPTABLE_CREDENTIAL,
                format!(
                    "iterations must be between {} and {}",
                    scram::ITERATIONS_MIN,
                    scram::ITERATIONS_MAX
                ),
            );
            continue;
        }
        if u.salt.is_empty() || u.salted_password.len() != m.hash_len() {
            fail(
                &mut errors,
                user,
                UNACCEPTABLE_CREDENTIAL,
                "salt must not be empty and the salted password must be one hash long".into(),
            );
            continue;
        }
        let credential = Credential::from_salted(m, &u.salted_password, &u.salt, iterations);
        upsertions.push((user.to_string(), m, credential));
    }
    let users = &ctx.security.users;
    for (user, m) in deletions {
        if errors.contains_key(&user) {
            continue;
        }
        match users.remove(&user, m).await {
            Ok(true) => {}
            Ok(false) => fail(
                &mut errors,
                &user,
                RESOURCE_NOT_FOUND,
                format!("no {} credential for `{user}`", m.name()),
            ),
            Err(e) => fail(
                &mut errors,
                &user,
                super::errors::UNKNOWN_SERVER_ERROR,
                format!("{e:?}"),
            ),
        }
    }
    let mut touched: Vec<String> = request
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .collect();
    for (user, m, credential) in upsertions {
        if errors.contains_key(&user) {
            continue;
        }
        if let Err(e) = users.upsert(&user, m, &credential).await {
            fail(
                &mut errors,
                &user,
                super::errors::UNKNOWN_SERVER_ERROR,
                format!("{e:?}"),
            );
        } else {
            tracing::info!(user, mechanism = m.name(), by = %ctx.principal, "SCRAM credential set");
        }
        touched.push(user);
    }
    touched.extend(request.upsertions.iter().map(|u| u.name.to_string()));
    touched.sort();
    touched.dedup();
    let results = touched
        .into_iter()
        .map(|user| {
            let (code, message) = errors.remove(&user).unwrap_or((0, String::new()));
            AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user))
                .with_error_code(code)
                .with_error_message((code != 0).then(|| StrBytes::from_string(message)))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn check(
    user: &str,
    mechanism: i8,
    seen: &mut std::collections::BTreeSet<(String, i8)>,
) -> Result<Mechanism, (i16, String)> {
    validate_name(user).map_err(|m| (UNACCEPTABLE_CREDENTIAL, m))?;
    let m = Mechanism::from_code(mechanism).ok_or((
        UNSUPPORTED_SASL_MECHANISM,
        format!("unknown SCRAM mechanism {mechanism}"),
    ))?;
    if !seen.insert((user.to_string(), mechanism)) {
        return Err((
            DUPLICATE_RESOURCE,
            format!("`{user}` is named twice for {}", m.name()),
        ));
    }
    Ok(m)
}

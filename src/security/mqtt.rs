//! MQTT logins against the shared user store (`[mqtt] require_auth = true`): the CONNECT's
//! username and password are checked as a Kafka PLAIN login is (against the user's
//! SCRAM-SHA-256 credential), with the same failed-login back-off per client address. A
//! logged-in client publishes (and leaves a will) only where its user has Write on the
//! Kafka topic of the route the MQTT topic maps to, as the Kafka ACLs say.

use std::net::SocketAddr;
use std::time::Instant;

use super::acl::{Operation, ResourceType};
use super::Security;
use crate::mqtt::codec::Connect;
use crate::mqtt::session::Refusal;
use crate::mqtt::Ingest;

/// Check a CONNECT's credentials: no username is NotAuthorized (CONNACK 0x05 / 0x87), a
/// wrong password or unknown user BadCredentials (0x04 / 0x86), after the back-off delay.
pub async fn login(
    security: &Security,
    connect: &Connect,
    peer: SocketAddr,
) -> Result<(), Refusal> {
    let Some(user) = connect.username.clone() else {
        return Err(Refusal::NotAuthorized);
    };
    let password = connect
        .password
        .as_deref()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    // PBKDF2 of thousands of rounds: tell the runtime this worker is busy.
    let verified = !password.is_empty()
        && tokio::task::block_in_place(|| super::sasl::verify_plain(security, &user, &password));
    if verified {
        security.backoff.succeeded(peer.ip());
        return Ok(());
    }
    tokio::time::sleep(security.backoff.failed(peer.ip(), Instant::now())).await;
    Err(Refusal::BadCredentials)
}

/// Whether `principal` may publish to MQTT topic `topic`: Write on the Kafka topic of the
/// route it maps to (a topic no route takes is dropped anyway, so it passes).
pub fn may_publish(ingest: &Ingest, principal: &str, peer: SocketAddr, topic: &str) -> bool {
    let Some((_, route)) = ingest.sink.routes().find(topic) else {
        return true;
    };
    ingest.security.authorizer().allows(
        principal,
        Some(peer.ip()),
        Operation::Write,
        ResourceType::Topic,
        &route.topic,
    )
}

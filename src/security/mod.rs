//! Authentication and authorization: SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) on Kafka
//! listeners, the user store every node shares through the coordinator, failed-login
//! back-off, and Kafka ACLs.
//!
//! - [`scram`] — SCRAM credentials and both sides of the exchange (no I/O)
//! - [`plain`] — the PLAIN token
//! - [`sasl`] — one connection's authentication state: SaslHandshake, SaslAuthenticate and
//!   the gate that keeps every other request out until it has succeeded
//! - [`users`] — credentials in the znode tree (`/config/users/<name>`, as Kafka keeps
//!   them), readable and writable only by the node itself
//! - [`backoff`] — the growing delay before a failed login is answered
//! - [`limits`] — connections per client address on the Kafka listeners
//! - [`rate`] — requests per second per connection (Kafka, ZooKeeper, MQTT)
//! - [`mqtt`] — MQTT CONNECT credentials against the same user store
//! - [`acl`] — Kafka ACLs in the znode tree and the check Kafka's authorizer makes
//! - [`authorize`] — which ACL each Kafka request needs; refused parts are answered with
//!   Kafka's authorization errors

pub mod acl;
pub mod authorize;
pub mod backoff;
pub mod limits;
pub mod mqtt;
pub mod plain;
pub mod rate;
pub mod sasl;
pub mod scram;
pub mod users;

use std::sync::Arc;

use serde::Deserialize;

use crate::config::ConfigError;

/// `[security]`: SASL mechanisms, super users and the back-off of failed logins.
///
/// ```toml
/// [security]
/// sasl_enabled_mechanisms = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
/// super_users = ["User:admin"]
/// allow_everyone_if_no_acl_found = true
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Mechanisms SASL listeners offer (Kafka's `sasl.enabled.mechanisms`).
    pub sasl_enabled_mechanisms: Vec<String>,
    /// Principals (`User:name`) that every ACL check lets through (Kafka's `super.users`).
    pub super_users: Vec<String>,
    /// What an ACL check answers for a resource that has no ACL at all (Kafka's
    /// `allow.everyone.if.no.acl.found`). The default, true, keeps a setup without ACLs
    /// working as before: authentication alone guards it. Set it to false to allow only
    /// what ACLs grant (and super users).
    pub allow_everyone_if_no_acl_found: bool,
    /// Delay before the first failed login of an address is answered (Kafka's
    /// `connection.failed.authentication.delay.ms`); it doubles with each further failure
    /// from the same address.
    pub failed_authentication_delay_ms: u32,
    /// The longest that delay grows.
    pub failed_authentication_delay_max_ms: u32,
    /// Requests a second each Kafka, ZooKeeper and MQTT connection may make (a second's
    /// worth may come at once); past it the connection is read more slowly. 0: no limit.
    pub max_requests_per_second_per_connection: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            sasl_enabled_mechanisms: vec![
                "SCRAM-SHA-256".into(),
                "SCRAM-SHA-512".into(),
                "PLAIN".into(),
            ],
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: true,
            failed_authentication_delay_ms: 100,
            failed_authentication_delay_max_ms: 5000,
            max_requests_per_second_per_connection: 0,
        }
    }
}

impl SecurityConfig {
    /// Check names and ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid { key, message };
        if self.sasl_enabled_mechanisms.is_empty() {
            return Err(invalid(
                "security.sasl_enabled_mechanisms",
                "name at least one of SCRAM-SHA-256, SCRAM-SHA-512, PLAIN".into(),
            ));
        }
        for name in &self.sasl_enabled_mechanisms {
            if sasl::SaslMechanism::from_name(name).is_none() {
                return Err(invalid(
                    "security.sasl_enabled_mechanisms",
                    format!("`{name}` is not one of SCRAM-SHA-256, SCRAM-SHA-512, PLAIN"),
                ));
            }
        }
        for principal in &self.super_users {
            match principal.split_once(':') {
                Some(("User", name)) if !name.is_empty() => {}
                _ => {
                    return Err(invalid(
                        "security.super_users",
                        format!("`{principal}` must be written User:NAME"),
                    ))
                }
            }
        }
        if self.failed_authentication_delay_max_ms < self.failed_authentication_delay_ms
            || self.failed_authentication_delay_max_ms > 60_000
        {
            return Err(invalid(
                "security.failed_authentication_delay_max_ms",
                "must be at least failed_authentication_delay_ms and at most 60000".into(),
            ));
        }
        Ok(())
    }
}

/// What every connection's authentication and authorization share.
#[derive(Debug)]
pub struct Security {
    /// The settings.
    pub config: SecurityConfig,
    /// The mechanisms SASL listeners offer, in the configured order.
    pub mechanisms: Vec<sasl::SaslMechanism>,
    /// SCRAM credentials.
    pub users: users::UserStore,
    /// Failed-login delays by client address.
    pub backoff: backoff::Backoff,
    /// Kafka ACLs.
    pub acls: acl::AclStore,
    /// Open Kafka connections per client address (`broker.max_connections_per_ip`).
    pub connections_per_ip: limits::ConnectionsPerIp,
    rng: ring::rand::SystemRandom,
}

impl Security {
    /// Security over the node's coordinator.
    pub fn new(
        config: SecurityConfig,
        max_connections_per_ip: u32,
        zk: crate::server::zk::ZkHandle,
    ) -> Arc<Security> {
        let mechanisms = config
            .sasl_enabled_mechanisms
            .iter()
            .filter_map(|n| sasl::SaslMechanism::from_name(n))
            .collect();
        let backoff = backoff::Backoff::new(
            config.failed_authentication_delay_ms,
            config.failed_authentication_delay_max_ms,
        );
        Arc::new(Security {
            config,
            mechanisms,
            users: users::UserStore::new(zk.clone()),
            acls: acl::AclStore::new(zk),
            connections_per_ip: limits::ConnectionsPerIp::new(max_connections_per_ip),
            backoff,
            rng: ring::rand::SystemRandom::new(),
        })
    }

    /// ACL checks with these settings.
    pub fn authorizer(&self) -> acl::Authorizer<'_> {
        acl::Authorizer {
            store: &self.acls,
            config: &self.config,
        }
    }

    /// A fresh nonce: 24 random bytes as base64 (printable, no comma).
    pub fn nonce(&self) -> String {
        random_nonce(&self.rng)
    }

    /// Fresh random bytes (salts).
    pub fn random_bytes(&self, n: usize) -> Vec<u8> {
        random_bytes(&self.rng, n)
    }
}

/// `n` bytes from the system's random source.
pub fn random_bytes(rng: &ring::rand::SystemRandom, n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut out = vec![0u8; n];
    rng.fill(&mut out).expect("the system random source failed");
    out
}

/// A SCRAM nonce from the system's random source.
pub fn random_nonce(rng: &ring::rand::SystemRandom) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(random_bytes(rng, 24))
}

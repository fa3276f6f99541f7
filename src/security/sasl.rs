//! One Kafka connection's authentication, as Kafka's `SaslServerAuthenticator` runs it.
//!
//! On a SASL listener a connection may send ApiVersions, then SaslHandshake naming a
//! mechanism, then SaslAuthenticate until the exchange succeeds; any other request before
//! that closes the connection. SaslHandshake v0 is followed by the exchange in raw
//! size-prefixed tokens instead of SaslAuthenticate requests (what old clients do). A failed
//! login is answered with SASL_AUTHENTICATION_FAILED after the client address's back-off
//! delay, and the connection is then closed. On a listener without SASL, and after
//! authentication, SaslHandshake and SaslAuthenticate are answered with ILLEGAL_SASL_STATE.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::scram::{self, Mechanism, ServerFirst};
use super::{plain, Security};
use crate::config::SecurityProtocol;
use crate::kafka::frame::Request;

/// UNSUPPORTED_SASL_MECHANISM: the handshake named a mechanism the listener does not offer.
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// ILLEGAL_SASL_STATE: a SASL request at the wrong point of the exchange.
pub const ILLEGAL_SASL_STATE: i16 = 34;
/// SASL_AUTHENTICATION_FAILED: wrong user name or password, or a malformed exchange.
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// The principal of a connection that has not authenticated (PLAINTEXT and SSL listeners).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A mechanism a SASL listener can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// PLAIN: user and password in one message, checked against the SCRAM-SHA-256 (or
    /// SCRAM-SHA-512) credential.
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(Mechanism),
}

impl SaslMechanism {
    /// The name clients ask for.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }

    /// The mechanism called `name` (exact, as Kafka compares).
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        if name == "PLAIN" {
            return Some(SaslMechanism::Plain);
        }
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .map(SaslMechanism::Scram)
    }
}

#[derive(Debug)]
enum State {
    /// Nothing yet: ApiVersions and SaslHandshake are allowed.
    Start,
    /// A mechanism is chosen; `raw` after a v0 handshake.
    Chosen { mechanism: SaslMechanism, raw: bool },
    /// SCRAM's server-first message has been sent.
    ScramSent {
        exchange: Box<ServerFirst>,
        raw: bool,
    },
    /// Authenticated (or no SASL on this listener).
    Done,
}

/// What the connection does with a request after the gate.
#[derive(Debug)]
pub enum Gate {
    /// Hand it to the Kafka handlers.
    Pass(Request),
    /// Send this response; close the connection after it when `close`.
    Answer {
        /// The response to send for the request.
        response: ResponseKind,
        /// Close once it is written.
        close: bool,
    },
    /// Close without an answer.
    Close(String),
}

/// A raw-token step (after SaslHandshake v0).
#[derive(Debug)]
pub enum RawStep {
    /// Send these bytes (already size-prefixed).
    Reply(BytesMut),
    /// Authentication failed: close (after the back-off delay).
    Close,
}

/// One connection's authentication state.
#[derive(Debug)]
pub struct ConnectionAuth {
    security: Arc<Security>,
    peer: IpAddr,
    state: State,
    principal: Arc<str>,
}

impl ConnectionAuth {
    /// The state of a new connection on a listener of `protocol` from `peer`.
    pub fn new(security: Arc<Security>, protocol: SecurityProtocol, peer: IpAddr) -> Self {
        ConnectionAuth {
            security,
            peer,
            state: if protocol.uses_sasl() {
                State::Start
            } else {
                State::Done
            },
            principal: Arc::from(ANONYMOUS),
        }
    }

    /// Who the connection is (`User:name`, or `User:ANONYMOUS`).
    pub fn principal(&self) -> &Arc<str> {
        &self.principal
    }

    /// Whether the next frame is a raw SASL token rather than a Kafka request.
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            self.state,
            State::Chosen { raw: true, .. } | State::ScramSent { raw: true, .. }
        )
    }

    /// Let a request through, answer it here (the SASL APIs), or close the connection.
    pub async fn gate(&mut self, request: Request) -> Gate {
        let version = request.header.request_api_version;
        match request.body {
            kafka_protocol::messages::RequestKind::SaslHandshake(r) => self.handshake(r, version),
            kafka_protocol::messages::RequestKind::SaslAuthenticate(r) => {
                self.authenticate(r).await
            }
            _ if matches!(self.state, State::Done) => Gate::Pass(request),
            _ if matches!(self.state, State::Start) && request.api_key == ApiKey::ApiVersions => {
                Gate::Pass(request)
            }
            _ => Gate::Close(format!(
                "{:?} before SASL authentication completed",
                request.api_key
            )),
        }
    }

    fn mechanism_names(&self) -> Vec<StrBytes> {
        self.security
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect()
    }

    fn handshake(&mut self, request: SaslHandshakeRequest, version: i16) -> Gate {
        let answer = |error_code: i16, close: bool, names| Gate::Answer {
            response: ResponseKind::SaslHandshake(
                SaslHandshakeResponse::default()
                    .with_error_code(error_code)
                    .with_mechanisms(names),
            ),
            close,
        };
        match self.state {
            State::Start => {}
            // Kafka answers a handshake outside the exchange (no SASL here, or already
            // authenticated) and keeps the connection.
            State::Done => return answer(ILLEGAL_SASL_STATE, false, self.mechanism_names()),
            _ => return answer(ILLEGAL_SASL_STATE, true, self.mechanism_names()),
        }
        let asked = request.mechanism.as_str();
        let Some(mechanism) =
            SaslMechanism::from_name(asked).filter(|m| self.security.mechanisms.contains(m))
        else {
            tracing::info!(peer = %self.peer, mechanism = asked, "SASL mechanism not offered");
            return answer(UNSUPPORTED_SASL_MECHANISM, true, self.mechanism_names());
        };
        self.state = State::Chosen {
            mechanism,
            raw: version == 0,
        };
        answer(0, false, self.mechanism_names())
    }

    async fn authenticate(&mut self, request: SaslAuthenticateRequest) -> Gate {
        let illegal = |close| Gate::Answer {
            response: ResponseKind::SaslAuthenticate(
                SaslAuthenticateResponse::default()
                    .with_error_code(ILLEGAL_SASL_STATE)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate is only valid after SaslHandshake v1",
                    ))),
            ),
            close,
        };
        match &self.state {
            State::Done => return illegal(false),
            State::Start | State::Chosen { raw: true, .. } | State::ScramSent { raw: true, .. } => {
                return illegal(true)
            }
            _ => {}
        }
        match self.step(request.auth_bytes).await {
            Ok(token) => Gate::Answer {
                response: ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default().with_auth_bytes(token),
                ),
                close: false,
            },
            Err(message) => Gate::Answer {
                response: ResponseKind::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(SASL_AUTHENTICATION_FAILED)
                        .with_error_message(Some(StrBytes::from_string(message))),
                ),
                close: true,
            },
        }
    }

    /// Take one raw token (after a v0 handshake).
    pub async fn raw_token(&mut self, token: Bytes) -> RawStep {
        match self.step(token).await {
            Ok(reply) => {
                let mut out = BytesMut::with_capacity(4 + reply.len());
                out.put_u32(reply.len() as u32);
                out.put_slice(&reply);
                RawStep::Reply(out)
            }
            Err(_) => RawStep::Close,
        }
    }

    /// One step of the exchange: the token to send back, or (after the back-off delay) the
    /// message of a failure.
    async fn step(&mut self, token: Bytes) -> Result<Bytes, String> {
        let result = match std::mem::replace(&mut self.state, State::Start) {
            State::Chosen {
                mechanism: SaslMechanism::Plain,
                ..
            } => self.plain(token).await.map(|()| Bytes::new()),
            State::Chosen {
                mechanism: SaslMechanism::Scram(m),
                raw,
            } => {
                let security = self.security.clone();
                let nonce = security.nonce();
                scram::server_first(m, &token, &nonce, |user| security.users.credential(user, m))
                    .map(|exchange| {
                        let first = Bytes::copy_from_slice(exchange.message());
                        self.state = State::ScramSent {
                            exchange: Box::new(exchange),
                            raw,
                        };
                        first
                    })
                    .map_err(|e| {
                        tracing::info!(peer = %self.peer, mechanism = m.name(), error = %e, "SCRAM login refused");
                        scram_failure(m)
                    })
            }
            State::ScramSent { exchange, .. } => {
                let user = exchange.user.clone();
                let m = scram_mechanism(&exchange);
                match exchange.finish(&token) {
                    Ok(last) => {
                        self.authenticated(&user, m.name());
                        Ok(Bytes::from(last))
                    }
                    Err(e) => {
                        tracing::info!(peer = %self.peer, user, mechanism = m.name(), error = %e, "SCRAM login failed");
                        Err(scram_failure(m))
                    }
                }
            }
            State::Start | State::Done => Err("no SASL exchange under way".to_string()),
        };
        if result.is_err() {
            let delay = self.security.backoff.failed(self.peer, Instant::now());
            tokio::time::sleep(delay).await;
        }
        result
    }

    async fn plain(&mut self, token: Bytes) -> Result<(), String> {
        let failure = || "Authentication failed: Invalid username or password".to_string();
        let parsed = match plain::parse(&token) {
            Ok(parsed) => parsed,
            Err(reason) => {
                tracing::info!(peer = %self.peer, reason, "PLAIN login malformed");
                return Err(failure());
            }
        };
        let user = parsed.user.to_string();
        let password = parsed.password.to_string();
        let security = self.security.clone();
        let lookup_user = user.clone();
        // PBKDF2 of thousands of rounds: off the async workers.
        let verified =
            tokio::task::spawn_blocking(move || verify_plain(&security, &lookup_user, &password))
                .await
                .unwrap_or(false);
        if verified {
            self.authenticated(&user, "PLAIN");
            Ok(())
        } else {
            tracing::info!(peer = %self.peer, user, "PLAIN login failed");
            Err(failure())
        }
    }

    fn authenticated(&mut self, user: &str, mechanism: &str) {
        tracing::debug!(peer = %self.peer, user, mechanism, "SASL login");
        self.security.backoff.succeeded(self.peer);
        self.principal = Arc::from(format!("User:{user}"));
        self.state = State::Done;
    }
}

/// Check a PLAIN password against the user's SCRAM-SHA-256 credential (or SCRAM-SHA-512
/// when that is all there is). An unknown user costs the same work as a known one.
pub fn verify_plain(security: &Security, user: &str, password: &str) -> bool {
    let found = Mechanism::ALL
        .into_iter()
        .find_map(|m| security.users.credential(user, m).map(|c| (m, c)));
    match found {
        Some((m, credential)) => credential.verify_password(m, password),
        None => {
            let _ = scram::Credential::from_password(
                Mechanism::Sha256,
                password,
                b"no such user",
                scram::ITERATIONS_MIN,
            );
            false
        }
    }
}

fn scram_mechanism(exchange: &ServerFirst) -> Mechanism {
    exchange.mechanism()
}

fn scram_failure(m: Mechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        m.name()
    )
}

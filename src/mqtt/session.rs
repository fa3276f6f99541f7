//! Sessions and the per-connection protocol rules, without I/O.
//!
//! [`admit`] decides whether a CONNECT is accepted. [`Sessions`] keeps the state that
//! outlives a connection (persistent sessions: clean session off in 3.1.1, a session
//! expiry in 5) and hands a client id over from an old connection to a new one.
//! [`ClientSession`] answers each packet of one connection: what to ingest, what to
//! acknowledge and when, what to refuse. The server's socket code drives it.
//!
//! Session state is what a publisher needs: the QoS 2 packet ids received and not yet
//! released, so a resent QoS 2 publish is not written twice. It lives in memory: a
//! restart forgets it (see the README).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

use super::codec::{
    reason, return_code, Ack, Connect, Disconnect, Packet, Properties, Publish, QoS, SubAck,
    Subscribe, UnsubAck, Unsubscribe, Version, Will,
};
use super::config::MqttConfig;
use super::sink::Commit;

/// When a session ends after its connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// With the connection (clean session, or v5 expiry 0).
    OnDisconnect,
    /// This many seconds after the connection closes.
    AfterSecs(u32),
    /// Never (3.1.1 persistent session, v5 expiry 0xFFFFFFFF); only evicted when
    /// `mqtt.max_sessions` is reached.
    Never,
}

impl Expiry {
    fn from_v5(interval: Option<u32>) -> Expiry {
        match interval {
            None | Some(0) => Expiry::OnDisconnect,
            Some(u32::MAX) => Expiry::Never,
            Some(secs) => Expiry::AfterSecs(secs),
        }
    }

    fn expired(self, disconnected_at_ms: u64, now_ms: u64) -> bool {
        match self {
            Expiry::OnDisconnect => true,
            Expiry::AfterSecs(secs) => now_ms >= disconnected_at_ms + u64::from(secs) * 1000,
            Expiry::Never => false,
        }
    }
}

/// Why a CONNECT is refused; [`Refusal::code`] gives the CONNACK code for the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// v5 enhanced authentication was asked for.
    BadAuthenticationMethod,
    /// Unknown username or wrong password.
    BadCredentials,
    /// No username where one is required.
    NotAuthorized,
    /// The client id cannot be used (empty with a persistent session in 3.1.1).
    ClientIdRejected,
}

impl Refusal {
    /// The CONNACK return code (3.1/3.1.1) or reason code (5).
    pub fn code(self, version: Version) -> u8 {
        let v5 = version == Version::V5;
        match (self, v5) {
            (Refusal::BadAuthenticationMethod, true) => reason::BAD_AUTHENTICATION_METHOD,
            (Refusal::BadAuthenticationMethod, false) => return_code::NOT_AUTHORIZED,
            (Refusal::BadCredentials, true) => reason::BAD_USERNAME_OR_PASSWORD,
            (Refusal::BadCredentials, false) => return_code::BAD_USERNAME_OR_PASSWORD,
            (Refusal::NotAuthorized, true) => reason::NOT_AUTHORIZED,
            (Refusal::NotAuthorized, false) => return_code::NOT_AUTHORIZED,
            (Refusal::ClientIdRejected, true) => reason::CLIENT_IDENTIFIER_NOT_VALID,
            (Refusal::ClientIdRejected, false) => return_code::IDENTIFIER_REJECTED,
        }
    }
}

/// An accepted CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The client id to use (assigned when the client sent none).
    pub client_id: String,
    /// Whether the id was assigned by the server (v5 tells the client).
    pub assigned: bool,
    /// When the session ends.
    pub expiry: Expiry,
}

/// Decide on a CONNECT: credentials, client id, session expiry. `assign_id` makes a
/// unique id for a client that sent an empty one.
pub fn admit(
    connect: &Connect,
    config: &MqttConfig,
    assign_id: impl FnOnce() -> String,
) -> Result<Admission, Refusal> {
    if connect.properties.authentication_method.is_some() {
        return Err(Refusal::BadAuthenticationMethod);
    }
    match &connect.username {
        None if !config.anonymous_allowed() => return Err(Refusal::NotAuthorized),
        None => {}
        Some(username) => match config.users.get(username) {
            Some(password) => {
                let given = connect.password.as_deref().unwrap_or_default();
                if !constant_time_eq(given, password.as_bytes()) {
                    return Err(Refusal::BadCredentials);
                }
            }
            // Credentials are ignored when the listener has no users at all.
            None if config.users.is_empty() && config.anonymous_allowed() => {}
            None => return Err(Refusal::BadCredentials),
        },
    }
    let v5 = connect.version == Version::V5;
    let expiry = if v5 {
        Expiry::from_v5(connect.properties.session_expiry_interval)
    } else if connect.clean_start {
        Expiry::OnDisconnect
    } else {
        Expiry::Never
    };
    if connect.client_id.is_empty() {
        if !v5 && !connect.clean_start {
            return Err(Refusal::ClientIdRejected);
        }
        return Ok(Admission {
            client_id: assign_id(),
            assigned: true,
            expiry,
        });
    }
    Ok(Admission {
        client_id: connect.client_id.clone(),
        assigned: false,
        expiry,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A QoS 2 message received: its commit, once the sink has appended it (`None` until then;
/// a dropped sender means the append failed).
pub type Qos2Pending = watch::Receiver<Option<Commit>>;

/// What a session keeps between connections.
#[derive(Debug, Default)]
pub struct SessionState {
    /// QoS 2 packet ids received (PUBREC due or sent) and not yet released by PUBREL.
    qos2: HashMap<u16, Qos2Pending>,
}

struct Entry {
    state: Arc<Mutex<SessionState>>,
    /// The connection holding the session, and how to tell it to go.
    owner: Option<(u64, Arc<Notify>)>,
    expiry: Expiry,
    disconnected_at_ms: u64,
}

/// A connection's hold on a session.
#[derive(Debug)]
pub struct Attached {
    /// Identifies this connection to [`Sessions::detach`].
    pub connection: u64,
    /// The session's state.
    pub state: Arc<Mutex<SessionState>>,
    /// Whether an existing session was resumed (CONNACK's session present).
    pub session_present: bool,
    /// Notified when another connection takes the client id over.
    pub taken_over: Arc<Notify>,
}

/// Every session on this node, by client id.
pub struct Sessions {
    inner: Mutex<(HashMap<String, Entry>, u64)>,
    max_sessions: usize,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("max_sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// An empty registry remembering at most `max_sessions` sessions.
    pub fn new(max_sessions: u32) -> Sessions {
        Sessions {
            inner: Mutex::new((HashMap::new(), 0)),
            max_sessions: max_sessions as usize,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Entry>, u64)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attach a new connection to `client_id`'s session: an existing connection is told
    /// to go, a clean start discards the old state, otherwise it is resumed.
    pub fn attach(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry: Expiry,
        now_ms: u64,
    ) -> Attached {
        let mut guard = self.lock();
        let (entries, next_connection) = &mut *guard;
        *next_connection += 1;
        let connection = *next_connection;
        let taken_over = Arc::new(Notify::new());
        let mut resumed = None;
        if let Some(old) = entries.remove(client_id) {
            if let Some((_, notify)) = &old.owner {
                notify.notify_one();
            }
            let alive = old.owner.is_some() || !old.expiry.expired(old.disconnected_at_ms, now_ms);
            if !clean_start && alive {
                resumed = Some(old.state);
            }
        }
        if resumed.is_none() && entries.len() >= self.max_sessions {
            evict_one(entries, now_ms);
        }
        let session_present = resumed.is_some();
        let state = resumed.unwrap_or_default();
        entries.insert(
            client_id.to_string(),
            Entry {
                state: state.clone(),
                owner: Some((connection, taken_over.clone())),
                expiry,
                disconnected_at_ms: 0,
            },
        );
        Attached {
            connection,
            state,
            session_present,
            taken_over,
        }
    }

    /// The connection `connection` ended; keep the session if `expiry` says so.
    pub fn detach(&self, client_id: &str, connection: u64, expiry: Expiry, now_ms: u64) {
        let mut guard = self.lock();
        let entries = &mut guard.0;
        let Some(entry) = entries.get_mut(client_id) else {
            return;
        };
        if entry.owner.as_ref().map(|(id, _)| *id) != Some(connection) {
            // Taken over: the session belongs to the newer connection now.
            return;
        }
        if expiry == Expiry::OnDisconnect {
            entries.remove(client_id);
            return;
        }
        entry.owner = None;
        entry.expiry = expiry;
        entry.disconnected_at_ms = now_ms;
    }

    /// The connection holding `client_id`'s session now, if any (a delayed will checks
    /// that its client has not come back).
    pub fn owner(&self, client_id: &str) -> Option<u64> {
        self.lock()
            .0
            .get(client_id)
            .and_then(|e| e.owner.as_ref().map(|(id, _)| *id))
    }

    /// Sessions remembered now (connected or not).
    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Make room: drop expired sessions, else the disconnected one idle the longest.
fn evict_one(entries: &mut HashMap<String, Entry>, now_ms: u64) {
    entries.retain(|_, e| e.owner.is_some() || !e.expiry.expired(e.disconnected_at_ms, now_ms));
    let oldest = entries
        .iter()
        .filter(|(_, e)| e.owner.is_none())
        .min_by_key(|(_, e)| e.disconnected_at_ms)
        .map(|(id, _)| id.clone());
    if let Some(id) = oldest {
        tracing::info!(client = %id, "forgetting the oldest disconnected session (mqtt.max_sessions reached)");
        entries.remove(&id);
    }
}

/// A protocol violation: the connection is closed, with this v5 reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Violation {
    /// v5 DISCONNECT reason code.
    pub reason: u8,
    /// What happened.
    pub message: &'static str,
}

/// The acknowledgement a publish is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// QoS 1: PUBACK.
    PubAck,
    /// QoS 2: PUBREC.
    PubRec,
}

/// What to do with a PUBLISH.
#[derive(Debug)]
pub enum PublishAction {
    /// Write it; for QoS 1 and 2 acknowledge with `ack` once committed. For QoS 2, send
    /// the commit through `qos2` so a resend can wait on it.
    Ingest {
        /// The acknowledgement owed, if any.
        ack: Option<AckKind>,
        /// Where to publish the commit of a QoS 2 message.
        qos2: Option<watch::Sender<Option<Commit>>>,
    },
    /// A QoS 2 message already received: do not write it again; send PUBREC once the first
    /// copy's commit is done.
    Duplicate(Qos2Pending),
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct ClientSession {
    /// The protocol level.
    pub version: Version,
    /// The client id in use.
    pub client_id: String,
    /// The will, cleared by a normal DISCONNECT.
    pub will: Option<Will>,
    /// When the session ends (a v5 DISCONNECT may change it).
    pub expiry: Expiry,
    state: Arc<Mutex<SessionState>>,
    /// v5: whether the client wants reason strings.
    problem_information: bool,
    /// Most QoS 2 exchanges open at once (`mqtt.max_inflight_messages`, the Receive Maximum).
    qos2_max: usize,
}

impl ClientSession {
    /// The protocol state of an accepted connection.
    pub fn new(
        connect: &Connect,
        admission: &Admission,
        state: Arc<Mutex<SessionState>>,
        qos2_max: u16,
    ) -> ClientSession {
        ClientSession {
            version: connect.version,
            client_id: admission.client_id.clone(),
            will: connect.will.clone(),
            expiry: admission.expiry,
            state,
            problem_information: connect.properties.request_problem_information != Some(0),
            qos2_max: usize::from(qos2_max),
        }
    }

    fn v5(&self) -> bool {
        self.version == Version::V5
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide about a PUBLISH.
    pub fn on_publish(&self, publish: &Publish) -> Result<PublishAction, Violation> {
        if publish.properties.topic_alias.is_some() {
            // CONNACK allowed no aliases (Topic Alias Maximum absent means 0).
            return Err(Violation {
                reason: reason::TOPIC_ALIAS_INVALID,
                message: "topic alias sent, none allowed",
            });
        }
        if !publish.properties.subscription_identifiers.is_empty() {
            return Err(Violation {
                reason: reason::PROTOCOL_ERROR,
                message: "subscription identifier in a client PUBLISH",
            });
        }
        match publish.qos {
            QoS::AtMostOnce => Ok(PublishAction::Ingest {
                ack: None,
                qos2: None,
            }),
            QoS::AtLeastOnce => Ok(PublishAction::Ingest {
                ack: Some(AckKind::PubAck),
                qos2: None,
            }),
            QoS::ExactlyOnce => {
                let mut state = self.state();
                if let Some(pending) = state.qos2.get(&publish.packet_id) {
                    return Ok(PublishAction::Duplicate(pending.clone()));
                }
                // Unreleased QoS 2 ids live in the session: bound them as MQTT 5 does.
                if state.qos2.len() >= self.qos2_max {
                    return Err(Violation {
                        reason: reason::RECEIVE_MAXIMUM_EXCEEDED,
                        message:
                            "more QoS 2 publishes awaiting PUBREL than mqtt.max_inflight_messages",
                    });
                }
                let (sender, receiver) = watch::channel(None);
                state.qos2.insert(publish.packet_id, receiver);
                Ok(PublishAction::Ingest {
                    ack: Some(AckKind::PubRec),
                    qos2: Some(sender),
                })
            }
        }
    }

    /// PUBREL ends a QoS 2 exchange: forget the id, answer PUBCOMP.
    pub fn on_pubrel(&self, packet_id: u16) -> Packet {
        let known = self.state().qos2.remove(&packet_id).is_some();
        let mut ack = Ack::new(packet_id);
        if self.v5() && !known {
            ack.reason = reason::PACKET_IDENTIFIER_NOT_FOUND;
        }
        Packet::PubComp(ack)
    }

    /// Forget a QoS 2 id whose append failed, so a resend is written.
    pub fn forget_qos2(&self, packet_id: u16) {
        self.state().qos2.remove(&packet_id);
    }

    /// bramble ingests only: every subscription is refused (3.1.1: 0x80 failure; 5: 0x83
    /// implementation specific error, with a reason string).
    pub fn on_subscribe(&self, subscribe: &Subscribe) -> Packet {
        let code = if self.v5() {
            reason::IMPLEMENTATION_SPECIFIC_ERROR
        } else {
            reason::UNSPECIFIED_ERROR
        };
        Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            codes: vec![code; subscribe.filters.len()],
            properties: self
                .reason_string("bramble ingests MQTT only; read the data with a Kafka consumer"),
        })
    }

    /// Nothing is ever subscribed, so nothing is unsubscribed.
    pub fn on_unsubscribe(&self, unsubscribe: &Unsubscribe) -> Packet {
        Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            codes: if self.v5() {
                vec![reason::NO_SUBSCRIPTION_EXISTED; unsubscribe.filters.len()]
            } else {
                Vec::new()
            },
            properties: Properties::default(),
        })
    }

    /// A DISCONNECT from the client: the will is dropped unless v5 reason 0x04 asks for it.
    pub fn on_disconnect(&mut self, disconnect: &Disconnect) -> Result<(), Violation> {
        if disconnect.reason != reason::DISCONNECT_WITH_WILL {
            self.will = None;
        }
        if let Some(interval) = disconnect.properties.session_expiry_interval {
            if self.expiry == Expiry::OnDisconnect && interval != 0 {
                return Err(Violation {
                    reason: reason::PROTOCOL_ERROR,
                    message: "session expiry set at DISCONNECT after CONNECT said 0",
                });
            }
            self.expiry = Expiry::from_v5(Some(interval));
        }
        Ok(())
    }

    /// A DISCONNECT the server sends before closing (v5 only; `None` for 3.1.1).
    pub fn server_disconnect(&self, reason: u8, message: &'static str) -> Option<Packet> {
        self.v5().then(|| {
            Packet::Disconnect(Disconnect {
                reason,
                properties: self.reason_string(message),
            })
        })
    }

    fn reason_string(&self, text: &str) -> Properties {
        Properties {
            reason_string: (self.v5() && self.problem_information).then(|| text.to_string()),
            ..Properties::default()
        }
    }
}

/// The acknowledgement for a committed publish; `routed` false tells v5 clients "no
/// matching subscribers" (no route took the message; it was dropped).
pub fn ack_packet(version: Version, kind: AckKind, packet_id: u16, routed: bool) -> Packet {
    let mut ack = Ack::new(packet_id);
    if version == Version::V5 && !routed {
        ack.reason = reason::NO_MATCHING_SUBSCRIBERS;
    }
    match kind {
        AckKind::PubAck => Packet::PubAck(ack),
        AckKind::PubRec => Packet::PubRec(ack),
    }
}

/// The CONNACK for an accepted connection.
pub fn connack_accepted(
    connect: &Connect,
    admission: &Admission,
    session_present: bool,
    config: &MqttConfig,
) -> Packet {
    let mut properties = Properties::default();
    if connect.version == Version::V5 {
        properties.receive_maximum = Some(config.max_inflight_messages);
        properties.maximum_packet_size = Some(config.max_packet_bytes);
        properties.wildcard_subscription_available = Some(0);
        properties.subscription_identifier_available = Some(0);
        properties.shared_subscription_available = Some(0);
        if admission.assigned {
            properties.assigned_client_identifier = Some(admission.client_id.clone());
        }
    }
    Packet::ConnAck(super::codec::ConnAck {
        // MQTT 3.1 has no session present flag (the byte is reserved).
        session_present: session_present && connect.version != Version::V31,
        code: reason::SUCCESS,
        properties,
    })
}

/// The CONNACK refusing a connection.
pub fn connack_refused(code: u8) -> Packet {
    Packet::ConnAck(super::codec::ConnAck {
        session_present: false,
        code,
        properties: Properties::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn connect(version: Version, client_id: &str, clean: bool) -> Connect {
        Connect {
            version,
            bridge: false,
            clean_start: clean,
            keep_alive_secs: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }
    }

    fn publish(qos: QoS, packet_id: u16) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: "a/b".into(),
            packet_id,
            properties: Properties::default(),
            payload: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn credentials_are_checked() {
        let mut config = MqttConfig::default();
        config.users.insert("sensor".into(), "secret".into());
        let mut c = connect(Version::V311, "c", true);
        assert_eq!(
            admit(&c, &config, || unreachable!()),
            Err(Refusal::NotAuthorized)
        );
        c.username = Some("sensor".into());
        c.password = Some(Bytes::from_static(b"wrong"));
        assert_eq!(
            admit(&c, &config, || unreachable!()),
            Err(Refusal::BadCredentials)
        );
        assert_eq!(Refusal::BadCredentials.code(Version::V311), 4);
        assert_eq!(Refusal::BadCredentials.code(Version::V5), 0x86);
        c.password = Some(Bytes::from_static(b"secret"));
        assert!(admit(&c, &config, || unreachable!()).is_ok());
        // Anonymous listeners ignore credentials.
        let open = MqttConfig::default();
        assert!(admit(&c, &open, || unreachable!()).is_ok());
    }

    #[test]
    fn empty_client_ids_are_assigned_or_rejected() {
        let config = MqttConfig::default();
        let admission = admit(&connect(Version::V311, "", true), &config, || {
            "auto-1".into()
        })
        .unwrap();
        assert_eq!(
            (admission.client_id.as_str(), admission.assigned),
            ("auto-1", true)
        );
        assert_eq!(
            admit(&connect(Version::V311, "", false), &config, || "x".into()),
            Err(Refusal::ClientIdRejected)
        );
        assert!(admit(&connect(Version::V5, "", false), &config, || "x".into()).is_ok());
    }

    #[test]
    fn persistent_sessions_resume_and_clean_ones_do_not() {
        let sessions = Sessions::new(10);
        let first = sessions.attach("dev", false, Expiry::Never, 0);
        assert!(!first.session_present);
        sessions.detach("dev", first.connection, Expiry::Never, 1);
        let second = sessions.attach("dev", false, Expiry::Never, 2);
        assert!(second.session_present);
        assert!(Arc::ptr_eq(&first.state, &second.state));
        sessions.detach("dev", second.connection, Expiry::Never, 3);
        let clean = sessions.attach("dev", true, Expiry::OnDisconnect, 4);
        assert!(!clean.session_present);
        sessions.detach("dev", clean.connection, Expiry::OnDisconnect, 5);
        assert!(sessions.is_empty());
    }

    #[test]
    fn v5_session_expiry_is_honoured() {
        let sessions = Sessions::new(10);
        let a = sessions.attach("dev", false, Expiry::AfterSecs(10), 0);
        sessions.detach("dev", a.connection, Expiry::AfterSecs(10), 1_000);
        assert!(
            sessions
                .attach("dev", false, Expiry::AfterSecs(10), 5_000)
                .session_present
        );
        let b = sessions.attach("dev2", false, Expiry::AfterSecs(10), 0);
        sessions.detach("dev2", b.connection, Expiry::AfterSecs(10), 1_000);
        assert!(
            !sessions
                .attach("dev2", false, Expiry::AfterSecs(10), 11_001)
                .session_present
        );
    }

    #[test]
    fn a_second_connection_takes_the_session_over() {
        let sessions = Sessions::new(10);
        let old = sessions.attach("dev", false, Expiry::Never, 0);
        let new = sessions.attach("dev", false, Expiry::Never, 1);
        assert!(
            new.session_present,
            "the old connection's session is resumed"
        );
        // The old connection was told to go (a stored permit: notified() completes at once).
        let notified = old.taken_over.notified();
        futures_lite_ready(notified);
        // The old connection ending must not end the new one's session.
        sessions.detach("dev", old.connection, Expiry::OnDisconnect, 2);
        assert_eq!(sessions.len(), 1);
    }

    fn futures_lite_ready(future: impl std::future::Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(100), future)
                .await
                .expect("notified");
        });
    }

    #[test]
    fn full_registry_forgets_the_oldest_disconnected_session() {
        let sessions = Sessions::new(2);
        let a = sessions.attach("a", false, Expiry::Never, 0);
        sessions.detach("a", a.connection, Expiry::Never, 10);
        let b = sessions.attach("b", false, Expiry::Never, 0);
        sessions.detach("b", b.connection, Expiry::Never, 20);
        sessions.attach("c", false, Expiry::Never, 30);
        assert_eq!(sessions.len(), 2);
        assert!(
            !sessions
                .attach("a", false, Expiry::Never, 40)
                .session_present
        );
    }

    #[test]
    fn qos2_publish_is_written_once_until_released() {
        let sessions = Sessions::new(10);
        let attached = sessions.attach("dev", false, Expiry::Never, 0);
        let c = connect(Version::V5, "dev", false);
        let admission = admit(&c, &MqttConfig::default(), || unreachable!()).unwrap();
        let session = ClientSession::new(&c, &admission, attached.state, 2);
        let PublishAction::Ingest {
            ack: Some(AckKind::PubRec),
            qos2: Some(sender),
        } = session.on_publish(&publish(QoS::ExactlyOnce, 5)).unwrap()
        else {
            panic!("first copy must be ingested");
        };
        sender.send_replace(Some(Commit::default()));
        assert!(matches!(
            session.on_publish(&publish(QoS::ExactlyOnce, 5)).unwrap(),
            PublishAction::Duplicate(_)
        ));
        assert_eq!(session.on_pubrel(5), Packet::PubComp(Ack::new(5)));
        let Packet::PubComp(unknown) = session.on_pubrel(5) else {
            panic!()
        };
        assert_eq!(unknown.reason, reason::PACKET_IDENTIFIER_NOT_FOUND);
        assert!(matches!(
            session.on_publish(&publish(QoS::ExactlyOnce, 5)).unwrap(),
            PublishAction::Ingest { .. }
        ));
        // The session holds at most two unreleased ids here.
        assert!(matches!(
            session.on_publish(&publish(QoS::ExactlyOnce, 6)).unwrap(),
            PublishAction::Ingest { .. }
        ));
        let error = session
            .on_publish(&publish(QoS::ExactlyOnce, 7))
            .unwrap_err();
        assert_eq!(error.reason, reason::RECEIVE_MAXIMUM_EXCEEDED);
    }

    #[test]
    fn subscriptions_are_refused_with_a_reason() {
        let c = connect(Version::V311, "dev", true);
        let admission = admit(&c, &MqttConfig::default(), || unreachable!()).unwrap();
        let session = ClientSession::new(&c, &admission, Arc::default(), 10);
        let subscribe = Subscribe {
            packet_id: 1,
            filters: vec![("a".into(), 1), ("b".into(), 0)],
            properties: Properties::default(),
        };
        let Packet::SubAck(ack) = session.on_subscribe(&subscribe) else {
            panic!()
        };
        assert_eq!(ack.codes, vec![0x80, 0x80]);
        let c = connect(Version::V5, "dev", true);
        let session = ClientSession::new(&c, &admission, Arc::default(), 10);
        let Packet::SubAck(ack) = session.on_subscribe(&subscribe) else {
            panic!()
        };
        assert_eq!(ack.codes, vec![0x83, 0x83]);
        assert!(ack.properties.reason_string.unwrap().contains("Kafka"));
    }

    #[test]
    fn normal_disconnect_drops_the_will_and_reason_4_keeps_it() {
        let mut c = connect(Version::V5, "dev", true);
        c.will = Some(Will {
            topic: "w".into(),
            payload: Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        });
        let admission = admit(&c, &MqttConfig::default(), || unreachable!()).unwrap();
        let mut session = ClientSession::new(&c, &admission, Arc::default(), 10);
        session
            .on_disconnect(&Disconnect::new(reason::DISCONNECT_WITH_WILL))
            .unwrap();
        assert!(session.will.is_some());
        session.on_disconnect(&Disconnect::new(0)).unwrap();
        assert!(session.will.is_none());
        let mut expiring = Disconnect::new(0);
        expiring.properties.session_expiry_interval = Some(60);
        assert!(
            session.on_disconnect(&expiring).is_err(),
            "expiry 0 at CONNECT cannot grow at DISCONNECT"
        );
    }
}

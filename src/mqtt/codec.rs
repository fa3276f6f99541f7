//! MQTT 3.1, 3.1.1 and 5 packets: framing, decoding and encoding, by hand and without I/O.
//!
//! A frame is one fixed header byte, a variable-length "remaining length" and the body.
//! [`frame_len`] finds where a frame ends in a buffer, [`decode`] turns a whole frame into a
//! [`Packet`], and [`encode`] writes one. Every packet type decodes and encodes in both
//! directions (the round trips are the tests); the server decodes what clients send and
//! encodes what brokers answer.
//!
//! Everything after CONNECT depends on the protocol level the CONNECT named: v5 adds
//! properties and reason codes. The bridge bit (0x80, Mosquitto's `try_private`) is kept
//! apart from the level.

use bytes::{Buf, Bytes};

/// Largest remaining length MQTT can express (four length bytes).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The protocol level a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// MQTT 3.1 (`MQIsdp`, level 3).
    V31,
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5 (level 5).
    V5,
}

impl Version {
    /// The level byte in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Version::V31 => 3,
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }

    fn protocol_name(self) -> &'static str {
        match self {
            Version::V31 => "MQIsdp",
            _ => "MQTT",
        }
    }
}

/// Quality of service of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QoS {
    /// At most once: no acknowledgement.
    AtMostOnce = 0,
    /// At least once: PUBACK.
    AtLeastOnce = 1,
    /// Exactly once: PUBREC, PUBREL, PUBCOMP.
    ExactlyOnce = 2,
}

impl QoS {
    fn from_bits(bits: u8) -> Result<QoS, DecodeError> {
        match bits {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(DecodeError::Malformed("QoS 3 is not a QoS")),
        }
    }
}

/// Why bytes are not an acceptable packet. Each maps to a v5 reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes break the packet format.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// A well-formed packet that the protocol does not allow here.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// CONNECT names a protocol this server does not speak.
    #[error("unsupported protocol {name:?} level {level}")]
    UnsupportedProtocol {
        /// The protocol name sent.
        name: String,
        /// The level byte sent (bridge bit included).
        level: u8,
    },
}

impl DecodeError {
    /// The v5 reason code for a DISCONNECT (or CONNACK) about this error.
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::Malformed(_) => reason::MALFORMED_PACKET,
            DecodeError::Protocol(_) => reason::PROTOCOL_ERROR,
            DecodeError::UnsupportedProtocol { .. } => reason::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }
}

/// MQTT 5 reason codes this server sends or reads.
pub mod reason {
    /// Success (and "granted QoS 0", "normal disconnection").
    pub const SUCCESS: u8 = 0x00;
    /// DISCONNECT: publish the will anyway.
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    /// PUBACK: accepted, but nothing matched (bramble: no route).
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    /// UNSUBACK: there was no such subscription.
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    /// Failure of a kind not listed (v3.1.1 SUBACK failure is 0x80 too).
    pub const UNSPECIFIED_ERROR: u8 = 0x80;
    /// The packet could not be parsed.
    pub const MALFORMED_PACKET: u8 = 0x81;
    /// The packet broke the protocol.
    pub const PROTOCOL_ERROR: u8 = 0x82;
    /// Valid, but this implementation refuses it.
    pub const IMPLEMENTATION_SPECIFIC_ERROR: u8 = 0x83;
    /// CONNACK: the protocol level is not served.
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    /// CONNACK: the client identifier is not acceptable.
    pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
    /// CONNACK: wrong username or password.
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x86;
    /// Not authorized.
    pub const NOT_AUTHORIZED: u8 = 0x87;
    /// The server is shutting down.
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    /// CONNACK: enhanced authentication is not supported.
    pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
    /// DISCONNECT: nothing arrived within 1.5 × keep-alive.
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    /// DISCONNECT: another connection took this client id.
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    /// PUBCOMP: no QoS 2 exchange with this packet id.
    pub const PACKET_IDENTIFIER_NOT_FOUND: u8 = 0x92;
    /// DISCONNECT: more unacknowledged QoS 2 publishes than Receive Maximum allows.
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    /// DISCONNECT: a topic alias this server never allowed.
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    /// DISCONNECT: the packet exceeds the maximum packet size.
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    /// CONNACK: the server has no room for another connection.
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
}

/// MQTT 3.1.1 CONNACK return codes.
pub mod return_code {
    /// Connection accepted.
    pub const ACCEPTED: u8 = 0;
    /// The protocol level is not supported.
    pub const UNACCEPTABLE_PROTOCOL_VERSION: u8 = 1;
    /// The client identifier is not allowed.
    pub const IDENTIFIER_REJECTED: u8 = 2;
    /// The service is unavailable.
    pub const SERVER_UNAVAILABLE: u8 = 3;
    /// Wrong username or password.
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 4;
    /// Not authorized.
    pub const NOT_AUTHORIZED: u8 = 5;
}

/// MQTT 5 properties. One struct serves every packet; each packet uses the ones the
/// specification gives it. Absent properties are `None` (or empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01: payload is UTF-8 (1) or unspecified bytes (0).
    pub payload_format_indicator: Option<u8>,
    /// 0x02: seconds the message lives.
    pub message_expiry_interval: Option<u32>,
    /// 0x03: the payload's content type.
    pub content_type: Option<String>,
    /// 0x08: topic for a response.
    pub response_topic: Option<String>,
    /// 0x09: correlation data for a response.
    pub correlation_data: Option<Bytes>,
    /// 0x0B: subscription identifiers (may repeat).
    pub subscription_identifiers: Vec<u32>,
    /// 0x11: seconds a session outlives its connection.
    pub session_expiry_interval: Option<u32>,
    /// 0x12: the client id the server assigned.
    pub assigned_client_identifier: Option<String>,
    /// 0x13: keep-alive the server imposes.
    pub server_keep_alive: Option<u16>,
    /// 0x15: enhanced authentication method.
    pub authentication_method: Option<String>,
    /// 0x16: enhanced authentication data.
    pub authentication_data: Option<Bytes>,
    /// 0x17: whether the client wants reason strings and user properties on errors.
    pub request_problem_information: Option<u8>,
    /// 0x18: seconds to wait before publishing the will.
    pub will_delay_interval: Option<u32>,
    /// 0x19: whether the client wants response information.
    pub request_response_information: Option<u8>,
    /// 0x1A: response information.
    pub response_information: Option<String>,
    /// 0x1C: another server to use.
    pub server_reference: Option<String>,
    /// 0x1F: human-readable reason.
    pub reason_string: Option<String>,
    /// 0x21: most unacknowledged QoS 1/2 publishes the sender accepts.
    pub receive_maximum: Option<u16>,
    /// 0x22: highest topic alias the sender accepts.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23: topic alias of this publish.
    pub topic_alias: Option<u16>,
    /// 0x24: highest QoS the server supports.
    pub maximum_qos: Option<u8>,
    /// 0x25: whether retained messages are supported.
    pub retain_available: Option<u8>,
    /// 0x26: user properties, in order, repeats allowed.
    pub user_properties: Vec<(String, String)>,
    /// 0x27: largest packet the sender accepts.
    pub maximum_packet_size: Option<u32>,
    /// 0x28: whether wildcard subscriptions are supported.
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29: whether subscription identifiers are supported.
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A: whether shared subscriptions are supported.
    pub shared_subscription_available: Option<u8>,
}

/// A will message, published by the server when the connection ends abnormally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Topic to publish to.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// QoS of the will.
    pub qos: QoS,
    /// Retain flag of the will.
    pub retain: bool,
    /// v5 will properties.
    pub properties: Properties,
}

/// CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol level.
    pub version: Version,
    /// The bridge bit (0x80 on the level, Mosquitto's `try_private`).
    pub bridge: bool,
    /// Clean session (v3) / clean start (v5).
    pub clean_start: bool,
    /// Keep-alive in seconds; 0 disables it.
    pub keep_alive_secs: u16,
    /// Client identifier (may be empty).
    pub client_id: String,
    /// The will, if any.
    pub will: Option<Will>,
    /// Username, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Bytes>,
    /// v5 properties.
    pub properties: Properties,
}

/// CONNACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server had a session for this client.
    pub session_present: bool,
    /// Return code (v3) or reason code (v5).
    pub code: u8,
    /// v5 properties.
    pub properties: Properties,
}

/// PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Redelivery flag.
    pub dup: bool,
    /// Quality of service.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name (may be empty in v5 when a topic alias stands for it).
    pub topic: String,
    /// Packet identifier; 0 for QoS 0.
    pub packet_id: u16,
    /// v5 properties.
    pub properties: Properties,
    /// Payload, untouched.
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Packet identifier acknowledged.
    pub packet_id: u16,
    /// v5 reason code (0 in v3).
    pub reason: u8,
    /// v5 properties.
    pub properties: Properties,
}

impl Ack {
    /// A successful acknowledgement.
    pub fn new(packet_id: u16) -> Ack {
        Ack {
            packet_id,
            reason: reason::SUCCESS,
            properties: Properties::default(),
        }
    }
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// (filter, options byte) pairs.
    pub filters: Vec<(String, u8)>,
    /// v5 properties.
    pub properties: Properties,
}

/// SUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier.
    pub packet_id: u16,
    /// One code per filter.
    pub codes: Vec<u8>,
    /// v5 properties.
    pub properties: Properties,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// Filters.
    pub filters: Vec<String>,
    /// v5 properties.
    pub properties: Properties,
}

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier.
    pub packet_id: u16,
    /// v5: one code per filter (v3 has none).
    pub codes: Vec<u8>,
    /// v5 properties.
    pub properties: Properties,
}

/// DISCONNECT or AUTH (v5 gives both a reason code and properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// v5 reason code.
    pub reason: u8,
    /// v5 properties.
    pub properties: Properties,
}

impl Disconnect {
    /// A DISCONNECT with this reason and no properties.
    pub fn new(reason: u8) -> Disconnect {
        Disconnect {
            reason,
            properties: Properties::default(),
        }
    }
}

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// 1
    Connect(Box<Connect>),
    /// 2
    ConnAck(ConnAck),
    /// 3
    Publish(Publish),
    /// 4
    PubAck(Ack),
    /// 5
    PubRec(Ack),
    /// 6
    PubRel(Ack),
    /// 7
    PubComp(Ack),
    /// 8
    Subscribe(Subscribe),
    /// 9
    SubAck(SubAck),
    /// 10
    Unsubscribe(Unsubscribe),
    /// 11
    UnsubAck(UnsubAck),
    /// 12
    PingReq,
    /// 13
    PingResp,
    /// 14
    Disconnect(Disconnect),
    /// 15 (v5 only)
    Auth(Disconnect),
}

impl Packet {
    /// The packet's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}

/// Where the next frame in `buf` ends: `Ok(Some(total bytes))` once its length is known
/// (the frame may not be complete yet), `Ok(None)` when more bytes are needed to know,
/// and an error when the length encoding is broken.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(1 + i + 1 + value));
        }
    }
    Err(DecodeError::Malformed(
        "remaining length longer than four bytes",
    ))
}

/// Decode one whole frame (as delimited by [`frame_len`]). `version` is the connection's
/// protocol level; it is ignored for CONNECT, which names its own.
pub fn decode(frame: Bytes, version: Version) -> Result<Packet, DecodeError> {
    let first = *frame.first().ok_or(DecodeError::Malformed("empty frame"))?;
    let total = frame_len(&frame)?.ok_or(DecodeError::Malformed("truncated fixed header"))?;
    if total != frame.len() {
        return Err(DecodeError::Malformed(
            "frame length does not match remaining length",
        ));
    }
    let header_len = total - remaining_len_of(&frame);
    let mut body = frame.slice(header_len..);
    let flags = first & 0x0f;
    let v5 = version == Version::V5;
    let packet_type = first >> 4;
    let expect_flags = |want: u8| {
        if flags == want {
            Ok(())
        } else {
            Err(DecodeError::Malformed("reserved fixed header flags"))
        }
    };
    let packet = match packet_type {
        1 => {
            expect_flags(0)?;
            Packet::Connect(Box::new(decode_connect(&mut body)?))
        }
        2 => {
            expect_flags(0)?;
            let ack_flags = get_u8(&mut body)?;
            if ack_flags & 0xfe != 0 {
                return Err(DecodeError::Malformed("CONNACK flags"));
            }
            let code = get_u8(&mut body)?;
            let properties = if v5 {
                decode_properties(&mut body)?
            } else {
                Properties::default()
            };
            Packet::ConnAck(ConnAck {
                session_present: ack_flags & 1 == 1,
                code,
                properties,
            })
        }
        3 => Packet::Publish(decode_publish(flags, &mut body, v5)?),
        4 => {
            expect_flags(0)?;
            Packet::PubAck(decode_ack(&mut body, v5)?)
        }
        5 => {
            expect_flags(0)?;
            Packet::PubRec(decode_ack(&mut body, v5)?)
        }
        6 => {
            expect_flags(0b0010)?;
            Packet::PubRel(decode_ack(&mut body, v5)?)
        }
        7 => {
            expect_flags(0)?;
            Packet::PubComp(decode_ack(&mut body, v5)?)
        }
        8 => {
            expect_flags(0b0010)?;
            let packet_id = get_packet_id(&mut body)?;
            let properties = if v5 {
                decode_properties(&mut body)?
            } else {
                Properties::default()
            };
            let mut filters = Vec::new();
            while body.has_remaining() {
                let filter = get_string(&mut body)?;
                let options = get_u8(&mut body)?;
                filters.push((filter, options));
            }
            if filters.is_empty() {
                return Err(DecodeError::Protocol("SUBSCRIBE without a topic filter"));
            }
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        }
        9 => {
            expect_flags(0)?;
            let packet_id = get_packet_id(&mut body)?;
            let properties = if v5 {
                decode_properties(&mut body)?
            } else {
                Properties::default()
            };
            let codes = body.to_vec();
            body.advance(codes.len());
            Packet::SubAck(SubAck {
                packet_id,
                codes,
                properties,
            })
        }
        10 => {
            expect_flags(0b0010)?;
            let packet_id = get_packet_id(&mut body)?;
            let properties = if v5 {
                decode_properties(&mut body)?
            } else {
                Properties::default()
            };
            let mut filters = Vec::new();
            while body.has_remaining() {
                filters.push(get_string(&mut body)?);
            }
            if filters.is_empty() {
                return Err(DecodeError::Protocol("UNSUBSCRIBE without a topic filter"));
            }
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        }
        11 => {
            expect_flags(0)?;
            let packet_id = get_packet_id(&mut body)?;
            let (properties, codes) = if v5 {
                let properties = decode_properties(&mut body)?;
                let codes = body.to_vec();
                body.advance(codes.len());
                (properties, codes)
            } else {
                (Properties::default(), Vec::new())
            };
            Packet::UnsubAck(UnsubAck {
                packet_id,
                codes,
                properties,
            })
        }
        12 => {
            expect_flags(0)?;
            Packet::PingReq
        }
        13 => {
            expect_flags(0)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(0)?;
            Packet::Disconnect(decode_reason_and_properties(&mut body, v5)?)
        }
        15 if v5 => {
            expect_flags(0)?;
            Packet::Auth(decode_reason_and_properties(&mut body, v5)?)
        }
        _ => return Err(DecodeError::Malformed("reserved packet type")),
    };
    if body.has_remaining() {
        return Err(DecodeError::Malformed("bytes left over after the packet"));
    }
    Ok(packet)
}

fn remaining_len_of(frame: &[u8]) -> usize {
    let mut value = 0usize;
    for (i, byte) in frame[1..].iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

fn decode_connect(body: &mut Bytes) -> Result<Connect, DecodeError> {
    let name = get_string(body)?;
    let level = get_u8(body)?;
    let bridge = level & 0x80 != 0;
    let version = match (name.as_str(), level & 0x7f) {
        ("MQIsdp", 3) => Version::V31,
        ("MQTT", 4) => Version::V311,
        ("MQTT", 5) => Version::V5,
        _ => return Err(DecodeError::UnsupportedProtocol { name, level }),
    };
    let flags = get_u8(body)?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::Malformed("CONNECT reserved flag set"));
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = QoS::from_bits((flags >> 3) & 0x03)?;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(DecodeError::Malformed("will QoS or retain without a will"));
    }
    if version != Version::V5 && has_password && !has_username {
        return Err(DecodeError::Malformed("password without username"));
    }
    let keep_alive_secs = get_u16(body)?;
    let v5 = version == Version::V5;
    let properties = if v5 {
        decode_properties(body)?
    } else {
        Properties::default()
    };
    let client_id = get_string(body)?;
    let will = if will_flag {
        let properties = if v5 {
            decode_properties(body)?
        } else {
            Properties::default()
        };
        let topic = get_string(body)?;
        if topic.is_empty() || topic.contains(['+', '#']) {
            return Err(DecodeError::Malformed(
                "will topic empty or with a wildcard",
            ));
        }
        let payload = get_binary(body)?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(get_string(body)?)
    } else {
        None
    };
    let password = if has_password {
        Some(get_binary(body)?)
    } else {
        None
    };
    Ok(Connect {
        version,
        bridge,
        clean_start,
        keep_alive_secs,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn decode_publish(flags: u8, body: &mut Bytes, v5: bool) -> Result<Publish, DecodeError> {
    let dup = flags & 0x08 != 0;
    let qos = QoS::from_bits((flags >> 1) & 0x03)?;
    let retain = flags & 0x01 != 0;
    if qos == QoS::AtMostOnce && dup {
        return Err(DecodeError::Malformed("DUP set on a QoS 0 publish"));
    }
    let topic = get_string(body)?;
    if topic.contains(['+', '#']) {
        return Err(DecodeError::Malformed("wildcard in a PUBLISH topic"));
    }
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        get_packet_id(body)?
    };
    let properties = if v5 {
        decode_properties(body)?
    } else {
        Properties::default()
    };
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(DecodeError::Protocol("empty PUBLISH topic"));
    }
    let payload = body.split_to(body.len());
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        properties,
        payload,
    })
}

fn decode_ack(body: &mut Bytes, v5: bool) -> Result<Ack, DecodeError> {
    let packet_id = get_packet_id(body)?;
    let (reason, properties) = if v5 && body.has_remaining() {
        let reason = get_u8(body)?;
        let properties = if body.has_remaining() {
            decode_properties(body)?
        } else {
            Properties::default()
        };
        (reason, properties)
    } else {
        (reason::SUCCESS, Properties::default())
    };
    Ok(Ack {
        packet_id,
        reason,
        properties,
    })
}

fn decode_reason_and_properties(body: &mut Bytes, v5: bool) -> Result<Disconnect, DecodeError> {
    if !v5 || !body.has_remaining() {
        return Ok(Disconnect::new(reason::SUCCESS));
    }
    let reason = get_u8(body)?;
    let properties = if body.has_remaining() {
        decode_properties(body)?
    } else {
        Properties::default()
    };
    Ok(Disconnect { reason, properties })
}

fn get_u8(body: &mut Bytes) -> Result<u8, DecodeError> {
    if body.remaining() < 1 {
        return Err(DecodeError::Malformed("packet ends early"));
    }
    Ok(body.get_u8())
}

fn get_u16(body: &mut Bytes) -> Result<u16, DecodeError> {
    if body.remaining() < 2 {
        return Err(DecodeError::Malformed("packet ends early"));
    }
    Ok(body.get_u16())
}

fn get_u32(body: &mut Bytes) -> Result<u32, DecodeError> {
    if body.remaining() < 4 {
        return Err(DecodeError::Malformed("packet ends early"));
    }
    Ok(body.get_u32())
}

fn get_packet_id(body: &mut Bytes) -> Result<u16, DecodeError> {
    match get_u16(body)? {
        0 => Err(DecodeError::Malformed("packet identifier 0")),
        id => Ok(id),
    }
}

fn get_binary(body: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = usize::from(get_u16(body)?);
    if body.remaining() < len {
        return Err(DecodeError::Malformed(
            "string or binary longer than the packet",
        ));
    }
    Ok(body.split_to(len))
}

fn get_string(body: &mut Bytes) -> Result<String, DecodeError> {
    let bytes = get_binary(body)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| DecodeError::Malformed("string is not UTF-8"))?;
    if text.contains('\0') {
        return Err(DecodeError::Malformed("string contains U+0000"));
    }
    Ok(text.to_string())
}

fn get_varint(body: &mut Bytes) -> Result<u32, DecodeError> {
    let mut value = 0u32;
    for i in 0..4 {
        let byte = get_u8(body)?;
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::Malformed(
        "variable byte integer longer than four bytes",
    ))
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::Protocol("property given twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn decode_properties(body: &mut Bytes) -> Result<Properties, DecodeError> {
    let len = get_varint(body)? as usize;
    if body.remaining() < len {
        return Err(DecodeError::Malformed("properties longer than the packet"));
    }
    let mut props = body.split_to(len);
    let mut p = Properties::default();
    while props.has_remaining() {
        let id = get_varint(&mut props)?;
        let b = &mut props;
        match id {
            0x01 => set_once(&mut p.payload_format_indicator, get_u8(b)?)?,
            0x02 => set_once(&mut p.message_expiry_interval, get_u32(b)?)?,
            0x03 => set_once(&mut p.content_type, get_string(b)?)?,
            0x08 => set_once(&mut p.response_topic, get_string(b)?)?,
            0x09 => set_once(&mut p.correlation_data, get_binary(b)?)?,
            0x0B => {
                let id = get_varint(b)?;
                if id == 0 {
                    return Err(DecodeError::Protocol("subscription identifier 0"));
                }
                p.subscription_identifiers.push(id);
            }
            0x11 => set_once(&mut p.session_expiry_interval, get_u32(b)?)?,
            0x12 => set_once(&mut p.assigned_client_identifier, get_string(b)?)?,
            0x13 => set_once(&mut p.server_keep_alive, get_u16(b)?)?,
            0x15 => set_once(&mut p.authentication_method, get_string(b)?)?,
            0x16 => set_once(&mut p.authentication_data, get_binary(b)?)?,
            0x17 => set_once(&mut p.request_problem_information, get_u8(b)?)?,
            0x18 => set_once(&mut p.will_delay_interval, get_u32(b)?)?,
            0x19 => set_once(&mut p.request_response_information, get_u8(b)?)?,
            0x1A => set_once(&mut p.response_information, get_string(b)?)?,
            0x1C => set_once(&mut p.server_reference, get_string(b)?)?,
            0x1F => set_once(&mut p.reason_string, get_string(b)?)?,
            0x21 => {
                let value = get_u16(b)?;
                if value == 0 {
                    return Err(DecodeError::Protocol("receive maximum 0"));
                }
                set_once(&mut p.receive_maximum, value)?
            }
            0x22 => set_once(&mut p.topic_alias_maximum, get_u16(b)?)?,
            0x23 => set_once(&mut p.topic_alias, get_u16(b)?)?,
            0x24 => set_once(&mut p.maximum_qos, get_u8(b)?)?,
            0x25 => set_once(&mut p.retain_available, get_u8(b)?)?,
            0x26 => {
                let name = get_string(b)?;
                let value = get_string(b)?;
                p.user_properties.push((name, value));
            }
            0x27 => {
                let value = get_u32(b)?;
                if value == 0 {
                    return Err(DecodeError::Protocol("maximum packet size 0"));
                }
                set_once(&mut p.maximum_packet_size, value)?
            }
            0x28 => set_once(&mut p.wildcard_subscription_available, get_u8(b)?)?,
            0x29 => set_once(&mut p.subscription_identifier_available, get_u8(b)?)?,
            0x2A => set_once(&mut p.shared_subscription_available, get_u8(b)?)?,
            _ => return Err(DecodeError::Malformed("unknown property identifier")),
        }
    }
    Ok(p)
}

/// Append `packet` as one frame to `out`, in the format of protocol `version`.
pub fn encode(packet: &Packet, version: Version, out: &mut Vec<u8>) {
    let v5 = version == Version::V5;
    let start = out.len();
    // Room for the longest fixed header; the gap is closed once the length is known.
    out.extend_from_slice(&[0; 5]);
    let first: u8 = match packet {
        Packet::Connect(connect) => {
            encode_connect(connect, out);
            0x10
        }
        Packet::ConnAck(ack) => {
            out.push(u8::from(ack.session_present));
            out.push(ack.code);
            if v5 {
                put_properties(&ack.properties, out);
            }
            0x20
        }
        Packet::Publish(publish) => {
            put_string(&publish.topic, out);
            if publish.qos != QoS::AtMostOnce {
                out.extend_from_slice(&publish.packet_id.to_be_bytes());
            }
            if v5 {
                put_properties(&publish.properties, out);
            }
            out.extend_from_slice(&publish.payload);
            0x30 | (u8::from(publish.dup) << 3)
                | ((publish.qos as u8) << 1)
                | u8::from(publish.retain)
        }
        Packet::PubAck(ack) => encode_ack(0x40, ack, v5, out),
        Packet::PubRec(ack) => encode_ack(0x50, ack, v5, out),
        Packet::PubRel(ack) => encode_ack(0x62, ack, v5, out),
        Packet::PubComp(ack) => encode_ack(0x70, ack, v5, out),
        Packet::Subscribe(subscribe) => {
            out.extend_from_slice(&subscribe.packet_id.to_be_bytes());
            if v5 {
                put_properties(&subscribe.properties, out);
            }
            for (filter, options) in &subscribe.filters {
                put_string(filter, out);
                out.push(*options);
            }
            0x82
        }
        Packet::SubAck(ack) => {
            out.extend_from_slice(&ack.packet_id.to_be_bytes());
            if v5 {
                put_properties(&ack.properties, out);
            }
            out.extend_from_slice(&ack.codes);
            0x90
        }
        Packet::Unsubscribe(unsubscribe) => {
            out.extend_from_slice(&unsubscribe.packet_id.to_be_bytes());
            if v5 {
                put_properties(&unsubscribe.properties, out);
            }
            for filter in &unsubscribe.filters {
                put_string(filter, out);
            }
            0xA2
        }
        Packet::UnsubAck(ack) => {
            out.extend_from_slice(&ack.packet_id.to_be_bytes());
            if v5 {
                put_properties(&ack.properties, out);
                out.extend_from_slice(&ack.codes);
            }
            0xB0
        }
        Packet::PingReq => 0xC0,
        Packet::PingResp => 0xD0,
        Packet::Disconnect(disconnect) => {
            encode_reason_and_properties(disconnect, v5, out);
            0xE0
        }
        Packet::Auth(auth) => {
            encode_reason_and_properties(auth, v5, out);
            0xF0
        }
    };
    let remaining = out.len() - start - 5;
    assert!(
        remaining <= MAX_REMAINING_LENGTH,
        "packet too large to encode"
    );
    let mut header = [0u8; 5];
    header[0] = first;
    let mut header_len = 1;
    let mut value = remaining;
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        header[header_len] = byte;
        header_len += 1;
        if value == 0 {
            break;
        }
    }
    let gap = 5 - header_len;
    out[start + gap..start + 5].copy_from_slice(&header[..header_len]);
    out.drain(start..start + gap);
}

fn encode_connect(connect: &Connect, out: &mut Vec<u8>) {
    let v5 = connect.version == Version::V5;
    put_string(connect.version.protocol_name(), out);
    out.push(connect.version.level() | if connect.bridge { 0x80 } else { 0 });
    let mut flags = 0u8;
    if connect.clean_start {
        flags |= 0x02;
    }
    if let Some(will) = &connect.will {
        flags |= 0x04 | ((will.qos as u8) << 3) | if will.retain { 0x20 } else { 0 };
    }
    if connect.password.is_some() {
        flags |= 0x40;
    }
    if connect.username.is_some() {
        flags |= 0x80;
    }
    out.push(flags);
    out.extend_from_slice(&connect.keep_alive_secs.to_be_bytes());
    if v5 {
        put_properties(&connect.properties, out);
    }
    put_string(&connect.client_id, out);
    if let Some(will) = &connect.will {
        if v5 {
            put_properties(&will.properties, out);
        }
        put_string(&will.topic, out);
        put_binary(&will.payload, out);
    }
    if let Some(username) = &connect.username {
        put_string(username, out);
    }
    if let Some(password) = &connect.password {
        put_binary(password, out);
    }
}

fn encode_ack(first: u8, ack: &Ack, v5: bool, out: &mut Vec<u8>) -> u8 {
    out.extend_from_slice(&ack.packet_id.to_be_bytes());
    if v5 {
        let no_properties = ack.properties == Properties::default();
        // The short forms: reason and properties may be left out when they say nothing.
        if ack.reason != reason::SUCCESS || !no_properties {
            out.push(ack.reason);
            if !no_properties {
                put_properties(&ack.properties, out);
            }
        }
    }
    first
}

fn encode_reason_and_properties(packet: &Disconnect, v5: bool, out: &mut Vec<u8>) {
    if !v5 {
        return;
    }
    let no_properties = packet.properties == Properties::default();
    if packet.reason != reason::SUCCESS || !no_properties {
        out.push(packet.reason);
        if !no_properties {
            put_properties(&packet.properties, out);
        }
    }
}

fn put_string(text: &str, out: &mut Vec<u8>) {
    put_binary(text.as_bytes(), out);
}

fn put_binary(bytes: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(bytes.len()).expect("MQTT strings are at most 65535 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_varint(mut value: u32, out: &mut Vec<u8>) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            break;
        }
    }
}

fn put_properties(p: &Properties, out: &mut Vec<u8>) {
    let mut body = Vec::new();
    let byte = |id: u8, value: Option<u8>, body: &mut Vec<u8>| {
        if let Some(value) = value {
            body.push(id);
            body.push(value);
        }
    };
    let two = |id: u8, value: Option<u16>, body: &mut Vec<u8>| {
        if let Some(value) = value {
            body.push(id);
            body.extend_from_slice(&value.to_be_bytes());
        }
    };
    let four = |id: u8, value: Option<u32>, body: &mut Vec<u8>| {
        if let Some(value) = value {
            body.push(id);
            body.extend_from_slice(&value.to_be_bytes());
        }
    };
    let string = |id: u8, value: &Option<String>, body: &mut Vec<u8>| {
        if let Some(value) = value {
            body.push(id);
            put_string(value, body);
        }
    };
    let binary = |id: u8, value: &Option<Bytes>, body: &mut Vec<u8>| {
        if let Some(value) = value {
            body.push(id);
            put_binary(value, body);
        }
    };
    byte(0x01, p.payload_format_indicator, &mut body);
    four(0x02, p.message_expiry_interval, &mut body);
    string(0x03, &p.content_type, &mut body);
    string(0x08, &p.response_topic, &mut body);
    binary(0x09, &p.correlation_data, &mut body);
    for id in &p.subscription_identifiers {
        body.push(0x0B);
        put_varint(*id, &mut body);
    }
    four(0x11, p.session_expiry_interval, &mut body);
    string(0x12, &p.assigned_client_identifier, &mut body);
    two(0x13, p.server_keep_alive, &mut body);
    string(0x15, &p.authentication_method, &mut body);
    binary(0x16, &p.authentication_data, &mut body);
    byte(0x17, p.request_problem_information, &mut body);
    four(0x18, p.will_delay_interval, &mut body);
    byte(0x19, p.request_response_information, &mut body);
    string(0x1A, &p.response_information, &mut body);
    string(0x1C, &p.server_reference, &mut body);
    string(0x1F, &p.reason_string, &mut body);
    two(0x21, p.receive_maximum, &mut body);
    two(0x22, p.topic_alias_maximum, &mut body);
    two(0x23, p.topic_alias, &mut body);
    byte(0x24, p.maximum_qos, &mut body);
    byte(0x25, p.retain_available, &mut body);
    for (name, value) in &p.user_properties {
        body.push(0x26);
        put_string(name, &mut body);
        put_string(value, &mut body);
    }
    four(0x27, p.maximum_packet_size, &mut body);
    byte(0x28, p.wildcard_subscription_available, &mut body);
    byte(0x29, p.subscription_identifier_available, &mut body);
    byte(0x2A, p.shared_subscription_available, &mut body);
    put_varint(body.len() as u32, out);
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(packet: Packet, version: Version) {
        let mut out = Vec::new();
        encode(&packet, version, &mut out);
        assert_eq!(frame_len(&out).unwrap(), Some(out.len()), "{packet:?}");
        let decoded =
            decode(Bytes::from(out), version).unwrap_or_else(|e| panic!("{packet:?}: {e}"));
        assert_eq!(decoded, packet);
    }

    fn rich_properties() -> Properties {
        Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some("application/json".into()),
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("unit".into(), "C".into()), ("unit".into(), "F".into())],
            ..Properties::default()
        }
    }

    #[test]
    fn every_packet_round_trips_in_v311_and_v5() {
        for version in [Version::V311, Version::V5] {
            let v5 = version == Version::V5;
            let props = |p: Properties| if v5 { p } else { Properties::default() };
            let connect = Connect {
                version,
                bridge: true,
                clean_start: false,
                keep_alive_secs: 30,
                client_id: "sensor-1".into(),
                will: Some(Will {
                    topic: "sensors/last-will".into(),
                    payload: Bytes::from_static(b"gone"),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    properties: props(Properties {
                        will_delay_interval: Some(5),
                        ..Properties::default()
                    }),
                }),
                username: Some("user".into()),
                password: Some(Bytes::from_static(b"secret")),
                properties: props(Properties {
                    session_expiry_interval: Some(3600),
                    receive_maximum: Some(100),
                    maximum_packet_size: Some(65536),
                    ..Properties::default()
                }),
            };
            round_trip(Packet::Connect(Box::new(connect)), version);
            round_trip(
                Packet::ConnAck(ConnAck {
                    session_present: true,
                    code: 0,
                    properties: props(Properties {
                        receive_maximum: Some(1000),
                        assigned_client_identifier: Some("auto-1".into()),
                        wildcard_subscription_available: Some(0),
                        ..Properties::default()
                    }),
                }),
                version,
            );
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                round_trip(
                    Packet::Publish(Publish {
                        dup: qos != QoS::AtMostOnce,
                        qos,
                        retain: true,
                        topic: "sensors/kitchen/temp".into(),
                        packet_id: if qos == QoS::AtMostOnce { 0 } else { 42 },
                        properties: props(rich_properties()),
                        payload: Bytes::from(vec![7u8; 300]),
                    }),
                    version,
                );
            }
            let ack = Ack {
                packet_id: 7,
                reason: if v5 {
                    reason::NO_MATCHING_SUBSCRIBERS
                } else {
                    0
                },
                properties: props(Properties {
                    reason_string: Some("no route".into()),
                    ..Properties::default()
                }),
            };
            round_trip(Packet::PubAck(ack.clone()), version);
            round_trip(Packet::PubAck(Ack::new(65535)), version);
            round_trip(Packet::PubRec(ack.clone()), version);
            round_trip(Packet::PubRel(Ack::new(9)), version);
            round_trip(Packet::PubComp(ack), version);
            round_trip(
                Packet::Subscribe(Subscribe {
                    packet_id: 3,
                    filters: vec![("a/+".into(), 1), ("b/#".into(), 2)],
                    properties: props(Properties {
                        subscription_identifiers: vec![300],
                        ..Properties::default()
                    }),
                }),
                version,
            );
            round_trip(
                Packet::SubAck(SubAck {
                    packet_id: 3,
                    codes: vec![0x80, 0x80],
                    properties: Properties::default(),
                }),
                version,
            );
            round_trip(
                Packet::Unsubscribe(Unsubscribe {
                    packet_id: 4,
                    filters: vec!["a/+".into()],
                    properties: Properties::default(),
                }),
                version,
            );
            round_trip(
                Packet::UnsubAck(UnsubAck {
                    packet_id: 4,
                    codes: if v5 {
                        vec![reason::NO_SUBSCRIPTION_EXISTED]
                    } else {
                        Vec::new()
                    },
                    properties: Properties::default(),
                }),
                version,
            );
            round_trip(Packet::PingReq, version);
            round_trip(Packet::PingResp, version);
            round_trip(Packet::Disconnect(Disconnect::new(0)), version);
        }
        round_trip(
            Packet::Disconnect(Disconnect {
                reason: reason::SESSION_TAKEN_OVER,
                properties: Properties {
                    reason_string: Some("taken over".into()),
                    ..Properties::default()
                },
            }),
            Version::V5,
        );
        round_trip(Packet::Auth(Disconnect::new(0x18)), Version::V5);
    }

    #[test]
    fn mqtt31_and_bridge_levels_are_recognised() {
        for (level, version, bridge) in [
            (3u8, Version::V31, false),
            (0x83, Version::V31, true),
            (0x84, Version::V311, true),
            (0x85, Version::V5, true),
        ] {
            let name: &[u8] = if version == Version::V31 {
                b"MQIsdp"
            } else {
                b"MQTT"
            };
            let mut body = vec![0, name.len() as u8];
            body.extend_from_slice(name);
            body.extend_from_slice(&[level, 0x02, 0, 60]);
            if version == Version::V5 {
                body.push(0); // no properties
            }
            body.extend_from_slice(&[0, 1, b'c']);
            let mut frame = vec![0x10, body.len() as u8];
            frame.extend_from_slice(&body);
            let Packet::Connect(connect) = decode(Bytes::from(frame), Version::V311).unwrap()
            else {
                panic!("not a CONNECT");
            };
            assert_eq!(
                (connect.version, connect.bridge),
                (version, bridge),
                "level {level:#x}"
            );
        }
    }

    #[test]
    fn large_remaining_lengths_use_more_bytes() {
        for size in [0usize, 127, 128, 16_383, 16_384, 2_097_152] {
            let packet = Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "t".into(),
                packet_id: 0,
                properties: Properties::default(),
                payload: Bytes::from(vec![1u8; size]),
            });
            round_trip(packet, Version::V311);
        }
    }

    #[test]
    fn frame_len_waits_for_length_bytes_and_refuses_five() {
        assert_eq!(frame_len(&[0x30]).unwrap(), None);
        assert_eq!(frame_len(&[0x30, 0x80]).unwrap(), None);
        assert_eq!(frame_len(&[0x30, 0x80, 0x01]).unwrap(), Some(3 + 128));
        assert!(frame_len(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            &[0x00, 0x00],                         // reserved type 0
            &[0x32, 0x02, 0x00, 0x01],             // QoS 1 publish cut short
            &[0x36, 0x03, 0x00, 0x01, b'a'],       // QoS 3
            &[0x38, 0x03, 0x00, 0x01, b'a'],       // DUP on QoS 0
            &[0x30, 0x03, 0x00, 0x01, b'#'],       // wildcard in topic
            &[0x30, 0x04, 0x00, 0x02, 0xc3, 0x28], // invalid UTF-8
            &[0x30, 0x03, 0x00, 0x01, 0x00],       // NUL in topic
            &[0x40, 0x02, 0x00, 0x00],             // packet id 0
            &[0x60, 0x02, 0x00, 0x01],             // PUBREL without its flag bits
            &[0x82, 0x02, 0x00, 0x01],             // SUBSCRIBE without filters
            &[0x10, 0x02, 0x00, 0x04],             // CONNECT cut short
            &[0xC0, 0x01, 0x00],                   // PINGREQ with a body
            &[0xF0, 0x00],                         // AUTH before v5
        ];
        for case in cases {
            assert!(
                decode(Bytes::copy_from_slice(case), Version::V311).is_err(),
                "{case:?} decoded"
            );
        }
        // v5: a property given twice, and an unknown property.
        let twice = [
            0x40, 0x0b, 0x00, 0x01, 0x00, 0x07, 0x1f, 0x00, 0x01, b'a', 0x1f, 0x00, 0x00,
        ];
        assert_eq!(
            decode(Bytes::copy_from_slice(&twice[..]), Version::V5),
            Err(DecodeError::Protocol("property given twice"))
        );
        let unknown = [0x40, 0x05, 0x00, 0x01, 0x00, 0x01, 0x7f];
        assert!(decode(Bytes::copy_from_slice(&unknown[..]), Version::V5).is_err());
        // CONNECT for a protocol we do not speak.
        let amqp = [
            0x10, 0x0a, 0x00, 0x04, b'A', b'M', b'Q', b'P', 0x04, 0x02, 0x00, 0x3c,
        ];
        assert!(matches!(
            decode(Bytes::copy_from_slice(&amqp[..]), Version::V311),
            Err(DecodeError::UnsupportedProtocol { .. })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic fuzz: every frame of a simple xorshift stream must decode
        // or fail cleanly.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let mut frame = Vec::with_capacity(len + 2);
            let mut s = state;
            frame.push((s & 0xff) as u8);
            frame.push(len as u8);
            for _ in 0..len {
                s = s.rotate_left(9) ^ 0x9e37_79b9;
                frame.push((s & 0xff) as u8);
            }
            for version in [Version::V311, Version::V5] {
                let _ = decode(Bytes::from(frame.clone()), version);
            }
        }
    }
}

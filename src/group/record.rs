//! The records of `__consumer_offsets`, in Kafka's own schemas so the topic reads like
//! Kafka's: an `OffsetCommitKey` (key version 1: group, topic, partition) with an
//! `OffsetCommitValue` (value version 3: offset, leader epoch, metadata, commit timestamp),
//! and a `GroupMetadataKey` (key version 2: group) with a `GroupMetadataValue` (value
//! version 3). A null value is a tombstone: the offset, or the whole group, was deleted.
//! Decoding accepts the older value versions Kafka wrote (0–3); anything else is skipped.

use bytes::Bytes;

/// Key version of an offset commit (Kafka writes 1; 0 has the same layout).
const OFFSET_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
const GROUP_KEY_VERSION: i16 = 2;
/// Value version written for offsets (no expire timestamp, with leader epoch).
const OFFSET_VALUE_VERSION: i16 = 3;
/// Value version written for group metadata (with currentStateTimestamp and instance ids).
const GROUP_VALUE_VERSION: i16 = 3;

/// What a `__consumer_offsets` key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// A committed offset of one partition.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A group's membership and generation.
    Group {
        /// Group id.
        group: String,
    },
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset the consumer will read.
    pub offset: i64,
    /// The leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// The consumer's metadata string.
    pub metadata: String,
    /// When it was committed (wall clock ms).
    pub commit_timestamp_ms: i64,
}

/// One member in a stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// Where the client connected from.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Protocol metadata for the group's protocol.
    pub subscription: Bytes,
    /// The assignment the leader gave.
    pub assignment: Bytes,
}

/// A group as stored after each completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// e.g. "consumer".
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// The chosen protocol (assignor), None while empty.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its current state (wall clock ms).
    pub current_state_timestamp_ms: i64,
    /// Members.
    pub members: Vec<MemberValue>,
}

/// A decoded record: the key and, unless it is a tombstone, the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A committed offset, or its deletion (None).
    Offset(String, String, i32, Option<OffsetValue>),
    /// A group's metadata, or its deletion (None).
    Group(String, Option<GroupValue>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

/// Encodes a key.
pub fn encode_key(key: &RecordKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            out.extend_from_slice(&OFFSET_KEY_VERSION.to_be_bytes());
            put_str(&mut out, group);
            put_str(&mut out, topic);
            out.extend_from_slice(&partition.to_be_bytes());
        }
        RecordKey::Group { group } => {
            out.extend_from_slice(&GROUP_KEY_VERSION.to_be_bytes());
            put_str(&mut out, group);
        }
    }
    out
}

/// Encodes an offset value (version 3).
pub fn encode_offset(value: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + value.metadata.len());
    out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&value.offset.to_be_bytes());
    out.extend_from_slice(&value.leader_epoch.to_be_bytes());
    put_str(&mut out, &value.metadata);
    out.extend_from_slice(&value.commit_timestamp_ms.to_be_bytes());
    out
}

/// Encodes group metadata (version 3).
pub fn encode_group(value: &GroupValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&GROUP_VALUE_VERSION.to_be_bytes());
    put_str(&mut out, &value.protocol_type);
    out.extend_from_slice(&value.generation.to_be_bytes());
    put_nullable_str(&mut out, value.protocol.as_deref());
    put_nullable_str(&mut out, value.leader.as_deref());
    out.extend_from_slice(&value.current_state_timestamp_ms.to_be_bytes());
    out.extend_from_slice(&(value.members.len() as i32).to_be_bytes());
    for m in &value.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// A bounds-checked reader of Kafka's non-flexible types.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Decoded<T> = Result<T, &'static str>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Decoded<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("truncated")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn i16(&mut self) -> Decoded<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Decoded<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Decoded<i64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }
    fn nullable_str(&mut self) -> Decoded<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| "string is not UTF-8")
    }
    fn str(&mut self) -> Decoded<String> {
        self.nullable_str()?.ok_or("null string")
    }
    fn bytes(&mut self) -> Decoded<Bytes> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

/// Decodes one record of `__consumer_offsets`; `value` None is a tombstone.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Decoded<Record> {
    let mut k = Reader { buf: key, pos: 0 };
    match k.i16()? {
        0 | 1 => {
            let group = k.str()?;
            let topic = k.str()?;
            let partition = k.i32()?;
            let value = value.map(decode_offset).transpose()?;
            Ok(Record::Offset(group, topic, partition, value))
        }
        2 => {
            let group = k.str()?;
            let value = value.map(decode_group).transpose()?;
            Ok(Record::Group(group, value))
        }
        _ => Err("unknown key version"),
    }
}

fn decode_offset(value: &[u8]) -> Decoded<OffsetValue> {
    let mut r = Reader { buf: value, pos: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err("unsupported offset value version");
    }
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.str()?;
    let commit_timestamp_ms = r.i64()?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_group(value: &[u8]) -> Decoded<GroupValue> {
    let mut r = Reader { buf: value, pos: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err("unsupported group value version");
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    // Each member takes at least 26 bytes: the count cannot size an allocation past the input.
    if count < 0 || count as usize > value.len() / 26 {
        return Err("bad member count");
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let member_id = r.str()?;
        let instance_id = if version >= 3 {
            r.nullable_str()?
        } else {
            None
        };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

/// Kafka's partition for a group: the Java `String.hashCode` of the id (over UTF-16 code
/// units), made non-negative as Kafka's `Utils.abs` does, modulo the partition count.
pub fn partition_for(group: &str, partitions: u32) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_code_partitioning() {
        // "hello".hashCode() == 99162322 in Java; 99162322 % 50 == 22.
        assert_eq!(partition_for("hello", 50), 22);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Kafka's abs maps it to 0.
        assert_eq!(partition_for("polygenelubricants", 8), 0);
        assert_eq!(partition_for("", 8), 0);
        for p in [1u32, 8, 50] {
            assert!((0..p as i32).contains(&partition_for("console-consumer-12345", p)));
        }
    }

    #[test]
    fn offsets_and_groups_round_trip() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 1,
            metadata: "m".into(),
            commit_timestamp_ms: 7,
        };
        let record = decode(&encode_key(&key), Some(&encode_offset(&value))).unwrap();
        assert_eq!(
            record,
            Record::Offset("g".into(), "t".into(), 3, Some(value))
        );
        assert_eq!(
            decode(&encode_key(&key), None).unwrap(),
            Record::Offset("g".into(), "t".into(), 3, None)
        );

        let group = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 99,
            members: vec![MemberValue {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let key = RecordKey::Group { group: "g".into() };
        assert_eq!(
            decode(&encode_key(&key), Some(&encode_group(&group))).unwrap(),
            Record::Group("g".into(), Some(group))
        );
    }

    #[test]
    fn kafka_byte_layouts() {
        // OffsetCommitKey v1: version, group, topic, partition.
        let key = encode_key(&RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
        });
        assert_eq!(key, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
        // OffsetCommitValue v1 (with expire timestamp) is still read.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&6i64.to_be_bytes());
        v1.extend_from_slice(&(-1i64).to_be_bytes());
        let record = decode(&key, Some(&v1)).unwrap();
        assert!(matches!(
            record,
            Record::Offset(
                _,
                _,
                1,
                Some(OffsetValue {
                    offset: 5,
                    leader_epoch: -1,
                    commit_timestamp_ms: 6,
                    ..
                })
            )
        ));
        assert!(decode(&[0, 9, 0, 0], None).is_err());
        assert!(decode(&key[..5], None).is_err());
    }
}

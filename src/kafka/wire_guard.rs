//! A pre-decode check of Kafka request bodies.
//!
//! kafka-protocol 0.18.0 decodes an array by calling `Vec::with_capacity(n)` with the element
//! count `n` read straight off the wire, before it reads a single element. A 20-byte request
//! that claims 2^31 elements makes the process reserve hundreds of gigabytes and abort; on a
//! Pi with 1 GiB any large count does. We cannot patch the crate, so every request body is
//! walked here first, with a compact table of the request layouts ([`schema`]), and is only
//! handed to `RequestKind::decode` when this walk succeeds.
//!
//! The walk reads exactly what the crate's decoder reads, version by version, and refuses a
//! body when an array (at any depth, including inside known tagged fields) claims more
//! elements than the bytes left could hold, when a string or bytes length is negative (other
//! than null where null is allowed) or runs past the end, or when the body is truncated.
//! Every array it accepts really has all its elements on the wire, so the capacity the crate
//! reserves is bounded by the body size times the size of one decoded element.

mod schema;

use kafka_protocol::messages::ApiKey;
use schema::{Api, Field, Kind, Schema, APIS};

/// Why a request body was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The body ends in the middle of a field.
    #[error("request body truncated in {within}.{field}")]
    Truncated {
        within: &'static str,
        field: &'static str,
    },
    /// An array claims more elements than the rest of the body could hold.
    #[error("{within}.{field} claims {count} elements but only {remaining} bytes remain")]
    ArrayTooLong {
        within: &'static str,
        field: &'static str,
        count: u64,
        remaining: usize,
    },
    /// A length prefix that is negative (or null where null is not allowed), or that runs past
    /// the end of the body.
    #[error("{within}.{field} has length {length} with {remaining} bytes remaining")]
    BadLength {
        within: &'static str,
        field: &'static str,
        length: i64,
        remaining: usize,
    },
    /// An unsigned varint longer than 5 bytes or larger than `u32::MAX`.
    #[error("bad varint in {within}.{field}")]
    BadVarint {
        within: &'static str,
        field: &'static str,
    },
    /// A known tagged field sent in a version that does not have it, or whose declared size
    /// disagrees with its content.
    #[error("tagged field {tag} of {within} is invalid: {reason}")]
    BadTaggedField {
        within: &'static str,
        tag: u32,
        reason: &'static str,
    },
    /// The guard has no layout for this API key and version, so the body must not be decoded.
    #[error("no request layout for api key {api_key} version {version}")]
    NoSchema { api_key: i16, version: i16 },
}

/// The (api key, min version, max version) triples bramble serves and this guard checks.
///
/// ACL APIs start at version 1: kafka-protocol 0.18.0 cannot decode version 0 of them.
static COVERED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
];

/// The (api key, min version, max version) triples this guard has schemas for.
pub fn covered() -> &'static [(ApiKey, i16, i16)] {
    COVERED
}

/// Checks that `body` (the request bytes after the request header) is safe to hand to
/// `RequestKind::decode` for this API key and version.
pub fn check_body(api_key: ApiKey, version: i16, body: &[u8]) -> Result<(), GuardError> {
    body_len(api_key, version, body).map(|_| ())
}

/// Like [`check_body`], and returns how many bytes of `body` the request occupies (the crate's
/// decoder consumes exactly these; anything after them it leaves unread).
pub fn body_len(api_key: ApiKey, version: i16, body: &[u8]) -> Result<usize, GuardError> {
    let no_schema = GuardError::NoSchema {
        api_key: api_key as i16,
        version,
    };
    let served = COVERED
        .iter()
        .any(|&(key, min, max)| key == api_key && min <= version && version <= max);
    if !served {
        return Err(no_schema);
    }
    let api = find_api(api_key, version).ok_or(no_schema)?;
    walk_api(api, version, body)
}

fn find_api(api_key: ApiKey, version: i16) -> Option<&'static Api> {
    APIS.iter()
        .find(|api| api.key == api_key && api.min <= version && version <= api.max)
}

fn walk_api(api: &Api, version: i16, body: &[u8]) -> Result<usize, GuardError> {
    let mut walker = Walker {
        body,
        pos: 0,
        version,
        flexible: version >= api.flexible_from,
    };
    walker.walk_struct(api.schema)?;
    Ok(walker.pos)
}

/// A cursor over the body that reads each field the way kafka-protocol does.
struct Walker<'a> {
    body: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

/// Where the walker is, for error messages.
#[derive(Clone, Copy)]
struct At {
    within: &'static str,
    field: &'static str,
}

impl At {
    fn truncated(self) -> GuardError {
        GuardError::Truncated {
            within: self.within,
            field: self.field,
        }
    }
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    fn skip(&mut self, n: usize, at: At) -> Result<(), GuardError> {
        if n > self.remaining() {
            return Err(at.truncated());
        }
        self.pos += n;
        Ok(())
    }

    fn fixed<const N: usize>(&mut self, at: At) -> Result<[u8; N], GuardError> {
        let bytes = self
            .body
            .get(self.pos..self.pos + N)
            .ok_or_else(|| at.truncated())?;
        self.pos += N;
        Ok(bytes.try_into().expect("slice has length N"))
    }

    fn i16(&mut self, at: At) -> Result<i16, GuardError> {
        self.fixed::<2>(at).map(i16::from_be_bytes)
    }

    fn i32(&mut self, at: At) -> Result<i32, GuardError> {
        self.fixed::<4>(at).map(i32::from_be_bytes)
    }

    /// An unsigned varint as the crate reads it (at most 5 bytes). The crate silently drops
    /// bits past 32 and stops after 5 bytes even if the continuation bit is set; such a varint
    /// is no client's encoding, so it is refused here instead.
    fn uvarint(&mut self, at: At) -> Result<u32, GuardError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.fixed::<1>(at)?;
            if i == 4 && b > 0x0f {
                return Err(GuardError::BadVarint {
                    within: at.within,
                    field: at.field,
                });
            }
            value |= u32::from(b & 0x7f) << (i * 7);
            if b < 0x80 {
                return Ok(value);
            }
        }
        unreachable!("the fifth byte either ends the varint or is refused")
    }

    /// Reads a length prefix: `None` for null, `Some(n)` otherwise. Classic form is an i16
    /// (strings) or i32 (bytes, arrays) with -1 for null; compact form is a varint of n + 1
    /// with 0 for null.
    fn length(&mut self, wide: bool, nullable: bool, at: At) -> Result<Option<u64>, GuardError> {
        let raw: i64 = if self.flexible {
            i64::from(self.uvarint(at)?) - 1
        } else if wide {
            i64::from(self.i32(at)?)
        } else {
            i64::from(self.i16(at)?)
        };
        match raw {
            -1 if nullable => Ok(None),
            n if n >= 0 => Ok(Some(n as u64)),
            n => Err(GuardError::BadLength {
                within: at.within,
                field: at.field,
                length: n,
                remaining: self.remaining(),
            }),
        }
    }

    /// Skips a length-prefixed string or bytes field.
    fn blob(&mut self, wide: bool, nullable: bool, at: At) -> Result<(), GuardError> {
        let Some(len) = self.length(wide, nullable, at)? else {
            return Ok(());
        };
        if len > self.remaining() as u64 {
            return Err(GuardError::BadLength {
                within: at.within,
                field: at.field,
                length: len as i64,
                remaining: self.remaining(),
            });
        }
        self.pos += len as usize;
        Ok(())
    }

    fn walk_kind(&mut self, kind: &Kind, at: At) -> Result<(), GuardError> {
        match kind {
            Kind::I8 | Kind::Bool => self.skip(1, at),
            Kind::I16 => self.skip(2, at),
            Kind::I32 => self.skip(4, at),
            Kind::I64 => self.skip(8, at),
            Kind::Uuid => self.skip(16, at),
            Kind::Str { nullable } => self.blob(false, *nullable, at),
            Kind::Bytes { nullable } => self.blob(true, *nullable, at),
            Kind::Array { elem, nullable } => self.walk_array(elem, *nullable, at),
            Kind::Struct(schema) => self.walk_struct(schema),
        }
    }

    fn walk_array(&mut self, elem: &Kind, nullable: bool, at: At) -> Result<(), GuardError> {
        let Some(count) = self.length(true, nullable, at)? else {
            return Ok(());
        };
        // Every element takes at least `min_size` bytes (and we count at least one, so even
        // an element with no bytes cannot make us, or the crate, loop or reserve unboundedly).
        let min_size = min_size(elem, self.version, self.flexible).max(1) as u64;
        let remaining = self.remaining();
        if count > remaining as u64 / min_size {
            return Err(GuardError::ArrayTooLong {
                within: at.within,
                field: at.field,
                count,
                remaining,
            });
        }
        for _ in 0..count {
            self.walk_kind(elem, at)?;
        }
        Ok(())
    }

    fn walk_struct(&mut self, schema: &'static Schema) -> Result<(), GuardError> {
        let version = self.version;
        for field in schema.fields {
            if field.tag.is_none() && field.in_version(version) {
                let at = At {
                    within: schema.name,
                    field: field.name,
                };
                self.walk_kind(&field.kind, at)?;
            }
        }
        if self.flexible {
            self.walk_tagged_fields(schema)?;
        }
        Ok(())
    }

    /// The tagged-field section: a count, then (tag, size, value) triples. The crate parses
    /// the value of a tag it knows straight from the buffer, whatever the size says, and skips
    /// `size` bytes of any other tag; we require the two to agree.
    fn walk_tagged_fields(&mut self, schema: &'static Schema) -> Result<(), GuardError> {
        let at = At {
            within: schema.name,
            field: "tagged_fields",
        };
        let count = self.uvarint(at)?;
        // A tagged field takes at least two bytes (tag and size).
        let remaining = self.remaining();
        if u64::from(count) > remaining as u64 / 2 {
            return Err(GuardError::ArrayTooLong {
                within: at.within,
                field: at.field,
                count: count.into(),
                remaining,
            });
        }
        for _ in 0..count {
            let tag = self.uvarint(at)?;
            let size = self.uvarint(at)? as usize;
            match known_tag(schema, tag) {
                Some(field) => self.walk_known_tag(schema, field, tag, size)?,
                None => self.blob_of(size, at)?,
            }
        }
        Ok(())
    }

    fn walk_known_tag(
        &mut self,
        schema: &'static Schema,
        field: &Field,
        tag: u32,
        size: usize,
    ) -> Result<(), GuardError> {
        let bad = |reason| GuardError::BadTaggedField {
            within: schema.name,
            tag,
            reason,
        };
        if !field.in_version(self.version) {
            return Err(bad("not valid in this version"));
        }
        if size > self.remaining() {
            return Err(bad("size runs past the end of the body"));
        }
        let start = self.pos;
        let at = At {
            within: schema.name,
            field: field.name,
        };
        self.walk_kind(&field.kind, at)?;
        if self.pos - start != size {
            return Err(bad("declared size differs from its content"));
        }
        Ok(())
    }

    fn blob_of(&mut self, size: usize, at: At) -> Result<(), GuardError> {
        if size > self.remaining() {
            return Err(GuardError::BadLength {
                within: at.within,
                field: at.field,
                length: size as i64,
                remaining: self.remaining(),
            });
        }
        self.pos += size;
        Ok(())
    }
}

fn known_tag(schema: &Schema, tag: u32) -> Option<&Field> {
    schema.fields.iter().find(|field| field.tag == Some(tag))
}

/// The fewest bytes one value of `kind` can take at this version.
fn min_size(kind: &Kind, version: i16, flexible: bool) -> usize {
    match kind {
        Kind::I8 | Kind::Bool => 1,
        Kind::I16 => 2,
        Kind::I32 => 4,
        Kind::I64 => 8,
        Kind::Uuid => 16,
        Kind::Str { .. } if flexible => 1,
        Kind::Str { .. } => 2,
        Kind::Bytes { .. } | Kind::Array { .. } if flexible => 1,
        Kind::Bytes { .. } | Kind::Array { .. } => 4,
        Kind::Struct(schema) => {
            let fields: usize = schema
                .fields
                .iter()
                .filter(|field| field.tag.is_none() && field.in_version(version))
                .map(|field| min_size(&field.kind, version, flexible))
                .sum();
            fields + usize::from(flexible)
        }
    }
}

#[cfg(test)]
mod tests;

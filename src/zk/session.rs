//! Session-level requests: auth (digest), whoAmI, ping, closeSession.

use super::jute::{DecodeError, Reader, Writer};
use crate::coordinator::Id;

/// An AuthPacket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Always 0.
    pub kind: i32,
    /// Scheme, e.g. "digest".
    pub scheme: String,
    /// Credentials, e.g. b"user:password".
    pub auth: Vec<u8>,
}

/// Decodes an AuthPacket.
pub fn decode_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    Ok(Auth {
        kind: r.i32()?,
        scheme: r.string()?,
        auth: r.buffer()?,
    })
}

/// Java's String.hashCode (over UTF-16 code units).
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The bucket a jute `Id` falls in within a default-sized (16) ConcurrentHashMap: the
/// order ZooKeeper lists a connection's identities in.
fn java_bucket(id: &Id) -> u32 {
    let h = 37i32
        .wrapping_mul(37i32.wrapping_mul(17).wrapping_add(java_hash(&id.scheme)))
        .wrapping_add(java_hash(&id.id)) as u32;
    ((h ^ (h >> 16)) & 0x7fff_ffff) & 15
}

/// Encodes a WhoAmIResponse: the session's identities as (scheme, user name), digest ids
/// reduced to the user, in the order ZooKeeper's identity set iterates.
pub fn encode_who_am_i(ids: &[Id], w: &mut Writer) {
    w.i32(ids.len() as i32);
    let mut ordered: Vec<(u32, usize, &Id)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (java_bucket(id), i, id))
        .collect();
    ordered.sort();
    for (_, _, id) in ordered {
        let user = match id.scheme.as_str() {
            "digest" => id.id.split(':').next().unwrap_or(""),
            _ => id.id.as_str(),
        };
        w.string(&id.scheme).string(user);
    }
}

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
    Ok(Auth { kind: r.i32()?, scheme: r.string()?, auth: r.buffer()? })
}

/// Encodes a WhoAmIResponse: the session's identities as (scheme, user).
pub fn encode_who_am_i(ids: &[Id], w: &mut Writer) {
    w.i32(ids.len() as i32);
    for id in ids {
        w.string(&id.scheme).string(&id.id);
    }
}

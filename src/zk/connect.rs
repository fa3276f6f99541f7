//! ConnectRequest / ConnectResponse: the first frame of a session, with or without the
//! trailing readOnly byte (clients since 3.4 send it; we answer in kind).

use super::jute::{DecodeError, Reader, Writer};

/// A client's connect request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Protocol version (0).
    pub protocol_version: i32,
    /// Highest zxid the client has seen.
    pub last_zxid_seen: i64,
    /// Requested session timeout.
    pub timeout_ms: i32,
    /// 0 for a new session, else the session to reattach.
    pub session_id: i64,
    /// The session's password when reattaching.
    pub password: Vec<u8>,
    /// The readOnly flag, if the client sent one.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    /// A request for a new session with this timeout (no session id, a zero password, not
    /// read-only), as a client that has seen nothing sends it.
    pub fn new_session(timeout_ms: i32) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            password: vec![0; 16],
            read_only: Some(false),
        }
    }

    /// Decodes a connect frame body.
    pub fn decode(buf: &[u8]) -> Result<ConnectRequest, DecodeError> {
        let mut r = Reader::new(buf);
        let protocol_version = r.i32()?;
        let last_zxid_seen = r.i64()?;
        let timeout_ms = r.i32()?;
        let session_id = r.i64()?;
        let password = r.buffer()?;
        let read_only = if r.remaining() > 0 {
            Some(r.bool()?)
        } else {
            None
        };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            password,
            read_only,
        })
    }

    /// Encodes a connect frame (client side), with the readOnly byte.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::framed();
        w.i32(self.protocol_version)
            .i64(self.last_zxid_seen)
            .i32(self.timeout_ms)
            .i64(self.session_id)
            .buffer(&self.password);
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
        w.finish_frame()
    }
}

/// The server's connect response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    /// Protocol version (0).
    pub protocol_version: i32,
    /// Negotiated timeout; 0 means the session is expired or invalid.
    pub timeout_ms: i32,
    /// Session id.
    pub session_id: i64,
    /// Session password.
    pub password: Vec<u8>,
    /// Whether this is a read-only server; sent only if the client sent the byte.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// Encodes the response as a frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::framed();
        w.i32(self.protocol_version)
            .i32(self.timeout_ms)
            .i64(self.session_id)
            .buffer(&self.password);
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
        w.finish_frame()
    }

    /// Decodes a response body (client side).
    pub fn decode(buf: &[u8]) -> Result<ConnectResponse, DecodeError> {
        let mut r = Reader::new(buf);
        let protocol_version = r.i32()?;
        let timeout_ms = r.i32()?;
        let session_id = r.i64()?;
        let password = r.buffer()?;
        let read_only = if r.remaining() > 0 {
            Some(r.bool()?)
        } else {
            None
        };
        Ok(ConnectResponse {
            protocol_version,
            timeout_ms,
            session_id,
            password,
            read_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_round_trips_with_and_without_read_only() {
        for ro in [None, Some(false)] {
            let req = ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 5,
                timeout_ms: 10000,
                session_id: 0,
                password: vec![0; 16],
                read_only: ro,
            };
            assert_eq!(ConnectRequest::decode(&req.encode()[4..]).unwrap(), req);
            let resp = ConnectResponse {
                protocol_version: 0,
                timeout_ms: 4000,
                session_id: 77,
                password: vec![1; 16],
                read_only: ro,
            };
            assert_eq!(ConnectResponse::decode(&resp.encode()[4..]).unwrap(), resp);
        }
    }
}

//! Transactions: what a validated write becomes, what the log stores, and what `apply`
//! replays. Each carries the zxid and wall time the caller assigned, so replaying a txn
//! gives the same tree on every node and after every restart.

use super::types::{Acl, Id};
use crate::zk::jute::{DecodeError, Reader, Writer};

/// One transaction with its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The session that asked (0 for server-initiated txns such as container reaping).
    pub session_id: i64,
    /// The client's xid for the request, for tracing.
    pub cxid: i32,
    /// Its zxid; zxids only grow.
    pub zxid: i64,
    /// Wall time the caller assigned, ms since the epoch (ctime / mtime of the nodes it touches).
    pub time_ms: i64,
    /// What it does.
    pub body: TxnBody,
}

/// The body of a transaction. Values are final: sequence numbers, versions and ACLs are
/// already resolved, so applying is a plain mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnBody {
    /// A session was created with this timeout and password.
    CreateSession {
        /// Negotiated timeout.
        timeout_ms: i32,
        /// The password the client must present to reattach.
        password: Vec<u8>,
    },
    /// The session ended: its ephemerals are deleted.
    CloseSession,
    /// A node is created.
    Create {
        /// Full path, sequence suffix included.
        path: String,
        /// Data.
        data: Vec<u8>,
        /// ACL after fix-up.
        acl: Vec<Acl>,
        /// Session id for ephemerals; container/TTL markers; 0 for persistent.
        ephemeral_owner: i64,
        /// The parent's new cversion.
        parent_cversion: i32,
    },
    /// A node is deleted.
    Delete {
        /// Path.
        path: String,
    },
    /// A node's data is replaced.
    SetData {
        /// Path.
        path: String,
        /// New data.
        data: Vec<u8>,
        /// The new version.
        version: i32,
    },
    /// A node's ACL is replaced.
    SetAcl {
        /// Path.
        path: String,
        /// New ACL after fix-up.
        acl: Vec<Acl>,
        /// The new aversion.
        version: i32,
    },
    /// A version check inside a multi (changes nothing).
    Check {
        /// Path.
        path: String,
    },
    /// A failed request (it still consumes a zxid, as in ZooKeeper).
    Error {
        /// The error code.
        err: i32,
    },
    /// An atomic batch; if any part failed, every part is an `Error`.
    Multi(Vec<TxnBody>),
}

const T_CREATE_SESSION: i32 = -10;
const T_CLOSE_SESSION: i32 = -11;
const T_CREATE: i32 = 1;
const T_DELETE: i32 = 2;
const T_SET_DATA: i32 = 5;
const T_SET_ACL: i32 = 7;
const T_CHECK: i32 = 13;
const T_MULTI: i32 = 14;
const T_ERROR: i32 = -1;

/// Writes an ACL vector.
pub fn write_acl(w: &mut Writer, acl: &[Acl]) {
    w.i32(acl.len() as i32);
    for a in acl {
        w.i32(a.perms).string(&a.id.scheme).string(&a.id.id);
    }
}

/// Reads an ACL vector.
pub fn read_acl(r: &mut Reader) -> Result<Vec<Acl>, DecodeError> {
    r.vec(12, |r| {
        let perms = r.i32()?;
        let scheme = r.string()?;
        let id = r.string()?;
        Ok(Acl {
            perms,
            id: Id { scheme, id },
        })
    })
}

impl TxnBody {
    fn encode(&self, w: &mut Writer) {
        match self {
            TxnBody::CreateSession {
                timeout_ms,
                password,
            } => {
                w.i32(T_CREATE_SESSION).i32(*timeout_ms).buffer(password);
            }
            TxnBody::CloseSession => {
                w.i32(T_CLOSE_SESSION);
            }
            TxnBody::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                w.i32(T_CREATE).string(path).buffer(data);
                write_acl(w, acl);
                w.i64(*ephemeral_owner).i32(*parent_cversion);
            }
            TxnBody::Delete { path } => {
                w.i32(T_DELETE).string(path);
            }
            TxnBody::SetData {
                path,
                data,
                version,
            } => {
                w.i32(T_SET_DATA).string(path).buffer(data).i32(*version);
            }
            TxnBody::SetAcl { path, acl, version } => {
                w.i32(T_SET_ACL).string(path);
                write_acl(w, acl);
                w.i32(*version);
            }
            TxnBody::Check { path } => {
                w.i32(T_CHECK).string(path);
            }
            TxnBody::Error { err } => {
                w.i32(T_ERROR).i32(*err);
            }
            TxnBody::Multi(parts) => {
                w.i32(T_MULTI).i32(parts.len() as i32);
                for p in parts {
                    p.encode(w);
                }
            }
        }
    }

    fn decode(r: &mut Reader, nested: bool) -> Result<TxnBody, DecodeError> {
        Ok(match r.i32()? {
            T_CREATE_SESSION => TxnBody::CreateSession {
                timeout_ms: r.i32()?,
                password: r.buffer()?,
            },
            T_CLOSE_SESSION => TxnBody::CloseSession,
            T_CREATE => TxnBody::Create {
                path: r.string()?,
                data: r.buffer()?,
                acl: read_acl(r)?,
                ephemeral_owner: r.i64()?,
                parent_cversion: r.i32()?,
            },
            T_DELETE => TxnBody::Delete { path: r.string()? },
            T_SET_DATA => TxnBody::SetData {
                path: r.string()?,
                data: r.buffer()?,
                version: r.i32()?,
            },
            T_SET_ACL => TxnBody::SetAcl {
                path: r.string()?,
                acl: read_acl(r)?,
                version: r.i32()?,
            },
            T_CHECK => TxnBody::Check { path: r.string()? },
            T_ERROR => TxnBody::Error { err: r.i32()? },
            T_MULTI if !nested => TxnBody::Multi(r.vec(4, |r| TxnBody::decode(r, true))?),
            other => return Err(DecodeError::UnknownOp(other)),
        })
    }
}

impl Txn {
    /// Encodes the txn (header and body) for the log or the Raft log.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.i64(self.session_id)
            .i32(self.cxid)
            .i64(self.zxid)
            .i64(self.time_ms);
        self.body.encode(&mut w);
        w.buf
    }

    /// Decodes a txn written by [`Txn::encode`].
    pub fn decode(buf: &[u8]) -> Result<Txn, DecodeError> {
        let mut r = Reader::new(buf);
        let session_id = r.i64()?;
        let cxid = r.i32()?;
        let zxid = r.i64()?;
        let time_ms = r.i64()?;
        let body = TxnBody::decode(&mut r, false)?;
        Ok(Txn {
            session_id,
            cxid,
            zxid,
            time_ms,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txns_round_trip() {
        let bodies = vec![
            TxnBody::CreateSession {
                timeout_ms: 4000,
                password: vec![7; 16],
            },
            TxnBody::CloseSession,
            TxnBody::Create {
                path: "/a".into(),
                data: b"x".to_vec(),
                acl: Acl::open(),
                ephemeral_owner: 5,
                parent_cversion: 3,
            },
            TxnBody::Multi(vec![
                TxnBody::Delete { path: "/a".into() },
                TxnBody::SetData {
                    path: "/b".into(),
                    data: vec![],
                    version: 2,
                },
                TxnBody::SetAcl {
                    path: "/b".into(),
                    acl: Acl::open(),
                    version: 1,
                },
                TxnBody::Check { path: "/c".into() },
                TxnBody::Error { err: -101 },
            ]),
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            let t = Txn {
                session_id: 9,
                cxid: i as i32,
                zxid: 100 + i as i64,
                time_ms: 1234,
                body,
            };
            assert_eq!(Txn::decode(&t.encode()).unwrap(), t);
        }
    }
}

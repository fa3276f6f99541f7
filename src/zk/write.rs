//! create / create2 / createContainer / createTTL, delete, setData, setACL, check:
//! request decoding into [`WriteOp`] and result encoding.

use super::jute::{DecodeError, Reader, Writer};
use super::{op, write_stat};
use crate::coordinator::txn::read_acl;
use crate::coordinator::{TxnResult, WriteOp};

/// Decodes the body of a write request with op code `code`.
pub fn decode(code: i32, r: &mut Reader) -> Result<WriteOp, DecodeError> {
    Ok(match code {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
            let path = r.string()?;
            let data = r.buffer()?;
            let acl = read_acl(r)?;
            let flags = r.i32()?;
            let ttl_ms = if code == op::CREATE_TTL { r.i64()? } else { -1 };
            WriteOp::Create {
                path,
                data,
                acl,
                flags,
                ttl_ms,
                op: code,
            }
        }
        op::DELETE | op::DELETE_CONTAINER => WriteOp::Delete {
            path: r.string()?,
            version: if code == op::DELETE { r.i32()? } else { -1 },
        },
        op::SET_DATA => WriteOp::SetData {
            path: r.string()?,
            data: r.buffer()?,
            version: r.i32()?,
        },
        op::SET_ACL => WriteOp::SetAcl {
            path: r.string()?,
            acl: read_acl(r)?,
            version: r.i32()?,
        },
        op::CHECK => WriteOp::Check {
            path: r.string()?,
            version: r.i32()?,
        },
        other => return Err(DecodeError::UnknownOp(other)),
    })
}

/// Encodes a successful write result for a request with op code `code`.
pub fn encode_result(code: i32, result: &TxnResult, w: &mut Writer) {
    match result {
        TxnResult::Created { path, stat } => {
            w.string(path);
            if code != op::CREATE {
                write_stat(w, stat);
            }
        }
        TxnResult::SetData(stat) | TxnResult::SetAcl(stat) => write_stat(w, stat),
        _ => {}
    }
}

/// The client-side encoding of a write (used by the CLI and tests).
pub fn encode(code: i32, wop: &WriteOp, w: &mut Writer) {
    match wop {
        WriteOp::Create {
            path,
            data,
            acl,
            flags,
            ttl_ms,
            ..
        } => {
            w.string(path).buffer(data);
            crate::coordinator::txn::write_acl(w, acl);
            w.i32(*flags);
            if code == op::CREATE_TTL {
                w.i64(*ttl_ms);
            }
        }
        WriteOp::Delete { path, version } => {
            w.string(path).i32(*version);
        }
        WriteOp::SetData {
            path,
            data,
            version,
        } => {
            w.string(path).buffer(data).i32(*version);
        }
        WriteOp::SetAcl { path, acl, version } => {
            w.string(path);
            crate::coordinator::txn::write_acl(w, acl);
            w.i32(*version);
        }
        WriteOp::Check { path, version } => {
            w.string(path).i32(*version);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::Acl;

    #[test]
    fn write_requests_round_trip() {
        let ops = [
            (
                op::CREATE,
                WriteOp::Create {
                    path: "/a".into(),
                    data: b"d".to_vec(),
                    acl: Acl::open(),
                    flags: 3,
                    ttl_ms: -1,
                    op: op::CREATE,
                },
            ),
            (
                op::CREATE_TTL,
                WriteOp::Create {
                    path: "/t".into(),
                    data: vec![],
                    acl: Acl::open(),
                    flags: 5,
                    ttl_ms: 1000,
                    op: op::CREATE_TTL,
                },
            ),
            (
                op::DELETE,
                WriteOp::Delete {
                    path: "/a".into(),
                    version: 3,
                },
            ),
            (
                op::SET_DATA,
                WriteOp::SetData {
                    path: "/a".into(),
                    data: vec![1, 2],
                    version: -1,
                },
            ),
            (
                op::SET_ACL,
                WriteOp::SetAcl {
                    path: "/a".into(),
                    acl: Acl::open(),
                    version: 0,
                },
            ),
            (
                op::CHECK,
                WriteOp::Check {
                    path: "/a".into(),
                    version: 1,
                },
            ),
        ];
        for (code, o) in ops {
            let mut w = Writer::new();
            encode(code, &o, &mut w);
            let mut r = Reader::new(&w.buf);
            assert_eq!(decode(code, &mut r).unwrap(), o);
            assert_eq!(r.remaining(), 0);
        }
    }
}

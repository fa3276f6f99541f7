//! multi and multiRead: a sequence of (MultiHeader, op) terminated by a done header,
//! answered the same way with one result (or ErrorResponse) per op.

use super::jute::{DecodeError, Reader, Writer};
use super::read::{self, ReadOp, ReadResult};
use super::{op, write};
use crate::coordinator::{ErrorCode, TxnResult, WriteOp};

/// A MultiHeader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiHeader {
    /// Op code of the part (-1 for an error result or the terminator).
    pub kind: i32,
    /// True on the terminator.
    pub done: bool,
    /// Error code.
    pub err: i32,
}

impl MultiHeader {
    fn read(r: &mut Reader) -> Result<MultiHeader, DecodeError> {
        Ok(MultiHeader {
            kind: r.i32()?,
            done: r.bool()?,
            err: r.i32()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.i32(self.kind).bool(self.done).i32(self.err);
    }
}

const DONE: MultiHeader = MultiHeader {
    kind: -1,
    done: true,
    err: -1,
};

/// Decodes a multi request: write ops with their op codes.
pub fn decode(r: &mut Reader) -> Result<Vec<(i32, WriteOp)>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        match h.kind {
            op::CREATE
            | op::CREATE2
            | op::CREATE_CONTAINER
            | op::CREATE_TTL
            | op::DELETE
            | op::SET_DATA
            | op::CHECK => {
                ops.push((h.kind, write::decode(h.kind, r)?));
            }
            other => return Err(DecodeError::UnknownOp(other)),
        }
    }
}

/// Decodes a multiRead request (getChildren / getData parts).
pub fn decode_read(r: &mut Reader) -> Result<Vec<ReadOp>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        match h.kind {
            op::GET_CHILDREN | op::GET_DATA => ops.push(read::decode(h.kind, r)?),
            other => return Err(DecodeError::UnknownOp(other)),
        }
    }
}

fn write_error(w: &mut Writer, err: i32) {
    MultiHeader {
        kind: op::ERROR,
        done: false,
        err,
    }
    .write(w);
    w.i32(err);
}

/// Encodes multi results; `codes` are the op codes of the parts.
pub fn encode_results(codes: &[i32], results: &[TxnResult], w: &mut Writer) {
    for (code, res) in codes.iter().zip(results) {
        match res {
            TxnResult::Error(e) => write_error(w, e.code()),
            r => {
                MultiHeader {
                    kind: *code,
                    done: false,
                    err: 0,
                }
                .write(w);
                write::encode_result(*code, r, w);
            }
        }
    }
    DONE.write(w);
}

/// Encodes multiRead results.
pub fn encode_read_results(results: &[(i32, Result<ReadResult, ErrorCode>)], w: &mut Writer) {
    for (code, res) in results {
        match res {
            Err(e) => write_error(w, e.code()),
            Ok(r) => {
                MultiHeader {
                    kind: *code,
                    done: false,
                    err: 0,
                }
                .write(w);
                r.encode(w);
            }
        }
    }
    DONE.write(w);
}

/// Encodes a multi request (client side).
pub fn encode(ops: &[(i32, WriteOp)], w: &mut Writer) {
    for (code, o) in ops {
        MultiHeader {
            kind: *code,
            done: false,
            err: -1,
        }
        .write(w);
        write::encode(*code, o, w);
    }
    DONE.write(w);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::Acl;

    #[test]
    fn multi_requests_round_trip() {
        let ops = vec![
            (
                op::CREATE,
                WriteOp::Create {
                    path: "/m".into(),
                    data: vec![],
                    acl: Acl::open(),
                    flags: 0,
                    ttl_ms: -1,
                    op: op::CREATE,
                },
            ),
            (
                op::CHECK,
                WriteOp::Check {
                    path: "/m".into(),
                    version: 0,
                },
            ),
            (
                op::DELETE,
                WriteOp::Delete {
                    path: "/m".into(),
                    version: -1,
                },
            ),
        ];
        let mut w = Writer::new();
        encode(&ops, &mut w);
        assert_eq!(decode(&mut Reader::new(&w.buf)).unwrap(), ops);
    }
}

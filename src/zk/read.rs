//! exists, getData, getChildren(2), getACL, getAllChildrenNumber, getEphemerals, sync:
//! request bodies and response encodings.

use super::jute::{DecodeError, Reader, Writer};
use super::write_stat;
use crate::coordinator::txn::write_acl;
use crate::coordinator::{Acl, Stat};

/// A read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    /// exists(path, watch)
    Exists { path: String, watch: bool },
    /// getData(path, watch)
    GetData { path: String, watch: bool },
    /// getChildren / getChildren2 (with_stat)
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    /// getACL(path)
    GetAcl { path: String },
    /// getAllChildrenNumber(path)
    AllChildrenNumber { path: String },
    /// getEphemerals(prefix)
    Ephemerals { prefix: String },
    /// sync(path)
    Sync { path: String },
}

/// Decodes a read request body.
pub fn decode(code: i32, r: &mut Reader) -> Result<ReadOp, DecodeError> {
    use super::op;
    Ok(match code {
        op::EXISTS => ReadOp::Exists {
            path: r.string()?,
            watch: r.bool()?,
        },
        op::GET_DATA => ReadOp::GetData {
            path: r.string()?,
            watch: r.bool()?,
        },
        op::GET_CHILDREN => ReadOp::GetChildren {
            path: r.string()?,
            watch: r.bool()?,
            with_stat: false,
        },
        op::GET_CHILDREN2 => ReadOp::GetChildren {
            path: r.string()?,
            watch: r.bool()?,
            with_stat: true,
        },
        op::GET_ACL => ReadOp::GetAcl { path: r.string()? },
        op::GET_ALL_CHILDREN_NUMBER => ReadOp::AllChildrenNumber { path: r.string()? },
        op::GET_EPHEMERALS => ReadOp::Ephemerals {
            prefix: r.string()?,
        },
        op::SYNC => ReadOp::Sync { path: r.string()? },
        other => return Err(DecodeError::UnknownOp(other)),
    })
}

/// A read's successful result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// exists
    Stat(Stat),
    /// getData
    Data(Vec<u8>, Stat),
    /// getChildren (stat None) / getChildren2
    Children(Vec<String>, Option<Stat>),
    /// getACL
    Acl(Vec<Acl>, Stat),
    /// getAllChildrenNumber
    Number(i32),
    /// getEphemerals
    Paths(Vec<String>),
    /// sync
    Path(String),
}

impl ReadResult {
    /// Encodes the response body.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            ReadResult::Stat(s) => write_stat(w, s),
            ReadResult::Data(d, s) => {
                w.buffer(d);
                write_stat(w, s);
            }
            ReadResult::Children(c, s) => {
                w.strings(c);
                if let Some(s) = s {
                    write_stat(w, s);
                }
            }
            ReadResult::Acl(a, s) => {
                write_acl(w, a);
                write_stat(w, s);
            }
            ReadResult::Number(n) => {
                w.i32(*n);
            }
            ReadResult::Paths(p) => {
                w.strings(p);
            }
            ReadResult::Path(p) => {
                w.string(p);
            }
        }
    }
}

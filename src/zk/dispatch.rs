//! Decodes one request frame of an established session, applies it to the coordinator and
//! encodes the reply. Pure: the caller supplies the clock and does the I/O.

use super::jute::{DecodeError, Reader, Writer};
use super::read::{ReadOp, ReadResult};
use super::watches::WatchOp;
use super::{multi, op, read, session, watches, write, xid, ReplyHeader};
use crate::coordinator::{
    acl, Caller, Coordinator, ErrorCode, Id, Outcome, TxnResult, WatchEvent, WriteOp,
};

/// Per-connection session state.
#[derive(Debug, Clone)]
pub struct SessionState {
    /// The session id.
    pub session_id: i64,
    /// Identities: the client's ip, plus digests added by auth packets.
    pub auth: Vec<Id>,
}

impl SessionState {
    /// State for a session on a connection from `ip`.
    pub fn new(session_id: i64, ip: &str) -> Self {
        SessionState {
            session_id,
            auth: vec![Id {
                scheme: "ip".into(),
                id: ip.to_string(),
            }],
        }
    }

    fn caller(&self) -> Caller<'_> {
        Caller {
            session_id: self.session_id,
            auth: &self.auth,
        }
    }
}

/// What to do after a request.
#[derive(Debug, Default)]
pub struct Handled {
    /// Notifications (for this and other sessions), to be sent before the reply.
    pub notifications: Vec<WatchEvent>,
    /// The framed reply, if any.
    pub reply: Option<Vec<u8>>,
    /// The reply may go out only once this zxid is durable.
    pub durable_zxid: i64,
    /// Close the connection after the reply.
    pub close: bool,
    /// Op code handled (for stats and tracing).
    pub op: i32,
    /// The session was closed by this request.
    pub session_closed: bool,
}

fn reply(xid: i32, zxid: i64, err: ErrorCode, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = ReplyHeader {
        xid,
        zxid,
        err: err.code(),
    }
    .start();
    if err == ErrorCode::Ok {
        body(&mut w);
    }
    w.finish_frame()
}

fn from_outcome(out: Outcome, xid: i32, code: i32) -> Handled {
    let (err, frame) = match &out.result {
        TxnResult::Error(e) => (*e, reply(xid, out.zxid, *e, |_| {})),
        r => (
            ErrorCode::Ok,
            reply(xid, out.zxid, ErrorCode::Ok, |w| {
                write::encode_result(code, r, w)
            }),
        ),
    };
    let _ = err;
    Handled {
        notifications: out.notifications,
        reply: Some(frame),
        durable_zxid: out.zxid,
        op: code,
        ..Default::default()
    }
}

fn do_read(
    coord: &mut Coordinator,
    st: &SessionState,
    rop: &ReadOp,
) -> Result<ReadResult, ErrorCode> {
    let c = st.caller();
    Ok(match rop {
        ReadOp::Exists { path, watch } => ReadResult::Stat(coord.exists(c, path, *watch)?),
        ReadOp::GetData { path, watch } => {
            let (d, s) = coord.get_data(c, path, *watch)?;
            ReadResult::Data(d, s)
        }
        ReadOp::GetChildren {
            path,
            watch,
            with_stat,
        } => {
            let (ch, s) = coord.get_children(c, path, *watch)?;
            ReadResult::Children(ch, with_stat.then_some(s))
        }
        ReadOp::GetAcl { path } => {
            let (a, s) = coord.get_acl(c, path)?;
            ReadResult::Acl(a, s)
        }
        ReadOp::AllChildrenNumber { path } => {
            ReadResult::Number(coord.all_children_number(c, path)?)
        }
        ReadOp::Ephemerals { prefix } => ReadResult::Paths(coord.ephemerals(c, prefix)),
        ReadOp::Sync { path } => ReadResult::Path(path.clone()),
    })
}

/// Handles one request frame. A decode error means the connection must be closed.
pub fn handle(
    coord: &mut Coordinator,
    st: &mut SessionState,
    frame: &[u8],
    time_ms: i64,
    now_mono_ms: i64,
) -> Result<Handled, DecodeError> {
    let mut r = Reader::new(frame);
    let x = r.i32()?;
    let code = r.i32()?;
    if !coord.touch(st.session_id, now_mono_ms) {
        // The session expired under a live connection: drop it; the client will learn
        // of the expiry when it reconnects.
        return Ok(Handled {
            close: true,
            op: code,
            ..Default::default()
        });
    }
    let last = coord.last_zxid();
    let mut h = match code {
        op::PING => Handled {
            reply: Some(reply(xid::PING, last, ErrorCode::Ok, |_| {})),
            durable_zxid: 0,
            ..Default::default()
        },
        op::CREATE
        | op::CREATE2
        | op::CREATE_CONTAINER
        | op::CREATE_TTL
        | op::DELETE
        | op::SET_DATA
        | op::SET_ACL
        | op::CHECK => {
            let wop = write::decode(code, &mut r)?;
            from_outcome(coord.write(st.caller(), x, &wop, time_ms), x, code)
        }
        op::EXISTS
        | op::GET_DATA
        | op::GET_CHILDREN
        | op::GET_CHILDREN2
        | op::GET_ACL
        | op::GET_ALL_CHILDREN_NUMBER
        | op::GET_EPHEMERALS
        | op::SYNC => {
            let rop = read::decode(code, &mut r)?;
            let frame = match do_read(coord, st, &rop) {
                Ok(res) => reply(x, last, ErrorCode::Ok, |w| res.encode(w)),
                Err(e) => reply(x, last, e, |_| {}),
            };
            Handled {
                reply: Some(frame),
                durable_zxid: last,
                ..Default::default()
            }
        }
        op::MULTI => {
            let ops = multi::decode(&mut r)?;
            let codes: Vec<i32> = ops.iter().map(|(c, _)| *c).collect();
            let wops: Vec<_> = ops.into_iter().map(|(_, o)| o).collect();
            let out = coord.multi(st.caller(), x, &wops, time_ms);
            let results = match &out.result {
                TxnResult::Multi(v) => v.clone(),
                other => vec![other.clone()],
            };
            let frame = reply(x, out.zxid, ErrorCode::Ok, |w| {
                multi::encode_results(&codes, &results, w)
            });
            Handled {
                notifications: out.notifications,
                reply: Some(frame),
                durable_zxid: out.zxid,
                ..Default::default()
            }
        }
        op::MULTI_READ => {
            let ops = multi::decode_read(&mut r)?;
            let results: Vec<(i32, _)> = ops
                .iter()
                .map(|o| {
                    let c = if matches!(o, ReadOp::GetData { .. }) {
                        op::GET_DATA
                    } else {
                        op::GET_CHILDREN
                    };
                    (c, do_read(coord, st, o))
                })
                .collect();
            let frame = reply(x, last, ErrorCode::Ok, |w| {
                multi::encode_read_results(&results, w)
            });
            Handled {
                reply: Some(frame),
                durable_zxid: last,
                ..Default::default()
            }
        }
        op::SET_WATCHES
        | op::SET_WATCHES2
        | op::ADD_WATCH
        | op::CHECK_WATCHES
        | op::REMOVE_WATCHES => {
            let wop = watches::decode(code, &mut r)?;
            let c = st.caller();
            let (err, notifications) = match wop {
                WatchOp::SetWatches {
                    relative_zxid,
                    data,
                    exist,
                    child,
                    persistent,
                    recursive,
                } => match coord.set_watches(
                    st.session_id,
                    relative_zxid,
                    &data,
                    &exist,
                    &child,
                    &persistent,
                    &recursive,
                ) {
                    Ok(fire) => (ErrorCode::Ok, fire),
                    Err(e) => {
                        tracing::warn!(
                            session = format_args!("0x{:x}", st.session_id),
                            watches = data.len() + exist.len() + child.len() + persistent.len() + recursive.len(),
                            "setWatches refused: the watches do not fit the znode pool or max_watches"
                        );
                        (e, vec![])
                    }
                },
                WatchOp::Add { path, mode } => (
                    coord
                        .add_watch(c, &path, mode)
                        .err()
                        .unwrap_or(ErrorCode::Ok),
                    vec![],
                ),
                WatchOp::Check { path, watcher_type } => (
                    coord
                        .remove_watches(c, &path, watcher_type, false)
                        .err()
                        .unwrap_or(ErrorCode::Ok),
                    vec![],
                ),
                WatchOp::Remove { path, watcher_type } => (
                    coord
                        .remove_watches(c, &path, watcher_type, true)
                        .err()
                        .unwrap_or(ErrorCode::Ok),
                    vec![],
                ),
            };
            let rx = if code == op::SET_WATCHES || code == op::SET_WATCHES2 {
                xid::SET_WATCHES
            } else {
                x
            };
            Handled {
                notifications,
                reply: Some(reply(rx, last, err, |_| {})),
                durable_zxid: last,
                ..Default::default()
            }
        }
        op::AUTH => {
            let a = session::decode_auth(&mut r)?;
            let id = match a.scheme.as_str() {
                "digest" => std::str::from_utf8(&a.auth).ok().and_then(acl::digest_id),
                _ => None,
            };
            match id {
                Some(id) => {
                    if !st.auth.contains(&id) {
                        st.auth.push(id);
                        coord.set_session_auth(st.session_id, st.auth.clone());
                    }
                    Handled {
                        reply: Some(reply(xid::AUTH, last, ErrorCode::Ok, |_| {})),
                        ..Default::default()
                    }
                }
                None => Handled {
                    reply: Some(reply(xid::AUTH, last, ErrorCode::AuthFailed, |_| {})),
                    close: true,
                    ..Default::default()
                },
            }
        }
        op::WHO_AM_I => {
            let ids = st.auth.clone();
            Handled {
                reply: Some(reply(x, last, ErrorCode::Ok, |w| {
                    session::encode_who_am_i(&ids, w)
                })),
                ..Default::default()
            }
        }
        op::CLOSE_SESSION => {
            let out = coord.close_session(st.session_id, x, time_ms);
            let frame = reply(x, out.zxid, ErrorCode::Ok, |_| {});
            Handled {
                notifications: out.notifications,
                reply: Some(frame),
                durable_zxid: out.zxid,
                close: true,
                session_closed: true,
                ..Default::default()
            }
        }
        _ => Handled {
            reply: Some(reply(x, last, ErrorCode::Unimplemented, |_| {})),
            durable_zxid: last,
            ..Default::default()
        },
    };
    h.op = code;
    Ok(h)
}

/// A request that a cluster node cannot answer from its own tree: it goes through the
/// quorum (writes, closeSession) or waits for a read barrier (sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replicated {
    /// create / delete / setData / setACL / check.
    Write {
        /// Client xid.
        xid: i32,
        /// Op code (the reply's shape depends on it).
        code: i32,
        /// The write.
        op: WriteOp,
    },
    /// multi.
    Multi {
        /// Client xid.
        xid: i32,
        /// Op code of each part.
        codes: Vec<i32>,
        /// The parts.
        ops: Vec<WriteOp>,
    },
    /// closeSession.
    Close {
        /// Client xid.
        xid: i32,
    },
    /// sync.
    Sync {
        /// Client xid.
        xid: i32,
        /// Path echoed back.
        path: String,
    },
}

/// Picks out the requests that need the quorum; `Ok(None)` for everything answered locally
/// by [`handle`].
pub fn decode_replicated(frame: &[u8]) -> Result<Option<Replicated>, DecodeError> {
    let mut r = Reader::new(frame);
    let xid = r.i32()?;
    let code = r.i32()?;
    Ok(Some(match code {
        op::CREATE
        | op::CREATE2
        | op::CREATE_CONTAINER
        | op::CREATE_TTL
        | op::DELETE
        | op::SET_DATA
        | op::SET_ACL
        | op::CHECK => Replicated::Write {
            xid,
            code,
            op: write::decode(code, &mut r)?,
        },
        op::MULTI => {
            let (codes, ops) = multi::decode(&mut r)?.into_iter().unzip();
            Replicated::Multi { xid, codes, ops }
        }
        op::CLOSE_SESSION => Replicated::Close { xid },
        op::SYNC => match read::decode(code, &mut r)? {
            ReadOp::Sync { path } => Replicated::Sync { xid, path },
            _ => return Err(DecodeError::UnknownOp(code)),
        },
        _ => return Ok(None),
    }))
}

/// The reply to a replicated write, from its applied result.
pub fn write_reply(xid: i32, code: i32, zxid: i64, result: &TxnResult) -> Vec<u8> {
    match result {
        TxnResult::Error(e) => reply(xid, zxid, *e, |_| {}),
        r => reply(xid, zxid, ErrorCode::Ok, |w| {
            write::encode_result(code, r, w)
        }),
    }
}

/// The reply to a replicated multi.
pub fn multi_reply(xid: i32, zxid: i64, codes: &[i32], result: &TxnResult) -> Vec<u8> {
    let results = match result {
        TxnResult::Multi(v) => v.clone(),
        other => vec![other.clone()],
    };
    reply(xid, zxid, ErrorCode::Ok, |w| {
        multi::encode_results(codes, &results, w)
    })
}

/// The reply to closeSession or sync (`path` is Some for sync).
pub fn plain_reply(xid: i32, zxid: i64, path: Option<&str>) -> Vec<u8> {
    reply(xid, zxid, ErrorCode::Ok, |w| {
        if let Some(p) = path {
            ReadResult::Path(p.to_string()).encode(w);
        }
    })
}

//! setWatches / setWatches2, addWatch, checkWatches / removeWatches, and notifications.

use super::jute::{DecodeError, Reader, Writer};
use super::{xid, ReplyHeader};
use crate::coordinator::WatchEvent;

/// A watch-management request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchOp {
    /// setWatches (persistent lists empty) / setWatches2.
    SetWatches {
        /// Last zxid the client saw.
        relative_zxid: i64,
        /// getData watches.
        data: Vec<String>,
        /// exists watches on absent nodes.
        exist: Vec<String>,
        /// getChildren watches.
        child: Vec<String>,
        /// persistent watches.
        persistent: Vec<String>,
        /// persistent recursive watches.
        recursive: Vec<String>,
    },
    /// addWatch(path, mode)
    Add { path: String, mode: i32 },
    /// checkWatches(path, type)
    Check { path: String, watcher_type: i32 },
    /// removeWatches(path, type)
    Remove { path: String, watcher_type: i32 },
}

/// Decodes a watch-management request.
pub fn decode(code: i32, r: &mut Reader) -> Result<WatchOp, DecodeError> {
    use super::op;
    Ok(match code {
        op::SET_WATCHES | op::SET_WATCHES2 => {
            let relative_zxid = r.i64()?;
            let data = r.strings()?;
            let exist = r.strings()?;
            let child = r.strings()?;
            let (persistent, recursive) = if code == op::SET_WATCHES2 {
                (r.strings()?, r.strings()?)
            } else {
                (Vec::new(), Vec::new())
            };
            WatchOp::SetWatches {
                relative_zxid,
                data,
                exist,
                child,
                persistent,
                recursive,
            }
        }
        op::ADD_WATCH => WatchOp::Add {
            path: r.string()?,
            mode: r.i32()?,
        },
        op::CHECK_WATCHES => WatchOp::Check {
            path: r.string()?,
            watcher_type: r.i32()?,
        },
        op::REMOVE_WATCHES => WatchOp::Remove {
            path: r.string()?,
            watcher_type: r.i32()?,
        },
        other => return Err(DecodeError::UnknownOp(other)),
    })
}

/// A notification frame: xid -1, zxid -1, then WatcherEvent{type, state SyncConnected, path}.
pub fn encode_notification(ev: &WatchEvent) -> Vec<u8> {
    let mut w = ReplyHeader {
        xid: xid::NOTIFICATION,
        zxid: -1,
        err: 0,
    }
    .start();
    w.i32(ev.kind as i32).i32(3).string(&ev.path);
    w.finish_frame()
}

/// Decodes a notification body (client side): (type, state, path).
pub fn decode_notification(r: &mut Reader) -> Result<(i32, i32, String), DecodeError> {
    Ok((r.i32()?, r.i32()?, r.string()?))
}

/// Encodes a SetWatches2 body (client side).
pub fn encode_set_watches(w: &mut Writer, relative_zxid: i64, lists: [&[String]; 5]) {
    w.i64(relative_zxid);
    for l in lists {
        w.strings(l);
    }
}

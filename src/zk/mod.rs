//! ZooKeeper wire handling: the jute codec and one module per operation family.
//! No I/O here: frames in, frames out, with [`dispatch`] applying requests to the
//! [`crate::coordinator::Coordinator`]. The server owns the sockets; the CLI uses the
//! client side ([`client`]).

pub mod client;
pub mod connect;
pub mod dispatch;
pub mod jute;
pub mod multi;
pub mod read;
pub mod session;
pub mod watches;
pub mod words;
pub mod write;

use crate::coordinator::Stat;
use jute::{DecodeError, Reader, Writer};

/// Operation codes (`ZooDefs.OpCode`).
pub mod op {
    /// Watch notification (server to client only).
    pub const NOTIFICATION: i32 = 0;
    /// create
    pub const CREATE: i32 = 1;
    /// delete
    pub const DELETE: i32 = 2;
    /// exists
    pub const EXISTS: i32 = 3;
    /// getData
    pub const GET_DATA: i32 = 4;
    /// setData
    pub const SET_DATA: i32 = 5;
    /// getACL
    pub const GET_ACL: i32 = 6;
    /// setACL
    pub const SET_ACL: i32 = 7;
    /// getChildren
    pub const GET_CHILDREN: i32 = 8;
    /// sync
    pub const SYNC: i32 = 9;
    /// ping
    pub const PING: i32 = 11;
    /// getChildren2
    pub const GET_CHILDREN2: i32 = 12;
    /// check (multi)
    pub const CHECK: i32 = 13;
    /// multi
    pub const MULTI: i32 = 14;
    /// create2
    pub const CREATE2: i32 = 15;
    /// reconfig (not supported)
    pub const RECONFIG: i32 = 16;
    /// checkWatches
    pub const CHECK_WATCHES: i32 = 17;
    /// removeWatches
    pub const REMOVE_WATCHES: i32 = 18;
    /// createContainer
    pub const CREATE_CONTAINER: i32 = 19;
    /// deleteContainer (server internal)
    pub const DELETE_CONTAINER: i32 = 20;
    /// createTTL
    pub const CREATE_TTL: i32 = 21;
    /// multiRead
    pub const MULTI_READ: i32 = 22;
    /// auth
    pub const AUTH: i32 = 100;
    /// setWatches
    pub const SET_WATCHES: i32 = 101;
    /// sasl (not supported)
    pub const SASL: i32 = 102;
    /// getEphemerals
    pub const GET_EPHEMERALS: i32 = 103;
    /// getAllChildrenNumber
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    /// setWatches2
    pub const SET_WATCHES2: i32 = 105;
    /// addWatch
    pub const ADD_WATCH: i32 = 106;
    /// whoAmI
    pub const WHO_AM_I: i32 = 107;
    /// closeSession
    pub const CLOSE_SESSION: i32 = -11;
    /// error (multi result)
    pub const ERROR: i32 = -1;
}

/// Special xids.
pub mod xid {
    /// A watch notification.
    pub const NOTIFICATION: i32 = -1;
    /// A ping.
    pub const PING: i32 = -2;
    /// An auth packet.
    pub const AUTH: i32 = -4;
    /// setWatches after reconnect.
    pub const SET_WATCHES: i32 = -8;
}

/// Writes a Stat.
pub fn write_stat(w: &mut Writer, s: &Stat) {
    w.i64(s.czxid).i64(s.mzxid).i64(s.ctime).i64(s.mtime);
    w.i32(s.version).i32(s.cversion).i32(s.aversion);
    w.i64(s.ephemeral_owner)
        .i32(s.data_length)
        .i32(s.num_children)
        .i64(s.pzxid);
}

/// Reads a Stat.
pub fn read_stat(r: &mut Reader) -> Result<Stat, DecodeError> {
    Ok(Stat {
        czxid: r.i64()?,
        mzxid: r.i64()?,
        ctime: r.i64()?,
        mtime: r.i64()?,
        version: r.i32()?,
        cversion: r.i32()?,
        aversion: r.i32()?,
        ephemeral_owner: r.i64()?,
        data_length: r.i32()?,
        num_children: r.i32()?,
        pzxid: r.i64()?,
    })
}

/// A reply header: xid, zxid, err.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    /// The request's xid (or a special xid).
    pub xid: i32,
    /// The zxid the reply reflects.
    pub zxid: i64,
    /// Error code.
    pub err: i32,
}

impl ReplyHeader {
    /// Starts a framed reply with this header.
    pub fn start(&self) -> Writer {
        let mut w = Writer::framed();
        w.i32(self.xid).i64(self.zxid).i32(self.err);
        w
    }

    /// Reads a reply header.
    pub fn read(r: &mut Reader) -> Result<ReplyHeader, DecodeError> {
        Ok(ReplyHeader {
            xid: r.i32()?,
            zxid: r.i64()?,
            err: r.i32()?,
        })
    }
}

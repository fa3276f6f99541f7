//! The client side of the codec (for `bramble zk` and the load client): request frames
//! and reply parsing. No I/O.

use super::jute::{DecodeError, Reader, Writer};
use super::{read_stat, ReplyHeader};
use crate::coordinator::Stat;

/// Builds a request frame: header (xid, op) then the body written by `body`.
pub fn request(xid: i32, code: i32, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::framed();
    w.i32(xid).i32(code);
    body(&mut w);
    w.finish_frame()
}

/// Splits a reply body into its header and a reader over the rest.
pub fn reply(frame: &[u8]) -> Result<(ReplyHeader, Reader<'_>), DecodeError> {
    let mut r = Reader::new(frame);
    let h = ReplyHeader::read(&mut r)?;
    Ok((h, r))
}

/// Parses a GetDataResponse.
pub fn get_data(r: &mut Reader) -> Result<(Vec<u8>, Stat), DecodeError> {
    Ok((r.buffer()?, read_stat(r)?))
}

/// Parses a GetChildren2Response.
pub fn get_children2(r: &mut Reader) -> Result<(Vec<String>, Stat), DecodeError> {
    Ok((r.strings()?, read_stat(r)?))
}

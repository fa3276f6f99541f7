//! The jute binary encoding ZooKeeper speaks: big-endian ints, length-prefixed strings,
//! buffers and vectors (length -1 = null). Reading is bounds-checked: a length read from
//! the wire is compared with what is left in the frame before anything is allocated.

use thiserror::Error;

/// Why a frame could not be decoded. Any of these closes the connection that sent it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame ended before the record did.
    #[error("frame truncated: wanted {wanted} bytes, {left} left")]
    Truncated { wanted: u64, left: u64 },
    /// A length field is negative (other than -1 for null) or larger than the frame.
    #[error("bad length {0}")]
    BadLength(i32),
    /// A string is not UTF-8.
    #[error("string is not UTF-8")]
    BadUtf8,
    /// An operation code this server does not know.
    #[error("unknown op code {0}")]
    UnknownOp(i32),
    /// A field holds a value outside its domain.
    #[error("bad value for {0}")]
    BadValue(&'static str),
}

/// A cursor over one received frame.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading `buf` from its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                wanted: n as u64,
                left: self.remaining() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A jute `int`.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A jute `long`.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A jute `boolean` (one byte).
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A length prefix, checked against the bytes left (so it can size an allocation).
    fn len(&mut self) -> Result<Option<usize>, DecodeError> {
        let n = self.i32()?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 || n as u64 > self.remaining() as u64 {
            return Err(DecodeError::BadLength(n));
        }
        Ok(Some(n as usize))
    }

    /// A jute `buffer`; null reads as empty.
    pub fn buffer(&mut self) -> Result<Vec<u8>, DecodeError> {
        match self.len()? {
            None => Ok(Vec::new()),
            Some(n) => Ok(self.take(n)?.to_vec()),
        }
    }

    /// A jute `ustring`; null reads as empty.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        match self.len()? {
            None => Ok(String::new()),
            Some(n) => {
                let b = self.take(n)?;
                String::from_utf8(b.to_vec()).map_err(|_| DecodeError::BadUtf8)
            }
        }
    }

    /// A jute `vector<T>`; null reads as empty. Each element is at least `min_elem` bytes,
    /// which bounds the count before the vector is allocated.
    pub fn vec<T>(
        &mut self,
        min_elem: usize,
        mut f: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.i32()?;
        if n == -1 {
            return Ok(Vec::new());
        }
        if n < 0 || (n as u64) * (min_elem.max(1) as u64) > self.remaining() as u64 {
            return Err(DecodeError::BadLength(n));
        }
        let mut v = Vec::with_capacity(n as usize);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(v)
    }

    /// A vector of strings.
    pub fn strings(&mut self) -> Result<Vec<String>, DecodeError> {
        self.vec(4, |r| r.string())
    }
}

/// Appends jute-encoded fields to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    /// A writer that starts with a 4-byte length placeholder, filled in by [`Writer::finish_frame`].
    pub fn framed() -> Self {
        Writer { buf: vec![0; 4] }
    }

    /// Fills in the length prefix of a [`Writer::framed`] writer and returns the frame.
    pub fn finish_frame(mut self) -> Vec<u8> {
        let n = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&n.to_be_bytes());
        self.buf
    }

    /// A jute `int`.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A jute `long`.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A jute `boolean`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(v as u8);
        self
    }

    /// A jute `buffer`.
    pub fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.i32(v.len() as i32);
        self.buf.extend_from_slice(v);
        self
    }

    /// A null jute `buffer` (length -1).
    pub fn null_buffer(&mut self) -> &mut Self {
        self.i32(-1)
    }

    /// A jute `ustring`.
    pub fn string(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }

    /// A vector of strings.
    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.i32(v.len() as i32);
        for s in v {
            self.string(s.as_ref());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut w = Writer::new();
        w.i32(-7)
            .i64(1 << 40)
            .bool(true)
            .string("/a/b")
            .buffer(b"xyz")
            .strings(&["p", "q"]);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.i32().unwrap(), -7);
        assert_eq!(r.i64().unwrap(), 1 << 40);
        assert!(r.bool().unwrap());
        assert_eq!(r.string().unwrap(), "/a/b");
        assert_eq!(r.buffer().unwrap(), b"xyz");
        assert_eq!(r.strings().unwrap(), vec!["p".to_string(), "q".to_string()]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn huge_lengths_are_rejected_before_allocating() {
        let mut w = Writer::new();
        w.i32(i32::MAX);
        assert_eq!(
            Reader::new(&w.buf).buffer(),
            Err(DecodeError::BadLength(i32::MAX))
        );
        assert_eq!(
            Reader::new(&w.buf).strings(),
            Err(DecodeError::BadLength(i32::MAX))
        );
        let mut w = Writer::new();
        w.i32(-5);
        assert_eq!(
            Reader::new(&w.buf).string(),
            Err(DecodeError::BadLength(-5))
        );
    }

    #[test]
    fn null_reads_as_empty() {
        let mut w = Writer::new();
        w.null_buffer();
        assert_eq!(Reader::new(&w.buf).buffer().unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn truncation_is_an_error() {
        assert!(matches!(
            Reader::new(&[0, 0]).i32(),
            Err(DecodeError::Truncated { .. })
        ));
    }
}

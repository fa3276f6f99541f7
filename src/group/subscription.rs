//! Reading the "consumer" protocol's subscription and assignment blobs (Kafka's
//! ConsumerProtocolSubscription / ConsumerProtocolAssignment) with bounds checks. The
//! coordinator passes them through untouched; only OffsetDelete and the CLI look inside. Every
//! version starts with the fields read here, so later versions parse too.

/// A bounds-checked reader; every count is checked against the bytes left before use.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len())?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Some(out)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn str(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    /// An array count, refused if even elements of `min_size` bytes could not fit.
    fn count(&mut self, min_size: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n.saturating_mul(min_size) <= self.buf.len() - self.pos).then_some(n)
    }
}

/// The topics a consumer subscribes to; None if the blob is not a consumer subscription.
pub fn topics(subscription: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader {
        buf: subscription,
        pos: 0,
    };
    r.i16().filter(|v| *v >= 0)?;
    let n = r.count(2)?;
    (0..n).map(|_| r.str()).collect()
}

/// The partitions assigned to a consumer, as (topic, partitions); None if the blob is not a
/// consumer assignment (an empty blob is no partitions).
pub fn assigned_partitions(assignment: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader {
        buf: assignment,
        pos: 0,
    };
    r.i16().filter(|v| *v >= 0)?;
    let n = r.count(6)?;
    (0..n)
        .map(|_| {
            let topic = r.str()?;
            let count = r.count(4)?;
            let partitions = (0..count).map(|_| r.i32()).collect::<Option<Vec<i32>>>()?;
            Some((topic, partitions))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_and_assignments_parse_and_hostile_counts_do_not() {
        let mut sub = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        sub.extend_from_slice(&[0, 0, 0, 0]); // v1 user data and more: ignored
        assert_eq!(topics(&sub), Some(vec!["a".to_string(), "bc".to_string()]));
        assert_eq!(topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        let asg = [
            0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5,
        ];
        assert_eq!(
            assigned_partitions(&asg),
            Some(vec![("t".to_string(), vec![3, 5])])
        );
        assert_eq!(assigned_partitions(&[]), Some(Vec::new()));
        assert_eq!(assigned_partitions(&[0, 0, 0x7f, 0, 0, 0]), None);
    }
}

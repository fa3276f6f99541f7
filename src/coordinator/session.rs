//! Session liveness: when each session was last heard from and when it expires. This is
//! local bookkeeping (a monotonic clock passed in by the caller); whether a session exists
//! at all is replicated state in the tree's session table.

use std::collections::{BTreeSet, HashMap};

/// Tracks expiry deadlines of live sessions.
#[derive(Debug, Default)]
pub struct SessionTracker {
    deadlines: HashMap<i64, (i64, i64)>,
    by_deadline: BTreeSet<(i64, i64)>,
    next_id: i64,
}

impl SessionTracker {
    /// A tracker handing out ids the way ZooKeeper does: server id in the top byte,
    /// wall-clock millis below it, so ids do not repeat across restarts.
    pub fn new(server_id: u8, now_wall_ms: i64) -> Self {
        let base = ((now_wall_ms << 24) as u64 >> 8) as i64;
        SessionTracker {
            next_id: base | ((server_id as i64) << 56),
            ..Default::default()
        }
    }

    /// A fresh session id.
    pub fn next_session_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Starts (or restarts) tracking a session with this timeout.
    pub fn add(&mut self, id: i64, timeout_ms: i64, now_ms: i64) {
        self.remove(id);
        let deadline = now_ms + timeout_ms;
        self.deadlines.insert(id, (timeout_ms, deadline));
        self.by_deadline.insert((deadline, id));
    }

    /// The client was heard from: push its deadline out. False if the session is unknown.
    pub fn touch(&mut self, id: i64, now_ms: i64) -> bool {
        let Some(&(timeout, old)) = self.deadlines.get(&id) else {
            return false;
        };
        let deadline = now_ms + timeout;
        if deadline != old {
            self.by_deadline.remove(&(old, id));
            self.by_deadline.insert((deadline, id));
            self.deadlines.insert(id, (timeout, deadline));
        }
        true
    }

    /// Stops tracking a session.
    pub fn remove(&mut self, id: i64) {
        if let Some((_, d)) = self.deadlines.remove(&id) {
            self.by_deadline.remove(&(d, id));
        }
    }

    /// Whether a session is tracked.
    pub fn contains(&self, id: i64) -> bool {
        self.deadlines.contains_key(&id)
    }

    /// The tracked session ids.
    pub fn ids(&self) -> Vec<i64> {
        self.deadlines.keys().copied().collect()
    }

    /// Number of tracked sessions.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    /// Whether no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    /// Sessions whose deadline has passed at `now_ms` (they stay tracked until removed).
    pub fn expired(&self, now_ms: i64) -> Vec<i64> {
        self.by_deadline
            .iter()
            .take_while(|(d, _)| *d <= now_ms)
            .map(|(_, id)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_unless_touched() {
        let mut t = SessionTracker::new(1, 1_700_000_000_000);
        let a = t.next_session_id();
        let b = t.next_session_id();
        assert_ne!(a, b);
        assert_eq!(a >> 56, 1);
        t.add(a, 1000, 0);
        t.add(b, 1000, 0);
        assert!(t.touch(a, 900));
        assert_eq!(t.expired(1500), vec![b]);
        t.remove(b);
        assert_eq!(t.expired(1899), Vec::<i64>::new());
        assert_eq!(t.expired(1900), vec![a]);
    }
}

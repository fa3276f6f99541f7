//! Watches: one-shot data/child watches, persistent and persistent-recursive watches.
//! Local to this node (not replicated); keyed by session id, since one connection at a
//! time serves a session.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::tree::{split, TreeEvent};
use super::types::{ErrorCode, EventType, WatchEvent, WatchKind};

/// All watches registered on this node.
#[derive(Debug, Default)]
pub struct WatchManager {
    by_kind: [HashMap<String, HashSet<i64>>; 4],
    by_session: HashMap<i64, BTreeSet<(WatchKind, String)>>,
    total: usize,
    max_total: usize,
}

fn idx(k: WatchKind) -> usize {
    match k {
        WatchKind::Data => 0,
        WatchKind::Child => 1,
        WatchKind::Persistent => 2,
        WatchKind::PersistentRecursive => 3,
    }
}

impl WatchManager {
    /// A manager that refuses new watches beyond `max_total` (0 = unlimited).
    pub fn new(max_total: usize) -> Self {
        WatchManager { max_total, ..Default::default() }
    }

    /// Number of watches registered.
    pub fn count(&self) -> usize {
        self.total
    }

    /// Number of distinct watched paths.
    pub fn path_count(&self) -> usize {
        let mut paths: HashSet<&String> = HashSet::new();
        for m in &self.by_kind {
            paths.extend(m.keys());
        }
        paths.len()
    }

    /// Sessions that hold watches, with their watched paths (for `wchc`-style reports).
    pub fn by_session(&self) -> &HashMap<i64, BTreeSet<(WatchKind, String)>> {
        &self.by_session
    }

    /// Registers a watch. Beyond the cap the answer is Throttled; the read still succeeds
    /// for the caller only if it ignores that, so callers check first.
    pub fn add(&mut self, session: i64, kind: WatchKind, path: &str) -> Result<(), ErrorCode> {
        let set = self.by_session.entry(session).or_default();
        if set.contains(&(kind, path.to_string())) {
            return Ok(());
        }
        if self.max_total > 0 && self.total >= self.max_total {
            if set.is_empty() {
                self.by_session.remove(&session);
            }
            return Err(ErrorCode::Throttled);
        }
        set.insert((kind, path.to_string()));
        self.by_kind[idx(kind)].entry(path.to_string()).or_default().insert(session);
        self.total += 1;
        Ok(())
    }

    /// Whether `session` holds a watch of `kind` on `path`.
    pub fn has(&self, session: i64, kind: WatchKind, path: &str) -> bool {
        self.by_kind[idx(kind)].get(path).is_some_and(|s| s.contains(&session))
    }

    /// Removes one watch; false if it was not there.
    pub fn remove(&mut self, session: i64, kind: WatchKind, path: &str) -> bool {
        let map = &mut self.by_kind[idx(kind)];
        let Some(set) = map.get_mut(path) else { return false };
        if !set.remove(&session) {
            return false;
        }
        if set.is_empty() {
            map.remove(path);
        }
        if let Some(s) = self.by_session.get_mut(&session) {
            s.remove(&(kind, path.to_string()));
            if s.is_empty() {
                self.by_session.remove(&session);
            }
        }
        self.total -= 1;
        true
    }

    /// Drops every watch of a session (it closed or its connection went away).
    pub fn remove_session(&mut self, session: i64) {
        if let Some(set) = self.by_session.remove(&session) {
            for (kind, path) in set {
                let map = &mut self.by_kind[idx(kind)];
                if let Some(s) = map.get_mut(&path) {
                    s.remove(&session);
                    if s.is_empty() {
                        map.remove(&path);
                    }
                }
                self.total -= 1;
            }
        }
    }

    /// Turns tree events into notifications, consuming one-shot watches. A session gets
    /// at most one notification per event, however many of its watches match.
    pub fn trigger(&mut self, events: &[TreeEvent]) -> Vec<WatchEvent> {
        let mut out = Vec::new();
        for ev in events {
            let mut sessions: BTreeSet<i64> = BTreeSet::new();
            let one_shot: &[WatchKind] = match ev.kind {
                EventType::NodeCreated | EventType::NodeDataChanged => &[WatchKind::Data],
                EventType::NodeDeleted => &[WatchKind::Data, WatchKind::Child],
                EventType::NodeChildrenChanged => &[WatchKind::Child],
            };
            for &k in one_shot {
                if let Some(set) = self.by_kind[idx(k)].remove(&ev.path) {
                    for s in set {
                        if let Some(ss) = self.by_session.get_mut(&s) {
                            ss.remove(&(k, ev.path.clone()));
                            if ss.is_empty() {
                                self.by_session.remove(&s);
                            }
                        }
                        self.total -= 1;
                        sessions.insert(s);
                    }
                }
            }
            if let Some(set) = self.by_kind[idx(WatchKind::Persistent)].get(&ev.path) {
                sessions.extend(set.iter().copied());
            }
            if ev.kind != EventType::NodeChildrenChanged && !self.by_kind[idx(WatchKind::PersistentRecursive)].is_empty() {
                let mut p = ev.path.as_str();
                loop {
                    if let Some(set) = self.by_kind[idx(WatchKind::PersistentRecursive)].get(p) {
                        sessions.extend(set.iter().copied());
                    }
                    if p == "/" || p.is_empty() {
                        break;
                    }
                    p = split(p).0;
                }
            }
            for s in sessions {
                out.push(WatchEvent { session_id: s, kind: ev.kind, path: ev.path.clone() });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, path: &str) -> TreeEvent {
        TreeEvent { kind, path: path.into() }
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = WatchManager::new(0);
        w.add(1, WatchKind::Data, "/a").unwrap();
        assert_eq!(w.trigger(&[ev(EventType::NodeDataChanged, "/a")]).len(), 1);
        assert!(w.trigger(&[ev(EventType::NodeDataChanged, "/a")]).is_empty());
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn persistent_watches_stay_and_recursive_ones_see_descendants() {
        let mut w = WatchManager::new(0);
        w.add(1, WatchKind::Persistent, "/a").unwrap();
        w.add(2, WatchKind::PersistentRecursive, "/a").unwrap();
        let n = w.trigger(&[ev(EventType::NodeChildrenChanged, "/a"), ev(EventType::NodeCreated, "/a/b/c")]);
        assert_eq!(n, vec![
            WatchEvent { session_id: 1, kind: EventType::NodeChildrenChanged, path: "/a".into() },
            WatchEvent { session_id: 2, kind: EventType::NodeCreated, path: "/a/b/c".into() },
        ]);
        assert_eq!(w.count(), 2);
    }

    #[test]
    fn deleting_fires_data_and_child_watches_once_per_session() {
        let mut w = WatchManager::new(0);
        w.add(1, WatchKind::Data, "/a").unwrap();
        w.add(1, WatchKind::Child, "/a").unwrap();
        assert_eq!(w.trigger(&[ev(EventType::NodeDeleted, "/a")]).len(), 1);
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn the_cap_throttles() {
        let mut w = WatchManager::new(1);
        w.add(1, WatchKind::Data, "/a").unwrap();
        assert_eq!(w.add(1, WatchKind::Data, "/b"), Err(ErrorCode::Throttled));
        w.remove_session(1);
        assert_eq!(w.count(), 0);
    }
}

//! Watches, shaped like ZooKeeper 3.8's: a data-watch table and a child-watch table, each
//! mapping path -> session -> mode (standard one-shot, persistent, persistent-recursive).
//! exists/getData register in the data table, getChildren in the child table, addWatch
//! (persistent or recursive) in both. Local to this node (not
//! replicated), keyed by session id, since one connection at a time serves a session.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::acl;
use super::tree::{split, TreeEvent};
use super::types::{perms, ErrorCode, EventType, Id, WatchEvent, WatchKind};

/// How a watch behaves when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fires once.
    Standard,
    /// Stays; sees events on its own path.
    Persistent,
    /// Stays; sees events on its path and every descendant (not child-list changes).
    PersistentRecursive,
}

/// One watch table (data or child).
#[derive(Debug, Default)]
struct Table {
    by_path: HashMap<String, HashMap<i64, Mode>>,
    recursive: usize,
}

impl Table {
    /// Adds or re-modes a watch; true if it is new.
    fn add(&mut self, session: i64, path: &str, mode: Mode) -> bool {
        let m = self.by_path.entry(path.to_string()).or_default();
        let old = m.insert(session, mode);
        if old == Some(Mode::PersistentRecursive) {
            self.recursive -= 1;
        }
        if mode == Mode::PersistentRecursive {
            self.recursive += 1;
        }
        old.is_none()
    }

    fn remove(&mut self, session: i64, path: &str) -> bool {
        let Some(m) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(old) = m.remove(&session) else {
            return false;
        };
        if old == Mode::PersistentRecursive {
            self.recursive -= 1;
        }
        if m.is_empty() {
            self.by_path.remove(path);
        }
        true
    }

    /// ZooKeeper 3.8's containsWatcher: any watcher on the path, or this session's
    /// recursive watch there.
    fn contains(&self, session: i64, path: &str) -> bool {
        let anyone_there = self.by_path.get(path).is_some_and(|m| !m.is_empty());
        anyone_there
            || self.by_path.get(path).and_then(|m| m.get(&session))
                == Some(&Mode::PersistentRecursive)
    }

    /// ZooKeeper 3.8's triggerWatch: the sessions to notify; one-shot watches are consumed.
    fn trigger(
        &mut self,
        path: &str,
        kind: EventType,
        removed: &mut Vec<(i64, String)>,
    ) -> BTreeSet<i64> {
        let mut out = BTreeSet::new();
        let mut p = path;
        let mut at_leaf = true;
        loop {
            if let Some(m) = self.by_path.get_mut(p) {
                let mut gone = Vec::new();
                for (&s, &mode) in m.iter() {
                    match mode {
                        Mode::PersistentRecursive if kind != EventType::NodeChildrenChanged => {
                            out.insert(s);
                        }
                        Mode::PersistentRecursive => {}
                        _ if at_leaf => {
                            out.insert(s);
                            if mode == Mode::Standard {
                                gone.push(s);
                            }
                        }
                        _ => {}
                    }
                }
                for s in gone {
                    m.remove(&s);
                    removed.push((s, p.to_string()));
                }
                if m.is_empty() {
                    self.by_path.remove(p);
                }
            }
            if self.recursive == 0 || p == "/" || p.is_empty() {
                break;
            }
            p = split(p).0;
            at_leaf = false;
        }
        out
    }
}

/// Which table a kind of watch lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Which {
    Data,
    Child,
}

/// Heap bytes one registered watch costs beyond its path, which it holds twice (the path
/// table's key and the session's set): hash-map and set slots, the session id, the mode.
/// An estimate for the memory budget's znode pool, as [`super::NODE_OVERHEAD_BYTES`] is
/// for a znode.
pub const WATCH_OVERHEAD_BYTES: u64 = 96;

/// What one watch on `path` counts against the znode pool.
pub fn watch_cost(path: &str) -> u64 {
    WATCH_OVERHEAD_BYTES + 2 * path.len() as u64
}

/// All watches registered on this node.
#[derive(Debug)]
pub struct WatchManager {
    data: Table,
    child: Table,
    by_session: HashMap<i64, BTreeSet<(WatchKind, String)>>,
    total: usize,
    max_total: usize,
    /// What the registered watches cost ([`watch_cost`] each).
    bytes: u64,
    /// The most they may cost: the room the znode tree leaves in its pool.
    bytes_max: u64,
}

impl WatchManager {
    /// A manager that refuses new watches beyond `max_total` (0 = unlimited).
    pub fn new(max_total: usize) -> Self {
        WatchManager {
            data: Table::default(),
            child: Table::default(),
            by_session: HashMap::new(),
            total: 0,
            max_total,
            bytes: 0,
            bytes_max: u64::MAX,
        }
    }

    /// Number of watches registered (a persistent watch counts in both tables).
    pub fn count(&self) -> usize {
        self.total
    }

    /// What the registered watches cost against the znode pool, in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Refuse new watches that would take the watches' cost past `bytes` (existing ones
    /// stay; they go as they fire or are removed).
    pub fn set_bytes_max(&mut self, bytes: u64) {
        self.bytes_max = bytes;
    }

    /// `count` watches on `path` went away.
    fn released(&mut self, count: usize, path: &str) {
        self.total -= count;
        self.bytes -= count as u64 * watch_cost(path);
        debug_assert!(self.total > 0 || self.bytes == 0, "watch bytes leaked");
    }

    /// Number of distinct watched paths.
    pub fn path_count(&self) -> usize {
        let mut paths: HashSet<&String> = self.data.by_path.keys().collect();
        paths.extend(self.child.by_path.keys());
        paths.len()
    }

    /// Sessions that hold watches, with what they watch.
    pub fn by_session(&self) -> &HashMap<i64, BTreeSet<(WatchKind, String)>> {
        &self.by_session
    }

    fn table(&mut self, w: Which) -> &mut Table {
        match w {
            Which::Data => &mut self.data,
            Which::Child => &mut self.child,
        }
    }

    fn kind_of(w: Which, mode: Mode) -> WatchKind {
        match (w, mode) {
            (Which::Data, Mode::Standard) => WatchKind::Data,
            (Which::Child, Mode::Standard) => WatchKind::Child,
            (_, Mode::Persistent) => WatchKind::Persistent,
            (_, Mode::PersistentRecursive) => WatchKind::PersistentRecursive,
        }
    }

    fn forget(&mut self, session: i64, path: &str) {
        if let Some(set) = self.by_session.get_mut(&session) {
            set.retain(|(_, p)| {
                p != path
                    || self
                        .data
                        .by_path
                        .get(p)
                        .is_some_and(|m| m.contains_key(&session))
                    || self
                        .child
                        .by_path
                        .get(p)
                        .is_some_and(|m| m.contains_key(&session))
            });
            if set.is_empty() {
                self.by_session.remove(&session);
            }
        }
    }

    fn has(&self, session: i64, w: Which, path: &str) -> bool {
        let table = match w {
            Which::Data => &self.data,
            Which::Child => &self.child,
        };
        table
            .by_path
            .get(path)
            .is_some_and(|m| m.contains_key(&session))
    }

    /// Registers a one-shot watch (data for exists/getData, child for getChildren), or a
    /// persistent one (in both tables), all or nothing: a watch that would pass
    /// `max_watches` or the room its pool leaves is refused with `QuotaExceeded`, and
    /// nothing is registered. Re-registering a watch the session holds costs nothing.
    pub fn add(&mut self, session: i64, kind: WatchKind, path: &str) -> Result<(), ErrorCode> {
        self.add_capped(session, kind, path, true)
    }

    /// Registers a watch past every cap: the node's own (its controller and replication
    /// watch the tree, and must not lose that to clients filling the pool). Counted all
    /// the same.
    pub fn add_uncapped(&mut self, session: i64, kind: WatchKind, path: &str) {
        let _ = self.add_capped(session, kind, path, false);
    }

    fn add_capped(
        &mut self,
        session: i64,
        kind: WatchKind,
        path: &str,
        capped: bool,
    ) -> Result<(), ErrorCode> {
        let entries: &[(Which, Mode)] = match kind {
            WatchKind::Data => &[(Which::Data, Mode::Standard)],
            WatchKind::Child => &[(Which::Child, Mode::Standard)],
            WatchKind::Persistent => &[
                (Which::Child, Mode::Persistent),
                (Which::Data, Mode::Persistent),
            ],
            WatchKind::PersistentRecursive => &[
                (Which::Child, Mode::PersistentRecursive),
                (Which::Data, Mode::PersistentRecursive),
            ],
        };
        let new = entries
            .iter()
            .filter(|(w, _)| !self.has(session, *w, path))
            .count();
        let bytes = self.bytes + new as u64 * watch_cost(path);
        if capped
            && new > 0
            && ((self.max_total > 0 && self.total + new > self.max_total) || bytes > self.bytes_max)
        {
            return Err(ErrorCode::QuotaExceeded);
        }
        for &(w, mode) in entries {
            self.table(w).add(session, path, mode);
            self.by_session
                .entry(session)
                .or_default()
                .insert((Self::kind_of(w, mode), path.to_string()));
        }
        self.total += new;
        self.bytes = bytes;
        Ok(())
    }

    /// Whether all of `watches` can be registered for `session` at once (setWatches after
    /// a reconnect registers all or none).
    pub fn fits(&self, session: i64, watches: &[(WatchKind, &str)]) -> bool {
        let mut new = HashSet::new();
        for &(kind, path) in watches {
            let tables: &[Which] = match kind {
                WatchKind::Data => &[Which::Data],
                WatchKind::Child => &[Which::Child],
                WatchKind::Persistent | WatchKind::PersistentRecursive => {
                    &[Which::Data, Which::Child]
                }
            };
            for &w in tables {
                if !self.has(session, w, path) {
                    new.insert((w, path));
                }
            }
        }
        let bytes: u64 = new.iter().map(|(_, path)| watch_cost(path)).sum();
        (self.max_total == 0 || self.total + new.len() <= self.max_total)
            && self.bytes + bytes <= self.bytes_max
    }

    /// checkWatches: 1 children, 2 data, 3 any (ZooKeeper 3.8's containsWatcher).
    pub fn contains(&self, session: i64, path: &str, watcher_type: i32) -> bool {
        match watcher_type {
            1 => self.child.contains(session, path),
            2 => self.data.contains(session, path),
            _ => self.child.contains(session, path) || self.data.contains(session, path),
        }
    }

    /// removeWatches: 1 children, 2 data, 3 any; false if this session had none there.
    pub fn remove(&mut self, session: i64, path: &str, watcher_type: i32) -> bool {
        let mut removed = 0;
        if watcher_type != 2 && self.child.remove(session, path) {
            removed += 1;
        }
        if watcher_type != 1 && self.data.remove(session, path) {
            removed += 1;
        }
        if removed > 0 {
            self.released(removed, path);
            self.forget(session, path);
        }
        removed > 0
    }

    /// Drops every watch of a session (it closed or its connection went away).
    pub fn remove_session(&mut self, session: i64) {
        if let Some(set) = self.by_session.remove(&session) {
            for (_, path) in set {
                let removed = usize::from(self.data.remove(session, &path))
                    + usize::from(self.child.remove(session, &path));
                self.released(removed, &path);
            }
        }
    }

    fn fire(&mut self, w: Which, ev: &TreeEvent, suppress: &BTreeSet<i64>) -> BTreeSet<i64> {
        let mut removed = Vec::new();
        let sessions = self.table(w).trigger(&ev.path, ev.kind, &mut removed);
        for (s, p) in removed {
            self.released(1, &p);
            self.forget(s, &p);
        }
        sessions.difference(suppress).copied().collect()
    }

    /// Turns tree events into notifications, consuming one-shot watches. Watchers that
    /// lack READ on the event's node (by `auth_of` their session) lose a one-shot watch
    /// without being told, as in ZooKeeper 3.8.
    pub fn trigger<'a>(
        &mut self,
        events: &[TreeEvent],
        auth_of: impl Fn(i64) -> &'a [Id],
    ) -> Vec<WatchEvent> {
        let mut out = Vec::new();
        let none = BTreeSet::new();
        for ev in events {
            let sessions = match ev.kind {
                EventType::NodeCreated | EventType::NodeDataChanged => {
                    self.fire(Which::Data, ev, &none)
                }
                EventType::NodeChildrenChanged => self.fire(Which::Child, ev, &none),
                EventType::NodeDeleted => {
                    let mut s = self.fire(Which::Data, ev, &none);
                    let more = self.fire(Which::Child, ev, &s);
                    s.extend(more);
                    s
                }
            };
            for s in sessions {
                if acl::check(&ev.acl, perms::READ, auth_of(s)).is_err() {
                    continue;
                }
                out.push(WatchEvent {
                    session_id: s,
                    kind: ev.kind,
                    path: ev.path.clone(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::types::Acl;

    fn ev(kind: EventType, path: &str) -> TreeEvent {
        TreeEvent {
            kind,
            path: path.into(),
            acl: Acl::open().into(),
        }
    }

    fn anyone(_: i64) -> &'static [Id] {
        &[]
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = WatchManager::new(0);
        w.add(1, WatchKind::Data, "/a").unwrap();
        assert_eq!(
            w.trigger(&[ev(EventType::NodeDataChanged, "/a")], anyone)
                .len(),
            1
        );
        assert!(w
            .trigger(&[ev(EventType::NodeDataChanged, "/a")], anyone)
            .is_empty());
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn persistent_watches_stay_and_recursive_ones_see_descendants() {
        let mut w = WatchManager::new(0);
        w.add(1, WatchKind::Persistent, "/a").unwrap();
        w.add(2, WatchKind::PersistentRecursive, "/a").unwrap();
        let n = w.trigger(
            &[
                ev(EventType::NodeChildrenChanged, "/a"),
                ev(EventType::NodeCreated, "/a/b/c"),
            ],
            anyone,
        );
        assert_eq!(
            n,
            vec![
                WatchEvent {
                    session_id: 1,
                    kind: EventType::NodeChildrenChanged,
                    path: "/a".into()
                },
                WatchEvent {
                    session_id: 2,
                    kind: EventType::NodeCreated,
                    path: "/a/b/c".into()
                },
            ]
        );
        assert_eq!(w.count(), 4);
    }

    #[test]
    fn deleting_fires_data_and_child_watches_once_per_session() {
        let mut w = WatchManager::new(0);
        w.add(1, WatchKind::Data, "/a").unwrap();
        w.add(1, WatchKind::Child, "/a").unwrap();
        assert_eq!(
            w.trigger(&[ev(EventType::NodeDeleted, "/a")], anyone).len(),
            1
        );
        assert_eq!(w.count(), 0);
        assert!(w.by_session().is_empty());
    }

    #[test]
    fn the_cap_throttles() {
        let mut w = WatchManager::new(1);
        w.add(1, WatchKind::Data, "/a").unwrap();
        assert_eq!(
            w.add(1, WatchKind::Data, "/b"),
            Err(ErrorCode::QuotaExceeded)
        );
        w.remove_session(1);
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn watchers_without_read_are_not_told_but_lose_the_watch() {
        let mut w = WatchManager::new(0);
        w.add(1, WatchKind::Data, "/s").unwrap();
        let secret: std::sync::Arc<[Acl]> = vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "digest".into(),
                id: "u:h".into(),
            },
        }]
        .into();
        let ev = TreeEvent {
            kind: EventType::NodeCreated,
            path: "/s".into(),
            acl: secret,
        };
        assert!(w.trigger(&[ev], |_| &[]).is_empty());
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn bytes_balance_through_every_way_a_watch_goes() {
        let mut w = WatchManager::new(0);
        w.add(1, WatchKind::Data, "/a").unwrap();
        w.add(1, WatchKind::Child, "/a").unwrap();
        w.add(2, WatchKind::Persistent, "/a").unwrap();
        w.add(3, WatchKind::PersistentRecursive, "/r").unwrap();
        w.add(3, WatchKind::Data, "/gone").unwrap();
        assert_eq!(w.count(), 7);
        assert_eq!(
            w.bytes(),
            4 * watch_cost("/a") + 2 * watch_cost("/r") + watch_cost("/gone")
        );
        // Fired: session 1's one-shots go, session 2's persistent ones stay.
        w.trigger(&[ev(EventType::NodeDeleted, "/a")], anyone);
        assert_eq!(
            w.bytes(),
            2 * watch_cost("/a") + 2 * watch_cost("/r") + watch_cost("/gone")
        );
        assert!(w.remove(3, "/gone", 3));
        w.remove_session(2);
        w.remove_session(3);
        assert_eq!((w.count(), w.bytes()), (0, 0));
        assert!(w.by_session().is_empty());
    }

    #[test]
    fn a_persistent_watch_that_does_not_fit_is_not_half_set() {
        let mut w = WatchManager::new(0);
        w.set_bytes_max(watch_cost("/p"));
        assert_eq!(
            w.add(1, WatchKind::Persistent, "/p"),
            Err(ErrorCode::QuotaExceeded)
        );
        assert_eq!((w.count(), w.bytes()), (0, 0));
        w.add(1, WatchKind::Data, "/p").unwrap();
        assert!(w.fits(1, &[(WatchKind::Data, "/p")]), "already held");
        assert!(!w.fits(1, &[(WatchKind::Child, "/p")]));
        let mut capped = WatchManager::new(3);
        capped.add(1, WatchKind::Data, "/x").unwrap();
        assert_eq!(
            capped.add(1, WatchKind::PersistentRecursive, "/y"),
            Ok(()),
            "two more fit max_watches = 3"
        );
        assert_eq!(
            capped.add(2, WatchKind::Data, "/x"),
            Err(ErrorCode::QuotaExceeded)
        );
    }
}

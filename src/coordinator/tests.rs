//! State-machine tests: tree operations, sessions, watches, and recovery from the log.

use super::persist::{self, FileLog, TxnSink};
use super::*;

const T: i64 = 1_700_000_000_000;

fn anyone(session_id: i64) -> Caller<'static> {
    Caller {
        session_id,
        auth: &[],
    }
}

fn create(c: &mut Coordinator, s: i64, path: &str, flags: i32) -> TxnResult {
    let op = WriteOp::Create {
        path: path.into(),
        data: b"d".to_vec(),
        acl: Acl::open(),
        flags,
        ttl_ms: -1,
        op: 1,
    };
    c.write(anyone(s), 0, &op, T).result
}

fn session(c: &mut Coordinator) -> i64 {
    match c.connect(0, &[], 10_000, [7; 16], T, 0) {
        Connect::Session { id, .. } => id,
        Connect::Expired => panic!("new session refused"),
    }
}

#[test]
fn sequential_names_count_child_creations_per_parent() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    create(&mut c, s, "/q", 0);
    assert!(
        matches!(create(&mut c, s, "/q/x-", 2), TxnResult::Created { ref path, .. } if path == "/q/x-0000000000")
    );
    c.write(
        anyone(s),
        0,
        &WriteOp::Delete {
            path: "/q/x-0000000000".into(),
            version: -1,
        },
        T,
    );
    assert!(
        matches!(create(&mut c, s, "/q/x-", 2), TxnResult::Created { ref path, .. } if path == "/q/x-0000000001")
    );
    let stat = c.exists(anyone(s), "/q", false).unwrap();
    // Clients see creations plus deletions: 2 creates, 1 delete.
    assert_eq!((stat.cversion, stat.num_children), (3, 1));
}

#[test]
fn versions_guard_writes() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    create(&mut c, s, "/v", 0);
    let set = |c: &mut Coordinator, v| {
        c.write(
            anyone(s),
            0,
            &WriteOp::SetData {
                path: "/v".into(),
                data: vec![],
                version: v,
            },
            T,
        )
        .result
    };
    assert!(matches!(set(&mut c, 0), TxnResult::SetData(st) if st.version == 1));
    assert_eq!(set(&mut c, 0), TxnResult::Error(ErrorCode::BadVersion));
    assert!(matches!(set(&mut c, -1), TxnResult::SetData(st) if st.version == 2));
}

#[test]
fn errors_come_in_zookeepers_order() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    assert_eq!(
        create(&mut c, s, "/a/b", 0),
        TxnResult::Error(ErrorCode::NoNode)
    );
    assert_eq!(
        create(&mut c, s, "/", 0),
        TxnResult::Error(ErrorCode::NodeExists)
    );
    create(&mut c, s, "/e", 1);
    assert_eq!(
        create(&mut c, s, "/e/c", 0),
        TxnResult::Error(ErrorCode::NoChildrenForEphemerals)
    );
    create(&mut c, s, "/p", 0);
    create(&mut c, s, "/p/c", 0);
    let del = |c: &mut Coordinator, p: &str| {
        c.write(
            anyone(s),
            0,
            &WriteOp::Delete {
                path: p.into(),
                version: -1,
            },
            T,
        )
        .result
    };
    assert_eq!(del(&mut c, "/p"), TxnResult::Error(ErrorCode::NotEmpty));
    assert_eq!(del(&mut c, "/"), TxnResult::Error(ErrorCode::BadArguments));
    assert_eq!(
        del(&mut c, "/zookeeper"),
        TxnResult::Error(ErrorCode::BadArguments)
    );
    assert_eq!(
        create(&mut c, s, "/p/.", 0),
        TxnResult::Error(ErrorCode::BadArguments)
    );
    assert_eq!(
        create(&mut c, s, "/p", 9),
        TxnResult::Error(ErrorCode::BadArguments)
    );
}

#[test]
fn failed_writes_still_consume_a_zxid() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    let before = c.last_zxid();
    create(&mut c, s, "/missing/child", 0);
    assert_eq!(c.last_zxid(), before + 1);
}

#[test]
fn multi_is_all_or_nothing() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    create(&mut c, s, "/m", 0);
    let mk = |p: &str| WriteOp::Create {
        path: p.into(),
        data: vec![],
        acl: Acl::open(),
        flags: 0,
        ttl_ms: -1,
        op: 1,
    };
    let ops = vec![
        mk("/m/a"),
        WriteOp::SetData {
            path: "/m".into(),
            data: b"x".to_vec(),
            version: 0,
        },
        mk("/m"),
        mk("/m/b"),
    ];
    let out = c.multi(anyone(s), 0, &ops, T);
    assert_eq!(
        out.result,
        TxnResult::Multi(vec![
            TxnResult::Error(ErrorCode::Ok),
            TxnResult::Error(ErrorCode::Ok),
            TxnResult::Error(ErrorCode::NodeExists),
            TxnResult::Error(ErrorCode::RuntimeInconsistency),
        ])
    );
    assert!(c.tree().get("/m/a").is_none());
    assert_eq!(c.tree().get("/m").unwrap().data, b"d");
    assert_eq!(c.tree().get("/m").unwrap().client_stat().cversion, 0);
    // Later ops see earlier ones within a multi.
    let ok = c.multi(
        anyone(s),
        0,
        &[
            mk("/m/a"),
            mk("/m/a/b"),
            WriteOp::Check {
                path: "/m/a/b".into(),
                version: 0,
            },
        ],
        T,
    );
    assert!(
        matches!(ok.result, TxnResult::Multi(ref v) if v.len() == 3 && !v.iter().any(|r| matches!(r, TxnResult::Error(_))))
    );
}

#[test]
fn closing_a_session_deletes_its_ephemerals_and_tells_watchers() {
    let mut c = Coordinator::in_memory();
    let a = session(&mut c);
    let b = session(&mut c);
    create(&mut c, a, "/lock", 0);
    create(&mut c, a, "/lock/n-", 3);
    c.get_children(anyone(b), "/lock", true).unwrap();
    let out = c.close_session(a, 0, T);
    assert_eq!(
        out.notifications,
        vec![WatchEvent {
            session_id: b,
            kind: EventType::NodeChildrenChanged,
            path: "/lock".into()
        }]
    );
    assert_eq!(c.tree().get("/lock").unwrap().children.len(), 0);
    assert!(!c.tree().sessions().contains_key(&a));
}

#[test]
fn sessions_reattach_only_with_their_password() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    assert!(
        matches!(c.connect(s, &[7; 16], 10_000, [1; 16], T, 5), Connect::Session { id, .. } if id == s)
    );
    assert!(matches!(
        c.connect(s, &[8; 16], 10_000, [1; 16], T, 5),
        Connect::Expired
    ));
    assert!(matches!(
        c.connect(12345, &[7; 16], 10_000, [1; 16], T, 5),
        Connect::Expired
    ));
}

#[test]
fn session_timeouts_are_negotiated_into_bounds() {
    let mut c = Coordinator::in_memory();
    match c.connect(0, &[], 1, [0; 16], T, 0) {
        Connect::Session { timeout_ms, .. } => assert_eq!(timeout_ms, 4000),
        Connect::Expired => panic!(),
    }
    match c.connect(0, &[], 1_000_000, [0; 16], T, 0) {
        Connect::Session { timeout_ms, .. } => assert_eq!(timeout_ms, 40000),
        Connect::Expired => panic!(),
    }
}

#[test]
fn expired_sessions_are_reported_by_the_clock_passed_in() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    assert!(c.expired_sessions(9_999).is_empty());
    assert_eq!(c.expired_sessions(10_000), vec![s]);
    c.touch(s, 5_000);
    assert!(c.expired_sessions(10_000).is_empty());
}

#[test]
fn notifications_precede_nothing_for_unwatched_paths_and_fire_once() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    create(&mut c, s, "/w", 0);
    c.get_data(anyone(s), "/w", true).unwrap();
    let set = WriteOp::SetData {
        path: "/w".into(),
        data: vec![1],
        version: -1,
    };
    assert_eq!(c.write(anyone(s), 0, &set, T).notifications.len(), 1);
    assert!(c.write(anyone(s), 0, &set, T).notifications.is_empty());
}

#[test]
fn empty_containers_and_expired_ttl_nodes_are_reaped() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    let container = WriteOp::Create {
        path: "/c".into(),
        data: vec![],
        acl: Acl::open(),
        flags: 4,
        ttl_ms: -1,
        op: 19,
    };
    c.write(anyone(s), 0, &container, T);
    assert!(
        c.reap(T).is_empty(),
        "a container that never had children stays"
    );
    create(&mut c, s, "/c/x", 0);
    c.write(
        anyone(s),
        0,
        &WriteOp::Delete {
            path: "/c/x".into(),
            version: -1,
        },
        T,
    );
    let ttl = WriteOp::Create {
        path: "/t".into(),
        data: vec![],
        acl: Acl::open(),
        flags: 5,
        ttl_ms: 1000,
        op: 21,
    };
    c.write(anyone(s), 0, &ttl, T);
    assert_eq!(c.reap(T + 10).len(), 1);
    assert!(c.tree().get("/c").is_none());
    assert!(c.tree().get("/t").is_some());
    assert_eq!(c.reap(T + 1001).len(), 1);
    assert!(c.tree().get("/t").is_none());
}

fn file_coordinator(dir: &std::path::Path, snap_count: u32) -> Coordinator {
    let (mut tree, txns) = persist::recover(dir).unwrap();
    Coordinator::replay(&mut tree, &txns);
    let log = FileLog::open(dir, tree.last_zxid(), snap_count, 4096, true).unwrap();
    let limits = Limits {
        max_data_bytes: 1 << 20,
        session_timeout_ms: (4000, 40000),
    };
    Coordinator::new(tree, Box::new(log), limits, 0, 1, T, 0)
}

fn wait_durable(c: &Coordinator) {
    let mut d = c.durable();
    let target = c.last_zxid();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { d.wait_for(|z| *z >= target).await.unwrap() });
}

#[test]
fn the_tree_and_sequence_counters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (s, zxid) = {
        let mut c = file_coordinator(dir.path(), 1000);
        let s = session(&mut c);
        create(&mut c, s, "/keep", 0);
        create(&mut c, s, "/keep/n-", 2);
        create(&mut c, s, "/keep/n-", 2);
        create(&mut c, s, "/eph", 1);
        wait_durable(&c);
        (s, c.last_zxid())
    };
    let mut c = file_coordinator(dir.path(), 1000);
    assert_eq!(c.last_zxid(), zxid);
    assert!(
        c.tree().get("/eph").is_some(),
        "ephemerals live until their session expires"
    );
    assert!(c.tree().sessions().contains_key(&s));
    assert!(
        matches!(create(&mut c, s, "/keep/n-", 2), TxnResult::Created { ref path, .. } if path == "/keep/n-0000000002")
    );
    c.close_session(s, 0, T);
    assert!(c.tree().get("/eph").is_none());
}

#[test]
fn snapshots_roll_the_log_and_purge_keeps_what_recovery_needs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut c = file_coordinator(dir.path(), 10);
        let s = session(&mut c);
        for i in 0..55 {
            create(&mut c, s, &format!("/n{i}"), 0);
            // A sequential client: each write is acknowledged before the next.
            wait_durable(&c);
        }
    }
    let store = persist::store_dir(dir.path());
    let snaps = std::fs::read_dir(&store)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("snapshot.")
        })
        .count();
    assert!(
        snaps >= 5,
        "expected a snapshot every 10 txns, found {snaps}"
    );
    persist::purge(dir.path(), 3).unwrap();
    let c = file_coordinator(dir.path(), 10);
    for i in 0..55 {
        assert!(
            c.tree().get(&format!("/n{i}")).is_some(),
            "/n{i} lost after purge"
        );
    }
}

#[test]
fn a_torn_log_tail_is_dropped_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut c = file_coordinator(dir.path(), 1000);
        let s = session(&mut c);
        create(&mut c, s, "/a", 0);
        create(&mut c, s, "/b", 0);
        wait_durable(&c);
    }
    // Corrupt the last record's payload: recovery must stop before it.
    let store = persist::store_dir(dir.path());
    let mut logs: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("log."))
        .collect();
    logs.sort();
    let log = logs.first().unwrap();
    let mut bytes = std::fs::read(log).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap();
    bytes[end] ^= 0xFF;
    std::fs::write(log, &bytes).unwrap();
    let c = file_coordinator(dir.path(), 1000);
    assert!(c.tree().get("/a").is_some());
    assert!(c.tree().get("/b").is_none());
}

#[test]
fn memory_sink_reports_everything_durable() {
    let mut sink = persist::MemorySink::new();
    let txn = txn::Txn {
        session_id: 1,
        cxid: 0,
        zxid: 9,
        time_ms: 0,
        body: txn::TxnBody::CloseSession,
    };
    sink.append(&txn);
    assert_eq!(*sink.durable().borrow(), 9);
}

fn create_op(path: &str, bytes: usize) -> WriteOp {
    WriteOp::Create {
        path: path.into(),
        data: vec![b'x'; bytes],
        acl: Acl::open(),
        flags: 0,
        ttl_ms: -1,
        op: 1,
    }
}

#[test]
fn writes_past_the_tree_cap_are_refused_with_quota_exceeded() {
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    c.set_tree_bytes_max(c.tree_memory_bytes() + 3000);
    let first = c.write(anyone(s), 1, &create_op("/a", 1000), T).result;
    assert!(matches!(first, TxnResult::Created { .. }), "{first:?}");
    let refused = c.write(anyone(s), 2, &create_op("/b", 2000), T).result;
    assert_eq!(refused, TxnResult::Error(ErrorCode::QuotaExceeded));
    assert!(c.tree().get("/b").is_none());
    // A multi is refused as a whole, the first op carrying the reason.
    let multi = c.multi(
        anyone(s),
        3,
        &[create_op("/m1", 500), create_op("/m2", 1500)],
        T,
    );
    assert_eq!(
        multi.result,
        TxnResult::Multi(vec![
            TxnResult::Error(ErrorCode::QuotaExceeded),
            TxnResult::Error(ErrorCode::RuntimeInconsistency),
        ])
    );
    assert!(c.tree().get("/m1").is_none());
    // Deleting frees the cap for the next write.
    let delete = WriteOp::Delete {
        path: "/a".into(),
        version: -1,
    };
    assert_eq!(c.write(anyone(s), 4, &delete, T).result, TxnResult::Deleted);
    let again = c.write(anyone(s), 5, &create_op("/b", 2000), T).result;
    assert!(matches!(again, TxnResult::Created { .. }), "{again:?}");
}

#[test]
fn the_cap_an_entry_carries_decides_on_every_replica_whatever_its_own_budget() {
    // Two replicas with different budgets of their own apply the same log: the cap in the
    // entry, not each node's pool, decides, so their trees never diverge.
    let mut small = Coordinator::in_memory();
    small.set_tree_bytes_max(1);
    let mut large = Coordinator::in_memory();
    let cap = Some(large.tree_memory_bytes() + 5000);
    let log: Vec<(WriteOp, Option<u64>)> = vec![
        (create_op("/x", 3000), cap),
        (create_op("/y", 3000), cap),    // refused: past the entry's cap
        (create_op("/own", 3000), None), // the node's own bookkeeping: never capped
    ];
    for replica in [&mut small, &mut large] {
        let results: Vec<TxnResult> = log
            .iter()
            .enumerate()
            .map(|(i, (op, cap))| {
                let zxid = i as i64 + 1;
                replica.write_at(anyone(0), 0, op, zxid, T, *cap).result
            })
            .collect();
        assert!(matches!(results[0], TxnResult::Created { .. }));
        assert_eq!(results[1], TxnResult::Error(ErrorCode::QuotaExceeded));
        assert!(matches!(results[2], TxnResult::Created { .. }));
    }
    assert_eq!(
        persist::encode_snapshot(small.tree()),
        persist::encode_snapshot(large.tree())
    );
}

#[test]
fn watches_count_against_the_znode_pool_and_give_it_back() {
    use super::watch::watch_cost;
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    create(&mut c, s, "/a", 0);
    // Room for the tree plus three watches on "/w/..." paths of five bytes.
    let each = watch_cost("/w/00");
    c.set_tree_bytes_max(c.tree_memory_bytes() + 3 * each + each / 2);
    for p in ["/w/00", "/w/01", "/w/02"] {
        c.exists(anyone(s), p, true).unwrap_err(); // NoNode, but the watch is set
    }
    assert_eq!(c.watches().bytes(), 3 * each);
    assert_eq!(c.znode_pool_used_bytes(), c.tree_memory_bytes() + 3 * each);
    // A fourth is refused, and the read with it: no watch is dropped silently.
    assert_eq!(
        c.exists(anyone(s), "/w/03", true),
        Err(ErrorCode::QuotaExceeded)
    );
    assert_eq!(
        c.get_data(anyone(s), "/a", true).map(|_| ()),
        Err(ErrorCode::QuotaExceeded)
    );
    assert_eq!(c.watches().count(), 3);
    // Re-registering a watch the session holds costs nothing.
    c.exists(anyone(s), "/w/00", true).unwrap_err();
    // Reads without a watch are served.
    assert!(c.get_data(anyone(s), "/a", false).is_ok());
    // The watches leave the tree less room: a create that fits the pool alone is refused.
    let grow = WriteOp::Create {
        path: "/b".into(),
        data: vec![0; (each / 2) as usize],
        acl: Acl::open(),
        flags: 0,
        ttl_ms: -1,
        op: 1,
    };
    assert_eq!(
        c.write(anyone(s), 0, &grow, T).result,
        TxnResult::Error(ErrorCode::QuotaExceeded)
    );
    // A fired watch gives its bytes back.
    c.set_tree_bytes_max(u64::MAX);
    create(&mut c, s, "/w", 0);
    let out = c.write(
        anyone(s),
        0,
        &WriteOp::Create {
            path: "/w/00".into(),
            data: vec![],
            acl: Acl::open(),
            flags: 0,
            ttl_ms: -1,
            op: 1,
        },
        T,
    );
    assert_eq!(out.notifications.len(), 1);
    assert_eq!(c.watches().count(), 2);
    // A removed one too.
    c.remove_watches(anyone(s), "/w/01", 2, true).unwrap();
    assert_eq!(c.watches().bytes(), each);
    // The connection goes away: the rest go with it.
    c.detach(s);
    assert_eq!((c.watches().count(), c.watches().bytes()), (0, 0));
    // And a closed session's too.
    let t = session(&mut c);
    c.add_watch(anyone(t), "/a", 1).unwrap();
    assert_eq!(c.watches().bytes(), 2 * watch_cost("/a"));
    c.close_session(t, 0, T);
    assert_eq!(c.watches().bytes(), 0);
}

#[test]
fn set_watches_registers_all_or_none() {
    use super::watch::watch_cost;
    let mut c = Coordinator::in_memory();
    let s = session(&mut c);
    create(&mut c, s, "/a", 0);
    let zxid = c.last_zxid();
    let paths: Vec<String> = (0..4).map(|i| format!("/n{i}")).collect();
    c.set_tree_bytes_max(c.tree_memory_bytes() + 3 * watch_cost("/n0"));
    let refused = c.set_watches(s, zxid, &[], &paths, &[], &[], &[]);
    assert_eq!(refused, Err(ErrorCode::QuotaExceeded));
    assert_eq!(c.watches().count(), 0, "none registered");
    let fired = c
        .set_watches(s, zxid, &["/a".into()], &paths[..2], &[], &[], &[])
        .unwrap();
    assert!(fired.is_empty());
    assert_eq!(c.watches().count(), 3);
    c.detach(s);
    assert_eq!(c.watches().bytes(), 0);
}

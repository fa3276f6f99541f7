//! The group state machine, driven step by step with a hand-moved clock.

use bytes::Bytes;

use super::sync::SyncRequest;
use super::*;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 100,
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
        max_size: 3,
        max_groups: 2,
        member_metadata_max_bytes: 1024,
        max_protocols: 4,
        offset_metadata_max_bytes: 16,
        offsets_retention_ms: 10_000,
    }
}

fn at(ms: i64) -> Now {
    Now {
        mono_ms: ms,
        wall_ms: 1_000_000 + ms,
    }
}

fn join_req(group: &str, member: &str, new_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: member.into(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 5_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        require_known_member_id: true,
        new_member_id: new_id.into(),
    }
}

fn sync_req(
    group: &str,
    member: &str,
    generation: i32,
    assignments: Vec<(&str, &str)>,
) -> SyncRequest {
    SyncRequest {
        group_id: group.into(),
        member_id: member.into(),
        instance_id: None,
        generation,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .into_iter()
            .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a.as_bytes())))
            .collect(),
    }
}

/// The parked JoinGroup answers in `effects`, by member.
fn joins(effects: &[Effect]) -> Vec<(String, JoinResult)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::JoinDone {
                member_id, result, ..
            } => Some((member_id.clone(), result.clone())),
            _ => None,
        })
        .collect()
}

fn syncs(effects: &[Effect]) -> Vec<(String, SyncResult)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SyncDone {
                member_id, result, ..
            } => Some((member_id.clone(), result.clone())),
            _ => None,
        })
        .collect()
}

/// A one-member Stable group "g" with member "m1" at generation 1, at time 200.
fn stable_group() -> Groups {
    let mut groups = Groups::new(config());
    let mut fx = Vec::new();
    let first = groups.join(join_req("g", "", "m1"), at(0), &mut fx);
    assert!(
        matches!(first, Outcome::Done(JoinResult { error: Some(GroupError::MemberIdRequired), ref member_id, .. }) if member_id == "m1")
    );
    assert_eq!(
        groups.join(join_req("g", "m1", "x"), at(0), &mut fx),
        Outcome::Waiting("m1".into())
    );
    assert!(
        joins(&fx).is_empty(),
        "the initial delay holds the first join"
    );
    groups.tick(at(100), &mut fx);
    let done = joins(&fx);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1.generation, 1);
    assert_eq!(done[0].1.leader, "m1");
    assert_eq!(
        done[0].1.members.len(),
        1,
        "the leader gets the member list"
    );
    fx.clear();
    let synced = groups.sync(
        sync_req("g", "m1", 1, vec![("m1", "all")]),
        at(200),
        &mut fx,
    );
    assert_eq!(synced, Outcome::Waiting("m1".into()));
    assert_eq!(
        syncs(&fx),
        vec![(
            "m1".to_string(),
            Ok((
                Some("consumer".into()),
                Some("range".into()),
                Bytes::from_static(b"all")
            ))
        )]
    );
    assert!(fx.contains(&Effect::PersistGroup("g".into())));
    assert_eq!(groups.get("g").unwrap().state, GroupState::Stable);
    groups
}

#[test]
fn a_first_member_joins_after_the_initial_delay_and_syncs_to_stable() {
    stable_group();
}

#[test]
fn a_second_member_triggers_a_rebalance_that_completes_when_all_rejoin() {
    let mut groups = stable_group();
    let mut fx = Vec::new();
    groups.join(join_req("g", "", "m2"), at(300), &mut fx);
    assert_eq!(
        groups.join(join_req("g", "m2", "x"), at(300), &mut fx),
        Outcome::Waiting("m2".into())
    );
    assert_eq!(
        groups.get("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    assert_eq!(
        groups.heartbeat("g", "m1", None, 1, at(400)),
        Err(GroupError::RebalanceInProgress)
    );
    assert!(joins(&fx).is_empty());
    assert_eq!(
        groups.join(join_req("g", "m1", "x"), at(500), &mut fx),
        Outcome::Waiting("m1".into())
    );
    let done = joins(&fx);
    assert_eq!(done.len(), 2, "{done:?}");
    for (member, result) in &done {
        assert_eq!(result.generation, 2);
        assert_eq!(result.leader, "m1");
        assert_eq!(result.members.len(), if member == "m1" { 2 } else { 0 });
    }
    fx.clear();
    // The follower's sync waits for the leader's.
    assert_eq!(
        groups.sync(sync_req("g", "m2", 2, vec![]), at(600), &mut fx),
        Outcome::Waiting("m2".into())
    );
    assert!(syncs(&fx).is_empty());
    assert_eq!(
        groups.heartbeat("g", "m2", None, 2, at(600)),
        Ok(()),
        "heartbeats are fine while completing"
    );
    groups.sync(
        sync_req("g", "m1", 2, vec![("m1", "a"), ("m2", "b")]),
        at(700),
        &mut fx,
    );
    let mut done = syncs(&fx);
    done.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(done[0].1.as_ref().unwrap().2, Bytes::from_static(b"a"));
    assert_eq!(done[1].1.as_ref().unwrap().2, Bytes::from_static(b"b"));
    assert_eq!(
        groups.heartbeat("g", "m2", None, 1, at(800)),
        Err(GroupError::IllegalGeneration)
    );
}

#[test]
fn leaving_rebalances_the_rest_and_the_last_to_leave_empties_the_group() {
    let mut groups = stable_group();
    let mut fx = Vec::new();
    groups.join(join_req("g", "", "m2"), at(300), &mut fx);
    groups.join(join_req("g", "m2", ""), at(300), &mut fx);
    groups.join(join_req("g", "m1", ""), at(300), &mut fx);
    groups.sync(sync_req("g", "m1", 2, vec![]), at(300), &mut fx);
    fx.clear();
    let left = groups
        .leave("g", &[("m1".into(), None)], at(400), &mut fx)
        .unwrap();
    assert_eq!(left, vec![Ok(())]);
    assert_eq!(
        groups.get("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    groups.join(join_req("g", "m2", ""), at(500), &mut fx);
    let done = joins(&fx);
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].1.generation, done[0].1.leader.as_str()),
        (3, "m2"),
        "the leader moves to a remaining member"
    );
    fx.clear();
    groups
        .leave("g", &[("m2".into(), None)], at(600), &mut fx)
        .unwrap();
    let group = groups.get("g").unwrap();
    assert_eq!((group.state, group.generation), (GroupState::Empty, 4));
    assert!(fx.contains(&Effect::PersistGroup("g".into())));
    assert_eq!(
        groups
            .leave("g", &[("m2".into(), None)], at(700), &mut fx)
            .unwrap(),
        vec![Err(GroupError::UnknownMemberId)]
    );
}

#[test]
fn a_silent_member_expires_after_its_session_timeout() {
    let mut groups = stable_group();
    let mut fx = Vec::new();
    assert_eq!(
        groups.next_deadline_ms(),
        Some(10_100),
        "session deadline from the join completion"
    );
    groups.heartbeat("g", "m1", None, 1, at(5_000)).unwrap();
    groups.tick(at(10_100), &mut fx);
    assert_eq!(
        groups.get("g").unwrap().state,
        GroupState::Stable,
        "the heartbeat moved the deadline"
    );
    groups.tick(at(15_000), &mut fx);
    assert_eq!(groups.get("g").unwrap().state, GroupState::Empty);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_deadline() {
    let mut groups = stable_group();
    let mut fx = Vec::new();
    groups.join(join_req("g", "", "m2"), at(300), &mut fx);
    groups.join(join_req("g", "m2", ""), at(300), &mut fx);
    groups.tick(at(5_299), &mut fx);
    assert!(joins(&fx).is_empty());
    groups.tick(at(5_300), &mut fx);
    let done = joins(&fx);
    assert_eq!(done.len(), 1);
    assert_eq!(
        (done[0].0.as_str(), done[0].1.leader.as_str()),
        ("m2", "m2")
    );
    assert!(!groups.get("g").unwrap().members.contains_key("m1"));
}

#[test]
fn a_restarted_static_member_takes_its_place_without_a_rebalance() {
    let mut groups = Groups::new(config());
    let mut fx = Vec::new();
    let mut a = join_req("g", "", "a1");
    a.instance_id = Some("host-a".into());
    let mut b = join_req("g", "", "b1");
    b.instance_id = Some("host-b".into());
    // Static members skip MEMBER_ID_REQUIRED.
    assert_eq!(
        groups.join(a.clone(), at(0), &mut fx),
        Outcome::Waiting("a1".into())
    );
    assert_eq!(
        groups.join(b.clone(), at(10), &mut fx),
        Outcome::Waiting("b1".into())
    );
    groups.tick(at(110), &mut fx);
    groups.tick(at(210), &mut fx);
    assert_eq!(joins(&fx).len(), 2);
    groups.sync(
        sync_req("g", "a1", 1, vec![("a1", "x"), ("b1", "y")]),
        at(300),
        &mut fx,
    );
    groups.sync(sync_req("g", "b1", 1, vec![]), at(300), &mut fx);
    fx.clear();
    // b restarts: same instance id, no member id.
    let rejoined = groups.join(
        JoinRequest {
            new_member_id: "b2".into(),
            ..b
        },
        at(400),
        &mut fx,
    );
    match rejoined {
        Outcome::Done(result) => assert_eq!(
            (result.member_id.as_str(), result.generation, result.error),
            ("b2", 1, None)
        ),
        other => panic!("{other:?}"),
    }
    let group = groups.get("g").unwrap();
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(group.members["b2"].assignment, Bytes::from_static(b"y"));
    assert_eq!(
        groups.heartbeat("g", "b1", None, 1, at(500)),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        groups.heartbeat("g", "b2", Some("host-b"), 1, at(500)),
        Ok(())
    );
}

#[test]
fn limits_refuse_more_members_groups_and_large_metadata() {
    let mut groups = Groups::new(config());
    let mut fx = Vec::new();
    for i in 0..3 {
        groups.join(join_req("g", "", &format!("m{i}")), at(0), &mut fx);
    }
    let fourth = groups.join(join_req("g", "", "m4"), at(0), &mut fx);
    assert!(matches!(
        fourth,
        Outcome::Done(JoinResult {
            error: Some(GroupError::GroupMaxSizeReached),
            ..
        })
    ));
    groups.join(join_req("h", "", "h1"), at(0), &mut fx);
    let third_group = groups.join(join_req("i", "", "i1"), at(0), &mut fx);
    assert!(matches!(
        third_group,
        Outcome::Done(JoinResult {
            error: Some(GroupError::TooManyGroups),
            ..
        })
    ));
    let mut big = join_req("h", "", "h2");
    big.protocols = vec![("range".into(), Bytes::from(vec![0u8; 2048]))];
    assert!(matches!(
        groups.join(big, at(0), &mut fx),
        Outcome::Done(JoinResult {
            error: Some(GroupError::MetadataTooLarge),
            ..
        })
    ));
    let mut short = join_req("h", "", "h3");
    short.session_timeout_ms = 10;
    assert!(matches!(
        groups.join(short, at(0), &mut fx),
        Outcome::Done(JoinResult {
            error: Some(GroupError::InvalidSessionTimeout),
            ..
        })
    ));
}

#[test]
fn protocols_must_overlap_and_the_most_voted_one_wins() {
    let mut groups = Groups::new(config());
    let mut fx = Vec::new();
    let mut a = join_req("g", "", "a");
    a.require_known_member_id = false;
    a.protocols = vec![
        ("range".into(), Bytes::new()),
        ("roundrobin".into(), Bytes::new()),
    ];
    let mut b = join_req("g", "", "b");
    b.require_known_member_id = false;
    b.protocols = vec![
        ("roundrobin".into(), Bytes::new()),
        ("range".into(), Bytes::new()),
    ];
    let mut c = b.clone();
    c.new_member_id = "c".into();
    groups.join(a, at(0), &mut fx);
    groups.join(b, at(0), &mut fx);
    groups.join(c, at(0), &mut fx);
    groups.tick(at(100), &mut fx);
    groups.tick(at(200), &mut fx);
    assert_eq!(
        groups.get("g").unwrap().protocol.as_deref(),
        Some("roundrobin")
    );
    let mut other = join_req("g", "", "d");
    other.protocols = vec![("sticky".into(), Bytes::new())];
    assert!(matches!(
        groups.join(other, at(300), &mut fx),
        Outcome::Done(JoinResult {
            error: Some(GroupError::InconsistentGroupProtocol),
            ..
        })
    ));
}

#[test]
fn commits_need_the_current_generation_unless_the_group_is_empty() {
    let mut groups = stable_group();
    assert_eq!(groups.validate_commit("g", 1, "m1", None, at(300)), Ok(()));
    assert_eq!(
        groups.validate_commit("g", 0, "m1", None, at(300)),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        groups.validate_commit("g", -1, "", None, at(300)),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        groups.validate_commit("new", -1, "", None, at(300)),
        Ok(()),
        "standalone consumers"
    );
    assert_eq!(
        groups.validate_commit("other", 3, "x", None, at(300)),
        Err(GroupError::IllegalGeneration)
    );
    let mut fx = Vec::new();
    groups.join(join_req("g", "", "m2"), at(400), &mut fx);
    groups.join(join_req("g", "m2", ""), at(400), &mut fx);
    groups.join(join_req("g", "m1", ""), at(400), &mut fx);
    assert_eq!(
        groups.get("g").unwrap().state,
        GroupState::CompletingRebalance
    );
    assert_eq!(
        groups.validate_commit("g", 2, "m1", None, at(500)),
        Err(GroupError::RebalanceInProgress)
    );
}

fn committed(offset: i64, record_offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_wall_ms: 1_000_000,
        record_offset,
    }
}

#[test]
fn the_offset_cache_keeps_the_latest_record_and_empty_groups_expire() {
    let mut groups = Groups::new(config());
    groups.validate_commit("g", -1, "", None, at(0)).unwrap();
    groups.apply_offset("g", "t", 0, Some(committed(10, 5)), 5, at(0));
    // An older record finishing later does not win.
    groups.apply_offset("g", "t", 0, Some(committed(7, 4)), 4, at(0));
    assert_eq!(groups.committed("g", "t", 0).unwrap().offset, 10);
    groups.apply_offset("g", "t", 1, Some(committed(3, 6)), 6, at(0));
    groups.apply_offset("g", "t", 1, None, 7, at(0));
    assert!(
        groups.committed("g", "t", 1).is_none(),
        "a tombstone deletes"
    );
    let mut fx = Vec::new();
    assert_eq!(
        groups.expire_offsets(at(5_000), &mut fx),
        Expired::default()
    );
    let expired = groups.expire_offsets(at(10_000), &mut fx);
    assert_eq!(expired.offsets, vec![("g".to_string(), "t".to_string(), 0)]);
    assert_eq!(expired.groups, vec!["g".to_string()]);
    assert!(groups.get("g").is_none());
}

#[test]
fn only_empty_groups_are_deleted_and_subscribed_topics_keep_their_offsets() {
    let mut groups = stable_group();
    let mut fx = Vec::new();
    assert_eq!(
        groups.delete_group("g", &mut fx),
        Err(GroupError::NonEmptyGroup)
    );
    assert_eq!(
        groups.delete_group("nope", &mut fx),
        Err(GroupError::GroupIdNotFound)
    );
    // m1's metadata "meta" is not a consumer subscription: offsets of a live group stay.
    assert_eq!(
        groups.check_offset_delete("g", &[("t".into(), 0)]),
        Err(GroupError::NonEmptyGroup)
    );
    groups
        .leave("g", &[("m1".into(), None)], at(300), &mut fx)
        .unwrap();
    groups.apply_offset("g", "t", 0, Some(committed(1, 1)), 1, at(300));
    assert_eq!(
        groups.check_offset_delete("g", &[("t".into(), 0)]).unwrap()[0].1,
        Ok(())
    );
    assert_eq!(
        groups.delete_group("g", &mut fx),
        Ok(vec![("t".to_string(), 0)])
    );
    assert!(groups.get("g").is_none());
}

#[test]
fn a_stored_group_comes_back_stable_and_its_members_carry_on() {
    let groups = stable_group();
    let value = groups.get("g").unwrap().to_record();
    let mut restored = Groups::new(config());
    restored.restore_group("g", Some(value), at(50_000));
    let group = restored.get("g").unwrap();
    assert_eq!(
        (group.state, group.generation, group.leader.as_deref()),
        (GroupState::Stable, 1, Some("m1"))
    );
    assert_eq!(restored.heartbeat("g", "m1", None, 1, at(51_000)), Ok(()));
    restored.restore_group("g", None, at(52_000));
    assert!(restored.get("g").is_none());
}

//! Groups, members, the five group states and the transitions the protocol calls share:
//! preparing a rebalance, completing the join phase, removing a member.
//!
//! Empty → PreparingRebalance (a member joins) → CompletingRebalance (every member rejoined,
//! or the rebalance timeout passed; the generation grows) → Stable (the leader sent the
//! assignments) → PreparingRebalance (a member joins, leaves, dies or changes its
//! subscription) … → Empty (the last member is gone) → Dead (deleted).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::offsets::CommittedOffset;
use super::record::{GroupValue, MemberValue};
use super::{Effect, GroupConfig, GroupError, JoinMember, JoinResult, Now};

/// The classic protocol's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (maybe committed offsets).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignments.
    CompletingRebalance,
    /// Assignments handed out.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member id.
    pub id: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// (assignor, metadata), preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// What the leader assigned in the current generation.
    pub assignment: Bytes,
    /// A JoinGroup of this member is parked.
    pub awaiting_join: bool,
    /// A SyncGroup of this member is parked.
    pub awaiting_sync: bool,
    /// The member is dead if no heartbeat comes before this (monotonic ms).
    pub session_deadline_ms: i64,
    /// Join order, to pick a leader.
    pub(super) joined_seq: u64,
}

/// Heap bytes a member costs beyond its strings, metadata and assignment (map entries,
/// timers, protocol name vectors): an estimate for the group pool.
pub const MEMBER_OVERHEAD_BYTES: u64 = 256;

/// What the group pool counts for a member: its protocols' names and metadata, its
/// assignment, its strings, and [`MEMBER_OVERHEAD_BYTES`].
pub fn member_bytes(protocols: &[(String, Bytes)], assignment: usize, strings: usize) -> u64 {
    let protocols: usize = protocols.iter().map(|(n, m)| n.len() + m.len()).sum();
    (protocols + assignment + strings) as u64 + MEMBER_OVERHEAD_BYTES
}

impl Member {
    /// Estimated heap bytes this member holds (see [`member_bytes`]).
    pub fn memory_bytes(&self) -> u64 {
        let strings = self.id.len()
            + self.instance_id.as_ref().map_or(0, String::len)
            + self.client_id.len()
            + self.client_host.len();
        member_bytes(&self.protocols, self.assignment.len(), strings)
    }

    /// Its metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub(super) fn touch(&mut self, now: Now) {
        self.session_deadline_ms = now
            .mono_ms
            .saturating_add(i64::from(self.session_timeout_ms));
    }
}

/// The initial-rebalance delay of a new group (Kafka's InitialDelayedJoin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InitialDelay {
    /// When the current delay period ends (monotonic ms).
    pub until_ms: i64,
    /// How much longer the delay may still be extended.
    pub remaining_ms: i64,
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Current state.
    pub state: GroupState,
    /// Grows at each completed join phase.
    pub generation: i32,
    /// e.g. "consumer"; set by the first member.
    pub protocol_type: Option<String>,
    /// The chosen assignor.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// Static instance id → member id.
    pub(super) static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and their deadline to join (monotonic).
    pub(super) pending_members: BTreeMap<String, i64>,
    /// When a PreparingRebalance gives up on members that did not rejoin (monotonic).
    pub(super) rebalance_deadline_ms: Option<i64>,
    pub(super) initial_delay: Option<InitialDelay>,
    pub(super) new_member_added: bool,
    /// Members that have not sent SyncGroup for the current generation, and until when they may.
    pub(super) pending_sync: BTreeSet<String>,
    pub(super) sync_deadline_ms: Option<i64>,
    /// When the group entered its current state (wall clock ms).
    pub state_since_wall_ms: i64,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    next_join_seq: u64,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, now: Now) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline_ms: None,
            initial_delay: None,
            new_member_added: false,
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: None,
            state_since_wall_ms: now.wall_ms,
            offsets: BTreeMap::new(),
            next_join_seq: 0,
        }
    }

    pub(super) fn transition(&mut self, state: GroupState, now: Now) {
        tracing::debug!(group = %self.id, from = self.state.name(), to = state.name(), generation = self.generation, "group state");
        self.state = state;
        self.state_since_wall_ms = now.wall_ms;
    }

    pub(super) fn next_seq(&mut self) -> u64 {
        self.next_join_seq += 1;
        self.next_join_seq
    }

    /// Members plus members-to-be (they count toward `group_max_size`).
    pub fn size(&self) -> usize {
        self.members.len() + self.pending_members.len()
    }

    /// Protocols every member supports, in the first member's order of preference.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    /// Whether a member with this protocol type and these protocols can join.
    pub(super) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// Each member votes for its most preferred protocol all members support; most votes
    /// wins, ties going to the earlier candidate (Kafka's rule).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes = vec![0usize; candidates.len()];
        for member in self.members.values() {
            if let Some(i) = member
                .protocols
                .iter()
                .find_map(|(n, _)| candidates.iter().position(|c| c == n))
            {
                votes[i] += 1;
            }
        }
        let best = votes
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
        candidates.get(best.0).cloned()
    }

    fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Starts (or restarts) the join phase.
    pub(super) fn prepare_rebalance(
        &mut self,
        config: &GroupConfig,
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        if self.state == GroupState::CompletingRebalance {
            self.fail_parked_syncs(GroupError::RebalanceInProgress, effects);
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        if self.state == GroupState::Empty {
            let delay = config.initial_rebalance_delay_ms;
            self.initial_delay = Some(InitialDelay {
                until_ms: now.mono_ms.saturating_add(delay),
                remaining_ms: (self.max_rebalance_timeout_ms() - delay).max(0),
            });
            self.new_member_added = false;
        }
        self.rebalance_deadline_ms =
            Some(now.mono_ms.saturating_add(self.max_rebalance_timeout_ms()));
        self.transition(GroupState::PreparingRebalance, now);
        self.maybe_complete_join(now, effects);
    }

    /// Completes the join phase once every member has rejoined and no member id handed out
    /// is still to come (never during the initial delay).
    pub(super) fn maybe_complete_join(&mut self, now: Now, effects: &mut Vec<Effect>) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && self.members.values().all(|m| m.awaiting_join)
            && self.pending_members.is_empty()
        {
            self.complete_join(now, effects);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation grows,
    /// a protocol is chosen and every parked JoinGroup is answered (the leader's with all
    /// members' metadata).
    pub(super) fn complete_join(&mut self, now: Now, effects: &mut Vec<Effect>) {
        assert_eq!(
            self.state,
            GroupState::PreparingRebalance,
            "only a join phase completes"
        );
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time; removing it");
            self.drop_member(&id, effects);
        }
        self.rebalance_deadline_ms = None;
        self.initial_delay = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty, now);
            effects.push(Effect::PersistGroup(self.id.clone()));
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        self.transition(GroupState::CompletingRebalance, now);
        let max_rebalance = self.max_rebalance_timeout_ms();
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline_ms = Some(now.mono_ms.saturating_add(max_rebalance));
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result(&id);
            let member = self.members.get_mut(&id).expect("listed above");
            member.awaiting_join = false;
            member.touch(now);
            effects.push(Effect::JoinDone {
                group: self.id.clone(),
                member_id: id,
                result,
            });
        }
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(),
            protocol = ?self.protocol, leader = ?self.leader, "join phase complete");
    }

    /// The JoinGroup answer for `member_id` in the current generation.
    pub(super) fn join_result(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| JoinMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    pub(super) fn fail_parked_syncs(&mut self, error: GroupError, effects: &mut Vec<Effect>) {
        for member in self.members.values_mut().filter(|m| m.awaiting_sync) {
            member.awaiting_sync = false;
            effects.push(Effect::SyncDone {
                group: self.id.clone(),
                member_id: member.id.clone(),
                result: Err(error),
            });
        }
    }

    /// Removes a member, answering its parked requests with `UNKNOWN_MEMBER_ID` (no state
    /// change: see [`Group::remove_member`]).
    fn drop_member(&mut self, id: &str, effects: &mut Vec<Effect>) -> Option<Member> {
        let member = self.members.remove(id)?;
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(id);
        if member.awaiting_join {
            effects.push(Effect::JoinDone {
                group: self.id.clone(),
                member_id: id.to_string(),
                result: JoinResult::error(GroupError::UnknownMemberId, id),
            });
        }
        if member.awaiting_sync {
            effects.push(Effect::SyncDone {
                group: self.id.clone(),
                member_id: id.to_string(),
                result: Err(GroupError::UnknownMemberId),
            });
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        Some(member)
    }

    /// Removes a member (left, or its session expired) and rebalances the rest.
    pub(super) fn remove_member(
        &mut self,
        id: &str,
        config: &GroupConfig,
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        if self.drop_member(id, effects).is_none() {
            return;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(config, now, effects)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, effects),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// The group's metadata as stored in `__consumer_offsets`.
    pub fn to_record(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_since_wall_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores stored metadata (at load): a group with members comes back Stable, its members'
    /// sessions starting now, so members that still heartbeat carry on without a rebalance.
    pub fn restore(&mut self, value: GroupValue, now: Now) {
        self.generation = value.generation;
        self.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        self.protocol = value.protocol.clone();
        self.leader = value.leader;
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        self.rebalance_deadline_ms = None;
        self.initial_delay = None;
        let protocol = value.protocol.unwrap_or_default();
        for m in value.members {
            let seq = self.next_seq();
            if let Some(instance) = &m.instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let mut member = Member {
                id: m.member_id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                awaiting_join: false,
                awaiting_sync: false,
                session_deadline_ms: 0,
                joined_seq: seq,
            };
            member.touch(now);
            self.members.insert(m.member_id, member);
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.state_since_wall_ms = if value.current_state_timestamp_ms >= 0 {
            value.current_state_timestamp_ms
        } else {
            now.wall_ms
        };
    }
}

/// Every group this coordinator holds, with the limits that bound them.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    /// Limits and timings.
    pub config: GroupConfig,
    pub(super) groups: BTreeMap<String, Group>,
}

impl Groups {
    /// No groups yet.
    pub fn new(config: GroupConfig) -> Groups {
        Groups {
            config,
            groups: BTreeMap::new(),
        }
    }

    /// Estimated heap bytes of every member's metadata and assignment (the group pool
    /// holds this much). Offsets are not counted: they live in `__consumer_offsets`.
    pub fn memory_bytes(&self) -> u64 {
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .map(Member::memory_bytes)
            .sum()
    }

    /// A group by id.
    pub fn get(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    /// Every group, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The group, created empty if it is new and the group limit allows.
    pub(super) fn get_or_create(&mut self, id: &str, now: Now) -> Result<&mut Group, GroupError> {
        if !self.groups.contains_key(id) {
            if self.groups.len() >= self.config.max_groups {
                tracing::warn!(
                    group = id,
                    max = self.config.max_groups,
                    "broker.max_groups reached; refusing a new group"
                );
                return Err(GroupError::TooManyGroups);
            }
            self.groups.insert(id.to_string(), Group::new(id, now));
        }
        Ok(self.groups.get_mut(id).expect("inserted above"))
    }

    /// Forgets every group `unload` picks (cluster mode: their offsets partition moved to
    /// another node); returns their ids.
    pub fn unload(&mut self, unload: impl Fn(&str) -> bool) -> Vec<String> {
        let doomed: Vec<String> = self
            .groups
            .keys()
            .filter(|id| unload(id))
            .cloned()
            .collect();
        for id in &doomed {
            self.groups.remove(id);
        }
        doomed
    }

    /// Restores one group's stored metadata (load), or forgets it (a tombstone).
    pub fn restore_group(&mut self, id: &str, value: Option<GroupValue>, now: Now) {
        match value {
            Some(value) => {
                let group = self
                    .groups
                    .entry(id.to_string())
                    .or_insert_with(|| Group::new(id, now));
                group.restore(value, now);
            }
            None => {
                self.groups.remove(id);
            }
        }
    }
}

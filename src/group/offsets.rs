//! Committed offsets: who may commit, the cache the coordinator answers OffsetFetch from,
//! deleting offsets and groups, and expiring the offsets of groups that have been empty for
//! `offsets_retention_minutes`.

use super::state::{GroupState, Groups};
use super::subscription;
use super::{Effect, GroupError, Now};

/// One committed offset in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// The consumer's metadata string.
    pub metadata: String,
    /// When it was committed (wall clock ms).
    pub commit_wall_ms: i64,
    /// Where its record sits in `__consumer_offsets`: a cache entry is only replaced by a
    /// later record, whatever order concurrent commits finish in.
    pub record_offset: i64,
}

/// The result of an OffsetDelete, per partition.
pub type OffsetDeleteResult = Vec<((String, i32), Result<(), GroupError>)>;

/// Offsets (and groups) that expired: the shell writes their tombstones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expired {
    /// (group, topic, partition) of each expired offset.
    pub offsets: Vec<(String, String, i32)>,
    /// Groups removed because they were empty and had no offsets left.
    pub groups: Vec<String>,
}

impl Groups {
    /// Whether this commit may be written. Standalone consumers (generation -1, no member id)
    /// may commit to an empty or new group; members must name their current generation.
    /// A member's commit also counts as a heartbeat.
    pub fn validate_commit(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: Now,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if !self.groups.contains_key(group_id) {
            if generation >= 0 {
                return Err(GroupError::IllegalGeneration);
            }
            self.get_or_create(group_id, now)?;
            return Ok(());
        }
        let group = self.groups.get_mut(group_id).expect("checked");
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if let Some(instance) = instance_id {
            if group
                .static_members
                .get(instance)
                .is_some_and(|id| id != member_id)
            {
                return Err(GroupError::FencedInstanceId);
            }
        }
        if generation < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        let member = group
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        match group.state {
            GroupState::Stable | GroupState::PreparingRebalance => {
                member.touch(now);
                Ok(())
            }
            GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    /// Caches a committed offset once its record is durable (a tombstone when `offset` is
    /// None), unless a later record of the same partition got there first.
    pub fn apply_offset(
        &mut self,
        group_id: &str,
        topic: &str,
        partition: i32,
        offset: Option<CommittedOffset>,
        record_offset: i64,
        now: Now,
    ) {
        let key = (topic.to_string(), partition);
        let Some(offset) = offset else {
            if let Some(group) = self.groups.get_mut(group_id) {
                if group
                    .offsets
                    .get(&key)
                    .is_some_and(|o| o.record_offset < record_offset)
                {
                    group.offsets.remove(&key);
                }
            }
            return;
        };
        // Replay and durable commits bypass the group limit: the record is already written.
        let group = self
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| super::Group::new(group_id, now));
        match group.offsets.get(&key) {
            Some(existing) if existing.record_offset > record_offset => {}
            _ => {
                group.offsets.insert(key, offset);
            }
        }
    }

    /// The committed offset of a partition, if any.
    pub fn committed(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<&CommittedOffset> {
        self.groups
            .get(group_id)?
            .offsets
            .get(&(topic.to_string(), partition))
    }

    /// OffsetDelete: which partitions' offsets may go. A group with members keeps the offsets
    /// of topics it is subscribed to (GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn check_offset_delete(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<OffsetDeleteResult, GroupError> {
        let group = self
            .groups
            .get(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        if group.state == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        let subscribed: Option<Vec<String>> = if group.state == GroupState::Empty {
            Some(Vec::new())
        } else if group.protocol_type.as_deref() == Some("consumer") {
            let protocol = group.protocol.clone().unwrap_or_default();
            let mut topics = Vec::new();
            for member in group.members.values() {
                match subscription::topics(&member.metadata(&protocol)) {
                    Some(t) => topics.extend(t),
                    None => return Err(GroupError::NonEmptyGroup),
                }
            }
            Some(topics)
        } else {
            None
        };
        let Some(subscribed) = subscribed else {
            return Err(GroupError::NonEmptyGroup);
        };
        Ok(partitions
            .iter()
            .map(|(topic, partition)| {
                let result = if subscribed.contains(topic) {
                    Err(GroupError::GroupSubscribedToTopic)
                } else {
                    Ok(())
                };
                ((topic.clone(), *partition), result)
            })
            .collect())
    }

    /// DeleteGroups: removes an empty group; returns the partitions whose offsets it held (for
    /// tombstones).
    pub fn delete_group(
        &mut self,
        group_id: &str,
        effects: &mut Vec<Effect>,
    ) -> Result<Vec<(String, i32)>, GroupError> {
        let group = self
            .groups
            .get(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        match group.state {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Err(GroupError::NonEmptyGroup),
        }
        let group = self.groups.remove(group_id).expect("checked");
        effects.push(Effect::PersistGroup(group_id.to_string()));
        tracing::info!(
            group = group_id,
            offsets = group.offsets.len(),
            "deleted group"
        );
        Ok(group.offsets.into_keys().collect())
    }

    /// Expires the offsets of groups empty for longer than the retention (counting from the
    /// later of the commit and the moment the group became empty, as Kafka does), and forgets
    /// empty groups left without offsets.
    pub fn expire_offsets(&mut self, now: Now, effects: &mut Vec<Effect>) -> Expired {
        let retention = self.config.offsets_retention_ms;
        let mut expired = Expired::default();
        for group in self
            .groups
            .values_mut()
            .filter(|g| g.state == GroupState::Empty)
        {
            let since = group.state_since_wall_ms;
            let gone: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, o)| {
                    now.wall_ms.saturating_sub(o.commit_wall_ms.max(since)) >= retention
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in gone {
                group.offsets.remove(&key);
                expired.offsets.push((group.id.clone(), key.0, key.1));
            }
            if group.offsets.is_empty() && group.pending_members.is_empty() {
                expired.groups.push(group.id.clone());
            }
        }
        for id in &expired.groups {
            self.groups.remove(id);
            effects.push(Effect::PersistGroup(id.clone()));
        }
        if !expired.offsets.is_empty() || !expired.groups.is_empty() {
            tracing::info!(
                offsets = expired.offsets.len(),
                groups = expired.groups.len(),
                "expired committed offsets"
            );
        }
        expired
    }
}

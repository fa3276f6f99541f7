//! JoinGroup: new members get an id (after MEMBER_ID_REQUIRED for v4+ clients, KIP-394),
//! static members (`group.instance.id`) take their old place under a new id, and every join
//! that changes the group starts a rebalance. A join is parked until the join phase
//! completes; the answer then comes as an effect.

use super::state::{Group, GroupState, Groups, Member};
use super::{Effect, GroupConfig, GroupError, JoinRequest, JoinResult, Now, Outcome};

impl Groups {
    /// Handles a JoinGroup.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Now,
        effects: &mut Vec<Effect>,
    ) -> Outcome<JoinResult> {
        match self.join_checked(req.clone(), now, effects) {
            Ok(outcome) => outcome,
            Err(error) => {
                let member_id = if error == GroupError::MemberIdRequired {
                    &req.new_member_id
                } else {
                    &req.member_id
                };
                Outcome::Done(JoinResult::error(error, member_id))
            }
        }
    }

    fn join_checked(
        &mut self,
        req: JoinRequest,
        now: Now,
        effects: &mut Vec<Effect>,
    ) -> Result<Outcome<JoinResult>, GroupError> {
        let config = self.config.clone();
        check_request(&req, &config)?;
        if !req.member_id.is_empty() && !self.groups.contains_key(&req.group_id) {
            return Err(GroupError::UnknownMemberId);
        }
        let group = self.get_or_create(&req.group_id, now)?;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if !group.supports(&req.protocol_type, &req.protocols) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if req.member_id.is_empty() {
            group.join_new(req, &config, now, effects)
        } else {
            group.join_known(req, &config, now, effects)
        }
    }
}

/// Checks what does not depend on the group: timeouts and sizes.
fn check_request(req: &JoinRequest, config: &GroupConfig) -> Result<(), GroupError> {
    if req.group_id.is_empty() {
        return Err(GroupError::InvalidGroupId);
    }
    if req.session_timeout_ms < config.min_session_timeout_ms
        || req.session_timeout_ms > config.max_session_timeout_ms
    {
        return Err(GroupError::InvalidSessionTimeout);
    }
    if req.protocol_type.is_empty() || req.protocols.is_empty() {
        return Err(GroupError::InconsistentGroupProtocol);
    }
    if req.protocols.len() > config.max_protocols
        || req
            .protocols
            .iter()
            .any(|(_, m)| m.len() > config.member_metadata_max_bytes)
    {
        return Err(GroupError::MetadataTooLarge);
    }
    Ok(())
}

impl Group {
    fn join_new(
        &mut self,
        req: JoinRequest,
        config: &GroupConfig,
        now: Now,
        effects: &mut Vec<Effect>,
    ) -> Result<Outcome<JoinResult>, GroupError> {
        if let Some(instance) = &req.instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                return self.replace_static_member(&old_id, req, config, now, effects);
            }
        }
        if self.size() >= config.max_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        if req.require_known_member_id && req.instance_id.is_none() {
            // The member must come back with this id; until then it holds a place.
            let deadline = now
                .mono_ms
                .saturating_add(i64::from(req.session_timeout_ms));
            self.pending_members
                .insert(req.new_member_id.clone(), deadline);
            return Err(GroupError::MemberIdRequired);
        }
        let id = req.new_member_id.clone();
        Ok(self.add_member(id, req, config, now, effects))
    }

    fn join_known(
        &mut self,
        req: JoinRequest,
        config: &GroupConfig,
        now: Now,
        effects: &mut Vec<Effect>,
    ) -> Result<Outcome<JoinResult>, GroupError> {
        let id = req.member_id.clone();
        if self.pending_members.remove(&id).is_some() {
            return Ok(self.add_member(id, req, config, now, effects));
        }
        let Some(member) = self.members.get(&id) else {
            return Err(GroupError::UnknownMemberId);
        };
        if let Some(instance) = &req.instance_id {
            if self.static_members.get(instance) != Some(&id) {
                return Err(GroupError::FencedInstanceId);
            }
        }
        let changed = member.protocols != req.protocols;
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.update_member(&id, req, now);
                self.maybe_complete_join(now, effects);
                Ok(Outcome::Waiting(id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let is_leader = self.leader.as_deref() == Some(id.as_str());
                let rejoin_needed = changed || (self.state == GroupState::Stable && is_leader);
                if !rejoin_needed {
                    // A repeated join (its answer was lost): the current generation again.
                    self.members.get_mut(&id).expect("checked").touch(now);
                    return Ok(Outcome::Done(self.join_result(&id)));
                }
                self.update_member(&id, req, now);
                self.prepare_rebalance(config, now, effects);
                Ok(Outcome::Waiting(id))
            }
        }
    }

    fn update_member(&mut self, id: &str, req: JoinRequest, now: Now) {
        let member = self
            .members
            .get_mut(id)
            .expect("the caller checked the member");
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.awaiting_join = true;
        member.touch(now);
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        config: &GroupConfig,
        now: Now,
        effects: &mut Vec<Effect>,
    ) -> Outcome<JoinResult> {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        let seq = self.next_seq();
        let mut member = Member {
            id: id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Default::default(),
            awaiting_join: true,
            awaiting_sync: false,
            session_deadline_ms: 0,
            joined_seq: seq,
        };
        member.touch(now);
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.insert(id.clone(), member);
        self.new_member_added = true;
        tracing::debug!(group = %self.id, member = %id, state = self.state.name(), "member joined");
        match self.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(now, effects),
            _ => self.prepare_rebalance(config, now, effects),
        }
        Outcome::Waiting(id)
    }

    /// A static member joined again without its member id (it restarted): it takes its old
    /// place under a new id; requests parked under the old id are fenced.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        req: JoinRequest,
        config: &GroupConfig,
        now: Now,
        effects: &mut Vec<Effect>,
    ) -> Result<Outcome<JoinResult>, GroupError> {
        let new_id = req.new_member_id.clone();
        let mut member = self
            .members
            .remove(old_id)
            .expect("static members are members");
        if member.awaiting_join {
            effects.push(Effect::JoinDone {
                group: self.id.clone(),
                member_id: old_id.to_string(),
                result: JoinResult::error(GroupError::FencedInstanceId, old_id),
            });
        }
        if member.awaiting_sync {
            effects.push(Effect::SyncDone {
                group: self.id.clone(),
                member_id: old_id.to_string(),
                result: Err(GroupError::FencedInstanceId),
            });
        }
        member.awaiting_join = false;
        member.awaiting_sync = false;
        member.id = new_id.clone();
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        tracing::info!(group = %self.id, old = old_id, new = %new_id, "static member rejoined under a new id");
        let req = JoinRequest {
            member_id: new_id,
            ..req
        };
        self.join_known(req, config, now, effects)
    }
}

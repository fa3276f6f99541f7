//! SyncGroup: followers wait for the leader; the leader's assignments make the group Stable
//! and answer everyone. Assignments are passed through untouched: the client-side assignors
//! (range, roundrobin, cooperative-sticky) work because the coordinator never reads them.

use bytes::Bytes;

use super::state::{GroupState, Groups};
use super::{Effect, GroupError, Now, Outcome, SyncResult};

/// A SyncGroup as the state machine takes it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// Group id.
    pub group_id: String,
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// The generation the member joined.
    pub generation: i32,
    /// v5+: the protocol type the member expects.
    pub protocol_type: Option<String>,
    /// v5+: the protocol the member expects.
    pub protocol_name: Option<String>,
    /// The leader's assignments (member id, assignment); empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

impl Groups {
    /// Handles a SyncGroup.
    pub fn sync(
        &mut self,
        req: SyncRequest,
        now: Now,
        effects: &mut Vec<Effect>,
    ) -> Outcome<SyncResult> {
        match self.sync_checked(req, now, effects) {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Done(Err(error)),
        }
    }

    fn sync_checked(
        &mut self,
        req: SyncRequest,
        now: Now,
        effects: &mut Vec<Effect>,
    ) -> Result<Outcome<SyncResult>, GroupError> {
        let max_bytes = self.config.member_metadata_max_bytes;
        let group = self
            .groups
            .get_mut(&req.group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let member = group
            .members
            .get(&req.member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if req.instance_id.is_some() && member.instance_id != req.instance_id {
            return Err(GroupError::FencedInstanceId);
        }
        if req.generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let mismatch =
            |asked: &Option<String>, actual: &Option<String>| asked.is_some() && asked != actual;
        if mismatch(&req.protocol_type, &group.protocol_type)
            || mismatch(&req.protocol_name, &group.protocol)
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let done = |assignment: Bytes| {
            Outcome::Done(Ok((
                group_protocol(&group.protocol_type),
                group_protocol(&group.protocol),
                assignment,
            )))
        };
        match group.state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                let assignment = member.assignment.clone();
                Ok(done(assignment))
            }
            GroupState::CompletingRebalance => {
                let is_leader = group.leader.as_deref() == Some(req.member_id.as_str());
                if is_leader && req.assignments.iter().any(|(_, a)| a.len() > max_bytes) {
                    return Err(GroupError::MetadataTooLarge);
                }
                group.pending_sync.remove(&req.member_id);
                group
                    .members
                    .get_mut(&req.member_id)
                    .expect("checked")
                    .awaiting_sync = true;
                if is_leader {
                    for member in group.members.values_mut() {
                        member.assignment = req
                            .assignments
                            .iter()
                            .find(|(id, _)| *id == member.id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default();
                    }
                    group.transition(GroupState::Stable, now);
                    let (protocol_type, protocol) =
                        (group.protocol_type.clone(), group.protocol.clone());
                    for member in group.members.values_mut().filter(|m| m.awaiting_sync) {
                        member.awaiting_sync = false;
                        effects.push(Effect::SyncDone {
                            group: group.id.clone(),
                            member_id: member.id.clone(),
                            result: Ok((
                                protocol_type.clone(),
                                protocol.clone(),
                                member.assignment.clone(),
                            )),
                        });
                    }
                    effects.push(Effect::PersistGroup(group.id.clone()));
                    tracing::info!(group = %group.id, generation = group.generation, "group stable");
                }
                Ok(Outcome::Waiting(req.member_id))
            }
        }
    }
}

fn group_protocol(value: &Option<String>) -> Option<String> {
    value.clone()
}

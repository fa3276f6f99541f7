//! LeaveGroup: members leave at once instead of waiting for their session to expire, so the
//! rest rebalance promptly. From v3 one request may name several members, static ones by
//! their instance id alone.

use super::state::{GroupState, Groups};
use super::{Effect, GroupError, Now};

impl Groups {
    /// Handles a LeaveGroup: each (member id, instance id) gets its own result. A group that
    /// does not exist answers UNKNOWN_MEMBER_ID for each member.
    pub fn leave(
        &mut self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
        now: Now,
        effects: &mut Vec<Effect>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let config = self.config.clone();
        let Some(group) = self.groups.get_mut(group_id) else {
            return Ok(leaving
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect());
        };
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, instance_id) in leaving {
            let id = match (member_id.is_empty(), instance_id) {
                (true, Some(instance)) => match group.static_members.get(instance) {
                    Some(id) => id.clone(),
                    None => {
                        results.push(Err(GroupError::UnknownMemberId));
                        continue;
                    }
                },
                (_, Some(instance)) if group.static_members.get(instance) != Some(member_id) => {
                    results.push(Err(GroupError::FencedInstanceId));
                    continue;
                }
                _ => member_id.clone(),
            };
            if group.pending_members.remove(&id).is_some() {
                group.maybe_complete_join(now, effects);
                results.push(Ok(()));
                continue;
            }
            if !group.members.contains_key(&id) {
                results.push(Err(GroupError::UnknownMemberId));
                continue;
            }
            tracing::info!(group = %group_id, member = %id, "member left");
            group.remove_member(&id, &config, now, effects);
            results.push(Ok(()));
        }
        Ok(results)
    }
}

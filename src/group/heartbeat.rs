//! Heartbeat, and the timers it feeds: session expiry, the rebalance and sync deadlines, the
//! initial-rebalance delay and the deadline of member ids handed out with
//! MEMBER_ID_REQUIRED. The server's timer task calls [`Groups::tick`] at
//! [`Groups::next_deadline_ms`].

use super::state::{Group, GroupState, Groups};
use super::{Effect, GroupConfig, GroupError, Now};

impl Groups {
    /// Handles a Heartbeat: keeps the member's session alive and tells it whether to rejoin.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Now,
    ) -> Result<(), GroupError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let member = group
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if instance_id.is_some() && member.instance_id.as_deref() != instance_id {
            return Err(GroupError::FencedInstanceId);
        }
        if generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        member.touch(now);
        match group.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            // Members may heartbeat between their JoinGroup and SyncGroup answers.
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }

    /// Fires every timer due at `now`.
    pub fn tick(&mut self, now: Now, effects: &mut Vec<Effect>) {
        let config = self.config.clone();
        for group in self.groups.values_mut() {
            group.tick(&config, now, effects);
        }
    }

    /// The earliest time (monotonic ms) a timer is due, if any.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(Group::next_deadline_ms)
            .min()
    }
}

impl Group {
    fn tick(&mut self, config: &GroupConfig, now: Now, effects: &mut Vec<Effect>) {
        if self.state == GroupState::PreparingRebalance {
            self.tick_join_phase(config, now, effects);
        }
        if let Some(deadline) = self.sync_deadline_ms {
            if deadline <= now.mono_ms {
                self.sync_deadline_ms = None;
                let late: Vec<String> =
                    std::mem::take(&mut self.pending_sync).into_iter().collect();
                if matches!(
                    self.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                ) {
                    for id in late {
                        tracing::info!(group = %self.id, member = %id, "member sent no SyncGroup in time; removing it");
                        self.remove_member(&id, config, now, effects);
                    }
                }
            }
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                !m.awaiting_join && !m.awaiting_sync && m.session_deadline_ms <= now.mono_ms
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id, config, now, effects);
        }
        let before = self.pending_members.len();
        self.pending_members
            .retain(|_, deadline| *deadline > now.mono_ms);
        if self.pending_members.len() != before {
            self.maybe_complete_join(now, effects);
        }
    }

    fn tick_join_phase(&mut self, config: &GroupConfig, now: Now, effects: &mut Vec<Effect>) {
        if let Some(mut delay) = self.initial_delay {
            if delay.until_ms > now.mono_ms {
                return;
            }
            if self.new_member_added && delay.remaining_ms > 0 {
                // More members arrived during the delay: wait one more period (bounded).
                self.new_member_added = false;
                let step = config.initial_rebalance_delay_ms.min(delay.remaining_ms);
                delay.until_ms = now.mono_ms.saturating_add(step);
                delay.remaining_ms = (delay.remaining_ms - step).max(0);
                self.initial_delay = Some(delay);
                return;
            }
            self.initial_delay = None;
            self.maybe_complete_join(now, effects);
            // Not everyone rejoined yet: the rebalance deadline decides.
            return;
        }
        if self.rebalance_deadline_ms.is_some_and(|d| d <= now.mono_ms) {
            self.complete_join(now, effects);
        }
    }

    fn next_deadline_ms(&self) -> Option<i64> {
        let join_phase = if self.state == GroupState::PreparingRebalance {
            match self.initial_delay {
                Some(delay) => Some(delay.until_ms),
                None => self.rebalance_deadline_ms,
            }
        } else {
            None
        };
        let sessions = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && !m.awaiting_sync)
            .map(|m| m.session_deadline_ms)
            .min();
        let sync = self
            .sync_deadline_ms
            .filter(|_| !self.pending_sync.is_empty());
        [
            join_phase,
            sync,
            sessions,
            self.pending_members.values().min().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

//! Leader elections an operator asks for (ElectLeaders) and the controller's automatic
//! return of leadership to each partition's preferred replica, as Kafka does them.
//!
//! - **Preferred**: the first replica of the assignment leads again, if it is alive and in
//!   the ISR; the ISR is kept, the leader epoch bumped, so the old leader truncates to
//!   the new one like after any failover. Nothing acknowledged to `acks=all` is lost: the
//!   preferred replica was in the ISR, which has everything below the high watermark.
//! - **Unclean**: only for a partition with no live leader; a live replica of the ISR if
//!   there is one, else any live replica, whose log then wins (records it lacks are lost:
//!   that is what an operator asks for with it).
//! - **Rebalance**: every `leader_imbalance_check_interval_seconds` the controller counts,
//!   per broker, the partitions it is the preferred replica of and does not lead; above
//!   `leader_imbalance_per_broker_percentage` it runs preferred elections for them.

use std::collections::BTreeMap;

use super::{PartitionState, Replication};
use crate::cluster::LocalZk;
use crate::coordinator::ErrorCode;
use crate::kafka::errors;

/// Which election ElectLeaders asks for (its `election_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionKind {
    /// Back to the first replica of the assignment.
    Preferred,
    /// Any live replica, in sync or not, for a partition without a leader.
    Unclean,
}

/// Why an election was not held: the Kafka error code and a message.
pub type ElectionError = (i16, String);

impl Replication {
    /// Holds one election; Ok once the new state is committed through the quorum.
    pub async fn elect(
        &self,
        topic: &str,
        partition: i32,
        kind: ElectionKind,
    ) -> Result<(), ElectionError> {
        let Some(replicas) = self.replicas_of(topic, partition) else {
            return Err((
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("{topic}-{partition} does not exist"),
            ));
        };
        // Compare-and-set on the state znode: a lost race re-reads and decides again.
        for _ in 0..3 {
            let path = self.state_path(topic, partition);
            let Some((data, stat)) = self.zk.get(&path) else {
                return Err((
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("{topic}-{partition} has no state"),
                ));
            };
            let state: PartitionState = serde_json::from_slice(&data).map_err(|e| {
                (
                    errors::UNKNOWN_SERVER_ERROR,
                    format!("{path} is not a partition state: {e}"),
                )
            })?;
            let live = self.reachable_brokers();
            let next = next_state(kind, &replicas, &state, &|id| live.contains(&id))?;
            let body = serde_json::to_vec(&next).expect("json");
            match self.zk.set(&path, &body, stat.version).await {
                Ok(_) => {
                    tracing::info!(topic, partition, ?kind, leader = next.leader, leader_epoch = next.leader_epoch, isr = ?next.isr, "leader elected on request");
                    return Ok(());
                }
                Err(ErrorCode::BadVersion) => continue,
                Err(e) => {
                    return Err((errors::REQUEST_TIMED_OUT, format!("writing {path}: {e:?}")))
                }
            }
        }
        Err((
            errors::REQUEST_TIMED_OUT,
            format!("{topic}-{partition} kept changing; try again"),
        ))
    }

    /// A partition's replicas, from what this node knows of the assignment.
    fn replicas_of(&self, topic: &str, partition: i32) -> Option<Vec<i32>> {
        self.known
            .lock()
            .expect("known")
            .get(&(topic.to_string(), partition))
            .map(|k| k.replicas.clone())
    }

    /// Every partition this node knows, for an ElectLeaders that names none.
    pub fn all_partitions(&self) -> Vec<(String, i32)> {
        self.known.lock().expect("known").keys().cloned().collect()
    }

    /// Controller: preferred elections for the partitions of brokers that lead too few of
    /// the partitions they are preferred for.
    pub(super) async fn rebalance_leaders(&self) {
        let percentage = self.broker.config.leader_imbalance_per_broker_percentage;
        let placed: Vec<((String, i32), i32, i32)> = self
            .known
            .lock()
            .expect("known")
            .iter()
            .filter_map(|(key, k)| Some((key.clone(), *k.replicas.first()?, k.state.leader)))
            .collect();
        for (key, _, _) in imbalanced(&placed, percentage) {
            match self.elect(&key.0, key.1, ElectionKind::Preferred).await {
                Ok(()) => {}
                Err((code, reason)) => {
                    tracing::debug!(topic = %key.0, partition = key.1, code, %reason, "preferred leader not restored yet")
                }
            }
        }
    }
}

/// The state an election gives a partition, or why it is not held.
fn next_state(
    kind: ElectionKind,
    replicas: &[i32],
    state: &PartitionState,
    live: &dyn Fn(i32) -> bool,
) -> Result<PartitionState, ElectionError> {
    let leader = match kind {
        ElectionKind::Preferred => {
            let Some(&preferred) = replicas.first() else {
                return Err((errors::ELIGIBLE_LEADERS_NOT_AVAILABLE, "no replicas".into()));
            };
            if state.leader == preferred {
                return Err((
                    errors::ELECTION_NOT_NEEDED,
                    format!("broker {preferred}, the preferred replica, already leads"),
                ));
            }
            if !live(preferred) || !state.isr.contains(&preferred) {
                return Err((
                    errors::PREFERRED_LEADER_NOT_AVAILABLE,
                    format!("the preferred replica, broker {preferred}, is not alive and in sync"),
                ));
            }
            preferred
        }
        ElectionKind::Unclean => {
            if state.leader >= 0 && live(state.leader) {
                return Err((
                    errors::ELECTION_NOT_NEEDED,
                    format!("broker {} leads", state.leader),
                ));
            }
            let in_sync = replicas
                .iter()
                .copied()
                .find(|r| live(*r) && state.isr.contains(r));
            let Some(leader) = in_sync.or_else(|| replicas.iter().copied().find(|r| live(*r)))
            else {
                return Err((
                    errors::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                    "no replica is alive".into(),
                ));
            };
            leader
        }
    };
    let isr = if state.isr.contains(&leader) {
        state.isr.clone()
    } else {
        vec![leader]
    };
    Ok(PartitionState {
        leader,
        leader_epoch: state.leader_epoch + 1,
        isr,
    })
}

/// The partitions whose preferred replica should lead again: for each broker with more
/// than `percentage` % of its preferred partitions led elsewhere, those partitions.
/// `placed` is (partition, preferred replica, leader).
fn imbalanced<K: Clone>(placed: &[(K, i32, i32)], percentage: u32) -> Vec<(K, i32, i32)> {
    let mut by_broker: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for (_, preferred, leader) in placed {
        let entry = by_broker.entry(*preferred).or_default();
        entry.0 += 1;
        if leader != preferred {
            entry.1 += 1;
        }
    }
    let out_of_balance = |broker: i32| {
        by_broker
            .get(&broker)
            .is_some_and(|&(total, elsewhere)| elsewhere * 100 > total * percentage as usize)
    };
    placed
        .iter()
        .filter(|(_, preferred, leader)| leader != preferred && out_of_balance(*preferred))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(leader: i32, isr: &[i32]) -> PartitionState {
        PartitionState {
            leader,
            leader_epoch: 7,
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn a_preferred_election_moves_leadership_to_the_first_replica_in_sync() {
        let all = |_| true;
        let next = next_state(
            ElectionKind::Preferred,
            &[1, 2, 3],
            &state(2, &[1, 2, 3]),
            &all,
        );
        assert_eq!(
            next.unwrap(),
            PartitionState {
                leader: 1,
                leader_epoch: 8,
                isr: vec![1, 2, 3]
            }
        );
        let err = next_state(
            ElectionKind::Preferred,
            &[1, 2, 3],
            &state(1, &[1, 2, 3]),
            &all,
        );
        assert_eq!(err.unwrap_err().0, errors::ELECTION_NOT_NEEDED);
        let out_of_sync = next_state(
            ElectionKind::Preferred,
            &[1, 2, 3],
            &state(2, &[2, 3]),
            &all,
        );
        assert_eq!(
            out_of_sync.unwrap_err().0,
            errors::PREFERRED_LEADER_NOT_AVAILABLE
        );
        let dead = next_state(
            ElectionKind::Preferred,
            &[1, 2, 3],
            &state(2, &[1, 2, 3]),
            &|id| id != 1,
        );
        assert_eq!(dead.unwrap_err().0, errors::PREFERRED_LEADER_NOT_AVAILABLE);
    }

    #[test]
    fn an_unclean_election_only_replaces_a_missing_leader_preferring_the_isr() {
        let all = |_| true;
        let led = next_state(ElectionKind::Unclean, &[1, 2, 3], &state(2, &[2]), &all);
        assert_eq!(led.unwrap_err().0, errors::ELECTION_NOT_NEEDED);
        let only_3 = |id| id == 3;
        let next =
            next_state(ElectionKind::Unclean, &[1, 2, 3], &state(-1, &[1]), &only_3).unwrap();
        assert_eq!((next.leader, next.isr), (3, vec![3]));
        let two_three = |id| id != 1;
        let next = next_state(
            ElectionKind::Unclean,
            &[1, 2, 3],
            &state(-1, &[2, 3]),
            &two_three,
        )
        .unwrap();
        assert_eq!((next.leader, next.isr), (2, vec![2, 3]));
        let none = next_state(ElectionKind::Unclean, &[1, 2, 3], &state(-1, &[1]), &|_| {
            false
        });
        assert_eq!(none.unwrap_err().0, errors::ELIGIBLE_LEADERS_NOT_AVAILABLE);
    }

    #[test]
    fn only_brokers_over_the_imbalance_share_get_their_partitions_back() {
        // Broker 1 is preferred for 4 partitions and leads 3 (25% elsewhere); broker 2 is
        // preferred for 10 and leads all but one (10%, not over 10%).
        let mut placed = vec![(0, 1, 1), (1, 1, 1), (2, 1, 1), (3, 1, 3)];
        placed.extend((10..19).map(|p| (p, 2, 2)));
        placed.push((19, 2, 3));
        assert_eq!(imbalanced(&placed, 10), vec![(3, 1, 3)]);
        assert_eq!(imbalanced(&placed, 25), vec![]);
        assert_eq!(imbalanced(&placed, 0).len(), 2);
    }
}

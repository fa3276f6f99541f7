//! Consumer groups: Kafka's classic rebalance protocol and committed offsets.
//!
//! The protocol is a pure state machine over [`Groups`]: every operation takes the request and
//! the time ([`Now`]) and returns its answer, or says the answer will come later, plus
//! [`Effect`]s (answers for members whose JoinGroup or SyncGroup was parked, and "write this
//! group's metadata"). No clock, randomness or I/O inside, so the unit tests drive it step by
//! step. Split as the protocol is:
//! - `state`: groups, members, the five states and the transitions they share;
//! - `join`, `sync`, `heartbeat`, `leave`: one file per protocol call (timers are with
//!   heartbeat: session expiry, rebalance and sync deadlines, the initial delay);
//! - `offsets`: committed offsets, commit validation and expiry;
//! - [`record`]: the `__consumer_offsets` record formats (Kafka's own); `replay` rebuilds
//!   the state from that topic at startup;
//! - [`coordinator`]: the async shell the Kafka handlers call: one lock around [`Groups`],
//!   parked requests as oneshot channels, writes to and replay of `__consumer_offsets`.

pub mod coordinator;
mod heartbeat;
mod join;
mod leave;
mod offsets;
pub mod record;
mod replay;
mod state;
pub mod subscription;
mod sync;

/// The internal topic that holds committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

#[cfg(test)]
mod tests;

use bytes::Bytes;

use crate::config::BrokerConfig;

pub use coordinator::GroupCoordinator;
pub use offsets::{CommittedOffset, Expired, OffsetDeleteResult};
pub use state::{Group, GroupState, Groups, Member};
pub use sync::SyncRequest;

/// The two clocks the state machine reads, passed in so tests control them: a monotonic one
/// for timeouts (a Pi without a real-time clock jumps its wall clock when NTP syncs) and the
/// wall clock for what is persisted (commit timestamps, state timestamps, offset retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (any origin).
    pub mono_ms: i64,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: i64,
}

/// The coordinator's limits and timings, from `[broker]`.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// How long a new group waits for more members (`group_initial_rebalance_delay_ms`).
    pub initial_rebalance_delay_ms: i64,
    /// Smallest allowed session timeout.
    pub min_session_timeout_ms: i32,
    /// Largest allowed session timeout.
    pub max_session_timeout_ms: i32,
    /// Most members (and members-to-be) of one group.
    pub max_size: usize,
    /// Most groups.
    pub max_groups: usize,
    /// Largest protocol metadata or assignment of a member.
    pub member_metadata_max_bytes: usize,
    /// Most protocols (assignors) one member may offer.
    pub max_protocols: usize,
    /// Longest offset metadata string.
    pub offset_metadata_max_bytes: usize,
    /// Offsets of a group empty this long expire.
    pub offsets_retention_ms: i64,
}

impl GroupConfig {
    /// The settings in `[broker]`.
    pub fn from_broker(broker: &BrokerConfig) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: i64::from(broker.group_initial_rebalance_delay_ms),
            min_session_timeout_ms: broker.group_min_session_timeout_ms.min(i32::MAX as u32) as i32,
            max_session_timeout_ms: broker.group_max_session_timeout_ms.min(i32::MAX as u32) as i32,
            max_size: broker.group_max_size as usize,
            max_groups: broker.max_groups as usize,
            member_metadata_max_bytes: broker.group_member_metadata_max_bytes as usize,
            max_protocols: 16,
            offset_metadata_max_bytes: broker.offset_metadata_max_bytes as usize,
            offsets_retention_ms: (broker.offsets_retention_minutes as i64).saturating_mul(60_000),
        }
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig::from_broker(&BrokerConfig::default())
    }
}

/// Why a group operation was refused; the Kafka layer maps each to its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The group is being unloaded or deleted; find the coordinator again.
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    /// The group id is empty.
    #[error("invalid group id")]
    InvalidGroupId,
    /// The member is not in the group.
    #[error("unknown member id")]
    UnknownMemberId,
    /// The generation is not the group's current one.
    #[error("illegal generation")]
    IllegalGeneration,
    /// Protocol type or protocols do not match the group's.
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// The session timeout is outside the broker's range.
    #[error("invalid session timeout")]
    InvalidSessionTimeout,
    /// The group is rebalancing.
    #[error("rebalance in progress")]
    RebalanceInProgress,
    /// Join again with the member id in the answer (KIP-394).
    #[error("member id required")]
    MemberIdRequired,
    /// The group has `group_max_size` members.
    #[error("group max size reached")]
    GroupMaxSizeReached,
    /// The group pool of the memory budget cannot hold this member's metadata or these
    /// assignments now; the client retries (COORDINATOR_LOAD_IN_PROGRESS).
    #[error("the group state memory pool is full")]
    MemoryPoolFull,
    /// The coordinator holds `max_groups` groups.
    #[error("the coordinator holds its maximum number of groups")]
    TooManyGroups,
    /// Another member took this static member's instance id.
    #[error("fenced instance id")]
    FencedInstanceId,
    /// The group has members.
    #[error("the group is not empty")]
    NonEmptyGroup,
    /// No such group.
    #[error("group not found")]
    GroupIdNotFound,
    /// Protocol metadata or an assignment is larger than `group_member_metadata_max_bytes`.
    #[error("member metadata or assignment too large")]
    MetadataTooLarge,
    /// The offset metadata string is too long.
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    /// The group still consumes the topic.
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// The committed partition does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// `__consumer_offsets` could not be written.
    #[error("the offsets topic could not be written")]
    Storage,
    /// Cluster mode: another node leads the group's `__consumer_offsets` partition.
    #[error("this node is not the group's coordinator")]
    NotCoordinator,
}

/// A member as the JoinGroup leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Its metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    /// None on success.
    pub error: Option<GroupError>,
    /// The generation joined.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol (assignor).
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// The member id (new ones learn theirs here).
    pub member_id: String,
    /// All members, for the leader only.
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    /// An error answer.
    pub fn error(error: GroupError, member_id: &str) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup: (protocol type, protocol name, this member's assignment).
pub type SyncResult = Result<(Option<String>, Option<String>, Bytes), GroupError>;

/// A JoinGroup as the state machine takes it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Group id.
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// Static membership id (`group.instance.id`).
    pub instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// e.g. "consumer".
    pub protocol_type: String,
    /// (name, metadata) per assignor the member supports, preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED and a member id (KIP-394).
    pub require_known_member_id: bool,
    /// The id to give if this is a new member (chosen by the caller: no randomness here).
    pub new_member_id: String,
}

impl JoinRequest {
    /// The most the group state can grow by when this member joins (for the group pool):
    /// what [`state::Member::memory_bytes`] will count for it.
    pub fn memory_bytes(&self) -> u64 {
        let id = self.member_id.len().max(self.new_member_id.len());
        state::member_bytes(
            &self.protocols,
            0,
            id + self.instance_id.as_ref().map_or(0, String::len)
                + self.client_id.len()
                + self.client_host.len(),
        )
    }
}

/// What a JoinGroup or SyncGroup gets right away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The answer.
    Done(T),
    /// Parked: the answer comes as an [`Effect`] for this member id.
    Waiting(String),
}

/// Something the shell must do after an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answer a parked JoinGroup.
    JoinDone {
        /// Group id.
        group: String,
        /// Member whose JoinGroup is parked.
        member_id: String,
        /// Its answer.
        result: JoinResult,
    },
    /// Answer a parked SyncGroup.
    SyncDone {
        /// Group id.
        group: String,
        /// Member whose SyncGroup is parked.
        member_id: String,
        /// Its answer.
        result: SyncResult,
    },
    /// Write the group's metadata (or its tombstone, if it is gone) to `__consumer_offsets`.
    PersistGroup(String),
}

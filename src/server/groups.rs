//! The group coordinator's timers: session expiry, rebalance and sync deadlines and the
//! initial-rebalance delay (at the next due time, or sooner when a request changes it), and
//! the periodic expiry of committed offsets.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::group::GroupCoordinator;

/// Longest sleep between timer checks (a safety net; requests wake the task sooner).
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Fires the coordinator's timers until shutdown.
pub async fn timers(groups: Arc<GroupCoordinator>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let sleep = groups.next_timer().map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP));
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = groups.timers_changed() => {}
            _ = shutdown.changed() => return,
        }
        groups.tick();
    }
}

/// Expires the offsets of long-empty groups every `interval_ms` until shutdown.
pub async fn offset_expiry(
    groups: Arc<GroupCoordinator>,
    interval_ms: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
            _ = shutdown.changed() => return,
        }
        groups.expire_offsets().await;
    }
}

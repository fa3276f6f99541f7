//! A pool: a named share of the memory budget, handed out as grants that give their bytes
//! back when dropped. A full pool makes callers wait (backpressure) or answers `None` to
//! those that cannot wait; each time it runs dry it logs once and counts the episode.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An exhausted episode ends once the pool's use falls to this share of its limit, so a
/// pool hovering at its limit counts (and logs) one episode, not one per release.
pub const RECOVERED_PERCENT: u64 = 50;

/// Semaphore permits are counted in units of this many bytes, so a pool of several GiB
/// still fits the semaphore's permit count on 32-bit targets.
pub const UNIT_BYTES: u64 = 1024;

/// The most of a pool that connections' fixed costs (TLS buffers) may hold together, so
/// open connections can never take all of it and leave their requests no room. (Startup
/// checks that the largest request fits the rest: a waiting request is first in line, so
/// one that could only fit once idle connections close would hold up all the others.)
pub const CONNECTION_SHARE_PERCENT: u64 = 40;

/// One named share of the budget.
#[derive(Debug)]
pub struct Pool {
    name: &'static str,
    limit_bytes: u64,
    permits: Arc<Semaphore>,
    /// [`CONNECTION_SHARE_PERCENT`] of the limit, for [`Pool::acquire_for_connection`].
    connection_permits: Arc<Semaphore>,
    used_bytes: AtomicU64,
    peak_bytes: AtomicU64,
    exhausted_episodes: AtomicU64,
    exhausted_now: AtomicBool,
}

/// Bytes held from a pool; returned when dropped.
#[derive(Debug)]
pub struct Grant {
    pool: Arc<Pool>,
    bytes: u64,
    permit: OwnedSemaphorePermit,
    pressured: bool,
    /// A connection's fixed cost also holds its share of the connections' part.
    _connection: Option<OwnedSemaphorePermit>,
}

impl Grant {
    /// The bytes this grant holds (rounded up to whole units).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The pool this grant is from.
    pub fn pool_name(&self) -> &'static str {
        self.pool.name
    }

    /// Whether the pool could not give what was asked at once (the caller waited, or got
    /// less): the answer to this request should tell the client to slow down.
    pub fn pressured(&self) -> bool {
        self.pressured
    }

    /// Resize this grant to `bytes` (rounded up to whole units): shrinking gives the
    /// difference back at once; growing takes it now or fails (the pool is full: the
    /// grant keeps what it had and the episode is counted).
    pub fn try_resize(&mut self, bytes: u64) -> bool {
        let want = u64::from(units_or_zero(bytes)) * UNIT_BYTES;
        if want <= self.bytes {
            let give_back = units_or_zero(self.bytes - want) as usize;
            if let Some(returned) = self.permit.split(give_back) {
                self.pool.released(self.bytes - want);
                self.bytes = want;
                drop(returned);
            }
            return true;
        }
        let extra = want - self.bytes;
        match self
            .pool
            .permits
            .clone()
            .try_acquire_many_owned(units_or_zero(extra))
        {
            Ok(more) => {
                self.permit.merge(more);
                let used = self.pool.used_bytes.fetch_add(extra, Ordering::AcqRel) + extra;
                self.pool.peak_bytes.fetch_max(used, Ordering::AcqRel);
                self.bytes = want;
                true
            }
            Err(_) => {
                self.pool.note_exhausted(extra);
                false
            }
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        // The permit goes back right after this (field drop).
        self.pool.released(self.bytes);
    }
}

fn units(bytes: u64) -> u32 {
    units_or_zero(bytes).max(1)
}

fn units_or_zero(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT_BYTES)).unwrap_or(u32::MAX)
}

impl Pool {
    /// A pool of `limit_bytes` (rounded down to whole units, at least one unit).
    pub fn new(name: &'static str, limit_bytes: u64) -> Arc<Pool> {
        let limit_units = (limit_bytes / UNIT_BYTES).max(1);
        // tokio's semaphore holds at most usize::MAX >> 3 permits: about 512 Mi units on
        // 32-bit, i.e. 512 GiB of budget. Clamp rather than panic.
        let permits = usize::try_from(limit_units)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        let connection_permits = (permits as u64 * CONNECTION_SHARE_PERCENT / 100).max(1) as usize;
        Arc::new(Pool {
            name,
            limit_bytes: permits as u64 * UNIT_BYTES,
            permits: Arc::new(Semaphore::new(permits)),
            connection_permits: Arc::new(Semaphore::new(connection_permits)),
            used_bytes: AtomicU64::new(0),
            peak_bytes: AtomicU64::new(0),
            exhausted_episodes: AtomicU64::new(0),
            exhausted_now: AtomicBool::new(false),
        })
    }

    /// The pool's name, as metrics show it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The most this pool hands out at once.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// Bytes held by grants now.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Acquire)
    }

    /// For a pool that is checked rather than granted from (the znode pool: the tree and
    /// its watches are sized by the coordinator, which refuses what would not fit), the bytes
    /// in use as last measured, so metrics and health read it like any other pool.
    pub fn set_measured_bytes(&self, bytes: u64) {
        self.used_bytes.store(bytes, Ordering::Release);
        self.peak_bytes.fetch_max(bytes, Ordering::AcqRel);
    }

    /// The most ever held at once.
    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes.load(Ordering::Acquire)
    }

    /// How many times the pool ran dry.
    pub fn exhausted_episodes(&self) -> u64 {
        self.exhausted_episodes.load(Ordering::Acquire)
    }

    /// Whether the pool is in an exhausted episode: it refused or kept someone waiting, and
    /// its use has not yet fallen back to [`RECOVERED_PERCENT`] of its limit.
    pub fn is_exhausted(&self) -> bool {
        self.exhausted_now.load(Ordering::Acquire)
    }

    /// A grant of nothing, to grow later with [`Grant::try_resize`] (state that comes and
    /// goes in small pieces, such as consumer group metadata).
    pub fn empty_grant(self: &Arc<Self>) -> Grant {
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(0)
            .expect("pool semaphores are never closed");
        Grant {
            pool: self.clone(),
            bytes: 0,
            permit,
            pressured: false,
            _connection: None,
        }
    }

    fn granted(
        self: &Arc<Self>,
        bytes: u64,
        permit: OwnedSemaphorePermit,
        pressured: bool,
    ) -> Grant {
        let bytes = u64::from(units(bytes)) * UNIT_BYTES;
        let used = self.used_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak_bytes.fetch_max(used, Ordering::AcqRel);
        debug_assert!(
            used <= self.limit_bytes,
            "pool {} over its limit",
            self.name
        );
        Grant {
            pool: self.clone(),
            bytes,
            permit,
            pressured,
            _connection: None,
        }
    }

    /// Bytes given back: the episode, if any, ends once use is down to
    /// [`RECOVERED_PERCENT`] of the limit.
    fn released(&self, bytes: u64) {
        let used = self.used_bytes.fetch_sub(bytes, Ordering::AcqRel) - bytes;
        if used <= self.limit_bytes * RECOVERED_PERCENT / 100 {
            self.exhausted_now.store(false, Ordering::Release);
        }
    }

    fn note_exhausted(&self, wanted: u64) {
        if !self.exhausted_now.swap(true, Ordering::AcqRel) {
            self.exhausted_episodes.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                pool = self.name,
                wanted,
                used = self.used_bytes(),
                limit = self.limit_bytes,
                "memory pool exhausted; applying backpressure"
            );
        }
    }

    /// Take `bytes` now, or `None` if the pool cannot give them now. A request larger than
    /// the whole pool is clamped to it (it waits for everything else to finish instead of
    /// never being served; callers bound requests below the pool size anyway).
    pub fn try_acquire(self: &Arc<Self>, bytes: u64) -> Option<Grant> {
        let bytes = bytes.min(self.limit_bytes);
        match self.permits.clone().try_acquire_many_owned(units(bytes)) {
            Ok(permit) => Some(self.granted(bytes, permit, false)),
            Err(_) => {
                self.note_exhausted(bytes);
                None
            }
        }
    }

    /// Take `bytes`, waiting while the pool is full (clamped to the pool's size).
    pub async fn acquire(self: &Arc<Self>, bytes: u64) -> Grant {
        if let Some(grant) = self.try_acquire(bytes) {
            return grant;
        }
        let bytes = bytes.min(self.limit_bytes);
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(units(bytes))
            .await
            .expect("pool semaphores are never closed");
        self.granted(bytes, permit, true)
    }

    /// Take a connection's fixed cost (its TLS buffers) for as long as it is open: like
    /// [`Pool::acquire`], but all connections together hold at most
    /// [`CONNECTION_SHARE_PERCENT`] of the pool, so their requests always find room. A
    /// connection past that share waits for another to close.
    pub async fn acquire_for_connection(self: &Arc<Self>, bytes: u64) -> Grant {
        let share = self.limit_bytes * CONNECTION_SHARE_PERCENT / 100;
        let bytes = bytes.min(share.max(UNIT_BYTES));
        let slot = match self
            .connection_permits
            .clone()
            .try_acquire_many_owned(units(bytes))
        {
            Ok(slot) => slot,
            Err(_) => {
                self.note_exhausted(bytes);
                self.connection_permits
                    .clone()
                    .acquire_many_owned(units(bytes))
                    .await
                    .expect("pool semaphores are never closed")
            }
        };
        let mut grant = self.acquire(bytes).await;
        grant._connection = Some(slot);
        grant
    }

    /// Take as much of `wanted` as is free now, halving down to `floor`; if not even
    /// `floor` is free, wait for `floor`. Used for fetch responses: under pressure a
    /// consumer gets smaller responses rather than none.
    pub async fn acquire_up_to(self: &Arc<Self>, wanted: u64, floor: u64) -> Grant {
        let floor = floor.min(wanted).max(1);
        let first = wanted.min(self.limit_bytes);
        let mut ask = first;
        while ask >= floor {
            if let Some(mut grant) = self.try_acquire(ask) {
                grant.pressured = ask < first;
                return grant;
            }
            ask /= 2;
        }
        let mut grant = self.acquire(floor).await;
        grant.pressured = true;
        grant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_balance_and_limits_hold() {
        let pool = Pool::new("test", 10 * UNIT_BYTES);
        let a = pool.try_acquire(4 * UNIT_BYTES).unwrap();
        let b = pool.try_acquire(6 * UNIT_BYTES).unwrap();
        assert_eq!(pool.used_bytes(), 10 * UNIT_BYTES);
        assert!(pool.try_acquire(1).is_none(), "a full pool refuses");
        assert!(pool.is_exhausted());
        assert_eq!(pool.exhausted_episodes(), 1);
        assert!(pool.try_acquire(1).is_none());
        assert_eq!(
            pool.exhausted_episodes(),
            1,
            "one episode until it recovers"
        );
        drop(a);
        assert!(
            pool.is_exhausted(),
            "still above half the limit: same episode"
        );
        assert_eq!(pool.used_bytes(), 6 * UNIT_BYTES);
        drop(b);
        assert!(!pool.is_exhausted());
        assert_eq!(pool.used_bytes(), 0);
        assert_eq!(pool.peak_bytes(), 10 * UNIT_BYTES);
    }

    #[test]
    fn small_requests_round_up_to_a_unit() {
        let pool = Pool::new("test", 2 * UNIT_BYTES);
        let a = pool.try_acquire(1).unwrap();
        assert_eq!(a.bytes(), UNIT_BYTES);
        let _b = pool.try_acquire(UNIT_BYTES).unwrap();
        assert!(pool.try_acquire(1).is_none());
    }

    #[tokio::test]
    async fn a_waiter_gets_its_bytes_when_a_grant_is_dropped() {
        let pool = Pool::new("test", 4 * UNIT_BYTES);
        let held = pool.try_acquire(4 * UNIT_BYTES).unwrap();
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(2 * UNIT_BYTES).await.bytes() })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        assert_eq!(waiter.await.unwrap(), 2 * UNIT_BYTES);
        assert_eq!(
            pool.used_bytes(),
            0,
            "the waiter's grant was dropped with its task"
        );
    }

    #[tokio::test]
    async fn acquire_up_to_shrinks_under_pressure() {
        let pool = Pool::new("test", 16 * UNIT_BYTES);
        let _held = pool.try_acquire(10 * UNIT_BYTES).unwrap();
        let grant = pool.acquire_up_to(16 * UNIT_BYTES, UNIT_BYTES).await;
        assert_eq!(grant.bytes(), 4 * UNIT_BYTES);
    }

    #[test]
    fn oversized_requests_are_clamped_to_the_pool() {
        let pool = Pool::new("test", 4 * UNIT_BYTES);
        let grant = pool.try_acquire(100 * UNIT_BYTES).unwrap();
        assert_eq!(grant.bytes(), 4 * UNIT_BYTES);
    }

    #[tokio::test]
    async fn dropped_waiters_leak_nothing() {
        let pool = Pool::new("test", 2 * UNIT_BYTES);
        let held = pool.try_acquire(2 * UNIT_BYTES).unwrap();
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(UNIT_BYTES).await })
        };
        tokio::task::yield_now().await;
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        assert_eq!(pool.used_bytes(), 0);
        assert!(
            pool.try_acquire(2 * UNIT_BYTES).is_some(),
            "an aborted waiter returns nothing it did not get"
        );
    }

    #[test]
    fn grants_resize_within_the_limit_and_balance() {
        let pool = Pool::new("test", 8 * UNIT_BYTES);
        let mut grant = pool.empty_grant();
        assert_eq!((grant.bytes(), pool.used_bytes()), (0, 0));
        assert!(grant.try_resize(3 * UNIT_BYTES));
        assert!(
            grant.try_resize(5 * UNIT_BYTES + 1),
            "rounded up to 6 units"
        );
        assert_eq!(pool.used_bytes(), 6 * UNIT_BYTES);
        let other = pool.try_acquire(2 * UNIT_BYTES).unwrap();
        assert!(
            !grant.try_resize(7 * UNIT_BYTES),
            "a full pool refuses to grow it"
        );
        assert_eq!(
            grant.bytes(),
            6 * UNIT_BYTES,
            "a refused grow keeps what it had"
        );
        assert_eq!(pool.exhausted_episodes(), 1);
        assert!(grant.try_resize(UNIT_BYTES));
        assert_eq!(pool.used_bytes(), 3 * UNIT_BYTES);
        assert!(!pool.is_exhausted(), "shrinking ends the episode");
        assert!(
            pool.try_acquire(5 * UNIT_BYTES).is_some(),
            "shrunk bytes are free again"
        );
        drop(other);
        drop(grant);
        assert_eq!(pool.used_bytes(), 0);
        assert_eq!(pool.peak_bytes(), 8 * UNIT_BYTES);
    }

    #[tokio::test]
    async fn grants_say_when_the_pool_was_short() {
        let pool = Pool::new("test", 8 * UNIT_BYTES);
        let easy = pool.acquire(2 * UNIT_BYTES).await;
        assert!(!easy.pressured());
        let shrunk = pool.acquire_up_to(8 * UNIT_BYTES, UNIT_BYTES).await;
        assert!(shrunk.pressured(), "served smaller than asked");
        assert_eq!(shrunk.bytes(), 4 * UNIT_BYTES);
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire(4 * UNIT_BYTES).await.pressured() })
        };
        tokio::task::yield_now().await;
        drop(shrunk);
        assert!(waiter.await.unwrap(), "waited for its bytes");
        drop(easy);
        assert_eq!(pool.used_bytes(), 0);
    }

    #[tokio::test]
    async fn connections_take_at_most_their_share_and_leave_requests_room() {
        let pool = Pool::new("test", 10 * UNIT_BYTES);
        let first = pool.acquire_for_connection(2 * UNIT_BYTES).await;
        let second = pool.acquire_for_connection(2 * UNIT_BYTES).await;
        assert_eq!(pool.used_bytes(), 4 * UNIT_BYTES);
        let third = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.acquire_for_connection(2 * UNIT_BYTES).await })
        };
        tokio::task::yield_now().await;
        assert!(!third.is_finished(), "past the connections' 40% it waits");
        assert!(pool.is_exhausted());
        let request = pool
            .try_acquire(6 * UNIT_BYTES)
            .expect("requests still find the other 60%");
        drop(request);
        drop(first);
        let third = third.await.unwrap();
        assert_eq!(pool.used_bytes(), 4 * UNIT_BYTES);
        drop((second, third));
        assert_eq!(pool.used_bytes(), 0);
        assert_eq!(
            pool.connection_permits.available_permits(),
            4,
            "connection slots balance too"
        );
    }

    #[tokio::test]
    async fn a_connection_dropped_mid_request_leaks_nothing() {
        // A reader task holds a frame's grant while it reads the body; the peer goes away
        // (the task ends with an error or is aborted): the bytes come back.
        let pool = Pool::new("test", 4 * UNIT_BYTES);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let reader = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let _grant = pool.acquire(3 * UNIT_BYTES).await;
                // The body never arrives: the sender is dropped (connection reset).
                rx.await.map_err(|_| "connection reset")
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(pool.used_bytes(), 3 * UNIT_BYTES);
        drop(tx);
        assert!(reader.await.unwrap().is_err());
        assert_eq!(pool.used_bytes(), 0);
        let stuck = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let _grant = pool.acquire(2 * UNIT_BYTES).await;
                std::future::pending::<()>().await;
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(pool.used_bytes(), 2 * UNIT_BYTES);
        stuck.abort();
        let _ = stuck.await;
        assert_eq!(pool.used_bytes(), 0);
    }
}

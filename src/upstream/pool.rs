//! Idle connections to a node, per connection worker: taken newest first, dropped once idle too long, closed
//! by the node or over the cap. Used for hyper's connections and for directly driven ones alike
//! (`client.rs`); what "still open" means is each kind's own ([`Pooled`]).

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// A connection that can wait in an idle list.
pub(super) trait Pooled {
    /// Still open: the node has not closed it (and, for a direct one, sent nothing since).
    fn is_open(&self) -> bool;
}

/// One worker's idle connections, oldest at the front, on a cache line of its own (workers do not share
/// lines); the mutex is held for a push or pop, never across `.await`.
#[repr(align(64))]
pub(super) struct IdleList<C>(Mutex<VecDeque<Idle<C>>>);

impl<C> Default for IdleList<C> {
    fn default() -> Self {
        IdleList(Mutex::new(VecDeque::new()))
    }
}

pub(super) struct Idle<C> {
    connection: C,
    since: Instant,
}

impl<C: Pooled> Idle<C> {
    /// Idle for no longer than `timeout` at `now`.
    fn fresh(&self, now: Instant, timeout: Duration) -> bool {
        now.duration_since(self.since) <= timeout
    }

    /// Fresh, and still open.
    fn reusable(&self, now: Instant, timeout: Duration) -> bool {
        self.fresh(now, timeout) && self.connection.is_open()
    }
}

impl<C: Pooled> IdleList<C> {
    pub(super) fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// Closes the connections no longer reusable at `now`; returns how many.
    pub(super) fn sweep(&self, now: Instant, timeout: Duration) -> usize {
        let mut idle = self.0.lock();
        let before = idle.len();
        idle.retain(|c| c.reusable(now, timeout));
        before - idle.len()
    }

    /// The newest connection still reusable; older or closed ones met on the way are dropped.
    pub(super) fn take(&self, timeout: Duration) -> Option<C> {
        let now = Instant::now();
        let mut idle = self.0.lock();
        while let Some(idle) = idle.pop_back() {
            if idle.reusable(now, timeout) {
                return Some(idle.connection);
            }
        }
        None
    }

    /// Puts a connection back, dropping connections idle for too long and the oldest one over `max`.
    pub(super) fn put(&self, connection: C, timeout: Duration, max: usize) {
        if max == 0 || !connection.is_open() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.0.lock();
        while idle.front().is_some_and(|c| !c.fresh(now, timeout)) {
            idle.pop_front();
        }
        if idle.len() >= max {
            idle.pop_front();
        }
        idle.push_back(Idle {
            connection,
            since: now,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection known by a number, open unless told otherwise.
    struct Fake {
        id: u32,
        open: bool,
    }

    impl Pooled for Fake {
        fn is_open(&self) -> bool {
            self.open
        }
    }

    fn open(id: u32) -> Fake {
        Fake { id, open: true }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_newest_connection_is_taken_first() {
        let list = IdleList::default();
        for id in 1..=3 {
            list.put(open(id), MINUTE, 8);
        }
        assert_eq!(list.take(MINUTE).map(|c| c.id), Some(3));
        assert_eq!(list.take(MINUTE).map(|c| c.id), Some(2));
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn a_closed_connection_is_neither_kept_nor_handed_out() {
        let list = IdleList::default();
        list.put(Fake { id: 1, open: false }, MINUTE, 8);
        assert_eq!(list.len(), 0, "not kept");
        list.put(open(2), MINUTE, 8);
        list.0.lock().back_mut().unwrap().connection.open = false;
        assert!(
            list.take(MINUTE).is_none(),
            "closed while idle: dropped on the way"
        );
        assert_eq!(list.len(), 0);
    }

    #[test]
    fn the_oldest_connection_goes_when_the_cap_is_reached_and_a_cap_of_zero_keeps_none() {
        let list = IdleList::default();
        for id in 1..=3 {
            list.put(open(id), MINUTE, 2);
        }
        assert_eq!(list.len(), 2);
        assert_eq!(list.take(MINUTE).map(|c| c.id), Some(3));
        assert_eq!(list.take(MINUTE).map(|c| c.id), Some(2));
        let none = IdleList::default();
        none.put(open(1), MINUTE, 0);
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn a_sweep_closes_what_idled_past_the_timeout() {
        let list = IdleList::default();
        list.put(open(1), MINUTE, 8);
        assert_eq!(list.sweep(Instant::now(), MINUTE), 0);
        assert_eq!(list.sweep(Instant::now() + 2 * MINUTE, MINUTE), 1);
        assert_eq!(list.len(), 0);
    }
}

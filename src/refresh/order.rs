//! Key events against refreshes: which keys a finished refresh may make its node own.
//!
//! A refresh reloads a node's registry from the shared repository as it stood when the refresh started. A key
//! registered or approved after that (a key event the proxy saw in a response) is missing from that copy, or is
//! there without its approval. So a refresh that started before a key event must not make its node an owner of
//! that key: requests would be pinned to a node that answers `consumer_key_unknown` or
//! `consumer_key_rejected`. [`KeyEvents`] remembers recent events with their [`Tick`]s; a refresh that started
//! at tick `s` owns every key except those with an event after `s`.
//!
//! Events are kept for [`KEEP`], far longer than a refresh may take (`refresh.timeout` bounds the exchange),
//! and at most [`MAX_EVENTS`] of them (a burst beyond that forgets its oldest events first).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::Tick;
use crate::affinity::Fingerprint;

/// How long an event is remembered.
pub(super) const KEEP: Duration = Duration::from_secs(600);
/// At most this many events are remembered.
pub(super) const MAX_EVENTS: usize = 65_536;

/// Recent key events, oldest first, in tick order.
#[derive(Debug, Default)]
pub(super) struct KeyEvents {
    recent: VecDeque<(Tick, Instant, Fingerprint)>,
}

impl KeyEvents {
    /// Records an event on `key` at `tick` (greater than every tick recorded before), observed `at`.
    pub(super) fn record(&mut self, tick: Tick, at: Instant, key: Fingerprint) {
        while let Some(&(_, seen, _)) = self.recent.front() {
            if at.saturating_duration_since(seen) < KEEP && self.recent.len() < MAX_EVENTS {
                break;
            }
            self.recent.pop_front();
        }
        debug_assert!(self.recent.back().is_none_or(|&(last, _, _)| last < tick));
        self.recent.push_back((tick, at, key));
    }

    /// Whether `key` had an event after `started`.
    pub(super) fn changed_after(&self, key: &Fingerprint, started: Tick) -> bool {
        self.recent
            .iter()
            .rev()
            .take_while(|&&(tick, _, _)| tick > started)
            .any(|(_, _, k)| k == key)
    }

    /// The keys with an event after `started`: those a refresh that started then may not own.
    pub(super) fn after(&self, started: Tick) -> Vec<Fingerprint> {
        self.recent
            .iter()
            .rev()
            .take_while(|&&(tick, _, _)| tick > started)
            .map(|&(_, _, key)| key)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::FingerprintKey;

    fn key(name: &str) -> Fingerprint {
        FingerprintKey::from_bytes([1; 32]).fingerprint(name)
    }

    #[test]
    fn a_refresh_owns_no_key_whose_event_came_after_it_started() {
        let mut events = KeyEvents::default();
        let t0 = Instant::now();
        events.record(3, t0, key("registered"));
        events.record(7, t0, key("approved"));
        assert_eq!(events.after(2), vec![key("approved"), key("registered")]);
        assert_eq!(events.after(3), vec![key("approved")]);
        assert_eq!(events.after(5), vec![key("approved")]);
        assert!(events.after(7).is_empty());
        assert!(events.after(100).is_empty());
        assert!(events.changed_after(&key("approved"), 5));
        assert!(!events.changed_after(&key("registered"), 5));
    }

    #[test]
    fn events_are_forgotten_after_keep_and_beyond_the_cap() {
        let mut events = KeyEvents::default();
        let t0 = Instant::now();
        events.record(1, t0, key("old"));
        events.record(2, t0 + KEEP, key("new"));
        assert_eq!(events.after(0), vec![key("new")]);

        let mut events = KeyEvents::default();
        for tick in 1..=(MAX_EVENTS as Tick + 10) {
            events.record(tick, t0, key("k"));
        }
        assert_eq!(events.recent.len(), MAX_EVENTS);
        assert_eq!(events.recent.front().map(|e| e.0), Some(11));
    }
}

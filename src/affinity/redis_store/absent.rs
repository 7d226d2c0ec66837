//! Fingerprints Redis was just asked for and did not hold: the read-through's negative cache.
//!
//! A request whose credential misses the local cache reads it through from Redis. Without this, a credential
//! nobody ever learned (a consumer key that only the nodes know, a client's stale or bogus token) costs a Redis
//! round trip on every request that carries it. An answer "absent" is remembered for [`TTL_SECS`]; a change
//! another instance publishes for the fingerprint forgets it at once (and puts the entry in the local table,
//! where the next request finds it without asking), and so does losing or regaining the connection, when
//! published changes may have been missed. A fingerprint learned before it was ever asked for, the case of
//! every credential a node issues, never meets this cache; the TTL bounds the rest (a credential presented to
//! one instance before another learned it) to a couple of seconds of policy routing, which repair covers.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::affinity::Fingerprint;

/// How long (whole seconds of Unix time, so 1 to 2 s) an absence is trusted.
pub(super) const TTL_SECS: u64 = 2;
/// At most this many absences are remembered; a full cache starts over.
pub(super) const CAPACITY: usize = 65_536;

/// Fingerprint → Unix second until which Redis is known not to hold it.
#[derive(Debug, Default)]
pub(super) struct Absent {
    until: Mutex<HashMap<Fingerprint, u64>>,
}

impl Absent {
    /// Whether every one of `fps` is known absent at `now`.
    pub(super) fn all_absent(&self, fps: &[Fingerprint], now: u64) -> bool {
        let until = self.until.lock();
        fps.iter()
            .all(|fp| until.get(fp).is_some_and(|&until| now < until))
    }

    /// Redis answered, at `now`, that it holds none of `fps`.
    pub(super) fn record(&self, fps: impl IntoIterator<Item = Fingerprint>, now: u64) {
        let mut until = self.until.lock();
        for fp in fps {
            if until.len() >= CAPACITY {
                until.retain(|_, &mut until| now < until);
                if until.len() >= CAPACITY {
                    until.clear();
                }
            }
            until.insert(fp, now + TTL_SECS);
        }
    }

    /// `fp` changed in Redis: it is absent no more.
    pub(super) fn forget(&self, fp: &Fingerprint) {
        let mut until = self.until.lock();
        if !until.is_empty() {
            until.remove(fp);
        }
    }

    /// Changes may have been missed (the connection was lost or regained): trust no absence.
    pub(super) fn clear(&self) {
        self.until.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::FingerprintKey;

    fn fp(name: &str) -> Fingerprint {
        FingerprintKey::from_bytes([3; 32]).fingerprint(name)
    }

    #[test]
    fn an_absence_is_trusted_for_its_ttl_only() {
        let absent = Absent::default();
        absent.record([fp("a"), fp("b")], 100);
        assert!(absent.all_absent(&[fp("a"), fp("b")], 100));
        assert!(absent.all_absent(&[fp("a")], 100 + TTL_SECS - 1));
        assert!(!absent.all_absent(&[fp("a")], 100 + TTL_SECS));
        assert!(
            !absent.all_absent(&[fp("a"), fp("c")], 100),
            "c was never asked for"
        );
    }

    #[test]
    fn a_published_change_or_a_reconnection_ends_an_absence() {
        let absent = Absent::default();
        absent.record([fp("a"), fp("b")], 100);
        absent.forget(&fp("a"));
        assert!(!absent.all_absent(&[fp("a")], 100));
        assert!(absent.all_absent(&[fp("b")], 100));
        absent.clear();
        assert!(!absent.all_absent(&[fp("b")], 100));
    }

    #[test]
    fn a_full_cache_drops_what_expired_and_then_starts_over() {
        let absent = Absent::default();
        absent.record((0..CAPACITY).map(|i| fp(&i.to_string())), 100);
        absent.record([fp("late")], 100 + TTL_SECS);
        assert!(absent.all_absent(&[fp("late")], 100 + TTL_SECS));
        assert!(!absent.all_absent(&[fp("0")], 100 + TTL_SECS));
        assert!(
            absent.until.lock().len() == 1,
            "expired absences were dropped"
        );
    }
}

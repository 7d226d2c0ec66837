//! Reading a local miss through from Redis ([`RedisStore::read_through`]), and its negative cache: fingerprints
//! Redis was just asked for and did not hold.
//!
//! A request whose credential misses the local cache reads it through from Redis. Without the cache, a credential
//! nobody ever learned (a consumer key that only the nodes know, a client's stale or bogus token) costs a Redis
//! round trip on every request that carries it. An answer "absent" is remembered for [`TTL_SECS`]; a change
//! another instance publishes for the fingerprint forgets it at once (and puts the entry in the local table,
//! where the next request finds it without asking), and so does losing or regaining the connection, when
//! published changes may have been missed. A fingerprint learned before it was ever asked for, the case of
//! every credential a node issues, never meets this cache; the TTL bounds the rest (a credential presented to
//! one instance before another learned it) to a couple of seconds of policy routing, which repair covers.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use redis::Value;

use super::{wire, RedisStore};
use crate::affinity::Fingerprint;

impl RedisStore {
    /// Reads `fps` (credentials a request carries that the local table does not know) from Redis into the
    /// local table, in one round trip. Returns how many were found. Nothing is read while Redis is unavailable.
    /// Fingerprints Redis answered it does not hold are not asked for again for a moment (see the module docs).
    pub async fn read_through(&self, fps: &[Fingerprint], now: u64) -> usize {
        let absent = &self.inner.absent;
        if fps.is_empty() || absent.all_absent(fps, now) {
            return 0;
        }
        let fps = absent.not_absent(fps, now);
        let keys: Vec<String> = fps.iter().map(|fp| self.entry_key(*fp)).collect();
        let script = &self.inner.scripts.fetch;
        let answer: Option<Vec<Value>> = self
            .run(|mut conn| async move {
                let mut invocation = script.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await;
        let Some(values) = answer else { return 0 };
        let mut found = 0;
        let mut missing = Vec::new();
        for (fp, pair) in fps.iter().zip(values.chunks_exact(2)) {
            let entry = match (&pair[0], &pair[1]) {
                (Value::BulkString(value), Value::Int(expires_ms)) => {
                    wire::decode(value, *expires_ms)
                }
                _ => None,
            };
            match entry {
                Some(entry) => {
                    self.inner.table.put(*fp, entry, now);
                    found += 1;
                }
                None => missing.push(*fp),
            }
        }
        absent.record(missing, now);
        self.inner
            .read_through
            .fetch_add(found as u64, Ordering::Relaxed);
        found
    }
}

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

    /// Those of `fps` not known absent at `now` (one lock for all).
    pub(super) fn not_absent(&self, fps: &[Fingerprint], now: u64) -> Vec<Fingerprint> {
        let until = self.until.lock();
        fps.iter()
            .copied()
            .filter(|fp| until.get(fp).is_none_or(|&until| now >= until))
            .collect()
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

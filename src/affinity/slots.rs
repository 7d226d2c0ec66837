//! The table's storage: a hash map from fingerprint to entry, sized once from `max_entries` so it never
//! rehashes on the request path.
//!
//! Open addressing with linear probing, split into up to [`MAX_SHARDS`] shards each behind a
//! `parking_lot::RwLock`. A slot is 32 bytes (`Option<(Fingerprint, Entry)>`: the entry's kind leaves a niche
//! for `None`), stored inline, so a lookup reads the shard's lock word and, nearly always, one cache line of
//! slots. No hashing is done: a fingerprint is an HMAC output, already uniform, so its first 8 bytes choose
//! the shard and its last 8 the home slot (and nobody without the key can aim at a slot).
//!
//! Capacity is `max_entries` divided by [`LOAD`] (at least [`MIN_SHARD_SLOTS`] per shard): the table's
//! eviction keeps the count under `max_entries`, so probes stay short. Should a shard ever fill anyway (a
//! burst of concurrent inserts past the bound, or a tiny table), it doubles, and that is counted: a safety
//! valve, not the design. Deletion shifts the following cluster back (Knuth's algorithm R), so there are no
//! tombstones and lookups never slow down with churn.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::RwLock;

use super::table::Entry;
use super::Fingerprint;

/// The highest share of slots the table's bound lets the entries take.
pub(crate) const LOAD: (usize, usize) = (4, 5);
/// Shards at most (a power of two).
pub(crate) const MAX_SHARDS: usize = 64;
/// Slots a shard has at least, so a tiny table still spreads.
pub(crate) const MIN_SHARD_SLOTS: usize = 16;

type Slot = Option<(Fingerprint, Entry)>;

const _: () = assert!(
    std::mem::size_of::<Slot>() == 32,
    "a slot must stay 32 bytes"
);

struct Shard {
    slots: Box<[Slot]>,
}

impl Shard {
    fn with_slots(n: usize) -> Shard {
        Shard {
            slots: vec![None; n].into_boxed_slice(),
        }
    }

    fn home(&self, fp: &Fingerprint) -> usize {
        let tail = u64::from_le_bytes(fp.as_bytes()[8..16].try_into().unwrap_or([0; 8]));
        ((u128::from(tail) * self.slots.len() as u128) >> 64) as usize
    }

    /// Where `fp` is, or the empty slot where it would go, or `None` when the shard is full without it.
    fn probe(&self, fp: &Fingerprint) -> Option<(usize, bool)> {
        let n = self.slots.len();
        let mut i = self.home(fp);
        for _ in 0..n {
            match &self.slots[i] {
                None => return Some((i, false)),
                Some((f, _)) if f == fp => return Some((i, true)),
                Some(_) => i = if i + 1 == n { 0 } else { i + 1 },
            }
        }
        None
    }

    /// Empties slot `hole` and shifts back the entries after it that would no longer be found.
    fn remove_at(&mut self, mut hole: usize) {
        let n = self.slots.len();
        self.slots[hole] = None;
        let mut j = hole;
        loop {
            j = if j + 1 == n { 0 } else { j + 1 };
            let Some((fp, _)) = &self.slots[j] else {
                return;
            };
            let home = self.home(fp);
            // The entry at `j` may stay if its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
        }
    }

    /// Puts `(fp, entry)` into an empty slot; the caller checked that `fp` is absent and a slot is free.
    fn place(&mut self, fp: Fingerprint, entry: Entry) {
        if let Some((i, _)) = self.probe(&fp) {
            self.slots[i] = Some((fp, entry));
        }
    }

    /// Rebuilds the shard with `n` slots from the entries it holds.
    fn rebuild(&mut self, n: usize) {
        let old = std::mem::replace(&mut self.slots, vec![None; n].into_boxed_slice());
        for (fp, entry) in old.iter().flatten() {
            self.place(*fp, *entry);
        }
    }
}

/// The storage of [`super::Table`].
pub(crate) struct Slots {
    shards: Box<[RwLock<Shard>]>,
    /// `64 - log2(shards)`; with one shard every fingerprint maps to it.
    shift: u32,
    /// Entries held (exact: only changed under a shard's write lock).
    len: AtomicUsize,
    /// Times a full shard had to double (see the module docs); logged when it happens.
    grown: AtomicU64,
}

impl Slots {
    /// Storage for up to `max_entries` entries at [`LOAD`].
    pub(crate) fn new(max_entries: usize) -> Slots {
        let slots = max_entries.max(1).saturating_mul(LOAD.1) / LOAD.0;
        let shards = (slots / (MIN_SHARD_SLOTS * 64))
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        let per_shard = slots.div_ceil(shards).max(MIN_SHARD_SLOTS);
        Slots {
            shards: (0..shards)
                .map(|_| RwLock::new(Shard::with_slots(per_shard)))
                .collect(),
            shift: 64 - shards.trailing_zeros(),
            len: AtomicUsize::new(0),
            grown: AtomicU64::new(0),
        }
    }

    fn shard(&self, fp: &Fingerprint) -> &RwLock<Shard> {
        if self.shards.len() == 1 {
            return &self.shards[0];
        }
        let head = u64::from_le_bytes(fp.as_bytes()[..8].try_into().unwrap_or([0; 8]));
        &self.shards[(head >> self.shift) as usize]
    }

    /// The entry of `fp`.
    pub(crate) fn get(&self, fp: &Fingerprint) -> Option<Entry> {
        let shard = self.shard(fp).read();
        match shard.probe(fp) {
            Some((i, true)) => shard.slots[i].map(|(_, e)| e),
            _ => None,
        }
    }

    /// Whether `fp` has an entry.
    pub(crate) fn contains(&self, fp: &Fingerprint) -> bool {
        self.get(fp).is_some()
    }

    /// Reads and changes the entry of `fp` under the shard's write lock: `change` sees `None` when there is
    /// none; leaving `Some` stores the value, leaving `None` removes it.
    pub(crate) fn update<R>(
        &self,
        fp: Fingerprint,
        change: impl FnOnce(&mut Option<Entry>) -> R,
    ) -> R {
        let mut shard = self.shard(&fp).write();
        let found = shard.probe(&fp);
        let mut current = match found {
            Some((i, true)) => shard.slots[i].map(|(_, e)| e),
            _ => None,
        };
        let result = change(&mut current);
        match (found, current) {
            (Some((i, true)), Some(entry)) => shard.slots[i] = Some((fp, entry)),
            (Some((i, true)), None) => {
                shard.remove_at(i);
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
            (Some((i, false)), Some(entry)) => {
                shard.slots[i] = Some((fp, entry));
                self.len.fetch_add(1, Ordering::Relaxed);
            }
            (None, Some(entry)) => {
                let n = shard.slots.len() * 2;
                shard.rebuild(n);
                let grown = self.grown.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    slots = n,
                    grown,
                    "a full shard of the learned table doubled"
                );
                shard.place(fp, entry);
                self.len.fetch_add(1, Ordering::Relaxed);
            }
            (_, None) => {}
        }
        result
    }

    /// Keeps the entries for which `keep` answers `true` (it may change them); returns how many were removed.
    /// Write-locks one shard at a time.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&Fingerprint, &mut Entry) -> bool) -> usize {
        let mut removed = 0;
        for lock in self.shards.iter() {
            let mut shard = lock.write();
            let mut gone = 0;
            for slot in shard.slots.iter_mut() {
                if let Some((fp, entry)) = slot {
                    if !keep(fp, entry) {
                        *slot = None;
                        gone += 1;
                    }
                }
            }
            if gone > 0 {
                // Holes break probe chains: put the survivors back where a probe finds them.
                let n = shard.slots.len();
                shard.rebuild(n);
                removed += gone;
            }
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Changes entries in place, one shard at a time.
    pub(crate) fn for_each_mut(&self, mut change: impl FnMut(&Fingerprint, &mut Entry)) {
        for lock in self.shards.iter() {
            for (fp, entry) in lock.write().slots.iter_mut().flatten() {
                change(fp, entry);
            }
        }
    }

    /// Shards, for [`Slots::copy_shard`].
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Replaces `out`'s contents with a copy of shard `i`'s entries (under its read lock).
    pub(crate) fn copy_shard(&self, i: usize, out: &mut Vec<(Fingerprint, Entry)>) {
        out.clear();
        if let Some(lock) = self.shards.get(i) {
            out.extend(lock.read().slots.iter().flatten().copied());
        }
    }

    /// Visits a copy of every entry, read-locking one shard at a time.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(Fingerprint, Entry)) {
        for lock in self.shards.iter() {
            for (fp, entry) in lock.read().slots.iter().flatten() {
                visit(*fp, *entry);
            }
        }
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Slots allocated, in all shards.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.read().slots.len()).sum()
    }

    /// Times a full shard doubled.
    #[cfg(test)]
    pub(crate) fn grown(&self) -> u64 {
        self.grown.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::{FingerprintKey, NodeId, NodeSet};
    use crate::oauth::CredentialKind;

    fn entry(n: u32) -> Entry {
        Entry::new(
            CredentialKind::AccessToken,
            NodeSet::single(NodeId::new(0).unwrap()),
            u64::from(n) + 1,
        )
    }

    fn fps(n: usize) -> Vec<Fingerprint> {
        let key = FingerprintKey::generate();
        (0..n).map(|i| key.fingerprint(&i.to_string())).collect()
    }

    fn insert(slots: &Slots, fp: Fingerprint, e: Entry) {
        slots.update(fp, |slot| *slot = Some(e));
    }

    #[test]
    fn entries_are_found_until_removed_through_any_churn() {
        let slots = Slots::new(2_000);
        let fps = fps(4_000);
        for (i, fp) in fps.iter().enumerate().take(2_000) {
            insert(&slots, *fp, entry(i as u32));
        }
        // Remove every third, insert the second half: clusters shift back and forth.
        for fp in fps.iter().take(2_000).step_by(3) {
            slots.update(*fp, |slot| *slot = None);
        }
        for (i, fp) in fps.iter().enumerate().skip(2_000).take(600) {
            insert(&slots, *fp, entry(i as u32));
        }
        for (i, fp) in fps.iter().enumerate() {
            let removed = i < 2_000 && i % 3 == 0;
            let expected = (i < 2_600 && !removed).then(|| entry(i as u32));
            assert_eq!(slots.get(fp), expected, "fingerprint {i}");
        }
        assert_eq!(slots.len(), 2_600 - (0..2_000).step_by(3).count());
        assert_eq!(slots.grown(), 0, "sized from the bound: no shard filled");
    }

    #[test]
    fn retain_removes_and_keeps_every_survivor_findable() {
        let slots = Slots::new(5_000);
        let fps = fps(5_000);
        for (i, fp) in fps.iter().enumerate() {
            insert(&slots, *fp, entry(i as u32));
        }
        let removed = slots.retain(|_, e| e.expires_at() % 2 == 0);
        assert_eq!(removed, 2_500);
        for (i, fp) in fps.iter().enumerate() {
            assert_eq!(slots.get(fp).is_some(), (i + 1) % 2 == 0, "fingerprint {i}");
        }
    }

    #[test]
    fn a_full_shard_doubles_instead_of_losing_an_entry() {
        let slots = Slots::new(1);
        let cap = slots.capacity();
        let fps = fps(cap * 3);
        for (i, fp) in fps.iter().enumerate() {
            insert(&slots, *fp, entry(i as u32));
        }
        assert!(slots.grown() > 0);
        assert!(fps.iter().all(|fp| slots.contains(fp)));
        assert_eq!(slots.len(), fps.len());
    }

    #[test]
    fn capacity_follows_the_bound_at_the_load_factor() {
        for max in [1usize, 100, 10_000, 1_000_000] {
            let cap = Slots::new(max).capacity();
            assert!(cap >= max * LOAD.1 / LOAD.0, "{max}: {cap}");
            assert!(
                cap <= (max * LOAD.1 / LOAD.0).max(MIN_SHARD_SLOTS) + MAX_SHARDS,
                "{max}: {cap}"
            );
        }
    }
}

//! The table's storage: a hash map from fingerprint to entry, sized once from `max_entries` so it never
//! rehashes on the request path, and read without a lock.
//!
//! Open addressing with linear probing, split into up to [`MAX_SHARDS`] shards. A slot is 32 bytes (four
//! atomic words: the fingerprint, the owner set, the expiry and kind), stored inline, so a lookup reads the
//! shard's version word and, nearly always, one cache line of slots. No hashing is done: a fingerprint is an
//! HMAC output, already uniform, so its first 8 bytes choose the shard and its last 8 the home slot (and
//! nobody without the key can aim at a slot).
//!
//! **Reads are optimistic (a sequence lock).** A writer holds the shard's mutex and makes its version odd
//! while it changes slots; a reader reads the version, probes with plain atomic loads, and keeps what it read
//! only if the version is the same even number afterwards. A lookup therefore writes no shared memory: no lock
//! word bounces between cores, and lookups that miss the cache overlap instead of queueing behind one another's
//! locked instructions. A reader that keeps finding a write under way waits on the mutex instead of spinning.
//!
//! Capacity is `max_entries` divided by [`LOAD`] (at least [`MIN_SHARD_SLOTS`] per shard): the table's
//! eviction keeps the count under `max_entries`, so probes stay short (a miss probes about 3.6 slots at load
//! 0.6, against 13 at 0.8). The slots never move, which is what lets a reader hold no lock. Should a shard
//! ever fill anyway (a burst of concurrent inserts past the bound), the entry goes to the shard's spill list,
//! searched under the mutex: counted and logged, a safety valve, not the design. Deletion shifts the following
//! cluster back (Knuth's algorithm R), so there are no tombstones and lookups never slow down with churn.
//!
//! Longer than 600 lines: half of it is tests, among them the race of lookups against writers that shows a
//! reader never keeps a torn slot.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::table::Entry;
use super::{Fingerprint, NodeSet};
use crate::oauth::CredentialKind;

/// The highest share of slots the table's bound lets the entries take.
pub(crate) const LOAD: (usize, usize) = (3, 5);
/// Shards at most (a power of two).
pub(crate) const MAX_SHARDS: usize = 64;
/// Slots a shard has at least, so a tiny table still spreads.
pub(crate) const MIN_SHARD_SLOTS: usize = 16;
/// Optimistic reads a lookup tries before it waits on the shard's mutex.
const OPTIMISTIC_READS: usize = 4;

/// One slot: the fingerprint's two words, the owner set, and `expires_at | (kind code) << 32`, where a kind
/// code of 0 marks the slot empty. Aligned to its size, so that no slot straddles two cache lines.
#[derive(Default)]
#[repr(align(32))]
struct Slot([AtomicU64; 4]);

const _: () = assert!(
    std::mem::size_of::<Slot>() == 32,
    "a slot must stay 32 bytes"
);

/// What a slot holds, as plain words.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Words([u64; 4]);

impl Words {
    const EMPTY: Words = Words([0; 4]);

    fn of(fp: &Fingerprint, entry: &Entry) -> Words {
        let (a, b) = fp_words(fp);
        let meta = u64::from(entry.expires_at() as u32) | (kind_code(entry.kind()) << 32);
        Words([a, b, entry.owners().bits(), meta])
    }

    /// The entry these words hold; `None` for an empty slot (or words no writer stored: a torn read, which
    /// the reader throws away).
    fn decode(self) -> Option<(Fingerprint, Entry)> {
        let kind = kind_of(self.0[3] >> 32)?;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.0[0].to_le_bytes());
        bytes[8..].copy_from_slice(&self.0[1].to_le_bytes());
        let entry = Entry::new(
            kind,
            NodeSet::from_bits(self.0[2]),
            self.0[3] & u64::from(u32::MAX),
        );
        Some((Fingerprint::from_bytes(bytes), entry))
    }
}

fn fp_words(fp: &Fingerprint) -> (u64, u64) {
    let b = fp.as_bytes();
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    (word(0), word(8))
}

/// Whether a slot's last word (`expires_at | (kind code) << 32`) marks it occupied.
fn occupied(meta: u64) -> bool {
    meta >> 32 != 0
}

fn kind_code(kind: CredentialKind) -> u64 {
    kind as u64 + 1
}

fn kind_of(code: u64) -> Option<CredentialKind> {
    let kind = *CredentialKind::ALL.get(usize::try_from(code).ok()?.checked_sub(1)?)?;
    (kind_code(kind) == code).then_some(kind)
}

impl Slot {
    fn occupied(&self) -> bool {
        occupied(self.0[3].load(Ordering::Relaxed))
    }

    fn load(&self) -> Words {
        Words(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }

    /// Stores `words`; only a writer holding the shard's mutex, inside its odd version, calls this.
    fn store(&self, words: Words) {
        for (cell, word) in self.0.iter().zip(words.0) {
            cell.store(word, Ordering::Relaxed);
        }
    }
}

/// Where a probe for a fingerprint ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Probe {
    /// In this slot.
    Found(usize),
    /// Absent from the slots; this empty slot is where it would go.
    Empty(usize),
    /// Absent from the slots, and none is empty.
    Full,
}

#[repr(align(64))]
struct Shard {
    /// Even when no write is under way; every write makes it odd, then even again.
    version: AtomicU64,
    /// Whether `spill` holds anything (read inside the version, so a lookup looks there only when it must).
    spilled: AtomicBool,
    slots: Box<[Slot]>,
    /// The write lock, and the entries that found no slot (see the module docs).
    spill: Mutex<Vec<(Fingerprint, Entry)>>,
}

impl Shard {
    fn with_slots(n: usize) -> Shard {
        Shard {
            version: AtomicU64::new(0),
            spilled: AtomicBool::new(false),
            slots: std::iter::repeat_with(Slot::default).take(n).collect(),
            spill: Mutex::new(Vec::new()),
        }
    }

    fn home(&self, tail: u64) -> usize {
        ((u128::from(tail) * self.slots.len() as u128) >> 64) as usize
    }

    /// Probes for the fingerprint with words `(a, b)`. Under a concurrent write this may read nonsense; the
    /// caller checks the version before it believes the answer.
    fn probe(&self, (a, b): (u64, u64)) -> Probe {
        let n = self.slots.len();
        let mut i = self.home(b);
        for _ in 0..n {
            let slot = &self.slots[i];
            if !slot.occupied() {
                return Probe::Empty(i);
            }
            if slot.0[0].load(Ordering::Relaxed) == a && slot.0[1].load(Ordering::Relaxed) == b {
                return Probe::Found(i);
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        Probe::Full
    }

    /// The entry of the fingerprint with words `w`, read without the mutex: `Err` when a write was under
    /// way (the answer may be torn) or when the entry may be in the spill list.
    fn read_optimistic(&self, w: (u64, u64)) -> Result<Option<Entry>, ()> {
        let before = self.version.load(Ordering::Acquire);
        if before & 1 == 1 {
            return Err(());
        }
        let found = match self.probe(w) {
            Probe::Found(i) => Some(self.slots[i].load()),
            Probe::Empty(_) | Probe::Full => None,
        };
        let spilled = self.spilled.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if self.version.load(Ordering::Relaxed) != before {
            return Err(());
        }
        match found {
            Some(words) => Ok(words.decode().map(|(_, e)| e)),
            None if spilled => Err(()),
            None => Ok(None),
        }
    }

    /// The entry of `fp`, read under the mutex.
    fn read_locked(&self, fp: &Fingerprint) -> Option<Entry> {
        let spill = self.spill.lock();
        self.find(fp, &spill).ok().map(|(_, e)| e)
    }

    /// Where `fp` is (a slot, or a place in the spill list) and its entry, or else where it would go; the
    /// caller holds the mutex.
    fn find(
        &self,
        fp: &Fingerprint,
        spill: &[(Fingerprint, Entry)],
    ) -> Result<(Place, Entry), Probe> {
        let probe = self.probe(fp_words(fp));
        let found = match probe {
            Probe::Found(i) => self.slots[i]
                .load()
                .decode()
                .map(|(_, e)| (Place::Slot(i), e)),
            Probe::Empty(_) | Probe::Full => spill
                .iter()
                .position(|(f, _)| f == fp)
                .map(|j| (Place::Spill(j), spill[j].1)),
        };
        found.ok_or(probe)
    }

    /// Runs `write` with the version odd, so that readers throw away what they read meanwhile. The caller holds
    /// the mutex.
    fn write<R>(&self, write: impl FnOnce() -> R) -> R {
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let result = write();
        self.version.store(v.wrapping_add(2), Ordering::Release);
        result
    }

    /// Empties slot `hole` and shifts back the entries after it that would no longer be found. Inside a write.
    fn remove_at(&self, mut hole: usize) {
        let n = self.slots.len();
        self.slots[hole].store(Words::EMPTY);
        let mut j = hole;
        loop {
            j = if j + 1 == n { 0 } else { j + 1 };
            let words = self.slots[j].load();
            if !occupied(words.0[3]) {
                return;
            }
            let home = self.home(words.0[1]);
            // The entry at `j` may stay if its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole].store(words);
                self.slots[j].store(Words::EMPTY);
                hole = j;
            }
        }
    }

    /// Puts `(fp, entry)` in its empty slot, or in the spill list when there is none; whether it spilled.
    /// Inside a write; the caller checked that `fp` is absent.
    fn place(&self, fp: Fingerprint, entry: Entry, spill: &mut Vec<(Fingerprint, Entry)>) -> bool {
        self.place_at(self.probe(fp_words(&fp)), fp, entry, spill)
    }

    /// [`Shard::place`] where a probe for `fp` ended at `probe`.
    fn place_at(
        &self,
        probe: Probe,
        fp: Fingerprint,
        entry: Entry,
        spill: &mut Vec<(Fingerprint, Entry)>,
    ) -> bool {
        match probe {
            Probe::Empty(i) | Probe::Found(i) => {
                self.slots[i].store(Words::of(&fp, &entry));
                false
            }
            Probe::Full => {
                spill.push((fp, entry));
                self.spilled.store(true, Ordering::Relaxed);
                true
            }
        }
    }
}

/// Where an entry sits in its shard.
#[derive(Clone, Copy)]
enum Place {
    Slot(usize),
    Spill(usize),
}

/// The storage of [`super::Table`].
pub(crate) struct Slots {
    shards: Box<[Shard]>,
    /// `64 - log2(shards)`; with one shard every fingerprint maps to it.
    shift: u32,
    /// Entries held (exact: only changed under a shard's mutex).
    len: AtomicUsize,
    /// Entries that found their shard full and went to its spill list (see the module docs).
    spills: AtomicU64,
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
            shards: (0..shards).map(|_| Shard::with_slots(per_shard)).collect(),
            shift: 64 - shards.trailing_zeros(),
            len: AtomicUsize::new(0),
            spills: AtomicU64::new(0),
        }
    }

    fn shard(&self, head: u64) -> &Shard {
        if self.shards.len() == 1 {
            return &self.shards[0];
        }
        &self.shards[(head >> self.shift) as usize]
    }

    /// The entry of `fp`. Writes no shared memory unless a writer keeps the shard busy (see the module docs).
    pub(crate) fn get(&self, fp: &Fingerprint) -> Option<Entry> {
        let w = fp_words(fp);
        let shard = self.shard(w.0);
        for _ in 0..OPTIMISTIC_READS {
            if let Ok(entry) = shard.read_optimistic(w) {
                return entry;
            }
            std::hint::spin_loop();
        }
        shard.read_locked(fp)
    }

    /// Whether `fp` has an entry.
    pub(crate) fn contains(&self, fp: &Fingerprint) -> bool {
        self.get(fp).is_some()
    }

    /// Reads and changes the entry of `fp` under the shard's mutex: `change` sees `None` when there is none;
    /// leaving `Some` stores the value, leaving `None` removes it.
    pub(crate) fn update<R>(
        &self,
        fp: Fingerprint,
        change: impl FnOnce(&mut Option<Entry>) -> R,
    ) -> R {
        let shard = self.shard(fp_words(&fp).0);
        let mut spill = shard.spill.lock();
        let found = shard.find(&fp, &spill);
        let mut current = found.ok().map(|(_, e)| e);
        let result = change(&mut current);
        if current == found.ok().map(|(_, e)| e) {
            return result;
        }
        shard.write(|| match (found, current) {
            (Ok((Place::Slot(i), _)), Some(entry)) => {
                shard.slots[i].store(Words::of(&fp, &entry));
            }
            (Ok((Place::Spill(j), _)), Some(entry)) => spill[j].1 = entry,
            (Ok((place, _)), None) => {
                match place {
                    Place::Slot(i) => shard.remove_at(i),
                    Place::Spill(j) => {
                        spill.swap_remove(j);
                        shard.spilled.store(!spill.is_empty(), Ordering::Relaxed);
                    }
                }
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
            (Err(probe), Some(entry)) => {
                if shard.place_at(probe, fp, entry, &mut spill) {
                    let spills = self.spills.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        slots = shard.slots.len(),
                        spills,
                        "a shard of the learned table is full: an entry went to its spill list"
                    );
                }
                self.len.fetch_add(1, Ordering::Relaxed);
            }
            (Err(_), None) => {}
        });
        result
    }

    /// Keeps the entries for which `keep` answers `true` (it may change them); returns how many were removed.
    /// Locks one shard at a time.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&Fingerprint, &mut Entry) -> bool) -> usize {
        let mut removed = 0;
        let mut kept = Vec::new();
        for shard in self.shards.iter() {
            let mut spill = shard.spill.lock();
            kept.clear();
            let mut changed = false;
            let mut gone = 0;
            let held = shard.slots.iter().filter_map(|s| s.load().decode());
            for (fp, mut entry) in held.chain(spill.iter().copied()) {
                let before = entry;
                if keep(&fp, &mut entry) {
                    changed |= entry != before;
                    kept.push((fp, entry));
                } else {
                    gone += 1;
                }
            }
            if gone > 0 || changed {
                // Holes break probe chains: put the survivors back where a probe finds them.
                spill.clear();
                shard.write(|| {
                    shard.slots.iter().for_each(|s| s.store(Words::EMPTY));
                    for (fp, entry) in kept.iter() {
                        shard.place(*fp, *entry, &mut spill);
                    }
                    shard.spilled.store(!spill.is_empty(), Ordering::Relaxed);
                });
            }
            removed += gone;
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Changes entries in place, one shard at a time.
    pub(crate) fn for_each_mut(&self, mut change: impl FnMut(&Fingerprint, &mut Entry)) {
        for shard in self.shards.iter() {
            let mut spill = shard.spill.lock();
            shard.write(|| {
                for slot in shard.slots.iter() {
                    if let Some((fp, mut entry)) = slot.load().decode() {
                        let before = entry;
                        change(&fp, &mut entry);
                        if entry != before {
                            slot.store(Words::of(&fp, &entry));
                        }
                    }
                }
                for (fp, entry) in spill.iter_mut() {
                    change(fp, entry);
                }
            });
        }
    }

    /// Shards, for [`Slots::copy_shard`].
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Replaces `out`'s contents with a copy of shard `i`'s entries (under its mutex).
    pub(crate) fn copy_shard(&self, i: usize, out: &mut Vec<(Fingerprint, Entry)>) {
        out.clear();
        if let Some(shard) = self.shards.get(i) {
            let spill = shard.spill.lock();
            out.extend(shard.slots.iter().filter_map(|s| s.load().decode()));
            out.extend(spill.iter().copied());
        }
    }

    /// Visits a copy of every entry, locking one shard at a time.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(Fingerprint, Entry)) {
        for shard in self.shards.iter() {
            let spill = shard.spill.lock();
            let held = shard.slots.iter().filter_map(|s| s.load().decode());
            held.chain(spill.iter().copied())
                .for_each(|(fp, entry)| visit(fp, entry));
        }
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Slots allocated, in all shards.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.slots.len()).sum()
    }

    /// Entries that went to a spill list.
    #[cfg(test)]
    pub(crate) fn spills(&self) -> u64 {
        self.spills.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::{FingerprintKey, NodeId};

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
        assert_eq!(slots.spills(), 0, "sized from the bound: no shard filled");
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

    /// The smallest table (one shard), filled with `times` its capacity: entry `i` expires at `i + 1`.
    fn overfilled(times: usize) -> (Slots, usize, Vec<Fingerprint>) {
        let slots = Slots::new(1);
        let cap = slots.capacity();
        let fps = fps(cap * times);
        for (i, fp) in fps.iter().enumerate() {
            insert(&slots, *fp, entry(i as u32));
        }
        (slots, cap, fps)
    }

    #[test]
    fn a_full_shard_spills_instead_of_losing_an_entry() {
        let (slots, cap, fps) = overfilled(3);
        assert_eq!(slots.spills(), (cap * 2) as u64);
        for (i, fp) in fps.iter().enumerate() {
            assert_eq!(slots.get(fp), Some(entry(i as u32)), "fingerprint {i}");
        }
        assert_eq!(slots.len(), fps.len());
        // Changed and removed wherever they sit, in a slot or spilled.
        for (i, fp) in fps.iter().enumerate() {
            if i % 2 == 0 {
                slots.update(*fp, |slot| *slot = None);
            } else {
                insert(&slots, *fp, entry(i as u32 + 1_000));
            }
        }
        for (i, fp) in fps.iter().enumerate() {
            let expected = (i % 2 == 1).then(|| entry(i as u32 + 1_000));
            assert_eq!(slots.get(fp), expected, "fingerprint {i}");
        }
        assert_eq!(slots.len(), fps.len() / 2);
    }

    #[test]
    fn retain_moves_spilled_survivors_back_into_freed_slots() {
        let (slots, cap, fps) = overfilled(2);
        // Keep the spilled half only: every survivor finds a slot again.
        let removed = slots.retain(|_, e| e.expires_at() > cap as u64);
        assert_eq!(removed, cap);
        let mut held = 0;
        slots.for_each(|_, _| held += 1);
        assert_eq!(held, cap);
        assert!(slots.shards[0].spill.lock().is_empty());
        assert!(!slots.shards[0].spilled.load(Ordering::Relaxed));
        for (i, fp) in fps.iter().enumerate() {
            assert_eq!(slots.get(fp).is_some(), i >= cap, "fingerprint {i}");
        }
    }

    #[test]
    fn every_kind_survives_its_slot_encoding() {
        for (i, kind) in CredentialKind::ALL.into_iter().enumerate() {
            let fp = Fingerprint::from_bytes([i as u8; 16]);
            let e = Entry::new(kind, NodeSet::from_bits(u64::MAX - i as u64), 4_000_000_000);
            assert_eq!(Words::of(&fp, &e).decode(), Some((fp, e)));
        }
        assert_eq!(Words::EMPTY.decode(), None);
        assert_eq!(kind_of(CredentialKind::ALL.len() as u64 + 1), None);
    }

    #[test]
    fn lookups_racing_writers_see_whole_entries_only() {
        // Each fingerprint's entry is rewritten with owners == expires_at; a torn read would show them apart.
        let slots = std::sync::Arc::new(Slots::new(64));
        let fps = fps(48);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let writer = {
            let (slots, fps, stop) = (slots.clone(), fps.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 1u32;
                while !stop.load(Ordering::Relaxed) {
                    for fp in fps.iter() {
                        let e = Entry::new(
                            CredentialKind::AccessToken,
                            NodeSet::from_bits(u64::from(n)),
                            u64::from(n),
                        );
                        if n % 7 == 0 {
                            slots.update(*fp, |slot| *slot = None);
                        } else {
                            insert(&slots, *fp, e);
                        }
                        n += 1;
                    }
                }
            })
        };
        let mut seen = 0;
        for _ in 0..20_000 {
            for fp in fps.iter() {
                if let Some(e) = slots.get(fp) {
                    assert_eq!(e.owners().bits(), e.expires_at(), "a torn entry");
                    seen += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(seen > 0);
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

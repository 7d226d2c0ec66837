//! The learned table: fingerprint → (kind, owner set, expiry).
//!
//! [`Table`] is one `Clone` handle over shared state. Reads on the per-request path ([`Table::lookup`]) take no
//! lock: they read one slot optimistically and check the shard's version (see [`Slots`]: 32-byte slots at load
//! 0.6, sized once from `max_entries`, never rehashed); writes, once per learning response or refresh, take the
//! shard's mutex. Nothing
//! here is async and no guard ever escapes a method, so no lock can be held across an `.await`.
//!
//! # Owner-set rules (BRIEF 2.1)
//!
//! - A token (anything whose [`Specificity`] is not `Key`) is honoured by its issuer only: learning it sets the
//!   owner set to `{issuer}`, replacing what was there.
//! - A key (consumer key, client id) spreads: learning it again on another node, or a successful refresh
//!   ([`Table::add_owner`]), adds that node.
//! - When an owner set becomes empty a token entry is dropped (nobody can honour it); a key entry is kept with
//!   an empty set, because "a known key nobody holds yet" tells the router to refresh a node first rather than
//!   fall back to the policy.
//!
//! # Persistence
//!
//! A table opened by [`crate::affinity::open_persistent`] carries a [`Journal`]: every mutation below that
//! changes routing appends its record before returning, holding the journal's mutex across the change so
//! the file's order is the order of effect (see [`crate::affinity::journal`]). [`Table::lookup`] never
//! touches it. A table from [`Table::new`] has no journal and behaves exactly as before.
//!
//! # Bounds and eviction
//!
//! At most `max_entries` entries (a few concurrent inserts may overshoot by one each). When an insert finds the
//! table full, one thread evicts a batch of about 1/32 of the capacity: the soonest-expiring entries, found by
//! sampling up to [`EVICTION_SAMPLE`] expiries across the whole map to estimate the cut-off, then one `retain`
//! pass that also drops anything already expired. That costs two passes over the map per
//! `max_entries / 32` inserts, i.e. O(1) amortised per insert, and happens only on a full table. (Sampling a
//! few shards instead would favour evicting whatever hashes to those shards.)
//!
//! Longer than 600 lines: a third of it is tests; the rest is one data structure and its bounded eviction.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::affinity::journal::{Journal, JournalStats, Record, Writer};
use crate::affinity::slots::Slots;
use crate::affinity::{Fingerprint, NodeId, NodeSet};
use crate::oauth::{CredentialKind, Specificity};

/// How many expiries eviction samples to choose its cut-off.
pub const EVICTION_SAMPLE: usize = 1024;

/// The current time in unix seconds, the clock every `now` argument of this module is read from.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the table knows about one credential. 16 bytes: the expiry is stored as `u32` unix seconds, which
/// lasts until 2106 (later times saturate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    owners: NodeSet,
    expires_at: u32,
    kind: CredentialKind,
}

impl Entry {
    /// An entry expiring at `expires_at` (unix seconds).
    pub fn new(kind: CredentialKind, owners: NodeSet, expires_at: u64) -> Entry {
        Entry {
            owners,
            expires_at: u32::try_from(expires_at).unwrap_or(u32::MAX),
            kind,
        }
    }

    /// What the credential is.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The nodes that can honour it.
    pub fn owners(&self) -> NodeSet {
        self.owners
    }

    /// When it expires, in unix seconds.
    pub fn expires_at(&self) -> u64 {
        u64::from(self.expires_at)
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at() <= now
    }

    fn is_key(&self) -> bool {
        self.kind.specificity() == Specificity::Key
    }
}

/// What [`Table::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    /// A new entry (or one replacing an expired entry).
    Inserted,
    /// A live token entry was replaced (new kind, or new issuer, or re-issued).
    Replaced,
    /// A live key entry gained the owner (or already had it) and its expiry was extended.
    OwnerAdded,
}

/// Counters and sizes, for metrics and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    /// Entries now (expired ones not yet swept included).
    pub len: usize,
    /// The bound.
    pub max_entries: usize,
    /// New entries since start.
    pub inserts: u64,
    /// Live entries removed to make room.
    pub evictions: u64,
    /// Expired entries removed (by the sweeper, eviction, or replacement).
    pub expiries: u64,
}

/// The operations routing and refresh need from the learned table: what a shared store (e.g. Redis behind a
/// local cache) implements to stand in for the in-process [`Table`]. Methods are synchronous because they sit
/// on the per-request path; a remote store answers them from its local copy and propagates writes in the
/// background. All instances sharing a store must share the fingerprint key.
pub trait AffinityStore: Send + Sync + fmt::Debug {
    /// The live entry of `fp`, if any.
    fn lookup(&self, fp: Fingerprint, now: u64) -> Option<Entry>;
    /// Records that `owner` issued (or, for a key, now holds) the credential with fingerprint `fp`.
    fn learn(
        &self,
        fp: Fingerprint,
        kind: CredentialKind,
        owner: NodeId,
        ttl: Duration,
        now: u64,
    ) -> LearnOutcome;
    /// Adds `node` to the owner set of `fp` (a refresh succeeded). Whether the entry exists.
    fn add_owner(&self, fp: Fingerprint, node: NodeId) -> bool;
    /// Removes `node` from the owner set of `fp` (it answered stale). Whether the entry existed.
    fn remove_owner(&self, fp: Fingerprint, node: NodeId) -> bool;
    /// Removes `node` from every owner set (it left the pool); an entry left with no owner is dropped. How
    /// many entries were dropped.
    fn remove_node(&self, node: NodeId) -> usize;
}

/// The in-process learned table; clone it freely, every clone is the same table.
#[derive(Clone)]
pub struct Table {
    shared: Arc<Shared>,
}

struct Shared {
    /// The entries: open addressing in shards, sized from `max_entries` (see [`Slots`]); lookups on the
    /// per-request path take no lock and read one cache line.
    map: Slots,
    max_entries: usize,
    /// Statistics only (relaxed ordering).
    inserts: AtomicU64,
    evictions: AtomicU64,
    expiries: AtomicU64,
    /// Set while one thread evicts, so that a burst of inserts on a full table runs one eviction, not many.
    evicting: AtomicBool,
    /// Set once, after replay, by [`Table::attach_journal`]; read (one atomic load) by mutations only.
    journal: OnceLock<Journal>,
}

impl Table {
    /// An empty table holding at most `max_entries` entries (at least one).
    pub fn new(max_entries: usize) -> Table {
        Table {
            shared: Arc::new(Shared {
                map: Slots::new(max_entries.max(1)),
                max_entries: max_entries.max(1),
                inserts: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
                expiries: AtomicU64::new(0),
                evicting: AtomicBool::new(false),
                journal: OnceLock::new(),
            }),
        }
    }

    /// The live entry of `fp` at `now`; an expired one reads as absent (the sweeper removes it).
    pub fn lookup(&self, fp: Fingerprint, now: u64) -> Option<Entry> {
        let entry = self.shared.map.get(&fp)?;
        (!entry.is_expired(now)).then_some(entry)
    }

    /// Records that `owner` answered with the credential `fp` of `kind`, valid for `ttl` from `now`. See the
    /// module docs for how owner sets change.
    pub fn learn(
        &self,
        fp: Fingerprint,
        kind: CredentialKind,
        owner: NodeId,
        ttl: Duration,
        now: u64,
    ) -> LearnOutcome {
        let s = &self.shared;
        let mut journal = self.journal_writer();
        let fresh = Entry::new(
            kind,
            NodeSet::single(owner),
            now.saturating_add(ttl.as_secs()),
        );
        if s.map.len() >= s.max_entries && !s.map.contains(&fp) {
            self.make_room(now);
        }
        let (outcome, stored) = s.map.update(fp, |slot| {
            let outcome = match slot {
                Some(entry) if entry.is_expired(now) => {
                    *entry = fresh;
                    s.expiries.fetch_add(1, Ordering::Relaxed);
                    s.inserts.fetch_add(1, Ordering::Relaxed);
                    LearnOutcome::Inserted
                }
                Some(entry) if entry.is_key() && entry.kind == kind => {
                    entry.owners = entry.owners.with(owner);
                    entry.expires_at = entry.expires_at.max(fresh.expires_at);
                    LearnOutcome::OwnerAdded
                }
                Some(entry) => {
                    *entry = fresh;
                    LearnOutcome::Replaced
                }
                None => {
                    *slot = Some(fresh);
                    s.inserts.fetch_add(1, Ordering::Relaxed);
                    LearnOutcome::Inserted
                }
            };
            (outcome, slot.unwrap_or(fresh))
        });
        if let Some(journal) = &mut journal {
            journal.put(fp, stored);
        }
        outcome
    }

    /// Adds `node` to the owner set of a live-or-expired entry `fp`. Whether the entry exists.
    pub fn add_owner(&self, fp: Fingerprint, node: NodeId) -> bool {
        let mut journal = self.journal_writer();
        let stored = self.shared.map.update(fp, |slot| {
            slot.as_mut().map(|entry| {
                entry.owners = entry.owners.with(node);
                *entry
            })
        });
        let Some(stored) = stored else {
            return false;
        };
        if let Some(journal) = &mut journal {
            journal.put(fp, stored);
        }
        true
    }

    /// Removes `node` from the owner set of `fp`; a token entry left with no owner is dropped. Whether the
    /// entry existed.
    pub fn remove_owner(&self, fp: Fingerprint, node: NodeId) -> bool {
        let mut journal = self.journal_writer();
        let (stored, removed) = self.shared.map.update(fp, |slot| {
            let Some(entry) = slot.as_mut() else {
                return (None, false);
            };
            entry.owners = entry.owners.without(node);
            let stored = *entry;
            let removed = entry.owners.is_empty() && !entry.is_key();
            if removed {
                *slot = None;
            }
            (Some(stored), removed)
        });
        if let (Some(journal), Some(entry)) = (&mut journal, stored) {
            if removed {
                journal.append(&Record::Delete { fp });
            } else {
                journal.put(fp, entry);
            }
        }
        stored.is_some()
    }

    /// Removes `node` from every owner set (the node left the pool); every entry left with no owner, consumer
    /// keys and client ids included, is dropped: nothing in the pool can be shown to hold it, and a key the
    /// shared repository still holds is learned again from the next registration, approval or refresh. (A
    /// stale answer, [`Table::remove_owner`], keeps an ownerless key known so that its next request refreshes
    /// a node first.) Returns how many entries were dropped. Visits the whole map: a reload-time operation.
    pub fn remove_node(&self, node: NodeId) -> usize {
        let mut journal = self.journal_writer();
        let dropped = self.shared.map.retain(|_, entry| {
            entry.owners = entry.owners.without(node);
            !entry.owners.is_empty()
        });
        if let Some(journal) = &mut journal {
            journal.append(&Record::RemoveNode { node });
        }
        dropped
    }

    /// Adds `node` to the owner set of every entry of one of `kinds` but those of `except`; returns how many
    /// entries it touched. Used after a node was refreshed: it then holds every key the shared repository held
    /// when the refresh started (`except`: keys registered or approved since). One pass over the table, so
    /// meant for rare events (refreshes), not the request path.
    pub fn add_owner_to_kinds(
        &self,
        node: NodeId,
        kinds: &[CredentialKind],
        except: &[Fingerprint],
    ) -> usize {
        let mut journal = self.journal_writer();
        let mut touched = 0;
        self.shared.map.for_each_mut(|fp, entry| {
            if kinds.contains(&entry.kind) && !entry.owners.contains(node) && !except.contains(fp) {
                entry.owners = entry.owners.with(node);
                touched += 1;
            }
        });
        if let Some(journal) = journal.as_mut().filter(|_| touched > 0) {
            journal.append(&Record::AddOwnerToKinds {
                node,
                kinds: kinds.to_vec(),
            });
            // The record adds `node` to every entry of `kinds` on replay: restore the exceptions after it.
            for &fp in except {
                match self.shared.map.get(&fp) {
                    Some(entry) => journal.put(fp, entry),
                    None => journal.append(&Record::Delete { fp }),
                }
            }
        }
        touched
    }

    /// Removes the entry of `fp` (admin). Whether there was one.
    pub fn forget(&self, fp: Fingerprint) -> bool {
        let mut journal = self.journal_writer();
        let removed = self.shared.map.update(fp, |slot| slot.take().is_some());
        if removed {
            if let Some(journal) = &mut journal {
                journal.append(&Record::Delete { fp });
            }
        }
        removed
    }

    /// Records in the journal, if any, that node ids mean these names from now on. Call when the pool changes
    /// (a reload), before requests can use a new id: a restarted proxy maps journalled owners by name.
    pub fn set_node_names(&self, names: &[(NodeId, String)]) {
        if let Some(journal) = &mut self.journal_writer() {
            journal.names(names);
        }
    }

    /// The journal's counters, when the table has one.
    pub fn journal_stats(&self) -> Option<JournalStats> {
        self.shared.journal.get().map(Journal::stats)
    }

    /// The journal, when the table has one.
    pub(crate) fn journal(&self) -> Option<&Journal> {
        self.shared.journal.get()
    }

    /// Makes every later mutation journalled. Called once, after the snapshot and journal were replayed into
    /// the table (replay itself must not write records). Whether it was attached (`false`: one already was).
    pub(crate) fn attach_journal(&self, journal: Journal) -> bool {
        self.shared.journal.set(journal).is_ok()
    }

    fn journal_writer(&self) -> Option<Writer<'_>> {
        self.shared.journal.get().map(Journal::writer)
    }

    /// Removes every entry expired at `now`; returns how many. Meant for a periodic sweeper task.
    pub fn sweep(&self, now: u64) -> usize {
        let expired = self.shared.map.retain(|_, entry| !entry.is_expired(now));
        self.shared
            .expiries
            .fetch_add(expired as u64, Ordering::Relaxed);
        expired
    }

    /// How many entries the table holds (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.shared.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters and sizes.
    pub fn stats(&self) -> TableStats {
        let s = &self.shared;
        TableStats {
            len: s.map.len(),
            max_entries: s.max_entries,
            inserts: s.inserts.load(Ordering::Relaxed),
            evictions: s.evictions.load(Ordering::Relaxed),
            expiries: s.expiries.load(Ordering::Relaxed),
        }
    }

    /// Entries per kind, in [`CredentialKind::ALL`] order. Visits the whole map: for metrics scrapes, not for
    /// the request path.
    pub fn len_by_kind(&self) -> [(CredentialKind, usize); CredentialKind::ALL.len()] {
        let mut counts = CredentialKind::ALL.map(|k| (k, 0));
        self.shared
            .map
            .for_each(|_, entry| counts[entry.kind.index()].1 += 1);
        counts
    }

    /// A copy of every entry (fingerprints only, never credentials), for snapshots and the admin API. Copied
    /// out one shard at a time, so that no shard lock outlives a step and a snapshot of a million entries never
    /// holds a second copy of the whole table (1/64 of it at most).
    pub fn entries(&self) -> impl Iterator<Item = (Fingerprint, Entry)> {
        let table = self.clone();
        let mut shard = 0;
        let mut chunk: Vec<(Fingerprint, Entry)> = Vec::new();
        let mut next = 0;
        std::iter::from_fn(move || loop {
            if let Some(&item) = chunk.get(next) {
                next += 1;
                return Some(item);
            }
            if shard == table.shared.map.shard_count() {
                return None;
            }
            table.shared.map.copy_shard(shard, &mut chunk);
            shard += 1;
            next = 0;
        })
    }

    /// Sets the entry of `fp` to what the shared store holds (a change another instance made, or a read-through
    /// on a local miss), replacing what this table knew; an expired entry removes it. Not counted as an insert:
    /// another instance counted it when it learned it.
    pub(crate) fn put(&self, fp: Fingerprint, entry: Entry, now: u64) {
        if entry.is_expired(now) {
            self.forget(fp);
            return;
        }
        self.replay_put(fp, entry, now);
    }

    /// Puts a restored entry back (snapshot load) unless the table is full or already knows `fp`. Whether it
    /// was added. Not counted as an insert: it was learned before.
    pub(crate) fn restore(&self, fp: Fingerprint, entry: Entry) -> bool {
        let s = &self.shared;
        if s.map.len() >= s.max_entries {
            return false;
        }
        s.map.update(fp, |slot| match slot {
            Some(_) => false,
            None => {
                *slot = Some(entry);
                true
            }
        })
    }

    /// Sets the entry of `fp` to `entry` (journal replay): replaces what is there, or inserts it, making room
    /// as [`Table::learn`] does when the table is full. Not counted as an insert: it was learned before.
    pub(crate) fn replay_put(&self, fp: Fingerprint, entry: Entry, now: u64) {
        let s = &self.shared;
        if s.map.len() >= s.max_entries && !s.map.contains(&fp) {
            self.make_room(now);
        }
        s.map.update(fp, |slot| *slot = Some(entry));
    }

    /// Evicts a batch of the soonest-expiring entries (see the module docs).
    fn make_room(&self, now: u64) {
        let s = &self.shared;
        if s.evicting
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return; // another thread is making room; this insert may overshoot by one
        }
        let len = s.map.len().max(1);
        let batch = (s.max_entries / 32).max(1);
        let stride = len.div_ceil(EVICTION_SAMPLE).max(1);
        let mut sample = Vec::with_capacity(EVICTION_SAMPLE + 1);
        let mut nth = 0usize;
        s.map.for_each(|_, entry| {
            if nth % stride == 0 {
                sample.push(entry.expires_at);
            }
            nth += 1;
        });
        sample.sort_unstable();
        // The expiry below which about `batch` of `len` entries lie.
        let cut = sample
            .get(
                (sample.len() * batch)
                    .div_ceil(len)
                    .min(sample.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or(u32::MAX);

        let (mut evicted, mut expired) = (0usize, 0usize);
        s.map.retain(|_, entry| {
            if entry.is_expired(now) {
                expired += 1;
                false
            } else if evicted < batch && entry.expires_at <= cut {
                evicted += 1;
                false
            } else {
                true
            }
        });
        s.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
        s.expiries.fetch_add(expired as u64, Ordering::Relaxed);
        s.evicting.store(false, Ordering::Release);
    }
}

impl fmt::Debug for Table {
    /// Sizes and counters only: a table can hold millions of entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("stats", &self.stats())
            .finish()
    }
}

impl AffinityStore for Table {
    fn lookup(&self, fp: Fingerprint, now: u64) -> Option<Entry> {
        Table::lookup(self, fp, now)
    }

    fn learn(
        &self,
        fp: Fingerprint,
        kind: CredentialKind,
        owner: NodeId,
        ttl: Duration,
        now: u64,
    ) -> LearnOutcome {
        Table::learn(self, fp, kind, owner, ttl, now)
    }

    fn add_owner(&self, fp: Fingerprint, node: NodeId) -> bool {
        Table::add_owner(self, fp, node)
    }

    fn remove_owner(&self, fp: Fingerprint, node: NodeId) -> bool {
        Table::remove_owner(self, fp, node)
    }

    fn remove_node(&self, node: NodeId) -> usize {
        Table::remove_node(self, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const HOUR: Duration = Duration::from_secs(3600);

    fn fp(i: u32) -> Fingerprint {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        Fingerprint::from_bytes(bytes)
    }

    fn node(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn set(ids: &[usize]) -> NodeSet {
        ids.iter().map(|&i| node(i)).collect()
    }

    #[test]
    fn entry_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        assert_eq!(std::mem::size_of::<(Fingerprint, Entry)>(), 32);
    }

    #[test]
    fn learned_entry_is_found_until_it_expires() {
        let table = Table::new(10);
        assert_eq!(
            table.learn(fp(1), CredentialKind::RequestToken, node(2), HOUR, NOW),
            LearnOutcome::Inserted
        );
        let entry = table.lookup(fp(1), NOW).unwrap();
        assert_eq!(entry.kind(), CredentialKind::RequestToken);
        assert_eq!(entry.owners(), set(&[2]));
        assert_eq!(entry.expires_at(), NOW + 3600);
        assert!(table.lookup(fp(1), NOW + 3599).is_some());
        assert!(table.lookup(fp(1), NOW + 3600).is_none());
        assert!(table.lookup(fp(2), NOW).is_none());
    }

    #[test]
    fn owner_sets_follow_the_kind_rules() {
        use CredentialKind::*;
        // (kind learned first by node 0, kind learned then by node 1, owners after, outcome)
        let cases = [
            (
                ConsumerKey,
                ConsumerKey,
                &[0, 1][..],
                LearnOutcome::OwnerAdded,
            ),
            (ClientId, ClientId, &[0, 1][..], LearnOutcome::OwnerAdded),
            (RequestToken, RequestToken, &[1][..], LearnOutcome::Replaced),
            (AccessToken, AccessToken, &[1][..], LearnOutcome::Replaced),
            (
                SessionCookie,
                SessionCookie,
                &[1][..],
                LearnOutcome::Replaced,
            ),
            (ConsumerKey, AccessToken, &[1][..], LearnOutcome::Replaced),
            (RequestToken, ConsumerKey, &[1][..], LearnOutcome::Replaced),
            (ConsumerKey, ClientId, &[1][..], LearnOutcome::Replaced),
        ];
        for (first, then, owners, outcome) in cases {
            let table = Table::new(10);
            table.learn(fp(1), first, node(0), HOUR, NOW);
            assert_eq!(table.learn(fp(1), then, node(1), HOUR, NOW), outcome);
            let entry = table.lookup(fp(1), NOW).unwrap();
            assert_eq!(
                (entry.kind(), entry.owners()),
                (then, set(owners)),
                "{first:?} {then:?}"
            );
            assert_eq!(table.len(), 1);
        }
    }

    #[test]
    fn relearning_a_key_extends_its_expiry_and_an_expired_entry_starts_over() {
        let table = Table::new(10);
        table.learn(fp(1), CredentialKind::ConsumerKey, node(0), HOUR, NOW);
        table.learn(fp(1), CredentialKind::ConsumerKey, node(1), HOUR, NOW + 100);
        assert_eq!(table.lookup(fp(1), NOW).unwrap().expires_at(), NOW + 3700);
        let later = NOW + 10_000;
        assert_eq!(
            table.learn(fp(1), CredentialKind::ConsumerKey, node(2), HOUR, later),
            LearnOutcome::Inserted
        );
        assert_eq!(table.lookup(fp(1), later).unwrap().owners(), set(&[2]));
        assert_eq!(table.stats().expiries, 1);
    }

    #[test]
    fn owners_are_added_and_removed_and_empty_tokens_dropped() {
        let table = Table::new(10);
        table.learn(fp(1), CredentialKind::ConsumerKey, node(0), HOUR, NOW);
        table.learn(fp(2), CredentialKind::AccessToken, node(0), HOUR, NOW);
        assert!(table.add_owner(fp(1), node(3)));
        assert!(!table.add_owner(fp(9), node(3)));
        assert_eq!(table.lookup(fp(1), NOW).unwrap().owners(), set(&[0, 3]));

        assert!(table.remove_owner(fp(1), node(0)));
        assert!(table.remove_owner(fp(1), node(3)));
        let key = table.lookup(fp(1), NOW).unwrap();
        assert!(key.owners().is_empty(), "a key stays known with no owner");

        assert!(table.remove_owner(fp(2), node(0)));
        assert!(table.lookup(fp(2), NOW).is_none());
        assert!(!table.remove_owner(fp(2), node(0)));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn removing_a_node_strips_it_everywhere_and_drops_what_it_alone_owned() {
        let table = Table::new(10);
        table.learn(fp(1), CredentialKind::ConsumerKey, node(0), HOUR, NOW);
        table.learn(fp(1), CredentialKind::ConsumerKey, node(1), HOUR, NOW);
        table.learn(fp(2), CredentialKind::AccessToken, node(1), HOUR, NOW);
        table.learn(fp(3), CredentialKind::SessionCookie, node(2), HOUR, NOW);
        table.learn(fp(4), CredentialKind::ClientId, node(1), HOUR, NOW);
        table.learn(fp(5), CredentialKind::ConsumerKey, node(1), HOUR, NOW);
        assert_eq!(table.remove_node(node(1)), 3);
        assert_eq!(table.lookup(fp(1), NOW).unwrap().owners(), set(&[0]));
        assert!(table.lookup(fp(2), NOW).is_none());
        assert_eq!(table.lookup(fp(3), NOW).unwrap().owners(), set(&[2]));
        assert!(
            table.lookup(fp(4), NOW).is_none(),
            "a client id it alone held"
        );
        assert!(
            table.lookup(fp(5), NOW).is_none(),
            "a consumer key it alone held"
        );
        assert!(table.entries().all(|(_, e)| !e.owners().is_empty()));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn sweep_removes_and_counts_only_expired_entries() {
        let table = Table::new(100);
        for i in 0..10 {
            let ttl = Duration::from_secs(if i % 2 == 0 { 10 } else { 1000 });
            table.learn(fp(i), CredentialKind::Code, node(0), ttl, NOW);
        }
        assert_eq!(table.sweep(NOW + 5), 0);
        assert_eq!(table.sweep(NOW + 10), 5);
        assert_eq!(table.len(), 5);
        assert_eq!(table.stats().expiries, 5);
        assert_eq!(table.sweep(NOW + 10), 0);
    }

    #[test]
    fn full_table_evicts_the_soonest_expiring_and_counts_it() {
        let max = 320;
        let table = Table::new(max);
        for i in 0..(3 * max as u32) {
            // Later inserts expire later.
            let ttl = Duration::from_secs(1000 + u64::from(i));
            table.learn(fp(i), CredentialKind::AccessToken, node(0), ttl, NOW);
            assert!(table.len() <= max, "{} entries after {i}", table.len());
        }
        let stats = table.stats();
        assert_eq!(stats.inserts, 3 * max as u64);
        assert_eq!(stats.evictions as usize + stats.len, 3 * max);
        assert!(stats.len >= max - max / 32, "{stats:?}");
        assert!(table.lookup(fp(3 * max as u32 - 1), NOW).is_some());
        assert!(table.lookup(fp(0), NOW).is_none());
    }

    #[test]
    fn full_table_prefers_dropping_expired_entries() {
        let table = Table::new(64);
        for i in 0..64 {
            table.learn(
                fp(i),
                CredentialKind::Verifier,
                node(0),
                Duration::from_secs(10),
                NOW,
            );
        }
        table.learn(fp(100), CredentialKind::Verifier, node(0), HOUR, NOW + 20);
        let stats = table.stats();
        assert_eq!((stats.len, stats.evictions, stats.expiries), (1, 0, 64));
    }

    #[test]
    fn counts_by_kind_and_entries_show_fingerprints() {
        let table = Table::new(10);
        table.learn(fp(1), CredentialKind::ConsumerKey, node(0), HOUR, NOW);
        table.learn(fp(2), CredentialKind::AccessToken, node(0), HOUR, NOW);
        table.learn(fp(3), CredentialKind::AccessToken, node(1), HOUR, NOW);
        let counts = table.len_by_kind();
        assert_eq!(
            counts[CredentialKind::AccessToken.index()],
            (CredentialKind::AccessToken, 2)
        );
        assert_eq!(counts[CredentialKind::ConsumerKey.index()].1, 1);
        assert_eq!(counts.iter().map(|c| c.1).sum::<usize>(), 3);
        let mut fps: Vec<Fingerprint> = table.entries().map(|(f, _)| f).collect();
        fps.sort();
        assert_eq!(fps, [fp(1), fp(2), fp(3)]);
        assert!(format!("{table:?}").contains("len: 3"));
    }

    #[test]
    fn clones_share_one_table_across_threads() {
        let table = Table::new(100_000);
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let table = table.clone();
                scope.spawn(move || {
                    for i in 0..1000 {
                        table.learn(
                            fp(t * 1000 + i),
                            CredentialKind::Code,
                            node(t as usize),
                            HOUR,
                            NOW,
                        );
                    }
                });
            }
        });
        assert_eq!(table.len(), 4000);
        assert_eq!(table.shared.map.len(), 4000);
    }

    #[test]
    fn trait_object_works_over_the_table() {
        let store: Box<dyn AffinityStore> = Box::new(Table::new(4));
        store.learn(fp(1), CredentialKind::ClientId, node(0), HOUR, NOW);
        assert!(store.add_owner(fp(1), node(1)));
        assert_eq!(store.lookup(fp(1), NOW).unwrap().owners(), set(&[0, 1]));
        assert!(store.remove_owner(fp(1), node(0)));
        assert_eq!(store.remove_node(node(1)), 1);
    }

    #[test]
    fn put_replaces_whatever_was_known_and_an_expired_put_forgets() {
        let table = Table::new(10);
        table.learn(fp(1), CredentialKind::ConsumerKey, node(0), HOUR, NOW);
        table.put(
            fp(1),
            Entry::new(CredentialKind::ConsumerKey, set(&[2]), NOW + 10),
            NOW,
        );
        assert_eq!(table.lookup(fp(1), NOW).unwrap().owners(), set(&[2]));
        table.put(
            fp(2),
            Entry::new(CredentialKind::Code, set(&[1]), NOW + 10),
            NOW,
        );
        assert_eq!(table.len(), 2);
        table.put(
            fp(1),
            Entry::new(CredentialKind::ConsumerKey, set(&[2]), NOW),
            NOW,
        );
        assert!(table.lookup(fp(1), NOW).is_none());
        assert_eq!(table.len(), 1);
        assert_eq!(table.stats().inserts, 1);
    }

    #[test]
    fn far_future_expiry_saturates() {
        let table = Table::new(1);
        table.learn(
            fp(1),
            CredentialKind::RefreshToken,
            node(0),
            Duration::MAX,
            NOW,
        );
        assert_eq!(
            table.lookup(fp(1), NOW).unwrap().expires_at(),
            u64::from(u32::MAX)
        );
    }
}

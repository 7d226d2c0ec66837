//! The learned table: credential fingerprints → owner sets, and its persistence.
//!
//! - [`fingerprint`]: HMAC-SHA256 fingerprints under a secret key; the table never sees a raw credential.
//! - [`owners`]: node ids and owner sets as 64-bit bitsets.
//! - [`table`]: the bounded, sharded in-process table with TTLs, eviction and counters, and the
//!   [`AffinityStore`] interface a shared store would implement.
//! - [`snapshot`]: saving and restoring the table across restarts (owners by node name, key beside it).
//! - [`journal`]: the append-only journal beside the snapshot, so that `kill -9` loses nothing learned;
//!   compacted into each snapshot. [`open_persistent`] opens snapshot and journal together.
//! - [`redis_store`]: the table shared between instances through Redis, with this table as the local cache.
//!
//! Entries are learned only from backend responses (see [`crate::oauth::response`]); request data is only
//! ever looked up.

mod files;
pub mod fingerprint;
pub mod journal;
pub mod owners;
mod persist;
pub mod redis_store;
mod slots;
pub mod snapshot;
pub mod table;

pub use fingerprint::{Fingerprint, FingerprintKey};
pub use owners::{NodeId, NodeSet, MAX_NODES};
pub use persist::{open_persistent, open_persistent_with_key, RestoreReport};
pub use redis_store::{RedisSettings, RedisStore, StoreError, StoreStats};
pub use table::{unix_now, AffinityStore, Entry, LearnOutcome, Table, TableStats};

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong with the fingerprint key or a snapshot.
#[derive(Debug, Error)]
pub enum AffinityError {
    /// Reading or writing a file failed.
    #[error("cannot read or write {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file can be read by group or others: refused, since the key lets one test guesses against a
    /// snapshot.
    #[error("{} is accessible by group or others (mode {mode:o}); run `chmod 600` on it", path.display())]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold 64 hex digits. It is never replaced automatically: that would silently
    /// invalidate the snapshot beside it.
    #[error("{} does not hold a fingerprint key (64 hex digits)", path.display())]
    KeyMalformed {
        /// The key file.
        path: PathBuf,
    },
    /// A key given as text is not 64 hex digits.
    #[error("a fingerprint key must be 64 hex digits")]
    InvalidKey,
    /// The snapshot's header is unreadable or not a tokenroute snapshot.
    #[error("{}: {reason}", path.display())]
    SnapshotFormat {
        /// The snapshot.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The snapshot was written by a version of tokenroute whose format this one does not read.
    #[error("{} has snapshot format version {version}, this build reads version {}", path.display(), snapshot::VERSION)]
    SnapshotVersion {
        /// The snapshot.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// The shared store could not be set up.
    #[error("cannot share the learned table through Redis")]
    Store(#[source] StoreError),
    /// The snapshot or journal segment was written under another fingerprint key, so none of its
    /// fingerprints can match.
    #[error("{} was written with another fingerprint key", path.display())]
    KeyMismatch {
        /// The snapshot or journal segment.
        path: PathBuf,
    },
    /// A journal segment was written by a version of tokenroute whose format this one does not read. Refused
    /// rather than truncated, so that a downgrade never destroys what a newer version recorded.
    #[error("{} has journal format version {version}, this build reads version {}", path.display(), journal::record::VERSION)]
    JournalVersion {
        /// The segment.
        path: PathBuf,
        /// Its version.
        version: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{extract_request, Preset, Rules};
    use http::Request;

    /// BRIEF 2.1: nothing a client sends inserts an entry. Requests carrying 100 000 distinct unknown
    /// credentials in every place go through extraction and lookup, as the proxy does, and the table stays
    /// exactly as it was.
    #[test]
    fn unknown_credentials_never_grow_the_table() {
        let rules = Rules::from_presets(&[Preset::Oslc, Preset::OAuth2]);
        let key = FingerprintKey::generate();
        let table = Table::new(1_000);
        let now = 1_700_000_000;
        let issuer = NodeId::new(0).unwrap();
        let known = key.fingerprint("known-key");
        table.learn(
            known,
            crate::oauth::CredentialKind::ConsumerKey,
            issuer,
            rules.ttl(crate::oauth::CredentialKind::ConsumerKey),
            now,
        );
        let before = table.stats();

        let mut lookups = 0usize;
        for i in 0..100_000u32 {
            let (parts, body) = Request::builder()
                .method("POST")
                .uri(format!("/cqweb/oauth-access-token?oauth_verifier=v{i}"))
                .header(
                    "authorization",
                    format!("OAuth oauth_consumer_key=\"ck{i}\", oauth_token=\"t{i}\""),
                )
                .header("cookie", format!("JSESSIONID=s{i}:c1"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("oauth_token=t{i}"))
                .unwrap()
                .into_parts();
            let creds = extract_request(&parts, Some(body.as_bytes()), &rules);
            assert_eq!(creds.candidates.len(), 4);
            for candidate in &creds.candidates {
                let fp = key.fingerprint(candidate.value.expose());
                assert!(table.lookup(fp, now).is_none());
                lookups += 1;
            }
        }
        assert_eq!(lookups, 400_000);
        assert_eq!(table.stats(), before);
        assert_eq!(table.len(), 1);
        assert!(table.lookup(known, now).is_some());
    }
}

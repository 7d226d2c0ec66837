//! The repository every node of a cluster shares (ClearQuest's schema repository database): consumer keys
//! with their secrets and approval state, and users.
//!
//! Nodes read it only at the moments the real product does (node start, login, approval); everything else a
//! node knows lives in its own memory (see [`super::node`]).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::secret::Secret;

/// The administrator the stand-in knows by default.
pub const ADMIN_USER: &str = "admin";
/// The administrator's password.
pub const ADMIN_PASSWORD: &str = "admin-pass";
/// An ordinary user who authorizes request tokens.
pub const USER: &str = "alice";
/// The ordinary user's password.
pub const USER_PASSWORD: &str = "alice-pass";

/// One consumer key ("friendship") as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The name the consumer registered with.
    pub name: String,
    /// The consumer secret.
    pub secret: Secret,
    /// `false` while provisional, `true` once an administrator approved it.
    pub approved: bool,
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Whether the user may approve consumer keys.
    pub admin: bool,
}

#[derive(Debug)]
struct UserRecord {
    password: Secret,
    admin: bool,
}

/// The shared repository. Cheap operations under `std::sync::Mutex`es that are never held across `.await`:
/// nodes touch it on registration, approval and login only, never per protected request.
#[derive(Debug, Default)]
pub struct Repository {
    /// Consumer key → record.
    consumers: Mutex<HashMap<String, ConsumerRecord>>,
    /// User name → password and rights.
    users: Mutex<HashMap<String, UserRecord>>,
}

impl Repository {
    /// A repository with no users and no keys.
    pub fn empty() -> Self {
        Repository::default()
    }

    /// A repository with the demo users [`ADMIN_USER`] (an administrator) and [`USER`].
    pub fn with_demo_users() -> Self {
        let repo = Repository::default();
        repo.add_user(ADMIN_USER, Secret::new(ADMIN_PASSWORD), true);
        repo.add_user(USER, Secret::new(USER_PASSWORD), false);
        repo
    }

    /// Adds or replaces a user.
    pub fn add_user(&self, name: &str, password: Secret, admin: bool) {
        lock(&self.users).insert(name.to_string(), UserRecord { password, admin });
    }

    /// Checks a user's password (compared in constant time).
    pub fn authenticate(&self, name: &str, password: &str) -> Option<User> {
        let users = lock(&self.users);
        let record = users.get(name)?;
        constant_time_eq(record.password.expose().as_bytes(), password.as_bytes()).then(|| User {
            name: name.to_string(),
            admin: record.admin,
        })
    }

    /// Stores a new consumer key, provisional.
    pub fn insert_consumer(&self, key: &str, name: &str, secret: Secret) -> ConsumerRecord {
        let record = ConsumerRecord {
            name: name.to_string(),
            secret,
            approved: false,
        };
        lock(&self.consumers).insert(key.to_string(), record.clone());
        record
    }

    /// Marks a key approved; `false` if the repository does not know it.
    pub fn approve(&self, key: &str) -> bool {
        match lock(&self.consumers).get_mut(key) {
            Some(record) => {
                record.approved = true;
                true
            }
            None => false,
        }
    }

    /// One key's record.
    pub fn consumer(&self, key: &str) -> Option<ConsumerRecord> {
        lock(&self.consumers).get(key).cloned()
    }

    /// A snapshot of every key, which is what a node loads into its registry.
    pub fn consumers(&self) -> HashMap<String, ConsumerRecord> {
        lock(&self.consumers).clone()
    }
}

/// A poisoned lock only means another thread panicked mid-update of a plain map; the map is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_users_authenticate_with_their_rights() {
        let repo = Repository::with_demo_users();
        assert!(repo.authenticate(ADMIN_USER, ADMIN_PASSWORD).unwrap().admin);
        assert!(!repo.authenticate(USER, USER_PASSWORD).unwrap().admin);
        assert_eq!(repo.authenticate(USER, "wrong"), None);
        assert_eq!(repo.authenticate("nobody", USER_PASSWORD), None);
    }

    #[test]
    fn keys_start_provisional_and_can_be_approved() {
        let repo = Repository::empty();
        repo.insert_consumer("k", "rtc", Secret::new("s"));
        assert!(!repo.consumer("k").unwrap().approved);
        assert!(repo.approve("k"));
        assert!(repo.consumer("k").unwrap().approved);
        assert!(!repo.approve("missing"));
    }
}

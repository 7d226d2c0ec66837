//! What one authorization-server node keeps in its own memory, and the bookkeeping on it that involves no
//! HTTP: issuing and rotating tokens, consuming codes, device-code state. Nothing here is shared between
//! nodes; a restart loses it all, like an in-memory store of a widely used OAuth 2 library.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::wire::ClientMetadata;
use crate::secret::Secret;
use crate::sim::random_hex;

/// A registered client (RFC 7591).
#[derive(Debug, Clone)]
pub(super) struct Client {
    pub(super) secret: Secret,
    pub(super) registration_token: Secret,
    pub(super) issued_at: u64,
    pub(super) metadata: ClientMetadata,
}

impl Client {
    pub(super) fn auth_method(&self) -> &str {
        self.metadata
            .token_endpoint_auth_method
            .as_deref()
            .unwrap_or(super::wire::auth_method::BASIC)
    }

    pub(super) fn allows_grant(&self, grant_type: &str) -> bool {
        self.metadata.grant_types.iter().any(|g| g == grant_type)
    }
}

/// The parameters of an authorization request, from the query or from a pushed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AuthorizationRequest {
    pub(super) client_id: String,
    pub(super) response_type: String,
    pub(super) redirect_uri: String,
    pub(super) scope: String,
    pub(super) state: Option<String>,
    pub(super) nonce: Option<String>,
    pub(super) code_challenge: Option<String>,
    pub(super) code_challenge_method: Option<String>,
}

/// A pushed authorization request (RFC 9126), usable once until it expires.
#[derive(Debug, Clone)]
pub(super) struct Pushed {
    pub(super) request: AuthorizationRequest,
    pub(super) expires_at: Instant,
}

/// An authorization code and what it was issued for.
#[derive(Debug, Clone)]
pub(super) struct CodeGrant {
    pub(super) request: AuthorizationRequest,
    pub(super) user: String,
    pub(super) sid: String,
    pub(super) auth_time: u64,
    pub(super) expires_at: Instant,
    /// Set by the first exchange: a second one is refused and revokes these tokens (RFC 6749 §4.1.2).
    pub(super) issued: Option<(String, Option<String>)>,
}

/// What a token was issued for: the client, the user (none for client credentials) and the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grant {
    pub(super) client_id: String,
    pub(super) user: Option<String>,
    pub(super) scope: String,
}

#[derive(Debug, Clone)]
pub(super) struct AccessGrant {
    pub(super) grant: Grant,
    pub(super) expires_at: Instant,
    pub(super) exp_unix: u64,
}

/// Where a device authorization stands (RFC 8628).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DeviceState {
    Pending,
    Approved(String),
    Denied,
}

#[derive(Debug, Clone)]
pub(super) struct DeviceGrant {
    pub(super) client_id: String,
    pub(super) user_code: String,
    pub(super) scope: String,
    pub(super) state: DeviceState,
    pub(super) expires_at: Instant,
    pub(super) last_poll: Option<Instant>,
}

/// A browser session at this node.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) user: String,
}

/// Tokens issued together.
#[derive(Debug, Clone)]
pub(super) struct Issued {
    pub(super) access_token: String,
    pub(super) refresh_token: Option<String>,
    pub(super) expires_in: u64,
}

/// The node's memory. Held under one mutex by the node; every method is synchronous.
#[derive(Default)]
pub(super) struct Memory {
    pub(super) clients: HashMap<String, Client>,
    pub(super) pushed: HashMap<String, Pushed>,
    pub(super) codes: HashMap<String, CodeGrant>,
    pub(super) access: HashMap<String, AccessGrant>,
    pub(super) refresh: HashMap<String, Grant>,
    /// Device code → grant.
    pub(super) devices: HashMap<String, DeviceGrant>,
    /// Normalised user code → device code.
    pub(super) user_codes: HashMap<String, String>,
    pub(super) sessions: HashMap<String, Session>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only sizes: the maps are keyed by credentials.
        f.debug_struct("Memory")
            .field("clients", &self.clients.len())
            .field("access_tokens", &self.access.len())
            .field("refresh_tokens", &self.refresh.len())
            .finish_non_exhaustive()
    }
}

/// What RFC 7009 revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Revoked {
    AccessToken,
    RefreshToken,
    /// Unknown here, or another client's: nothing happens and the answer is still 200.
    Nothing,
}

impl Memory {
    /// Issues an access token and, when asked, a refresh token for `grant`.
    pub(super) fn issue(
        &mut self,
        grant: Grant,
        ttl: Duration,
        refresh: bool,
        now: Instant,
    ) -> Issued {
        let access_token = random_hex(20);
        let refresh_token = refresh.then(|| random_hex(24));
        if let Some(r) = &refresh_token {
            self.refresh.insert(r.clone(), grant.clone());
        }
        self.access.insert(
            access_token.clone(),
            AccessGrant {
                grant,
                expires_at: now + ttl,
                exp_unix: crate::sim::unix_now() + ttl.as_secs(),
            },
        );
        Issued {
            access_token,
            refresh_token,
            expires_in: ttl.as_secs(),
        }
    }

    /// The grant behind a valid access token; an expired one is forgotten.
    pub(super) fn active_access(&mut self, token: &str, now: Instant) -> Option<&AccessGrant> {
        if self.access.get(token).is_some_and(|a| a.expires_at <= now) {
            self.access.remove(token);
        }
        self.access.get(token)
    }

    /// Refresh with rotation: the old refresh token stops working and a new pair is issued. `None` when the
    /// token is unknown here or belongs to another client.
    pub(super) fn rotate(
        &mut self,
        refresh_token: &str,
        client_id: &str,
        ttl: Duration,
        now: Instant,
    ) -> Option<(Grant, Issued)> {
        if self.refresh.get(refresh_token)?.client_id != client_id {
            return None;
        }
        let grant = self.refresh.remove(refresh_token)?;
        let issued = self.issue(grant.clone(), ttl, true, now);
        Some((grant, issued))
    }

    /// RFC 7009: forgets `token` if it is this client's; an unknown token is not an error.
    pub(super) fn revoke(&mut self, token: &str, hint: Option<&str>, client_id: &str) -> Revoked {
        let access_first = hint != Some("refresh_token");
        let owns_access = self
            .access
            .get(token)
            .is_some_and(|a| a.grant.client_id == client_id);
        let owns_refresh = self
            .refresh
            .get(token)
            .is_some_and(|g| g.client_id == client_id);
        match (owns_access, owns_refresh) {
            (true, _) if access_first || !owns_refresh => {
                self.access.remove(token);
                Revoked::AccessToken
            }
            (_, true) => {
                self.refresh.remove(token);
                Revoked::RefreshToken
            }
            _ => Revoked::Nothing,
        }
    }

    /// Stores a new device authorization and returns `(device_code, user_code)`.
    pub(super) fn new_device(
        &mut self,
        client_id: &str,
        scope: &str,
        expires_at: Instant,
    ) -> (String, String) {
        let device_code = random_hex(20);
        let user_code = new_user_code();
        self.user_codes
            .insert(normalise_user_code(&user_code), device_code.clone());
        self.devices.insert(
            device_code.clone(),
            DeviceGrant {
                client_id: client_id.to_string(),
                user_code: user_code.clone(),
                scope: scope.to_string(),
                state: DeviceState::Pending,
                expires_at,
                last_poll: None,
            },
        );
        (device_code, user_code)
    }

    /// The user approves (or denies) the device showing `user_code`; `false` when the code is unknown here,
    /// expired or already decided.
    pub(super) fn decide_device(
        &mut self,
        user_code: &str,
        approved_by: Option<&str>,
        now: Instant,
    ) -> bool {
        let Some(device_code) = self.user_codes.get(&normalise_user_code(user_code)) else {
            return false;
        };
        match self.devices.get_mut(device_code) {
            Some(d) if d.state == DeviceState::Pending && d.expires_at > now => {
                d.state = match approved_by {
                    Some(user) => DeviceState::Approved(user.to_string()),
                    None => DeviceState::Denied,
                };
                true
            }
            _ => false,
        }
    }

    /// Forgets a finished device authorization.
    pub(super) fn remove_device(&mut self, device_code: &str) {
        if let Some(d) = self.devices.remove(device_code) {
            self.user_codes.remove(&normalise_user_code(&d.user_code));
        }
    }
}

/// User codes as RFC 8628 §6.1 suggests: eight characters from 20 consonants (no vowels, so no words),
/// shown as `XXXX-XXXX`.
fn new_user_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut rng = rand::thread_rng();
    let mut code: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    code.insert(4, '-');
    code
}

/// What the user typed, compared case-insensitively and without punctuation or spaces (RFC 8628 §6.1).
pub(super) fn normalise_user_code(typed: &str) -> String {
    typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(client: &str) -> Grant {
        Grant {
            client_id: client.into(),
            user: Some("alice".into()),
            scope: "openid".into(),
        }
    }

    #[test]
    fn rotation_retires_the_old_refresh_token() {
        let mut m = Memory::default();
        let now = Instant::now();
        let first = m.issue(grant("c"), Duration::from_secs(60), true, now);
        let old = first.refresh_token.unwrap();
        let (_, second) = m.rotate(&old, "c", Duration::from_secs(60), now).unwrap();
        assert!(m.rotate(&old, "c", Duration::from_secs(60), now).is_none());
        let new = second.refresh_token.unwrap();
        assert!(m
            .rotate(&new, "other-client", Duration::from_secs(60), now)
            .is_none());
        assert!(m.rotate(&new, "c", Duration::from_secs(60), now).is_some());
    }

    #[test]
    fn revocation_touches_only_the_callers_own_tokens() {
        let mut m = Memory::default();
        let now = Instant::now();
        let issued = m.issue(grant("c"), Duration::from_secs(60), true, now);
        assert_eq!(
            m.revoke(&issued.access_token, None, "other"),
            Revoked::Nothing
        );
        assert_eq!(m.revoke("never-issued", None, "c"), Revoked::Nothing);
        assert_eq!(
            m.revoke(&issued.access_token, None, "c"),
            Revoked::AccessToken
        );
        assert!(m.active_access(&issued.access_token, now).is_none());
        let refresh = issued.refresh_token.unwrap();
        assert_eq!(
            m.revoke(&refresh, Some("access_token"), "c"),
            Revoked::RefreshToken
        );
    }

    #[test]
    fn expired_access_tokens_are_forgotten() {
        let mut m = Memory::default();
        let now = Instant::now();
        let issued = m.issue(grant("c"), Duration::from_secs(1), false, now);
        assert!(m.active_access(&issued.access_token, now).is_some());
        assert!(m
            .active_access(&issued.access_token, now + Duration::from_secs(1))
            .is_none());
        assert!(m.access.is_empty());
    }

    #[test]
    fn a_user_code_is_decided_once_whatever_its_case_or_dash() {
        let mut m = Memory::default();
        let now = Instant::now();
        let (device, user) = m.new_device("c", "openid", now + Duration::from_secs(60));
        assert_eq!(user.len(), 9);
        let typed = user.replace('-', " ").to_lowercase();
        assert!(m.decide_device(&typed, Some("alice"), now));
        assert!(!m.decide_device(&user, Some("alice"), now));
        assert_eq!(
            m.devices[&device].state,
            DeviceState::Approved("alice".into())
        );
        assert!(!m.decide_device("", Some("alice"), now));
        m.remove_device(&device);
        assert!(m.user_codes.is_empty());
    }
}

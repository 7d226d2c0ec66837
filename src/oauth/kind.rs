//! The kinds of credential tokenroute learns and routes on.
//!
//! [`CredentialKind`] is the single list: the table stores a kind per entry (a one-byte enum), config names TTLs
//! by [`CredentialKind::as_str`], and metrics label entry counts with it.

use serde::{Deserialize, Serialize};

/// What a learned credential is. The order of [`CredentialKind::specificity`] decides which credential of a
/// request routes it when it carries several (most specific wins, BRIEF 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// OAuth 1 consumer key (a "friendship"); owner set grows by refresh.
    ConsumerKey,
    /// OAuth 1 request token (temporary credentials); issuer only.
    RequestToken,
    /// OAuth 1 verifier handed out with an authorized request token; issuer only.
    Verifier,
    /// OAuth 1 access token; issuer only.
    AccessToken,
    /// OAuth 2 authorization code; issuer only.
    Code,
    /// OAuth 2 access token (bearer); issuer only.
    BearerToken,
    /// OAuth 2 refresh token; issuer only.
    RefreshToken,
    /// OAuth 2 client id from dynamic registration; behaves like a consumer key.
    ClientId,
    /// RFC 7592 registration access token (a bearer token for the client configuration endpoint); issuer only.
    RegistrationAccessToken,
    /// RFC 8628 device code, polled at the token endpoint; issuer only.
    DeviceCode,
    /// RFC 8628 user code, typed at the verification page (stored normalised); issuer only.
    UserCode,
    /// RFC 9126 `request_uri` of a pushed authorization request; issuer only.
    RequestUri,
    /// OpenID Connect ID token, presented back as `id_token_hint`; issuer only.
    IdToken,
    /// OpenID Connect session id (`sid` claim of an ID token); issuer only.
    Sid,
    /// A session cookie value; issuer only.
    SessionCookie,
}

/// Which routing rule a credential kind falls under (BRIEF 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Specificity {
    /// Tokens: only their issuer can honour them.
    Token = 3,
    /// Consumer keys and client ids: any node in the owner set.
    Key = 2,
    /// Session cookies: their node.
    Session = 1,
}

impl CredentialKind {
    /// Every kind, for tables and metrics.
    pub const ALL: [CredentialKind; 15] = [
        CredentialKind::ConsumerKey,
        CredentialKind::RequestToken,
        CredentialKind::Verifier,
        CredentialKind::AccessToken,
        CredentialKind::Code,
        CredentialKind::BearerToken,
        CredentialKind::RefreshToken,
        CredentialKind::ClientId,
        CredentialKind::RegistrationAccessToken,
        CredentialKind::DeviceCode,
        CredentialKind::UserCode,
        CredentialKind::RequestUri,
        CredentialKind::IdToken,
        CredentialKind::Sid,
        CredentialKind::SessionCookie,
    ];

    /// This kind's position in [`CredentialKind::ALL`], for per-kind arrays (TTLs, counters).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The routing rule this kind falls under.
    pub fn specificity(self) -> Specificity {
        match self {
            CredentialKind::ConsumerKey | CredentialKind::ClientId => Specificity::Key,
            CredentialKind::SessionCookie => Specificity::Session,
            _ => Specificity::Token,
        }
    }

    /// A stable snake_case name for logs, metrics, config (`routing.ttl`) and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ConsumerKey => "consumer_key",
            CredentialKind::RequestToken => "request_token",
            CredentialKind::Verifier => "verifier",
            CredentialKind::AccessToken => "access_token",
            CredentialKind::Code => "code",
            CredentialKind::BearerToken => "bearer_token",
            CredentialKind::RefreshToken => "refresh_token",
            CredentialKind::ClientId => "client_id",
            CredentialKind::RegistrationAccessToken => "registration_access_token",
            CredentialKind::DeviceCode => "device_code",
            CredentialKind::UserCode => "user_code",
            CredentialKind::RequestUri => "request_uri",
            CredentialKind::IdToken => "id_token",
            CredentialKind::Sid => "sid",
            CredentialKind::SessionCookie => "session_cookie",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, kind) in CredentialKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn names_are_unique_and_match_serde() {
        let mut names: Vec<&str> = CredentialKind::ALL.map(CredentialKind::as_str).to_vec();
        for kind in CredentialKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CredentialKind::ALL.len());
    }

    #[test]
    fn every_kind_fits_in_a_byte() {
        // The table and snapshot keep a kind per entry; a byte is what the enum costs.
        assert_eq!(std::mem::size_of::<CredentialKind>(), 1);
        assert!(CredentialKind::ALL.len() <= usize::from(u8::MAX));
    }
}

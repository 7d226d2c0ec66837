//! The kinds of credential tokenroute learns and routes on.

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
    pub const ALL: [CredentialKind; 9] = [
        CredentialKind::ConsumerKey,
        CredentialKind::RequestToken,
        CredentialKind::Verifier,
        CredentialKind::AccessToken,
        CredentialKind::Code,
        CredentialKind::BearerToken,
        CredentialKind::RefreshToken,
        CredentialKind::ClientId,
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

    /// A stable snake_case name for logs, metrics and the admin API.
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
}

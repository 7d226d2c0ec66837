//! The problem names nodes answer when they do not hold a credential. Which ones count as stale is
//! configurable; these are the defaults.
//!
//! - OAuth 1: the problem reporting extension's `oauth_problem` values, as ClearQuest Web sends them
//!   (`WWW-Authenticate: OAuth oauth_problem=".."` or in the body of a 401/403).
//! - OAuth 2: the `error` of RFC 6749 §5.2 (a JSON body, status 400 or 401) and of RFC 6750 §3.1
//!   (`WWW-Authenticate: Bearer error=".."`). Each names what the node found wanting ([`OAuth2Subject`]), which
//!   is what repair looks up to decide whether another node can answer.

use super::request::CandidateClass;

/// The problems that mean "this node does not hold the credential" by default. `consumer_key_rejected` is
/// among them: a node that loaded a key while it was provisional keeps that stale copy after the approval
/// happened elsewhere, until it is refreshed.
pub const DEFAULT_STALE_PROBLEMS: [&str; 6] = [
    "invalid_expired_token",
    "consumer_key_unknown",
    "consumer_key_rejected",
    "token_rejected",
    "token_expired",
    "token_not_authorized",
];

/// The problems that mean "this node lacks the consumer key, or holds a stale copy" (a refresh fixes them).
pub const KEY_PROBLEMS: [&str; 2] = ["consumer_key_unknown", "consumer_key_rejected"];

/// RFC 6749 §5.2: client authentication failed (an unknown client, among other causes).
pub const INVALID_CLIENT: &str = "invalid_client";
/// RFC 6749 §5.2: the code, refresh token or device code is invalid, expired, revoked or another client's.
pub const INVALID_GRANT: &str = "invalid_grant";
/// RFC 6750 §3.1: the access token is expired, revoked, malformed or otherwise invalid.
pub const INVALID_TOKEN: &str = "invalid_token";

/// The OAuth 2 errors that can mean "this node never issued the credential" by default. Each has other
/// causes too (a wrong secret, a used code), which is why repair replays only when the table says the
/// credential lives elsewhere or knows nothing of it.
pub const DEFAULT_OAUTH2_ERRORS: [&str; 3] = [INVALID_CLIENT, INVALID_GRANT, INVALID_TOKEN];

/// What an OAuth 2 error says the node found wanting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuth2Subject {
    /// The client (`invalid_client`).
    Client,
    /// The grant: an authorization code, refresh token or device code (`invalid_grant`).
    Grant,
    /// A bearer token: an access token or an RFC 7592 registration access token (`invalid_token`).
    Token,
    /// A configured error the RFCs do not tie to one credential: any credential the request carries.
    Any,
}

impl OAuth2Subject {
    /// The subject of the RFC 6749 / RFC 6750 error named `error`.
    pub fn of(error: &str) -> OAuth2Subject {
        match error {
            INVALID_CLIENT => OAuth2Subject::Client,
            INVALID_GRANT => OAuth2Subject::Grant,
            INVALID_TOKEN => OAuth2Subject::Token,
            _ => OAuth2Subject::Any,
        }
    }

    /// Whether a request credential of `class` is one this subject is about.
    pub fn concerns(self, class: CandidateClass) -> bool {
        use CandidateClass as C;
        match self {
            OAuth2Subject::Client => class == C::ClientId,
            OAuth2Subject::Grant => matches!(class, C::Code | C::RefreshToken | C::DeviceCode),
            OAuth2Subject::Token => class == C::Bearer,
            OAuth2Subject::Any => class != C::SessionCookie,
        }
    }
}

/// Whether `name` can be an RFC 6749 `error` value (§5.2: `%x20-21 / %x23-5B / %x5D-7E`, no quote or
/// backslash), so that a configured name can ever match.
pub fn is_error_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_default_oauth2_error_is_about_the_credential_the_rfcs_name() {
        use CandidateClass as C;
        let cases = [
            (INVALID_CLIENT, C::ClientId, true),
            (INVALID_CLIENT, C::Code, false),
            (INVALID_GRANT, C::Code, true),
            (INVALID_GRANT, C::RefreshToken, true),
            (INVALID_GRANT, C::DeviceCode, true),
            (INVALID_GRANT, C::ClientId, false),
            (INVALID_TOKEN, C::Bearer, true),
            (INVALID_TOKEN, C::IssuedToken, false),
            ("unauthorized_client", C::ClientId, true),
            ("unauthorized_client", C::SessionCookie, false),
        ];
        for (error, class, concerned) in cases {
            assert_eq!(
                OAuth2Subject::of(error).concerns(class),
                concerned,
                "{error} {class:?}"
            );
        }
    }

    #[test]
    fn error_names_follow_the_rfc_6749_character_set() {
        assert!(DEFAULT_OAUTH2_ERRORS.iter().all(|e| is_error_name(e)));
        for bad in ["", "a\"b", "a\\b", "caf\u{e9}", "tab\there"] {
            assert!(!is_error_name(bad), "{bad:?}");
        }
    }
}

//! The vocabulary node and consumer speak on the wire: paths, header and cookie names, parameter and form
//! field names, `oauth_problem` strings, and the JSON documents both sides read or write.
//!
//! A name used by both sides lives here only, so the stand-in node ([`super::node`]) and the scripted consumer
//! ([`super::consumer`]) cannot drift apart. RFC 5849 signing itself (base string, protocol parameters) is in
//! [`super::signature`].

use serde::{Deserialize, Serialize};

use crate::oauth::percent::encode;

/// Every endpoint lives under this prefix, as on a ClearQuest Web server.
pub const BASE: &str = "/cqweb";

/// Endpoint paths below [`BASE`] (without the slash that follows it).
pub mod path {
    /// Liveness: `GET` → 200 `ok`.
    pub const HEALTH: &str = "health";
    /// Form login (`username`, `password`); refreshes the node's consumer registry.
    pub const LOGIN: &str = "login";
    /// `POST` a [`super::ConsumerRegistration`] → [`super::RegisteredKey`].
    pub const REQUEST_CONSUMER: &str = "oauth-request-consumer";
    /// `GET ?key=K` (the prompt), `POST ?key=K` (the approval).
    pub const APPROVE_CONSUMER: &str = "oauth-approve-consumer";
    /// Signed `POST` → temporary credentials.
    pub const REQUEST_TOKEN: &str = "oauth-request-token";
    /// `GET ?oauth_token=T` (the page), `POST` (the user's credentials) → 302 to the callback.
    pub const AUTHORIZE: &str = "oauth-authorize";
    /// Signed `POST` with the verifier → token credentials.
    pub const ACCESS_TOKEN: &str = "oauth-access-token";
    /// Prefix of the OSLC paths: `oslc/repo/{db}/discovery` and `oslc/repo/{db}/resource/{id}`.
    pub const OSLC_REPO: &str = "oslc/repo/";
    /// Last segment of the discovery document's path.
    pub const DISCOVERY: &str = "discovery";
    /// Segment before a protected resource's id.
    pub const RESOURCE: &str = "resource/";
}

/// `/cqweb/oslc/repo/{db}/discovery`, `db` percent-encoded.
pub fn discovery_path(db: &str) -> String {
    format!(
        "{BASE}/{}{}/{}",
        path::OSLC_REPO,
        encode(db),
        path::DISCOVERY
    )
}

/// The header naming the node that answered.
pub const SERVED_BY: &str = "x-served-by";
/// The header a proxy uses to tell the node which scheme the client used.
pub const FORWARDED_PROTO: &str = "x-forwarded-proto";
/// The session cookie's name (WebSphere's; the value ends in `:<clone id>`).
pub const SESSION_COOKIE: &str = "JSESSIONID";
/// The realm every `WWW-Authenticate: OAuth` challenge names, and the consumer signs with.
pub const REALM: &str = "cqweb";
/// The content type of form bodies and of token answers.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// Parameter and form field names.
pub mod param {
    /// A request or access token.
    pub const OAUTH_TOKEN: &str = "oauth_token";
    /// The secret that comes with [`OAUTH_TOKEN`].
    pub const OAUTH_TOKEN_SECRET: &str = "oauth_token_secret";
    /// Where the user's browser goes after authorizing (`oob`: shown instead).
    pub const OAUTH_CALLBACK: &str = "oauth_callback";
    /// `true` in a request-token answer (OAuth 1.0a).
    pub const OAUTH_CALLBACK_CONFIRMED: &str = "oauth_callback_confirmed";
    /// The verifier the callback receives and the access-token request carries.
    pub const OAUTH_VERIFIER: &str = "oauth_verifier";
    /// The problem name in a challenge or an error body (OAuth Problem Reporting).
    pub const OAUTH_PROBLEM: &str = "oauth_problem";
    /// With `parameter_absent`: the missing names, joined by `&`.
    pub const OAUTH_PARAMETERS_ABSENT: &str = "oauth_parameters_absent";
    /// With `timestamp_refused`: the accepted range `low-high`.
    pub const OAUTH_ACCEPTABLE_TIMESTAMPS: &str = "oauth_acceptable_timestamps";
    /// The consumer key on the approval URL (`?key=K`).
    pub const KEY: &str = "key";
    /// Login, approval and authorize forms: the user.
    pub const USERNAME: &str = "username";
    /// Login, approval and authorize forms: the password.
    pub const PASSWORD: &str = "password";
    /// The approval form's submit button.
    pub const APPROVE: &str = "approve";
}

/// `oauth_problem` values a node answers with.
pub mod problem {
    /// The consumer key is not in this node's registry (it may be in another node's).
    pub const CONSUMER_KEY_UNKNOWN: &str = "consumer_key_unknown";
    /// The consumer key is known but not approved.
    pub const CONSUMER_KEY_REJECTED: &str = "consumer_key_rejected";
    /// The token is not in this node's memory, or belongs to another consumer.
    pub const TOKEN_REJECTED: &str = "token_rejected";
    /// The token was known but its time is up.
    pub const TOKEN_EXPIRED: &str = "token_expired";
    /// The request token was never authorized by a user.
    pub const TOKEN_NOT_AUTHORIZED: &str = "token_not_authorized";
    /// The verifier does not match the request token's.
    pub const VERIFIER_INVALID: &str = "verifier_invalid";
    /// This node has seen the (consumer key, nonce, timestamp) before.
    pub const NONCE_USED: &str = "nonce_used";
    /// The signature does not verify.
    pub const SIGNATURE_INVALID: &str = "signature_invalid";
    /// A signature method other than `HMAC-SHA1`.
    pub const SIGNATURE_METHOD_REJECTED: &str = "signature_method_rejected";
    /// An `oauth_version` other than `1.0`.
    pub const VERSION_REJECTED: &str = "version_rejected";
    /// A required parameter is missing.
    pub const PARAMETER_ABSENT: &str = "parameter_absent";
    /// A parameter is malformed or duplicated.
    pub const PARAMETER_REJECTED: &str = "parameter_rejected";
    /// The timestamp is outside the node's window.
    pub const TIMESTAMP_REFUSED: &str = "timestamp_refused";

    /// Problems a node answers with `invalid_expired_token` in the body: the credential may be valid elsewhere
    /// in the cluster, which is the stale-node case the technote describes.
    pub const STALE: [&str; 4] = [
        CONSUMER_KEY_UNKNOWN,
        TOKEN_REJECTED,
        TOKEN_EXPIRED,
        TOKEN_NOT_AUTHORIZED,
    ];
    /// The product's own wording for a stale answer, in the body.
    pub const INVALID_EXPIRED_TOKEN: &str = "invalid_expired_token";
}

/// The discovery document (a small rootservices-like catalogue). URLs are absolute, built from the request's
/// `Host` and scheme so that behind a proxy they point at the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    /// The node that answered.
    pub served_by: String,
    /// The repository (schema) name from the path.
    pub db: String,
    /// `POST` JSON `{"name", "secret"}` → `{"key"}`.
    pub oauth_request_consumer_key_url: String,
    /// `GET`/`POST ?key=K`, admin session.
    pub oauth_approval_module_url: String,
    /// Signed `POST` → temporary credentials.
    pub oauth_request_token_url: String,
    /// `GET ?oauth_token=T` form, `POST` credentials → 302 to the callback.
    pub oauth_user_authorization_url: String,
    /// Signed `POST` with the verifier → token credentials.
    pub oauth_access_token_url: String,
    /// Form login; refreshes the node's consumer registry.
    pub login_url: String,
    /// Protected resources: append an id.
    pub resource_url: String,
    /// Liveness.
    pub health_url: String,
}

impl Discovery {
    /// The document a node serves for `db`, every URL under `base` (`scheme://host/cqweb`).
    pub fn new(served_by: &str, db: &str, base: &str) -> Self {
        let url = |p: &str| format!("{base}/{p}");
        Discovery {
            served_by: served_by.to_string(),
            db: db.to_string(),
            oauth_request_consumer_key_url: url(path::REQUEST_CONSUMER),
            oauth_approval_module_url: url(path::APPROVE_CONSUMER),
            oauth_request_token_url: url(path::REQUEST_TOKEN),
            oauth_user_authorization_url: url(path::AUTHORIZE),
            oauth_access_token_url: url(path::ACCESS_TOKEN),
            login_url: url(path::LOGIN),
            resource_url: format!("{base}/{}{db}/{}", path::OSLC_REPO, path::RESOURCE),
            health_url: url(path::HEALTH),
        }
    }
}

/// The JSON body of a consumer registration (`POST oauth-request-consumer`).
#[derive(Clone, Serialize, Deserialize)]
pub struct ConsumerRegistration {
    /// The consumer's display name.
    pub name: String,
    /// The consumer secret it will sign with.
    pub secret: String,
}

impl std::fmt::Debug for ConsumerRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerRegistration")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The JSON answer to a consumer registration: the new, provisional key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisteredKey {
    /// The consumer key.
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_sit_under_the_base_and_the_path_encodes_the_db() {
        let d = Discovery::new("lbcq_1", "cq", "http://h:1/cqweb");
        assert_eq!(
            d.oauth_request_token_url,
            "http://h:1/cqweb/oauth-request-token"
        );
        assert_eq!(d.resource_url, "http://h:1/cqweb/oslc/repo/cq/resource/");
        assert_eq!(discovery_path("a b"), "/cqweb/oslc/repo/a%20b/discovery");
    }

    #[test]
    fn a_registration_never_shows_its_secret_in_debug() {
        let r = ConsumerRegistration {
            name: "rtc".into(),
            secret: "s3cr3t".into(),
        };
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }
}

//! What travels between the OAuth 2 client and the authorization-server nodes: endpoint paths, parameter and
//! error names, and the JSON documents. Node and client both use these, so they cannot drift apart.
//!
//! The paths end in the suffixes tokenroute's `oauth2` preset knows (`/authorize`, `/token`, `/register`);
//! the others (`/revoke`, `/introspect`, `/device_authorization`, `/par`, `/userinfo`, `/logout`) are the
//! ones a preset or `[[routing.endpoint]]` rules have to name.

use serde::{Deserialize, Serialize};

/// OpenID Connect discovery (`GET`).
pub const DISCOVERY: &str = "/.well-known/openid-configuration";
/// Liveness (`GET`, 200 `ok`).
pub const HEALTH: &str = "/health";
/// RFC 7591 registration (`POST` JSON); RFC 7592 management at `REGISTER/{client_id}` (`GET`, `PUT`,
/// `DELETE` with the registration access token as a bearer token).
pub const REGISTER: &str = "/oauth2/register";
/// Authorization endpoint: `GET` shows the login page, `POST` (same query, user credentials in the form)
/// answers 302 to the redirect URI with `code` and `state`.
pub const AUTHORIZE: &str = "/oauth2/authorize";
/// Token endpoint (`POST` form).
pub const TOKEN: &str = "/oauth2/token";
/// RFC 7009 revocation (`POST` form, client authentication).
pub const REVOKE: &str = "/oauth2/revoke";
/// RFC 7662 introspection (`POST` form, client authentication).
pub const INTROSPECT: &str = "/oauth2/introspect";
/// RFC 8628 device authorization (`POST` form, client authentication).
pub const DEVICE_AUTHORIZATION: &str = "/oauth2/device_authorization";
/// RFC 8628 verification page: `GET` the form, `POST` `user_code` with the user's credentials.
pub const DEVICE_VERIFICATION: &str = "/oauth2/device";
/// RFC 9126 pushed authorization requests (`POST` form, client authentication).
pub const PAR: &str = "/oauth2/par";
/// OpenID Connect userinfo (`GET` with `Authorization: Bearer`).
pub const USERINFO: &str = "/oauth2/userinfo";
/// OpenID Connect RP-initiated logout (`GET` with `id_token_hint`).
pub const END_SESSION: &str = "/oauth2/logout";
/// JSON Web Key Set: empty, since id_tokens are signed `HS256` with the client secret.
pub const JWKS: &str = "/oauth2/jwks";

/// The header naming the node that answered.
pub const SERVED_BY: &str = "x-served-by";
/// The node's browser session cookie. Deliberately not `JSESSIONID`, so that no balancer pins a browser to
/// a node by default: what keeps a flow on its node must be the OAuth credentials.
pub const SESSION_COOKIE: &str = "op_session";
/// The realm of `WWW-Authenticate` challenges.
pub const REALM: &str = "tokenroute-sim";

/// `grant_type` values.
pub mod grant {
    /// RFC 6749 §4.1.3.
    pub const AUTHORIZATION_CODE: &str = "authorization_code";
    /// RFC 6749 §6.
    pub const REFRESH_TOKEN: &str = "refresh_token";
    /// RFC 6749 §4.4.
    pub const CLIENT_CREDENTIALS: &str = "client_credentials";
    /// RFC 8628 §3.4.
    pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
}

/// `token_endpoint_auth_method` values (RFC 7591 §2).
pub mod auth_method {
    /// RFC 6749 §2.3.1 HTTP Basic.
    pub const BASIC: &str = "client_secret_basic";
    /// RFC 6749 §2.3.1 in the form body.
    pub const POST: &str = "client_secret_post";
}

/// `error` values of RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 8628 §3.5 and RFC 9101.
pub mod error {
    /// Malformed request.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// Client authentication failed (unknown client, wrong secret, wrong method).
    pub const INVALID_CLIENT: &str = "invalid_client";
    /// Unknown, expired, used or mismatched code, refresh token or device code.
    pub const INVALID_GRANT: &str = "invalid_grant";
    /// The client may not use this grant type.
    pub const UNAUTHORIZED_CLIENT: &str = "unauthorized_client";
    /// A grant type the server does not know.
    pub const UNSUPPORTED_GRANT_TYPE: &str = "unsupported_grant_type";
    /// A `response_type` other than `code`.
    pub const UNSUPPORTED_RESPONSE_TYPE: &str = "unsupported_response_type";
    /// Bearer token unknown, expired or revoked (RFC 6750 §3.1).
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// The token lacks the scope the resource needs (RFC 6750 §3.1).
    pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
    /// Registration metadata refused (RFC 7591 §3.2.2).
    pub const INVALID_CLIENT_METADATA: &str = "invalid_client_metadata";
    /// A redirect URI refused (RFC 7591 §3.2.2).
    pub const INVALID_REDIRECT_URI: &str = "invalid_redirect_uri";
    /// Unknown or expired PAR `request_uri` (RFC 9101 §7).
    pub const INVALID_REQUEST_URI: &str = "invalid_request_uri";
    /// The user has not yet approved the device (RFC 8628 §3.5).
    pub const AUTHORIZATION_PENDING: &str = "authorization_pending";
    /// Polled faster than `interval` (RFC 8628 §3.5).
    pub const SLOW_DOWN: &str = "slow_down";
    /// The user denied the device (RFC 8628 §3.5).
    pub const ACCESS_DENIED: &str = "access_denied";
    /// The device code expired (RFC 8628 §3.5).
    pub const EXPIRED_TOKEN: &str = "expired_token";
}

/// The prefix of PAR request URIs (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// An RFC 6749 §5.2 error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error code.
    pub error: String,
    /// A human-readable hint; never carries a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// RFC 7591 §2 client metadata, as sent at registration and stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Redirect URIs of the authorization-code flow.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `client_secret_basic` (the default) or `client_secret_post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// Grant types the client may use (default `["authorization_code"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    /// Response types (default `["code"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Space-separated scopes the client may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Where end-session may send the browser back (OpenID Connect RP-Initiated Logout §3.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
}

/// The answer to registration (201) and to an RFC 7592 read or update (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInformation {
    /// The issued client id.
    pub client_id: String,
    /// The issued client secret.
    pub client_secret: String,
    /// Seconds since the epoch.
    pub client_id_issued_at: u64,
    /// 0: never expires.
    pub client_secret_expires_at: u64,
    /// The bearer token for RFC 7592 management.
    pub registration_access_token: String,
    /// Where RFC 7592 management happens (`{issuer}/oauth2/register/{client_id}`).
    pub registration_client_uri: String,
    /// The metadata as the server holds it (defaults filled in).
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

/// A token endpoint success (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// A refresh token (not for client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Granted scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// An OpenID Connect id_token when `openid` was granted with a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// An RFC 7662 introspection answer; an unknown, expired or revoked token is `{"active": false}` alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introspection {
    /// Whether the token is currently valid here.
    pub active: bool,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Granted scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The user, or the client for client credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `access_token` or `refresh_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

/// RFC 8628 §3.2 device authorization response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorization {
    /// Polled at the token endpoint by the device.
    pub device_code: String,
    /// Typed by the user at the verification page.
    pub user_code: String,
    /// The verification page.
    pub verification_uri: String,
    /// The verification page with the user code filled in.
    pub verification_uri_complete: String,
    /// Lifetime of both codes, seconds.
    pub expires_in: u64,
    /// Minimum seconds between polls.
    pub interval: u64,
}

/// RFC 9126 §2.2 PAR response (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParResponse {
    /// `urn:ietf:params:oauth:request_uri:...`, used once in the authorization request.
    pub request_uri: String,
    /// Seconds.
    pub expires_in: u64,
}

/// OpenID Connect userinfo (the claims the stand-in knows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Subject.
    pub sub: String,
    /// Login name.
    pub preferred_username: String,
}

/// The discovery document (OpenID Connect Discovery §3, RFC 8414). URLs are built from the request's
/// `Host` and scheme, so behind a proxy they point at the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    /// `{scheme}://{host}`.
    pub issuer: String,
    /// [`AUTHORIZE`].
    pub authorization_endpoint: String,
    /// [`TOKEN`].
    pub token_endpoint: String,
    /// [`REGISTER`].
    pub registration_endpoint: String,
    /// [`REVOKE`].
    pub revocation_endpoint: String,
    /// [`INTROSPECT`].
    pub introspection_endpoint: String,
    /// [`DEVICE_AUTHORIZATION`].
    pub device_authorization_endpoint: String,
    /// [`PAR`].
    pub pushed_authorization_request_endpoint: String,
    /// [`USERINFO`].
    pub userinfo_endpoint: String,
    /// [`END_SESSION`].
    pub end_session_endpoint: String,
    /// [`JWKS`].
    pub jwks_uri: String,
    /// `["code"]`.
    pub response_types_supported: Vec<String>,
    /// The four grants and refresh.
    pub grant_types_supported: Vec<String>,
    /// `["S256"]`.
    pub code_challenge_methods_supported: Vec<String>,
    /// Basic and post.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `["HS256"]`.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `["public"]`.
    pub subject_types_supported: Vec<String>,
    /// `openid profile`.
    pub scopes_supported: Vec<String>,
}

impl Discovery {
    /// The document for an issuer at `issuer` (no trailing slash).
    pub fn for_issuer(issuer: &str) -> Discovery {
        let at = |path: &str| format!("{issuer}{path}");
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Discovery {
            issuer: issuer.to_string(),
            authorization_endpoint: at(AUTHORIZE),
            token_endpoint: at(TOKEN),
            registration_endpoint: at(REGISTER),
            revocation_endpoint: at(REVOKE),
            introspection_endpoint: at(INTROSPECT),
            device_authorization_endpoint: at(DEVICE_AUTHORIZATION),
            pushed_authorization_request_endpoint: at(PAR),
            userinfo_endpoint: at(USERINFO),
            end_session_endpoint: at(END_SESSION),
            jwks_uri: at(JWKS),
            response_types_supported: strings(&["code"]),
            grant_types_supported: strings(&[
                grant::AUTHORIZATION_CODE,
                grant::REFRESH_TOKEN,
                grant::CLIENT_CREDENTIALS,
                grant::DEVICE_CODE,
            ]),
            code_challenge_methods_supported: strings(&["S256"]),
            token_endpoint_auth_methods_supported: strings(&[
                auth_method::BASIC,
                auth_method::POST,
            ]),
            id_token_signing_alg_values_supported: strings(&["HS256"]),
            subject_types_supported: strings(&["public"]),
            scopes_supported: strings(&["openid", "profile"]),
        }
    }
}

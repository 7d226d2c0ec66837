//! Where to look for credentials: endpoint roles by path suffix, session cookie names, TTLs and body caps.
//!
//! [`Rules`] is the runtime value the config layer builds (from presets plus custom rules) and the proxy reads
//! on every request. The hot-path methods ([`Rules::role_for`], [`Rules::wants_request_body`],
//! [`Rules::wants_response_body`]) only compare a few byte strings: no allocation, no parsing of bodies.
//!
//! # Endpoint roles
//!
//! A role says what an endpoint's requests carry and what its answers issue. Learning happens only on the
//! issuing endpoint's success answer to a request the proxy routed; routing uses what the request carries.
//! Each role is a config name usable in `[[routing.endpoint]]`, so non-standard paths can say the same.
//!
//! | role | learned from its answer | routed by what the request carries |
//! |---|---|---|
//! | `consumer_registration` | JSON `key` → consumer key | — |
//! | `consumer_approval` | the request's `?key=` (POST) → consumer key | `key` |
//! | `request_token`, `access_token` | form `oauth_token` → OAuth 1 request / access token | OAuth 1 parameters |
//! | `authorize` | `Location` `oauth_token`, `oauth_verifier` | `oauth_token` |
//! | `oauth2_authorize` | `Location` `code`, `id_token`, fragment `access_token` | `client_id`, PAR `request_uri` (query) |
//! | `oauth2_token` | JSON `access_token`, `refresh_token`, `id_token` (and its `sid` claim) | `code`, `refresh_token`, `device_code`, `client_id` (form or `Authorization: Basic`) |
//! | `oauth2_registration` | RFC 7591 JSON `client_id`, RFC 7592 `registration_access_token`, the last segment of `registration_client_uri` (as a client id) | — |
//! | `oauth2_client_configuration` | RFC 7592 JSON `registration_access_token` (rotated on update) | the bearer registration access token; the client id as the last path segment or `?client_id=` |
//! | `oauth2_revocation` (RFC 7009), `oauth2_introspection` (RFC 7662) | — | form `token` (an access or refresh token, whatever `token_type_hint` says), `client_id` (form or Basic) |
//! | `oauth2_device_authorization` (RFC 8628) | JSON `device_code`, `user_code` | `client_id` (form or Basic) |
//! | `oauth2_device_verification` (RFC 8628) | — | `user_code` (query or form; compared without case and punctuation) |
//! | `oauth2_par` (RFC 9126) | JSON `request_uri` (201) | `client_id` (form or Basic) |
//! | `oidc_end_session` | — | `id_token_hint` → its ID token, `sid` (query or form) |
//! | `oidc_userinfo` | — | the bearer token (header, form or query) |
//!
//! `token_type_hint` is not trusted to narrow the lookup: RFC 7009 §2.1 lets a server search every kind when the
//! hint is wrong, so a `token` matches a learned access or refresh token alike. A bearer token routes to its
//! issuer on any path; the userinfo role only makes sure a form body is read there.
//!
//! A path one segment below a `oauth2_registration` or `oauth2_client_configuration` suffix (RFC 7592's
//! `https://server.example.com/register/s6BhdRkqt3`) has the role `oauth2_client_configuration`, and that
//! segment, percent-decoded, is a client id candidate.
//!
//! # Default TTLs
//!
//! An entry lives until its TTL runs out, then routing falls back to the policy. The defaults follow how long
//! each credential is useful in a flow, erring long where the backend keeps the credential "until the server
//! restarts" (a too-short TTL breaks flows; a too-long one only costs memory, which `max_entries` bounds):
//!
//! | kind | default | why |
//! |---|---|---|
//! | consumer key, client id | 30 days | a friendship outlives any flow; re-learned on approval/registration |
//! | request token | 1 hour | a consumer exchanges it within minutes |
//! | verifier, OAuth 2 code | 10 minutes | single-use, exchanged at once |
//! | OAuth 1 access token | 30 days | CQ Web keeps it in memory until the node restarts; consumers reuse it for long |
//! | OAuth 2 bearer token | 1 hour | the usual `expires_in` of OAuth 2 servers |
//! | refresh token, registration access token | 30 days | long-lived by design |
//! | device code, user code | 30 minutes | RFC 8628's example `expires_in` is 1800 s |
//! | PAR request URI | 10 minutes | RFC 9126 suggests 5 to 600 s |
//! | ID token, `sid` | 1 day | an expired ID token is still a valid `id_token_hint` at logout |
//! | session cookie | 8 hours | a working day of a browser session |
//!
//! Longer than 600 lines: the roles, presets and TTL defaults form one vocabulary, and a third of the file is their
//! tests.

use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::oauth::{CredentialKind, OAuthError};

/// The default cap on a buffered request or response body.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// The session cookie looked at when no other is configured (Java servlet containers, WebSphere).
pub const DEFAULT_SESSION_COOKIE: &str = "JSESSIONID";

/// What an endpoint does in an OAuth flow, which decides what its requests and responses carry (see the
/// module documentation for the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointRole {
    /// OAuth 1 consumer registration; answers JSON `{"key": K}`.
    ConsumerRegistration,
    /// Approval of a provisional consumer key (`?key=K`), possible only on the node holding it.
    ConsumerApproval,
    /// OAuth 1 temporary-credential request; answers a form body with `oauth_token`.
    RequestToken,
    /// OAuth 1 resource-owner authorization; redirects with `oauth_token` and `oauth_verifier`.
    Authorize,
    /// OAuth 1 token request; answers a form body with the access `oauth_token`.
    AccessToken,
    /// OAuth 2 authorization endpoint; redirects with `code` (or a fragment `access_token`, `id_token`); the
    /// query may carry a PAR `request_uri`.
    #[serde(rename = "oauth2_authorize")]
    OAuth2Authorize,
    /// OAuth 2 token endpoint; form body with `code`/`refresh_token`/`device_code`/`client_id` (or client
    /// authentication by `Authorization: Basic`), answers token JSON.
    #[serde(rename = "oauth2_token")]
    OAuth2Token,
    /// OAuth 2 dynamic client registration (RFC 7591); answers JSON with `client_id` and, with RFC 7592,
    /// `registration_access_token` and `registration_client_uri`.
    #[serde(rename = "oauth2_registration")]
    OAuth2Registration,
    /// RFC 7592 client configuration endpoint: read, update or delete a client with its registration access
    /// token; the client id is the last path segment (or `?client_id=`).
    #[serde(rename = "oauth2_client_configuration")]
    OAuth2ClientConfiguration,
    /// RFC 7009 token revocation: form `token`, `token_type_hint`, client authentication.
    #[serde(rename = "oauth2_revocation")]
    OAuth2Revocation,
    /// RFC 7662 token introspection: form `token`, `token_type_hint`, client authentication.
    #[serde(rename = "oauth2_introspection")]
    OAuth2Introspection,
    /// RFC 8628 device authorization: answers JSON with `device_code` and `user_code`.
    #[serde(rename = "oauth2_device_authorization")]
    OAuth2DeviceAuthorization,
    /// RFC 8628 verification page, where the user enters the `user_code` (query or form).
    #[serde(rename = "oauth2_device_verification")]
    OAuth2DeviceVerification,
    /// RFC 9126 pushed authorization request: answers 201 JSON with `request_uri`.
    #[serde(rename = "oauth2_par")]
    OAuth2Par,
    /// OpenID Connect RP-initiated logout: `id_token_hint` and `sid` in the query or form.
    #[serde(rename = "oidc_end_session")]
    OidcEndSession,
    /// OpenID Connect userinfo: a bearer token in the header, form body or query.
    #[serde(rename = "oidc_userinfo")]
    OidcUserinfo,
}

impl EndpointRole {
    /// Every role, for config error messages and tests.
    pub const ALL: [EndpointRole; 16] = [
        EndpointRole::ConsumerRegistration,
        EndpointRole::ConsumerApproval,
        EndpointRole::RequestToken,
        EndpointRole::Authorize,
        EndpointRole::AccessToken,
        EndpointRole::OAuth2Authorize,
        EndpointRole::OAuth2Token,
        EndpointRole::OAuth2Registration,
        EndpointRole::OAuth2ClientConfiguration,
        EndpointRole::OAuth2Revocation,
        EndpointRole::OAuth2Introspection,
        EndpointRole::OAuth2DeviceAuthorization,
        EndpointRole::OAuth2DeviceVerification,
        EndpointRole::OAuth2Par,
        EndpointRole::OidcEndSession,
        EndpointRole::OidcUserinfo,
    ];

    /// A stable snake_case name for logs and metrics (the same as in config).
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointRole::ConsumerRegistration => "consumer_registration",
            EndpointRole::ConsumerApproval => "consumer_approval",
            EndpointRole::RequestToken => "request_token",
            EndpointRole::Authorize => "authorize",
            EndpointRole::AccessToken => "access_token",
            EndpointRole::OAuth2Authorize => "oauth2_authorize",
            EndpointRole::OAuth2Token => "oauth2_token",
            EndpointRole::OAuth2Registration => "oauth2_registration",
            EndpointRole::OAuth2ClientConfiguration => "oauth2_client_configuration",
            EndpointRole::OAuth2Revocation => "oauth2_revocation",
            EndpointRole::OAuth2Introspection => "oauth2_introspection",
            EndpointRole::OAuth2DeviceAuthorization => "oauth2_device_authorization",
            EndpointRole::OAuth2DeviceVerification => "oauth2_device_verification",
            EndpointRole::OAuth2Par => "oauth2_par",
            EndpointRole::OidcEndSession => "oidc_end_session",
            EndpointRole::OidcUserinfo => "oidc_userinfo",
        }
    }

    /// Whether a client authenticates here (RFC 6749 §2.3.1), so `Authorization: Basic` names the client:
    /// the token, revocation, introspection, device-authorization and PAR endpoints.
    pub fn authenticates_client(self) -> bool {
        matches!(
            self,
            EndpointRole::OAuth2Token
                | EndpointRole::OAuth2Revocation
                | EndpointRole::OAuth2Introspection
                | EndpointRole::OAuth2DeviceAuthorization
                | EndpointRole::OAuth2Par
        )
    }
}

/// A path suffix and the role of the endpoints it matches. The suffix starts with `/`, so it matches whole path
/// segments: `/oauth-authorize` matches `/cqweb/oauth-authorize` but `/authorize` does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRule {
    /// Matched against the end of the request path (without the query).
    pub path_suffix: String,
    /// What the matched endpoint does.
    pub role: EndpointRole,
}

/// Ready-made rule sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Jazz / ClearQuest Web OSLC paths: `*/oauth-request-consumer`, `*/oauth-approve-consumer`,
    /// `*/oauth-request-token`, `*/oauth-authorize`, `*/oauth-access-token`.
    Oslc,
    /// OAuth 2 and OpenID Connect, with the paths of the RFCs' examples and of common servers (Spring
    /// Authorization Server, Keycloak, node-oidc-provider, Ory, Auth0, Authlib); see [`Preset::rules`].
    #[serde(rename = "oauth2")]
    OAuth2,
}

impl Preset {
    /// The rules of this preset.
    pub fn rules(self) -> Vec<EndpointRule> {
        use EndpointRole as R;
        let pairs: &[(&str, EndpointRole)] = match self {
            Preset::Oslc => &[
                ("/oauth-request-consumer", R::ConsumerRegistration),
                ("/oauth-approve-consumer", R::ConsumerApproval),
                ("/oauth-request-token", R::RequestToken),
                ("/oauth-authorize", R::Authorize),
                ("/oauth-access-token", R::AccessToken),
            ],
            Preset::OAuth2 => &[
                ("/authorize", R::OAuth2Authorize),
                ("/token", R::OAuth2Token),
                ("/register", R::OAuth2Registration),
                ("/revoke", R::OAuth2Revocation),
                ("/revocation", R::OAuth2Revocation),
                ("/introspect", R::OAuth2Introspection),
                ("/introspection", R::OAuth2Introspection),
                ("/device_authorization", R::OAuth2DeviceAuthorization),
                ("/device/auth", R::OAuth2DeviceAuthorization),
                ("/auth/device", R::OAuth2DeviceAuthorization),
                ("/device/code", R::OAuth2DeviceAuthorization),
                ("/device", R::OAuth2DeviceVerification),
                ("/device_verification", R::OAuth2DeviceVerification),
                ("/device/verify", R::OAuth2DeviceVerification),
                ("/par", R::OAuth2Par),
                ("/par/request", R::OAuth2Par),
                ("/logout", R::OidcEndSession),
                ("/end_session", R::OidcEndSession),
                ("/endsession", R::OidcEndSession),
                ("/session/end", R::OidcEndSession),
                ("/userinfo", R::OidcUserinfo),
            ],
        };
        pairs
            .iter()
            .map(|&(path_suffix, role)| EndpointRule {
                path_suffix: path_suffix.to_owned(),
                role,
            })
            .collect()
    }
}

/// Where to look for credentials, and for how long learned ones live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Longest suffix first, so the most specific rule wins.
    endpoints: Vec<EndpointRule>,
    cookie_names: Vec<String>,
    ttls: [Duration; CredentialKind::ALL.len()],
    max_body: usize,
    all_form_bodies: bool,
}

impl Rules {
    /// The rules of `presets` (duplicates are harmless), cookie [`DEFAULT_SESSION_COOKIE`], default TTLs,
    /// [`DEFAULT_MAX_BODY`], and form bodies read only on endpoints with a role.
    pub fn from_presets(presets: &[Preset]) -> Rules {
        let mut rules = Rules {
            endpoints: Vec::new(),
            cookie_names: vec![DEFAULT_SESSION_COOKIE.to_owned()],
            ttls: CredentialKind::ALL.map(default_ttl),
            max_body: DEFAULT_MAX_BODY,
            all_form_bodies: false,
        };
        for rule in presets.iter().flat_map(|p| p.rules()) {
            rules.insert_endpoint(rule);
        }
        rules
    }

    /// Adds a custom rule; it replaces a rule with the same suffix (so config can override a preset).
    /// The suffix must start with `/` and hold no `?` or `#`.
    pub fn add_endpoint(&mut self, rule: EndpointRule) -> Result<(), OAuthError> {
        let s = &rule.path_suffix;
        if !s.starts_with('/') {
            return Err(OAuthError::InvalidRule("a path suffix must start with '/'"));
        }
        if s.contains(['?', '#']) {
            return Err(OAuthError::InvalidRule(
                "a path suffix cannot contain '?' or '#'",
            ));
        }
        self.insert_endpoint(rule);
        Ok(())
    }

    fn insert_endpoint(&mut self, rule: EndpointRule) {
        self.endpoints.retain(|r| r.path_suffix != rule.path_suffix);
        self.endpoints.push(rule);
        // Stable: among equal lengths the insertion order stays.
        self.endpoints
            .sort_by_key(|r| std::cmp::Reverse(r.path_suffix.len()));
    }

    /// The endpoint rules, longest suffix first.
    pub fn endpoints(&self) -> &[EndpointRule] {
        &self.endpoints
    }

    /// Replaces the session cookie names (an empty list turns cookie affinity off). Names must be RFC 6265
    /// tokens.
    pub fn set_cookie_names<I, S>(&mut self, names: I) -> Result<(), OAuthError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        if names.iter().any(|n| !is_cookie_name(n)) {
            return Err(OAuthError::InvalidRule(
                "a cookie name must be a non-empty token",
            ));
        }
        self.cookie_names = names;
        self.cookie_names.dedup();
        Ok(())
    }

    /// Adds a session cookie name.
    pub fn add_cookie_name(&mut self, name: impl Into<String>) -> Result<(), OAuthError> {
        let name = name.into();
        if !is_cookie_name(&name) {
            return Err(OAuthError::InvalidRule(
                "a cookie name must be a non-empty token",
            ));
        }
        if !self.cookie_names.contains(&name) {
            self.cookie_names.push(name);
        }
        Ok(())
    }

    /// The session cookie names (case-sensitive, as cookies are).
    pub fn cookie_names(&self) -> &[String] {
        &self.cookie_names
    }

    /// Whether `name` is a configured session cookie.
    pub fn is_session_cookie(&self, name: &str) -> bool {
        self.cookie_names.iter().any(|n| n == name)
    }

    /// How long a learned credential of `kind` stays in the table.
    pub fn ttl(&self, kind: CredentialKind) -> Duration {
        self.ttls[kind.index()]
    }

    /// Sets the TTL of `kind`.
    pub fn set_ttl(&mut self, kind: CredentialKind, ttl: Duration) {
        self.ttls[kind.index()] = ttl;
    }

    /// The cap on a buffered body, in bytes.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Sets the cap on a buffered body.
    pub fn set_max_body(&mut self, bytes: usize) {
        self.max_body = bytes;
    }

    /// Whether form bodies are read on every path, not only on endpoints with a role.
    pub fn all_form_bodies(&self) -> bool {
        self.all_form_bodies
    }

    /// Reads form bodies on every path (OAuth 1 parameters may travel in any form body, RFC 5849 §3.5.2) at
    /// the cost of buffering every form request.
    pub fn set_all_form_bodies(&mut self, on: bool) {
        self.all_form_bodies = on;
    }

    /// The role of the endpoint at `path` (a query, if present, is ignored). A path one segment below a
    /// registration or client-configuration suffix is a client configuration endpoint.
    pub fn role_for(&self, path: &str) -> Option<EndpointRole> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        self.endpoints
            .iter()
            .find(|r| path.ends_with(r.path_suffix.as_str()))
            .map(|r| r.role)
            .or_else(|| {
                self.below_registration(path)
                    .map(|_| EndpointRole::OAuth2ClientConfiguration)
            })
    }

    /// The raw (still percent-encoded) last segment of `path` when `path` is one segment below a suffix of
    /// role `oauth2_registration` or `oauth2_client_configuration` and no rule matches `path` itself: RFC
    /// 7592's client configuration URI, whose last segment is the client id. A query is ignored.
    pub fn client_configuration_segment<'p>(&self, path: &'p str) -> Option<&'p str> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        if self
            .endpoints
            .iter()
            .any(|r| path.ends_with(r.path_suffix.as_str()))
        {
            return None;
        }
        self.below_registration(path)
    }

    /// The last segment of a query-less `path` whose parent ends with a registration or client-configuration
    /// suffix (without checking that no rule matches `path` itself).
    fn below_registration<'p>(&self, path: &'p str) -> Option<&'p str> {
        let (parent, segment) = path.rsplit_once('/')?;
        if segment.is_empty() {
            return None;
        }
        self.endpoints
            .iter()
            .filter(|r| {
                matches!(
                    r.role,
                    EndpointRole::OAuth2Registration | EndpointRole::OAuth2ClientConfiguration
                )
            })
            .any(|r| parent.ends_with(r.path_suffix.as_str()))
            .then_some(segment)
    }

    /// Whether the proxy should buffer this request's body (up to [`Rules::max_body`]) to read credentials:
    /// only single-part `application/x-www-form-urlencoded` bodies of methods that carry one, on endpoints with a
    /// role or everywhere when [`Rules::all_form_bodies`] is set. Everything else streams.
    pub fn wants_request_body(
        &self,
        method: &Method,
        path: &str,
        content_type: Option<&HeaderValue>,
    ) -> bool {
        let carries_body = !matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::CONNECT
        );
        carries_body
            && is_form_content_type(content_type)
            && (self.all_form_bodies || self.role_for(path).is_some())
    }

    /// Whether the proxy should buffer this response's body to learn from it: success answers of endpoints
    /// whose body issues a credential, with a content type that fits (missing counts as fitting).
    pub fn wants_response_body(
        &self,
        role: Option<EndpointRole>,
        status: StatusCode,
        content_type: Option<&HeaderValue>,
    ) -> bool {
        let Some(role) = role else { return false };
        if !status.is_success() {
            return false;
        }
        match role {
            EndpointRole::ConsumerRegistration
            | EndpointRole::OAuth2Token
            | EndpointRole::OAuth2Registration
            | EndpointRole::OAuth2ClientConfiguration
            | EndpointRole::OAuth2DeviceAuthorization
            | EndpointRole::OAuth2Par => {
                content_type.is_none() || is_json_content_type(content_type)
            }
            // RFC 5849 §2.1 says form-encoded; many servers label it text/plain.
            EndpointRole::RequestToken | EndpointRole::AccessToken => {
                content_type.is_none()
                    || is_form_content_type(content_type)
                    || media_type_is(content_type, b"text/plain")
            }
            // Approval is learned from the request; authorize answers from `Location`; the others issue
            // nothing (revocation and introspection answer even for a token they never issued).
            EndpointRole::ConsumerApproval
            | EndpointRole::Authorize
            | EndpointRole::OAuth2Authorize
            | EndpointRole::OAuth2Revocation
            | EndpointRole::OAuth2Introspection
            | EndpointRole::OAuth2DeviceVerification
            | EndpointRole::OidcEndSession
            | EndpointRole::OidcUserinfo => false,
        }
    }
}

fn default_ttl(kind: CredentialKind) -> Duration {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    Duration::from_secs(match kind {
        CredentialKind::ConsumerKey | CredentialKind::ClientId => 30 * DAY,
        CredentialKind::RequestToken => HOUR,
        CredentialKind::Verifier | CredentialKind::Code => 10 * MINUTE,
        CredentialKind::AccessToken => 30 * DAY,
        CredentialKind::BearerToken => HOUR,
        CredentialKind::RefreshToken | CredentialKind::RegistrationAccessToken => 30 * DAY,
        CredentialKind::DeviceCode | CredentialKind::UserCode => 30 * MINUTE,
        CredentialKind::RequestUri => 10 * MINUTE,
        CredentialKind::IdToken | CredentialKind::Sid => DAY,
        CredentialKind::SessionCookie => 8 * HOUR,
    })
}

fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The media type of a `Content-Type` value (parameters such as `charset` dropped, trimmed).
fn media_type(content_type: Option<&HeaderValue>) -> Option<&[u8]> {
    let bytes = content_type?.as_bytes();
    let essence = bytes.split(|&b| b == b';').next().unwrap_or(bytes);
    Some(essence.trim_ascii())
}

fn media_type_is(content_type: Option<&HeaderValue>, expected: &[u8]) -> bool {
    media_type(content_type).is_some_and(|m| m.eq_ignore_ascii_case(expected))
}

/// Whether `content_type` is `application/x-www-form-urlencoded` (any parameters, any case).
pub fn is_form_content_type(content_type: Option<&HeaderValue>) -> bool {
    media_type_is(content_type, b"application/x-www-form-urlencoded")
}

/// Whether `content_type` is JSON: `application/json`, `text/json` or a `+json` suffix type.
pub fn is_json_content_type(content_type: Option<&HeaderValue>) -> bool {
    media_type(content_type).is_some_and(|m| {
        m.eq_ignore_ascii_case(b"application/json")
            || m.eq_ignore_ascii_case(b"text/json")
            || (m.len() > 5 && m[m.len() - 5..].eq_ignore_ascii_case(b"+json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn presets_map_paths_to_roles_by_whole_segment_suffix() {
        let rules = Rules::from_presets(&[Preset::Oslc, Preset::OAuth2]);
        let cases: &[(&str, Option<EndpointRole>)] = &[
            (
                "/cqweb/oauth-request-consumer",
                Some(EndpointRole::ConsumerRegistration),
            ),
            (
                "/cqweb/oauth-approve-consumer?key=K",
                Some(EndpointRole::ConsumerApproval),
            ),
            (
                "/cqweb/oauth-request-token",
                Some(EndpointRole::RequestToken),
            ),
            (
                "/cqweb/oauth-authorize?oauth_token=T",
                Some(EndpointRole::Authorize),
            ),
            ("/cqweb/oauth-access-token", Some(EndpointRole::AccessToken)),
            ("/as/authorize", Some(EndpointRole::OAuth2Authorize)),
            ("/as/token", Some(EndpointRole::OAuth2Token)),
            ("/register", Some(EndpointRole::OAuth2Registration)),
            ("/oauth2/revoke", Some(EndpointRole::OAuth2Revocation)),
            ("/token/revocation", Some(EndpointRole::OAuth2Revocation)),
            (
                "/oauth2/introspect",
                Some(EndpointRole::OAuth2Introspection),
            ),
            (
                "/token/introspection",
                Some(EndpointRole::OAuth2Introspection),
            ),
            (
                "/oauth2/device_authorization",
                Some(EndpointRole::OAuth2DeviceAuthorization),
            ),
            (
                "/realms/r/protocol/openid-connect/auth/device",
                Some(EndpointRole::OAuth2DeviceAuthorization),
            ),
            (
                "/oauth/device/code",
                Some(EndpointRole::OAuth2DeviceAuthorization),
            ),
            (
                "/device/auth",
                Some(EndpointRole::OAuth2DeviceAuthorization),
            ),
            (
                "/device?user_code=X",
                Some(EndpointRole::OAuth2DeviceVerification),
            ),
            (
                "/oauth2/device_verification",
                Some(EndpointRole::OAuth2DeviceVerification),
            ),
            (
                "/oauth2/device/verify",
                Some(EndpointRole::OAuth2DeviceVerification),
            ),
            ("/as/par", Some(EndpointRole::OAuth2Par)),
            ("/ext/par/request", Some(EndpointRole::OAuth2Par)),
            ("/connect/logout", Some(EndpointRole::OidcEndSession)),
            ("/connect/endsession", Some(EndpointRole::OidcEndSession)),
            ("/session/end", Some(EndpointRole::OidcEndSession)),
            ("/userinfo", Some(EndpointRole::OidcUserinfo)),
            (
                "/register/s6BhdRkqt3",
                Some(EndpointRole::OAuth2ClientConfiguration),
            ),
            ("/register/s6BhdRkqt3/", None),
            ("/register/a/b", None),
            ("/cqweb/oauth-authorize/", None),
            ("/cqweb/myauthorize", None),
            ("/cqweb/login", None),
            ("/x?next=/token", None),
            ("", None),
        ];
        for &(path, role) in cases {
            assert_eq!(rules.role_for(path), role, "{path}");
        }
    }

    #[test]
    fn client_configuration_uri_is_one_segment_below_a_registration_suffix() {
        let mut rules = Rules::from_presets(&[Preset::OAuth2]);
        rules
            .add_endpoint(EndpointRule {
                path_suffix: "/admin/clients".into(),
                role: EndpointRole::OAuth2ClientConfiguration,
            })
            .unwrap();
        let cases: &[(&str, Option<&str>)] = &[
            ("/register/s6BhdRkqt3", Some("s6BhdRkqt3")),
            ("/as/register/a%2Fb?x=1", Some("a%2Fb")),
            ("/admin/clients/c1", Some("c1")),
            ("/admin/clients?client_id=c1", None),
            ("/register/", None),
            ("/register", None),
            ("/register/x/y", None),
            // A path a rule matches keeps that rule's role, even below a registration suffix.
            ("/register/token", None),
            ("/myregister/x", None),
            ("/x", None),
            ("", None),
        ];
        for &(path, want) in cases {
            assert_eq!(rules.client_configuration_segment(path), want, "{path}");
        }
        assert_eq!(
            rules.role_for("/admin/clients?client_id=c1"),
            Some(EndpointRole::OAuth2ClientConfiguration)
        );
        assert_eq!(
            rules.role_for("/register/token"),
            Some(EndpointRole::OAuth2Token)
        );
        let oslc = Rules::from_presets(&[Preset::Oslc]);
        assert_eq!(oslc.role_for("/cqweb/oauth-request-consumer/x"), None);
    }

    #[test]
    fn client_authentication_roles_are_the_rfc6749_ones() {
        let authenticating: Vec<EndpointRole> = EndpointRole::ALL
            .into_iter()
            .filter(|r| r.authenticates_client())
            .collect();
        assert_eq!(
            authenticating,
            [
                EndpointRole::OAuth2Token,
                EndpointRole::OAuth2Revocation,
                EndpointRole::OAuth2Introspection,
                EndpointRole::OAuth2DeviceAuthorization,
                EndpointRole::OAuth2Par,
            ]
        );
    }

    #[test]
    fn presets_only_match_what_was_selected() {
        let oslc = Rules::from_presets(&[Preset::Oslc]);
        assert_eq!(oslc.role_for("/as/token"), None);
        let none = Rules::from_presets(&[]);
        assert_eq!(none.role_for("/cqweb/oauth-request-token"), None);
    }

    #[test]
    fn custom_rule_overrides_a_preset_and_longest_suffix_wins() {
        let mut rules = Rules::from_presets(&[Preset::OAuth2]);
        rules
            .add_endpoint(EndpointRule {
                path_suffix: "/token".into(),
                role: EndpointRole::AccessToken,
            })
            .unwrap();
        rules
            .add_endpoint(EndpointRule {
                path_suffix: "/oauth2/v1/token".into(),
                role: EndpointRole::OAuth2Token,
            })
            .unwrap();
        assert_eq!(rules.role_for("/a/token"), Some(EndpointRole::AccessToken));
        assert_eq!(
            rules.role_for("/oauth2/v1/token"),
            Some(EndpointRole::OAuth2Token)
        );
        assert_eq!(rules.endpoints().len(), Preset::OAuth2.rules().len() + 1);
    }

    #[test]
    fn invalid_custom_rules_and_cookie_names_are_refused() {
        let mut rules = Rules::from_presets(&[]);
        for suffix in ["", "token", "/t?x", "/t#x"] {
            let rule = EndpointRule {
                path_suffix: suffix.into(),
                role: EndpointRole::OAuth2Token,
            };
            assert!(rules.add_endpoint(rule).is_err(), "{suffix:?}");
        }
        assert!(rules.add_cookie_name("").is_err());
        assert!(rules.add_cookie_name("a b").is_err());
        assert!(rules.set_cookie_names(["ok", "no;"]).is_err());
        assert_eq!(rules.cookie_names(), ["JSESSIONID"]);
    }

    #[test]
    fn cookie_names_default_to_jsessionid_and_are_configurable() {
        let mut rules = Rules::from_presets(&[]);
        assert!(rules.is_session_cookie("JSESSIONID"));
        assert!(!rules.is_session_cookie("jsessionid"));
        rules.add_cookie_name("LtpaToken2").unwrap();
        assert!(rules.is_session_cookie("LtpaToken2"));
        rules.set_cookie_names(Vec::<String>::new()).unwrap();
        assert!(!rules.is_session_cookie("JSESSIONID"));
    }

    #[test]
    fn ttls_have_defaults_for_every_kind_and_can_be_set() {
        let mut rules = Rules::from_presets(&[]);
        for kind in CredentialKind::ALL {
            assert!(rules.ttl(kind) >= Duration::from_secs(600), "{kind:?}");
        }
        assert_eq!(
            rules.ttl(CredentialKind::RequestToken),
            Duration::from_secs(3600)
        );
        rules.set_ttl(CredentialKind::Verifier, Duration::from_secs(5));
        assert_eq!(rules.ttl(CredentialKind::Verifier), Duration::from_secs(5));
        assert_eq!(rules.ttl(CredentialKind::Code), Duration::from_secs(600));
    }

    #[test]
    fn request_bodies_are_wanted_only_for_forms_on_role_paths() {
        let mut rules = Rules::from_presets(&[Preset::Oslc]);
        let form = ct("application/x-www-form-urlencoded");
        let form_charset = ct("Application/X-WWW-Form-Urlencoded ; charset=UTF-8");
        let multipart = ct("multipart/form-data; boundary=x");
        let json = ct("application/json");
        let token = "/cqweb/oauth-request-token";
        let cases: &[(&Method, &str, Option<&HeaderValue>, bool)] = &[
            (&Method::POST, token, Some(&form), true),
            (&Method::PUT, token, Some(&form_charset), true),
            (&Method::POST, token, Some(&multipart), false),
            (&Method::POST, token, Some(&json), false),
            (&Method::POST, token, None, false),
            (&Method::GET, token, Some(&form), false),
            (&Method::POST, "/cqweb/resource", Some(&form), false),
        ];
        for &(method, path, content_type, want) in cases {
            assert_eq!(
                rules.wants_request_body(method, path, content_type),
                want,
                "{method} {path} {content_type:?}"
            );
        }
        rules.set_all_form_bodies(true);
        assert!(rules.wants_request_body(&Method::POST, "/cqweb/resource", Some(&form)));
        assert!(!rules.wants_request_body(&Method::POST, "/cqweb/resource", Some(&json)));
    }

    #[test]
    fn response_bodies_are_wanted_only_for_issuing_endpoints_on_success() {
        let rules = Rules::from_presets(&[Preset::Oslc, Preset::OAuth2]);
        let json = ct("application/json;charset=utf-8");
        let problem = ct("application/problem+json");
        let form = ct("application/x-www-form-urlencoded");
        let text = ct("text/plain; charset=ISO-8859-1");
        let html = ct("text/html");
        let ok = StatusCode::OK;
        use EndpointRole::*;
        let cases: &[(Option<EndpointRole>, StatusCode, Option<&HeaderValue>, bool)] = &[
            (Some(ConsumerRegistration), ok, Some(&json), true),
            (Some(ConsumerRegistration), ok, None, true),
            (Some(ConsumerRegistration), ok, Some(&html), false),
            (
                Some(ConsumerRegistration),
                StatusCode::UNAUTHORIZED,
                Some(&json),
                false,
            ),
            (
                Some(OAuth2Registration),
                StatusCode::CREATED,
                Some(&json),
                true,
            ),
            (Some(OAuth2Token), ok, Some(&problem), true),
            (Some(OAuth2Par), StatusCode::CREATED, Some(&json), true),
            (Some(OAuth2DeviceAuthorization), ok, Some(&json), true),
            (Some(OAuth2ClientConfiguration), ok, Some(&json), true),
            (
                Some(OAuth2ClientConfiguration),
                StatusCode::NO_CONTENT,
                None,
                true,
            ),
            (Some(OAuth2Par), ok, Some(&html), false),
            (Some(OAuth2Revocation), ok, Some(&json), false),
            (Some(OAuth2Introspection), ok, Some(&json), false),
            (Some(OAuth2DeviceVerification), ok, Some(&html), false),
            (Some(OidcEndSession), StatusCode::FOUND, None, false),
            (Some(OidcUserinfo), ok, Some(&json), false),
            (Some(RequestToken), ok, Some(&form), true),
            (Some(AccessToken), ok, Some(&text), true),
            (Some(AccessToken), ok, Some(&json), false),
            (Some(Authorize), StatusCode::FOUND, None, false),
            (Some(ConsumerApproval), ok, Some(&html), false),
            (None, ok, Some(&json), false),
        ];
        for &(role, status, content_type, want) in cases {
            assert_eq!(
                rules.wants_response_body(role, status, content_type),
                want,
                "{role:?} {status} {content_type:?}"
            );
        }
    }

    #[test]
    fn content_type_checks_tolerate_parameters_and_odd_bytes() {
        assert!(is_json_content_type(Some(&ct(
            "APPLICATION/JSON; charset=utf-8"
        ))));
        assert!(is_json_content_type(Some(&ct("text/json"))));
        assert!(!is_json_content_type(Some(&ct("+json"))));
        assert!(!is_json_content_type(Some(&ct(""))));
        assert!(!is_json_content_type(None));
        let odd = HeaderValue::from_bytes(b"application/json\xff").unwrap();
        assert!(!is_json_content_type(Some(&odd)));
        assert!(!is_form_content_type(Some(&ct(";"))));
    }

    #[test]
    fn roles_and_presets_have_stable_config_names() {
        let role: EndpointRole = serde_json::from_str("\"oauth2_token\"").unwrap();
        assert_eq!(role, EndpointRole::OAuth2Token);
        assert_eq!(role.as_str(), "oauth2_token");
        let role: EndpointRole = serde_json::from_str("\"consumer_approval\"").unwrap();
        assert_eq!(role.as_str(), "consumer_approval");
        let preset: Preset = serde_json::from_str("\"oauth2\"").unwrap();
        assert_eq!(preset, Preset::OAuth2);
        let preset: Preset = serde_json::from_str("\"oslc\"").unwrap();
        assert_eq!(preset, Preset::Oslc);
        for role in EndpointRole::ALL {
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
    }

    #[test]
    fn ttls_of_the_oauth2_family_follow_their_rfcs() {
        let rules = Rules::from_presets(&[]);
        let cases = [
            (CredentialKind::DeviceCode, 30 * 60),
            (CredentialKind::UserCode, 30 * 60),
            (CredentialKind::RequestUri, 10 * 60),
            (CredentialKind::RegistrationAccessToken, 30 * 86_400),
            (CredentialKind::IdToken, 86_400),
            (CredentialKind::Sid, 86_400),
        ];
        for (kind, secs) in cases {
            assert_eq!(rules.ttl(kind), Duration::from_secs(secs), "{kind:?}");
        }
    }
}

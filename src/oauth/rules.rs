//! Where to look for credentials: endpoint roles by path suffix, session cookie names, TTLs and body caps.
//!
//! [`Rules`] is the runtime value the config layer builds (from presets plus custom rules) and the proxy reads
//! on every request. The hot-path methods ([`Rules::role_for`], [`Rules::wants_request_body`],
//! [`Rules::wants_response_body`]) only compare a few byte strings: no allocation, no parsing of bodies.
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
//! | refresh token | 30 days | long-lived by design |
//! | session cookie | 8 hours | a working day of a browser session |

use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::oauth::{CredentialKind, OAuthError};

/// The default cap on a buffered request or response body.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// The session cookie looked at when no other is configured (Java servlet containers, WebSphere).
pub const DEFAULT_SESSION_COOKIE: &str = "JSESSIONID";

/// What an endpoint does in an OAuth flow, which decides what its requests and responses carry.
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
    /// OAuth 2 authorization endpoint; redirects with `code` (or a fragment `access_token`).
    #[serde(rename = "oauth2_authorize")]
    OAuth2Authorize,
    /// OAuth 2 token endpoint; form body with `code`/`refresh_token`/`client_id`, answers token JSON.
    #[serde(rename = "oauth2_token")]
    OAuth2Token,
    /// OAuth 2 dynamic client registration; answers JSON with `client_id`.
    #[serde(rename = "oauth2_registration")]
    OAuth2Registration,
}

impl EndpointRole {
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
        }
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
    /// OAuth 2: `*/authorize`, `*/token`, `*/register`.
    #[serde(rename = "oauth2")]
    OAuth2,
}

impl Preset {
    /// The rules of this preset.
    pub fn rules(self) -> Vec<EndpointRule> {
        let pairs: &[(&str, EndpointRole)] = match self {
            Preset::Oslc => &[
                (
                    "/oauth-request-consumer",
                    EndpointRole::ConsumerRegistration,
                ),
                ("/oauth-approve-consumer", EndpointRole::ConsumerApproval),
                ("/oauth-request-token", EndpointRole::RequestToken),
                ("/oauth-authorize", EndpointRole::Authorize),
                ("/oauth-access-token", EndpointRole::AccessToken),
            ],
            Preset::OAuth2 => &[
                ("/authorize", EndpointRole::OAuth2Authorize),
                ("/token", EndpointRole::OAuth2Token),
                ("/register", EndpointRole::OAuth2Registration),
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

    /// The role of the endpoint at `path` (a query, if present, is ignored).
    pub fn role_for(&self, path: &str) -> Option<EndpointRole> {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        self.endpoints
            .iter()
            .find(|r| path.ends_with(r.path_suffix.as_str()))
            .map(|r| r.role)
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
            | EndpointRole::OAuth2Registration => {
                content_type.is_none() || is_json_content_type(content_type)
            }
            // RFC 5849 §2.1 says form-encoded; many servers label it text/plain.
            EndpointRole::RequestToken | EndpointRole::AccessToken => {
                content_type.is_none()
                    || is_form_content_type(content_type)
                    || media_type_is(content_type, b"text/plain")
            }
            // Approval is learned from the request; authorize answers from `Location`.
            EndpointRole::ConsumerApproval
            | EndpointRole::Authorize
            | EndpointRole::OAuth2Authorize => false,
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
        CredentialKind::RefreshToken => 30 * DAY,
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
        assert_eq!(rules.endpoints().len(), 4);
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
    }
}

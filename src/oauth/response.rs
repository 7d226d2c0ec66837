//! Credentials a backend response issues, to learn with the answering node as their issuer.
//!
//! This is the only source of table entries (BRIEF 2.1): a response of a node the proxy itself routed to.
//! Learning happens only on success — 2xx, or 302/303 for what a `Location` carries — and a body or header that
//! does not parse teaches nothing.
//!
//! | endpoint role | what is learned |
//! |---|---|
//! | consumer registration | JSON `{"key": K}` → consumer key, [`KeyEvent::Registered`] |
//! | consumer approval (POST) | `key` of the request query → consumer key, [`KeyEvent::Approved`] |
//! | request token / access token | form body `oauth_token` → request / access token |
//! | authorize (OAuth 1) | `Location` query `oauth_token`, `oauth_verifier` → request token, verifier |
//! | OAuth 2 authorize | `Location` query or fragment `code` → code, `id_token` → ID token (and its `sid`); fragment `access_token` (implicit grant) → bearer |
//! | OAuth 2 token | JSON `access_token`, `refresh_token`, `id_token` → bearer token, refresh token, ID token (and its `sid`) |
//! | OAuth 2 registration | JSON `client_id` → client id, [`KeyEvent::Registered`]; `registration_access_token` → registration access token; last path segment of `registration_client_uri` → client id |
//! | OAuth 2 client configuration (RFC 7592) | JSON `registration_access_token` (a server may rotate it) |
//! | device authorization (RFC 8628) | JSON `device_code`, `user_code` (normalised) |
//! | pushed authorization request (RFC 9126) | JSON `request_uri` |
//! | any | `Set-Cookie` of a configured session cookie → session cookie |
//!
//! The `sid` claim is read from the ID token's JWS payload without checking the signature: the token comes from
//! the node's own answer, and `sid` is only a routing hint, never an authorization.
//!
//! Longer than 600 lines: over half of it is the table of response cases its tests run.

use http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;

use crate::oauth::percent::parse_form;
use crate::oauth::request::{normalize_user_code, unquote};
use crate::oauth::{CredentialKind, CredentialValue, EndpointRole, Rules};

/// A consumer key (or OAuth 2 client id) appeared on a node: the proxy refreshes the other nodes so that they
/// load it too (BRIEF 2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEvent {
    /// A new key was registered (consumer registration, or OAuth 2 client registration for a client id).
    Registered(CredentialValue),
    /// A provisional consumer key was approved.
    Approved(CredentialValue),
}

/// What one response teaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// Credentials issued by the answering node, each once.
    pub credentials: Vec<(CredentialKind, CredentialValue)>,
    /// A key registration or approval, if this response was one.
    pub key_event: Option<KeyEvent>,
}

impl Learned {
    /// Whether nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty() && self.key_event.is_none()
    }

    fn push(&mut self, kind: CredentialKind, value: &str) {
        if value.is_empty()
            || self
                .credentials
                .iter()
                .any(|(k, v)| *k == kind && v.expose() == value)
        {
            return;
        }
        self.credentials.push((kind, CredentialValue::new(value)));
    }

    /// An ID token, and the `sid` claim it carries if any.
    fn push_id_token(&mut self, id_token: &str) {
        self.push(CredentialKind::IdToken, id_token);
        if let Some(sid) = jwt_sid(id_token) {
            self.push(CredentialKind::Sid, &sid);
        }
    }
}

/// The `sid` claim of a JWS compact serialisation (`header.payload.signature`), read without verifying the
/// signature. `None` for anything else, an encrypted (five-part) token included.
fn jwt_sid(token: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    #[derive(Deserialize)]
    struct Claims {
        sid: Option<String>,
    }
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // Some issuers pad anyway; the padding carries nothing.
    let payload = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    json::<Claims>(&payload)?.sid
}

/// The last path segment of an absolute or relative URI, percent-decoded; `None` when empty.
fn last_path_segment(uri: &str) -> Option<String> {
    let path = uri.split(['?', '#']).next()?;
    let path = path.split_once("://").map_or(path, |(_, rest)| {
        rest.find('/').map_or("", |slash| &rest[slash..])
    });
    let (_, segment) = path.rsplit_once('/')?;
    crate::oauth::percent::decode(segment)
        .ok()
        .filter(|s| !s.is_empty())
}

/// Learns from a backend response.
///
/// `role` is the role of the request's path, `method` and `request_query` those of the request (approval is
/// learned from the request's `?key=K`, and only from a POST: a GET merely shows the approval page). `body` is
/// the buffered response body when [`Rules::wants_response_body`] asked for it; it is parsed only if that still
/// holds for the response's status and content type, and only up to [`Rules::max_body`].
pub fn learn_from_response(
    role: Option<EndpointRole>,
    method: &Method,
    request_query: Option<&str>,
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    rules: &Rules,
) -> Learned {
    let mut learned = Learned::default();
    if !(status.is_success() || status.is_redirection()) {
        return learned;
    }

    learn_cookies(headers, rules, &mut learned);

    let body = body.filter(|b| {
        b.len() <= rules.max_body()
            && rules.wants_response_body(role, status, headers.get(CONTENT_TYPE))
    });
    let redirect = matches!(status, StatusCode::FOUND | StatusCode::SEE_OTHER);

    match role {
        Some(EndpointRole::ConsumerRegistration) => {
            #[derive(Deserialize)]
            struct Registration {
                key: String,
            }
            if let Some(reg) = body.and_then(json::<Registration>) {
                learned.push(CredentialKind::ConsumerKey, &reg.key);
                if !reg.key.is_empty() {
                    learned.key_event = Some(KeyEvent::Registered(CredentialValue::new(reg.key)));
                }
            }
        }
        Some(EndpointRole::ConsumerApproval) => {
            if *method == Method::POST && status.is_success() {
                let key = request_query.and_then(|q| single(q.as_bytes(), "key"));
                if let Some(key) = key.filter(|k| !k.is_empty()) {
                    learned.push(CredentialKind::ConsumerKey, &key);
                    learned.key_event = Some(KeyEvent::Approved(CredentialValue::new(key)));
                }
            }
        }
        Some(role @ (EndpointRole::RequestToken | EndpointRole::AccessToken)) => {
            let kind = if role == EndpointRole::RequestToken {
                CredentialKind::RequestToken
            } else {
                CredentialKind::AccessToken
            };
            if let Some(token) = body.and_then(|b| single(b, "oauth_token")) {
                learned.push(kind, &token);
            }
        }
        Some(EndpointRole::Authorize) if redirect => {
            if let Some(query) = location_part(headers, '?') {
                if let Some(verifier) = single(query, "oauth_verifier") {
                    learned.push(CredentialKind::Verifier, &verifier);
                    if let Some(token) = single(query, "oauth_token") {
                        learned.push(CredentialKind::RequestToken, &token);
                    }
                }
            }
        }
        Some(EndpointRole::OAuth2Authorize) if redirect => {
            // `response_mode` query (default for `code`) or fragment (hybrid and implicit flows).
            for part in [location_part(headers, '?'), location_part(headers, '#')]
                .into_iter()
                .flatten()
            {
                if let Some(code) = single(part, "code") {
                    learned.push(CredentialKind::Code, &code);
                }
                if let Some(id_token) = single(part, "id_token") {
                    learned.push_id_token(&id_token);
                }
            }
            let fragment = location_part(headers, '#');
            if let Some(token) = fragment.and_then(|f| single(f, "access_token")) {
                learned.push(CredentialKind::BearerToken, &token);
            }
        }
        Some(EndpointRole::OAuth2Token) => {
            #[derive(Deserialize)]
            struct Tokens {
                access_token: Option<String>,
                refresh_token: Option<String>,
                id_token: Option<String>,
            }
            if let Some(tokens) = body.and_then(json::<Tokens>) {
                if let Some(access) = tokens.access_token {
                    learned.push(CredentialKind::BearerToken, &access);
                }
                if let Some(refresh) = tokens.refresh_token {
                    learned.push(CredentialKind::RefreshToken, &refresh);
                }
                if let Some(id_token) = tokens.id_token {
                    learned.push_id_token(&id_token);
                }
            }
        }
        Some(EndpointRole::OAuth2Registration) => {
            #[derive(Deserialize)]
            struct Client {
                client_id: String,
                registration_access_token: Option<String>,
                registration_client_uri: Option<String>,
            }
            if let Some(client) = body.and_then(json::<Client>) {
                learned.push(CredentialKind::ClientId, &client.client_id);
                if let Some(uri) = &client.registration_client_uri {
                    // Requests to the configuration URI are routed by its last segment, usually the client id.
                    if let Some(id) = last_path_segment(uri) {
                        learned.push(CredentialKind::ClientId, &id);
                    }
                }
                if let Some(token) = &client.registration_access_token {
                    learned.push(CredentialKind::RegistrationAccessToken, token);
                }
                if !client.client_id.is_empty() {
                    learned.key_event =
                        Some(KeyEvent::Registered(CredentialValue::new(client.client_id)));
                }
            }
        }
        Some(EndpointRole::OAuth2ClientConfiguration) => {
            #[derive(Deserialize)]
            struct Client {
                registration_access_token: Option<String>,
            }
            if let Some(token) = body
                .and_then(json::<Client>)
                .and_then(|c| c.registration_access_token)
            {
                learned.push(CredentialKind::RegistrationAccessToken, &token);
            }
        }
        Some(EndpointRole::OAuth2DeviceAuthorization) => {
            #[derive(Deserialize)]
            struct Device {
                device_code: String,
                user_code: String,
            }
            if let Some(device) = body.and_then(json::<Device>) {
                learned.push(CredentialKind::DeviceCode, &device.device_code);
                learned.push(
                    CredentialKind::UserCode,
                    &normalize_user_code(&device.user_code),
                );
            }
        }
        Some(EndpointRole::OAuth2Par) => {
            #[derive(Deserialize)]
            struct Pushed {
                request_uri: String,
            }
            if let Some(pushed) = body.and_then(json::<Pushed>) {
                learned.push(CredentialKind::RequestUri, &pushed.request_uri);
            }
        }
        Some(
            EndpointRole::OAuth2Revocation
            | EndpointRole::OAuth2Introspection
            | EndpointRole::OAuth2DeviceVerification
            | EndpointRole::OidcEndSession
            | EndpointRole::OidcUserinfo,
        ) => {}
        Some(EndpointRole::Authorize | EndpointRole::OAuth2Authorize) | None => {}
    }
    learned
}

fn learn_cookies(headers: &HeaderMap, rules: &Rules, learned: &mut Learned) {
    if rules.cookie_names().is_empty() {
        return;
    }
    for header in headers.get_all(SET_COOKIE) {
        // RFC 6265 §4.1: `name=value` then `; attribute` pairs.
        let mut parts = header.as_bytes().split(|&b| b == b';');
        let Some((name, value)) = parts.next().and_then(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((
                pair[..eq].trim_ascii(),
                unquote(pair[eq + 1..].trim_ascii()),
            ))
        }) else {
            continue;
        };
        let deletes = parts.any(|attr| {
            let attr = attr.trim_ascii();
            attr.len() > 8
                && attr[..8].eq_ignore_ascii_case(b"max-age=")
                && (attr[8..].starts_with(b"0") || attr[8..].starts_with(b"-"))
        });
        let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) else {
            continue;
        };
        if !deletes && rules.is_session_cookie(name) {
            learned.push(CredentialKind::SessionCookie, value);
        }
    }
}

/// The query (`sep = '?'`, up to any fragment) or fragment (`sep = '#'`) of the `Location` header.
fn location_part(headers: &HeaderMap, sep: char) -> Option<&[u8]> {
    let location = headers.get(LOCATION)?.as_bytes();
    let start = location.iter().position(|&b| b == sep as u8)? + 1;
    let rest = &location[start..];
    Some(match sep {
        '?' => rest.split(|&b| b == b'#').next().unwrap_or(rest),
        _ => rest,
    })
}

/// The value of `name` in a form-encoded `input`, if it appears with exactly one distinct value and the
/// whole input decodes.
fn single(input: &[u8], name: &str) -> Option<String> {
    let pairs = parse_form(input).ok()?;
    let mut values = pairs.into_iter().filter(|(n, _)| n == name).map(|(_, v)| v);
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

/// A JSON object body as `T`. Only objects: serde would also accept a struct written as an array.
fn json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Option<T> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    // serde_json bounds recursion depth, so hostile nesting is an error, not a stack overflow.
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::Preset;
    use http::HeaderValue;

    fn rules() -> Rules {
        Rules::from_presets(&[Preset::Oslc, Preset::OAuth2])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    struct Case<'a> {
        role: Option<EndpointRole>,
        method: Method,
        query: Option<&'a str>,
        status: u16,
        headers: &'a [(&'a str, &'a str)],
        body: Option<&'a [u8]>,
    }

    impl Case<'_> {
        fn run(&self) -> Learned {
            learn_from_response(
                self.role,
                &self.method,
                self.query,
                StatusCode::from_u16(self.status).unwrap(),
                &headers(self.headers),
                self.body,
                &rules(),
            )
        }
    }

    fn creds(learned: &Learned) -> Vec<(CredentialKind, &str)> {
        learned
            .credentials
            .iter()
            .map(|(k, v)| (*k, v.expose()))
            .collect()
    }

    use CredentialKind as K;
    use EndpointRole as R;

    const JSON: (&str, &str) = ("content-type", "application/json; charset=UTF-8");
    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    fn case<'a>(
        role: R,
        status: u16,
        headers: &'a [(&'a str, &'a str)],
        body: &'a [u8],
    ) -> Case<'a> {
        Case {
            role: Some(role),
            method: Method::POST,
            query: None,
            status,
            headers,
            body: Some(body),
        }
    }

    #[test]
    fn every_issuing_endpoint_teaches_its_credentials() {
        let token_json = format!(r#"{{"access_token":"at","id_token":"{ID_TOKEN}"}}"#);
        let hybrid = [(
            "location",
            format!("/cb#code=c2&id_token={ID_TOKEN}&state=s"),
        )];
        let hybrid: Vec<(&str, &str)> = hybrid.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let cases: Vec<(Case<'_>, Vec<(K, &str)>)> = vec![
            (
                case(R::ConsumerRegistration, 200, &[JSON], br#"{"key":"ck1","other":[1,{"a":2}]}"#),
                vec![(K::ConsumerKey, "ck1")],
            ),
            (
                case(R::RequestToken, 200, &[FORM], b"oauth_token=rt&oauth_token_secret=s&oauth_callback_confirmed=true"),
                vec![(K::RequestToken, "rt")],
            ),
            (
                case(R::AccessToken, 200, &[("content-type", "text/plain")], b"oauth_token=a%2Bt&oauth_token_secret=s"),
                vec![(K::AccessToken, "a+t")],
            ),
            (
                case(R::Authorize, 302, &[("location", "https://rtc/cb?oauth_token=rt&oauth_verifier=v#x")], b""),
                vec![(K::Verifier, "v"), (K::RequestToken, "rt")],
            ),
            (
                case(R::OAuth2Authorize, 303, &[("location", "/cb?code=c1&state=s")], b""),
                vec![(K::Code, "c1")],
            ),
            (
                case(R::OAuth2Authorize, 302, &[("location", "/cb#access_token=at&state=s")], b""),
                vec![(K::BearerToken, "at")],
            ),
            (
                case(R::OAuth2Token, 200, &[JSON], br#"{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rf"}"#),
                vec![(K::BearerToken, "at"), (K::RefreshToken, "rf")],
            ),
            (
                case(R::OAuth2Token, 200, &[], br#"{"access_token":"at"}"#),
                vec![(K::BearerToken, "at")],
            ),
            (
                case(R::OAuth2Registration, 201, &[JSON], br#"{"client_id":"cid","client_secret":"x"}"#),
                vec![(K::ClientId, "cid")],
            ),
            (
                case(R::OAuth2Registration, 201, &[JSON], br#"{"client_id":"cid","registration_access_token":"rat","registration_client_uri":"https://as.example/register/cid"}"#),
                vec![(K::ClientId, "cid"), (K::RegistrationAccessToken, "rat")],
            ),
            (
                case(R::OAuth2Registration, 201, &[JSON], br#"{"client_id":"cid","registration_client_uri":"/clients/cfg%2D9?x#y"}"#),
                vec![(K::ClientId, "cid"), (K::ClientId, "cfg-9")],
            ),
            (
                case(R::OAuth2ClientConfiguration, 200, &[JSON], br#"{"client_id":"cid","registration_access_token":"rat2"}"#),
                vec![(K::RegistrationAccessToken, "rat2")],
            ),
            (
                case(R::OAuth2DeviceAuthorization, 200, &[JSON], br#"{"device_code":"GmRh","user_code":"wdjb-mjht","verification_uri":"https://as/device","expires_in":1800}"#),
                vec![(K::DeviceCode, "GmRh"), (K::UserCode, "WDJBMJHT")],
            ),
            (
                case(R::OAuth2Par, 201, &[JSON], br#"{"request_uri":"urn:ietf:params:oauth:request_uri:6esc","expires_in":60}"#),
                vec![(K::RequestUri, "urn:ietf:params:oauth:request_uri:6esc")],
            ),
            (
                case(R::OAuth2Token, 200, &[JSON], token_json.as_bytes()),
                vec![(K::BearerToken, "at"), (K::IdToken, ID_TOKEN), (K::Sid, "S-1")],
            ),
            (
                case(R::OAuth2Token, 200, &[JSON], br#"{"id_token":"not-a-jwt"}"#),
                vec![(K::IdToken, "not-a-jwt")],
            ),
            (
                case(R::OAuth2Authorize, 302, &hybrid, b""),
                vec![(K::Code, "c2"), (K::IdToken, ID_TOKEN), (K::Sid, "S-1")],
            ),
        ];
        for (case, want) in cases {
            assert_eq!(creds(&case.run()), want, "{:?}", case.role);
        }
    }

    /// `{"alg":"none"}` . `{"sub":"u","sid":"S-1"}` . signature.
    const ID_TOKEN: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1Iiwic2lkIjoiUy0xIn0.c2ln";

    #[test]
    fn sid_is_read_only_from_a_three_part_token_with_a_string_claim() {
        let cases: &[(&str, Option<&str>)] = &[
            (ID_TOKEN, Some("S-1")),
            (
                "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1Iiwic2lkIjoiUy0xIn0=.c2ln",
                Some("S-1"),
            ),
            // {"sid":7}
            ("e30.eyJzaWQiOjd9.x", None),
            // {"sub":"u"}
            ("e30.eyJzdWIiOiJ1In0.x", None),
            ("a.b.c.d.e", None),
            ("only.two", None),
            ("e30.!!!.x", None),
            ("", None),
        ];
        for &(token, want) in cases {
            assert_eq!(jwt_sid(token).as_deref(), want, "{token}");
        }
    }

    #[test]
    fn revocation_introspection_and_pages_issue_nothing() {
        for role in [
            R::OAuth2Revocation,
            R::OAuth2Introspection,
            R::OAuth2DeviceVerification,
            R::OidcEndSession,
            R::OidcUserinfo,
        ] {
            let learned = case(
                role,
                200,
                &[JSON],
                br#"{"active":false,"access_token":"x","device_code":"d","request_uri":"u"}"#,
            )
            .run();
            assert!(learned.is_empty(), "{role:?}");
        }
        let pending = case(
            R::OAuth2Token,
            400,
            &[JSON],
            br#"{"error":"authorization_pending"}"#,
        );
        assert!(pending.run().is_empty());
        let par_refused = case(R::OAuth2Par, 400, &[JSON], br#"{"request_uri":"u"}"#);
        assert!(par_refused.run().is_empty());
    }

    #[test]
    fn registration_and_approval_raise_key_events() {
        let learned = case(R::ConsumerRegistration, 200, &[JSON], br#"{"key":"ck"}"#).run();
        assert_eq!(
            learned.key_event,
            Some(KeyEvent::Registered(CredentialValue::new("ck")))
        );

        let learned = case(
            R::OAuth2Registration,
            201,
            &[JSON],
            br#"{"client_id":"cid"}"#,
        )
        .run();
        assert_eq!(
            learned.key_event,
            Some(KeyEvent::Registered(CredentialValue::new("cid")))
        );

        let approve = Case {
            role: Some(R::ConsumerApproval),
            method: Method::POST,
            query: Some("key=ck%2F1"),
            status: 200,
            headers: &[("content-type", "text/html")],
            body: None,
        };
        let learned = approve.run();
        assert_eq!(creds(&learned), [(K::ConsumerKey, "ck/1")]);
        assert_eq!(
            learned.key_event,
            Some(KeyEvent::Approved(CredentialValue::new("ck/1")))
        );

        let shown = Case {
            method: Method::GET,
            ..approve
        };
        assert!(shown.run().is_empty());
        let refused = Case {
            status: 403,
            method: Method::POST,
            ..shown
        };
        assert!(refused.run().is_empty());
        let redirected = Case {
            status: 302,
            ..refused
        };
        assert!(redirected.run().is_empty());
    }

    #[test]
    fn failures_teach_nothing() {
        let cases = [
            case(R::ConsumerRegistration, 500, &[JSON], br#"{"key":"ck"}"#),
            case(R::RequestToken, 401, &[FORM], b"oauth_token=rt"),
            case(R::AccessToken, 400, &[FORM], b"oauth_token=at"),
            case(R::OAuth2Token, 400, &[JSON], br#"{"access_token":"at"}"#),
            case(
                R::Authorize,
                200,
                &[("location", "/cb?oauth_token=t&oauth_verifier=v")],
                b"",
            ),
            case(
                R::Authorize,
                401,
                &[("location", "/cb?oauth_token=t&oauth_verifier=v")],
                b"",
            ),
            case(R::Authorize, 302, &[("location", "/cb?oauth_token=t")], b""),
            case(
                R::OAuth2Authorize,
                302,
                &[("location", "/cb?error=access_denied")],
                b"",
            ),
        ];
        for case in cases {
            assert!(case.run().is_empty(), "{:?} {}", case.role, case.status);
        }
    }

    #[test]
    fn malformed_or_mislabelled_bodies_teach_nothing() {
        let cases = [
            case(R::ConsumerRegistration, 200, &[JSON], b""),
            case(R::ConsumerRegistration, 200, &[JSON], b"{\"key\":"),
            case(R::ConsumerRegistration, 200, &[JSON], br#"{"key":42}"#),
            case(R::ConsumerRegistration, 200, &[JSON], br#"{"key":""}"#),
            case(R::ConsumerRegistration, 200, &[JSON], br#"["ck"]"#),
            case(R::ConsumerRegistration, 200, &[JSON], b"\xff\xfe{}"),
            case(
                R::ConsumerRegistration,
                200,
                &[("content-type", "text/html")],
                br#"{"key":"ck"}"#,
            ),
            case(
                R::RequestToken,
                200,
                &[FORM],
                b"oauth_token=%zz&oauth_token_secret=s",
            ),
            case(
                R::RequestToken,
                200,
                &[FORM],
                b"oauth_token=a&oauth_token=b",
            ),
            case(R::RequestToken, 200, &[FORM], b"oauth_token=%FF"),
            case(R::RequestToken, 200, &[JSON], b"oauth_token=rt"),
            case(R::OAuth2Token, 200, &[JSON], br#"{"access_token":["x"]}"#),
            case(
                R::Authorize,
                302,
                &[("location", "/cb?oauth_token=t&oauth_verifier=%")],
                b"",
            ),
            case(R::Authorize, 302, &[("location", "/cb")], b""),
        ];
        for case in cases {
            assert!(
                case.run().is_empty(),
                "{:?} {:?}",
                case.role,
                case.body.map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn hostile_bodies_teach_nothing_without_panicking() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let huge = format!("{{\"key\":\"{}\"}}", "k".repeat(1 << 20));
        for body in [deep.as_bytes(), huge.as_bytes()] {
            assert!(case(R::ConsumerRegistration, 200, &[JSON], body)
                .run()
                .is_empty());
        }
    }

    #[test]
    fn session_cookies_are_learned_from_any_successful_response() {
        let set = [
            ("set-cookie", "JSESSIONID=0000abc:c1; Path=/cqweb; HttpOnly"),
            ("set-cookie", "other=x"),
            ("set-cookie", "JSESSIONID=\"quoted\""),
            ("set-cookie", "JSESSIONID=gone; Max-Age=0"),
            ("set-cookie", "JSESSIONID=; Path=/"),
            ("set-cookie", "garbage"),
        ];
        for status in [200, 302] {
            let learned = Case {
                role: None,
                method: Method::GET,
                query: None,
                status,
                headers: &set,
                body: None,
            }
            .run();
            assert_eq!(
                creds(&learned),
                [
                    (K::SessionCookie, "0000abc:c1"),
                    (K::SessionCookie, "quoted")
                ]
            );
        }
        let failed = Case {
            role: None,
            method: Method::POST,
            query: None,
            status: 401,
            headers: &set,
            body: None,
        };
        assert!(failed.run().is_empty());
    }

    #[test]
    fn bodies_over_the_cap_teach_nothing() {
        let mut rules = rules();
        rules.set_max_body(8);
        let learned = learn_from_response(
            Some(R::RequestToken),
            &Method::POST,
            None,
            StatusCode::OK,
            &headers(&[FORM]),
            Some(b"oauth_token=rt"),
            &rules,
        );
        assert!(learned.is_empty());
    }

    #[test]
    fn debug_output_never_contains_values() {
        let learned = case(
            R::ConsumerRegistration,
            200,
            &[JSON],
            br#"{"key":"canary-key"}"#,
        )
        .run();
        assert!(!learned.is_empty());
        assert!(!format!("{learned:?}").contains("canary"));
    }
}

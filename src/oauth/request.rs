//! Credentials a request carries, as candidates to look up in the learned table.
//!
//! A request value does not say which kind of credential it is (an `oauth_token` may be a request token or an
//! access token), so extraction returns [`Candidate`]s tagged with a [`CandidateClass`]; the proxy fingerprints
//! each value, looks it up, and keeps a hit only if the entry's kind is one the class allows
//! ([`CandidateClass::accepts`]). Nothing here inserts anything: request data never changes the table.
//!
//! Places looked at (BRIEF 2.2): the `Authorization` header (`OAuth` and `Bearer`; `Basic` only where a client
//! authenticates, for its client id), the query, a single-part `application/x-www-form-urlencoded` body, the
//! last path segment of a client configuration URI (RFC 7592), and the configured session cookies. Which
//! parameter is read where depends on the endpoint's role (see [`crate::oauth::rules`]). When one parameter carries
//! different values in different places (header vs query vs body, or twice in one query), nobody can tell
//! which one the backend uses, so that parameter is dropped and [`RequestCredentials::ambiguous`] is set.
//!
//! Longer than 600 lines: more than half of it is the table of request cases its tests run.

use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use http::request::Parts;

use crate::oauth::authorization::{self, AuthorizationRef};
use crate::oauth::rules::is_form_content_type;
use crate::oauth::{CredentialKind, CredentialValue, EndpointRole, OAuthError, Rules};

/// What a request value may be, by the parameter or header it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateClass {
    /// `oauth_token`: a request token (authorize, access-token steps) or an access token.
    OAuthToken,
    /// `oauth_consumer_key`, or `key` on the approval endpoint.
    ConsumerKey,
    /// `oauth_verifier`.
    Verifier,
    /// OAuth 2 `code` on the token endpoint.
    Code,
    /// OAuth 2 `refresh_token` on the token endpoint.
    RefreshToken,
    /// OAuth 2 `client_id`.
    ClientId,
    /// `Authorization: Bearer`, or `access_token` in a query or form body (RFC 6750 §2.2, §2.3). A registration
    /// access token (RFC 7592) is a bearer token too.
    Bearer,
    /// `token` at revocation (RFC 7009) or introspection (RFC 7662): an access or refresh token, whatever
    /// `token_type_hint` claims (a server searches every kind when the hint is wrong).
    IssuedToken,
    /// RFC 8628 `device_code` on the token endpoint.
    DeviceCode,
    /// RFC 8628 `user_code` on the verification page, normalised ([`normalize_user_code`]).
    UserCode,
    /// RFC 9126 `request_uri` on the authorization endpoint.
    RequestUri,
    /// OpenID Connect `id_token_hint` at end-session.
    IdTokenHint,
    /// OpenID Connect `sid` at end-session.
    Sid,
    /// A configured session cookie.
    SessionCookie,
}

impl CandidateClass {
    /// The credential kinds a value of this class may match in the table.
    pub fn kinds(self) -> &'static [CredentialKind] {
        match self {
            CandidateClass::OAuthToken => {
                &[CredentialKind::AccessToken, CredentialKind::RequestToken]
            }
            CandidateClass::ConsumerKey => &[CredentialKind::ConsumerKey],
            CandidateClass::Verifier => &[CredentialKind::Verifier],
            CandidateClass::Code => &[CredentialKind::Code],
            CandidateClass::RefreshToken => &[CredentialKind::RefreshToken],
            CandidateClass::ClientId => &[CredentialKind::ClientId],
            CandidateClass::Bearer => &[
                CredentialKind::BearerToken,
                CredentialKind::RegistrationAccessToken,
            ],
            CandidateClass::IssuedToken => {
                &[CredentialKind::BearerToken, CredentialKind::RefreshToken]
            }
            CandidateClass::DeviceCode => &[CredentialKind::DeviceCode],
            CandidateClass::UserCode => &[CredentialKind::UserCode],
            CandidateClass::RequestUri => &[CredentialKind::RequestUri],
            CandidateClass::IdTokenHint => &[CredentialKind::IdToken],
            CandidateClass::Sid => &[CredentialKind::Sid],
            CandidateClass::SessionCookie => &[CredentialKind::SessionCookie],
        }
    }

    /// Whether a table entry of `kind` found for a value of this class is a real match.
    pub fn accepts(self, kind: CredentialKind) -> bool {
        self.kinds().contains(&kind)
    }
}

/// Where in the request a candidate was found (the first place, when several agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateSource {
    /// The `Authorization` header.
    Authorization,
    /// The query string.
    Query,
    /// A form body.
    Body,
    /// The request path (the client id of a client configuration URI).
    Path,
    /// The `Cookie` header.
    Cookie,
}

/// One value to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What it may be.
    pub class: CandidateClass,
    /// Where it was first found.
    pub source: CandidateSource,
    /// The decoded value (redacted in `Debug`); fingerprint it, never log it.
    pub value: CredentialValue,
}

/// Everything usable a request carries, plus what was wrong with the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCredentials {
    /// Unambiguous, non-empty values, at most one per parameter (per cookie name for cookies).
    pub candidates: Vec<Candidate>,
    /// Some parameter carried different values (or the `OAuth` header repeated one); it was dropped.
    pub ambiguous: bool,
    /// The `Authorization` header, query, body or a cookie could not be parsed; it contributed nothing.
    pub malformed: bool,
}

impl RequestCredentials {
    /// Whether nothing usable was found.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }
}

/// Extracts the credentials of a request. `body` is the buffered body when the proxy buffered it
/// ([`Rules::wants_request_body`]); it is read only if the request's content type is a form.
pub fn extract_request(parts: &Parts, body: Option<&[u8]>, rules: &Rules) -> RequestCredentials {
    extract_request_for(parts, body, rules, rules.role_for(parts.uri.path()))
}

/// [`extract_request`] for a caller that already knows the path's role (`rules.role_for(path)`): the proxy
/// decides it once per request.
pub fn extract_request_for(
    parts: &Parts,
    body: Option<&[u8]>,
    rules: &Rules,
    role: Option<EndpointRole>,
) -> RequestCredentials {
    let mut found = Collector::default();

    if role == Some(EndpointRole::OAuth2ClientConfiguration) {
        if let Some(segment) = rules.client_configuration_segment(parts.uri.path()) {
            // A path segment is percent-encoded with `+` literal (RFC 3986), unlike a form.
            match crate::oauth::percent::decode(segment) {
                Ok(id) => found.offer(
                    Slot::Param(CandidateClass::ClientId),
                    CandidateSource::Path,
                    &id,
                ),
                Err(_) => found.malformed = true,
            }
        }
    }

    for header in parts.headers.get_all(AUTHORIZATION) {
        if role.is_some_and(EndpointRole::authenticates_client) {
            match authorization::basic_client_id(header.as_bytes()) {
                Ok(Some(id)) => {
                    found.offer(
                        Slot::Param(CandidateClass::ClientId),
                        CandidateSource::Authorization,
                        id.expose(),
                    );
                    continue;
                }
                Ok(None) => {}
                // A broken Basic header is the backend's to refuse; it just names no client here.
                Err(_) => {
                    found.malformed = true;
                    continue;
                }
            }
        }
        // Borrowed: only the values offered below are copied, and only once (issue 12).
        match authorization::parse_borrowed(header.as_bytes()) {
            Ok(AuthorizationRef::OAuth(params)) => {
                for (name, value) in &params {
                    if let Some(class) = oauth_param_class(name) {
                        found.offer(Slot::Param(class), CandidateSource::Authorization, value);
                    }
                }
            }
            Ok(AuthorizationRef::Bearer(token)) => {
                found.offer(
                    Slot::Param(CandidateClass::Bearer),
                    CandidateSource::Authorization,
                    token,
                );
            }
            Ok(AuthorizationRef::Other) => {}
            Err(OAuthError::Ambiguous) => found.ambiguous = true,
            Err(_) => found.malformed = true,
        }
    }

    if let Some(query) = parts.uri.query() {
        found.offer_form(query.as_bytes(), CandidateSource::Query, role);
    }

    if let Some(body) = body {
        if is_form_content_type(parts.headers.get(CONTENT_TYPE)) {
            found.offer_form(body, CandidateSource::Body, role);
        }
    }

    found.offer_cookies(parts, rules);
    found.finish()
}

/// Only the session cookies of a request ([`extract_request`]'s `Cookie` part): what session affinity reads
/// when token-aware routing is off, without parsing the `Authorization` header, query or body.
pub fn extract_session_cookies(parts: &Parts, rules: &Rules) -> RequestCredentials {
    let mut found = Collector::default();
    found.offer_cookies(parts, rules);
    found.finish()
}

impl<'a> Collector<'a> {
    /// Offers every configured session cookie of the request.
    fn offer_cookies(&mut self, parts: &'a Parts, rules: &Rules) {
        if rules.cookie_names().is_empty() {
            return;
        }
        for header in parts.headers.get_all(COOKIE) {
            for (name, value) in cookie_pairs(header.as_bytes()) {
                // Configured names are ASCII tokens, so a non-UTF-8 name is simply not one of them.
                let Some(name) = std::str::from_utf8(name)
                    .ok()
                    .filter(|n| rules.is_session_cookie(n))
                else {
                    continue;
                };
                match std::str::from_utf8(value) {
                    Ok(value) => self.offer(Slot::Cookie(name), CandidateSource::Cookie, value),
                    Err(_) => self.malformed = true,
                }
            }
        }
    }
}

/// The WebSphere clone id of a session cookie value (`0000<session>:<cloneid>`): the first of
/// [`clone_ids`], or `None` when there is none.
pub fn clone_id(cookie_value: &str) -> Option<&str> {
    clone_ids(cookie_value).next()
}

/// The WebSphere clone ids of a session cookie value, in order: `0000<session>:<clone1>[:<clone2>...]`. The
/// cache id and session id come before the first `:`; after a fail-over the server that took the session over
/// appends its own clone id, and the IBM HTTP Server plug-in tries them in the order written. Empty parts are
/// skipped.
pub fn clone_ids(cookie_value: &str) -> impl Iterator<Item = &str> {
    cookie_value
        .split_once(':')
        .map_or("", |(_, rest)| rest)
        .split(':')
        .filter(|id| !id.is_empty())
}

/// A user code as compared at the verification page: RFC 8628 §6.1 recommends servers to ignore case and
/// punctuation a user may type (`wdjb-mjht` is `WDJBMJHT`), so both the learned and the typed value are reduced to
/// their upper-cased letters and digits.
pub fn normalize_user_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

fn oauth_param_class(name: &str) -> Option<CandidateClass> {
    match name {
        "oauth_consumer_key" => Some(CandidateClass::ConsumerKey),
        "oauth_token" => Some(CandidateClass::OAuthToken),
        "oauth_verifier" => Some(CandidateClass::Verifier),
        _ => None,
    }
}

/// The class of a query or form-body parameter, given the endpoint's role.
fn form_param_class(
    name: &str,
    source: CandidateSource,
    role: Option<EndpointRole>,
) -> Option<CandidateClass> {
    if let Some(class) = oauth_param_class(name) {
        return Some(class);
    }
    use CandidateSource::{Body, Query};
    use EndpointRole as R;
    Some(match (name, source, role) {
        ("access_token", _, _) => CandidateClass::Bearer,
        ("client_id", Query, _) => CandidateClass::ClientId,
        (_, _, None) => return None,
        ("key", _, Some(R::ConsumerApproval)) => CandidateClass::ConsumerKey,
        ("client_id", Body, Some(r)) if r.authenticates_client() => CandidateClass::ClientId,
        ("code", Body, Some(R::OAuth2Token)) => CandidateClass::Code,
        ("refresh_token", Body, Some(R::OAuth2Token)) => CandidateClass::RefreshToken,
        ("device_code", Body, Some(R::OAuth2Token)) => CandidateClass::DeviceCode,
        ("token", Body, Some(R::OAuth2Revocation | R::OAuth2Introspection)) => {
            CandidateClass::IssuedToken
        }
        ("user_code", _, Some(R::OAuth2DeviceVerification)) => CandidateClass::UserCode,
        ("request_uri", _, Some(R::OAuth2Authorize)) => CandidateClass::RequestUri,
        ("id_token_hint", _, Some(R::OidcEndSession)) => CandidateClass::IdTokenHint,
        ("sid", _, Some(R::OidcEndSession)) => CandidateClass::Sid,
        _ => return None,
    })
}

/// `name=value` pairs of a `Cookie` header (RFC 6265 §4.2.1, leniently: whitespace trimmed, quotes removed,
/// pairs without `=` skipped).
fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let name = pair[..eq].trim_ascii();
        let value = unquote(pair[eq + 1..].trim_ascii());
        Some((name, value))
    })
}

pub(crate) fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

/// What ambiguity is judged over: one parameter class, or one cookie name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot<'a> {
    Param(CandidateClass),
    Cookie(&'a str),
}

#[derive(Debug, Default)]
struct Collector<'a> {
    found: Vec<(Slot<'a>, Candidate)>,
    dropped: Vec<Slot<'a>>,
    ambiguous: bool,
    malformed: bool,
}

impl<'a> Collector<'a> {
    fn offer(&mut self, slot: Slot<'a>, source: CandidateSource, value: &str) {
        if value.is_empty() || self.dropped.contains(&slot) {
            return;
        }
        if let Some(i) = self.found.iter().position(|(s, _)| *s == slot) {
            if self.found[i].1.value.expose() != value {
                self.found.remove(i);
                self.dropped.push(slot);
                self.ambiguous = true;
            }
            return;
        }
        let class = match slot {
            Slot::Param(class) => class,
            Slot::Cookie(_) => CandidateClass::SessionCookie,
        };
        let candidate = Candidate {
            class,
            source,
            value: CredentialValue::new(value),
        };
        self.found.push((slot, candidate));
    }

    fn offer_form(&mut self, form: &[u8], source: CandidateSource, role: Option<EndpointRole>) {
        match crate::oauth::percent::parse_form(form) {
            Ok(pairs) => {
                for (name, value) in &pairs {
                    match form_param_class(name, source, role) {
                        Some(CandidateClass::UserCode) => self.offer(
                            Slot::Param(CandidateClass::UserCode),
                            source,
                            &normalize_user_code(value),
                        ),
                        Some(class) => self.offer(Slot::Param(class), source, value),
                        None => {}
                    }
                }
            }
            Err(_) => self.malformed = true,
        }
    }

    fn finish(self) -> RequestCredentials {
        RequestCredentials {
            candidates: self.found.into_iter().map(|(_, c)| c).collect(),
            ambiguous: self.ambiguous,
            malformed: self.malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::Preset;
    use http::Request;

    fn rules() -> Rules {
        let mut rules = Rules::from_presets(&[Preset::Oslc, Preset::OAuth2]);
        rules.add_cookie_name("LtpaToken2").unwrap();
        rules
    }

    fn parts(uri: &str, headers: &[(&str, &[u8])]) -> Parts {
        let mut builder = Request::builder().method("POST").uri(uri);
        for &(name, value) in headers {
            builder = builder.header(name, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    /// Request headers as name/value pairs.
    type Headers<'a> = &'a [(&'a str, &'a [u8])];
    /// A request: URI, headers, optional body.
    type Req<'a> = (&'a str, Headers<'a>, Option<&'a [u8]>);
    /// Expected candidates.
    type Want<'a> = &'a [(C, S, &'a str)];
    /// An owned request, for inputs built at run time.
    type OwnedReq = (String, Vec<(&'static str, Vec<u8>)>, Option<Vec<u8>>);

    const FORM: (&str, &[u8]) = ("content-type", b"application/x-www-form-urlencoded");

    fn extract(uri: &str, headers: &[(&str, &[u8])], body: Option<&[u8]>) -> RequestCredentials {
        extract_request(&parts(uri, headers), body, &rules())
    }

    fn found(creds: &RequestCredentials) -> Vec<(CandidateClass, CandidateSource, &str)> {
        creds
            .candidates
            .iter()
            .map(|c| (c.class, c.source, c.value.expose()))
            .collect()
    }

    use CandidateClass as C;
    use CandidateSource as S;

    #[test]
    fn oauth_header_yields_key_token_and_verifier() {
        let creds = extract(
            "/cqweb/oauth-access-token",
            &[(
                "authorization",
                br#"OAuth realm="cq", oauth_consumer_key="ck", oauth_token="t%2B1", oauth_verifier="v", oauth_nonce="n""#,
            )],
            None,
        );
        assert_eq!(
            found(&creds),
            [
                (C::ConsumerKey, S::Authorization, "ck"),
                (C::OAuthToken, S::Authorization, "t+1"),
                (C::Verifier, S::Authorization, "v"),
            ]
        );
        assert!(!creds.ambiguous && !creds.malformed);
    }

    #[test]
    fn session_cookies_alone_are_the_cookie_part_of_a_full_extraction() {
        let request = parts(
            "/cqweb/oauth-access-token?oauth_token=q",
            &[
                (
                    "authorization",
                    br#"OAuth oauth_consumer_key="ck", oauth_token="t""#,
                ),
                ("cookie", b"LtpaToken2=abc; other=x"),
            ],
        );
        let cookies = extract_session_cookies(&request, &rules());
        assert_eq!(found(&cookies), [(C::SessionCookie, S::Cookie, "abc")]);
        let full = extract_request(&request, None, &rules());
        assert!(full.candidates.len() > 1);
        assert!(full
            .candidates
            .iter()
            .filter(|c| c.class == C::SessionCookie)
            .eq(cookies.candidates.iter()));
    }

    #[test]
    fn each_place_and_role_yields_its_parameters() {
        let cases: &[(&str, Headers<'_>, Option<&[u8]>, Want<'_>)] = &[
            (
                "/cqweb/oauth-authorize?oauth_token=T",
                &[],
                None,
                &[(C::OAuthToken, S::Query, "T")],
            ),
            (
                "/cqweb/oauth-authorize",
                &[FORM],
                Some(b"oauth_token=T&username=u"),
                &[(C::OAuthToken, S::Body, "T")],
            ),
            (
                "/cqweb/oauth-approve-consumer?key=K",
                &[],
                None,
                &[(C::ConsumerKey, S::Query, "K")],
            ),
            ("/cqweb/other?key=K", &[], None, &[]),
            (
                "/cqweb/oauth-request-token",
                &[FORM],
                Some(b"oauth_consumer_key=a+b&oauth_signature=x"),
                &[(C::ConsumerKey, S::Body, "a b")],
            ),
            (
                "/as/token",
                &[FORM],
                Some(b"grant_type=authorization_code&code=C&client_id=id"),
                &[(C::Code, S::Body, "C"), (C::ClientId, S::Body, "id")],
            ),
            (
                "/as/token",
                &[FORM],
                Some(b"grant_type=refresh_token&refresh_token=R"),
                &[(C::RefreshToken, S::Body, "R")],
            ),
            (
                "/cqweb/oauth-request-token",
                &[FORM],
                Some(b"code=C&refresh_token=R&client_id=id"),
                &[],
            ),
            (
                "/as/authorize?response_type=code&client_id=id&state=s",
                &[],
                None,
                &[(C::ClientId, S::Query, "id")],
            ),
            (
                "/api/me",
                &[("authorization", b"Bearer abc.def")],
                None,
                &[(C::Bearer, S::Authorization, "abc.def")],
            ),
            (
                "/api/me?access_token=abc",
                &[],
                None,
                &[(C::Bearer, S::Query, "abc")],
            ),
            (
                "/cqweb/main",
                &[(
                    "cookie",
                    b"a=1; JSESSIONID=\"0000xyz:c1\" ; LtpaToken2=ltpa",
                )],
                None,
                &[
                    (C::SessionCookie, S::Cookie, "0000xyz:c1"),
                    (C::SessionCookie, S::Cookie, "ltpa"),
                ],
            ),
        ];
        for &(uri, headers, body, want) in cases {
            let creds = extract(uri, headers, body);
            assert_eq!(found(&creds), want, "{uri}");
            assert!(!creds.ambiguous && !creds.malformed, "{uri}");
        }
    }

    #[test]
    fn body_is_ignored_unless_it_is_a_form() {
        let creds = extract(
            "/cqweb/oauth-request-token",
            &[("content-type", b"application/json")],
            Some(b"oauth_token=T"),
        );
        assert!(creds.is_empty());
    }

    #[test]
    fn equal_values_in_several_places_are_one_candidate() {
        let creds = extract(
            "/cqweb/oauth-access-token?oauth_token=T&oauth_token=T",
            &[FORM, ("authorization", br#"OAuth oauth_token="T""#)],
            Some(b"oauth_token=T"),
        );
        assert_eq!(found(&creds), [(C::OAuthToken, S::Authorization, "T")]);
        assert!(!creds.ambiguous);
    }

    #[test]
    fn differing_values_make_that_parameter_ambiguous_and_dropped() {
        let cases: &[Req<'_>] = &[
            ("/x?oauth_token=A&oauth_token=B", &[], None),
            (
                "/x?oauth_token=A",
                &[("authorization", br#"OAuth oauth_token="B""#)],
                None,
            ),
            (
                "/cqweb/oauth-authorize?oauth_token=A",
                &[FORM],
                Some(b"oauth_token=B"),
            ),
            ("/x?oauth_token=A&oauth_token=B&oauth_token=A", &[], None),
            (
                "/x",
                &[("cookie", b"JSESSIONID=a"), ("cookie", b"JSESSIONID=b")],
                None,
            ),
            ("/x?access_token=a", &[("authorization", b"Bearer b")], None),
        ];
        for &(uri, headers, body) in cases {
            let creds = extract(uri, headers, body);
            assert!(creds.is_empty(), "{uri}: {:?}", found(&creds));
            assert!(creds.ambiguous, "{uri}");
        }
    }

    #[test]
    fn ambiguity_drops_only_the_ambiguous_parameter() {
        let creds = extract(
            "/x?oauth_token=A&oauth_token=B&oauth_consumer_key=K",
            &[("cookie", b"JSESSIONID=s")],
            None,
        );
        assert_eq!(
            found(&creds),
            [
                (C::ConsumerKey, S::Query, "K"),
                (C::SessionCookie, S::Cookie, "s")
            ]
        );
        assert!(creds.ambiguous);
    }

    #[test]
    fn duplicated_header_parameter_is_ambiguous_and_contributes_nothing() {
        let creds = extract(
            "/x?oauth_consumer_key=K",
            &[(
                "authorization",
                br#"OAuth oauth_token="A", oauth_token="A", oauth_consumer_key="K""#,
            )],
            None,
        );
        assert_eq!(found(&creds), [(C::ConsumerKey, S::Query, "K")]);
        assert!(creds.ambiguous && !creds.malformed);
    }

    #[test]
    fn malformed_parts_contribute_nothing_and_set_the_flag() {
        let cases: &[Req<'_>] = &[
            ("/x", &[("authorization", br#"OAuth oauth_token="A"#)], None),
            ("/x", &[("authorization", b"Bearer a b")], None),
            ("/x?oauth_token=%zz", &[], None),
            ("/x?oauth_token=%FF", &[], None),
            ("/cqweb/oauth-authorize", &[FORM], Some(b"oauth_token=%")),
            (
                "/cqweb/oauth-authorize",
                &[FORM],
                Some(b"oauth_token=\xff\xfe"),
            ),
            ("/x", &[("cookie", b"JSESSIONID=\xff")], None),
        ];
        for &(uri, headers, body) in cases {
            let creds = extract(uri, headers, body);
            assert!(creds.is_empty(), "{uri}: {:?}", found(&creds));
            assert!(creds.malformed, "{uri} {headers:?}");
        }
    }

    #[test]
    fn hostile_inputs_yield_nothing_without_panicking() {
        let huge = vec![b'a'; 1 << 20];
        let many_pairs = "oauth_nonce=x&".repeat(4_000);
        let cases: Vec<OwnedReq> = vec![
            ("/".into(), vec![], Some(vec![])),
            ("/x?".into(), vec![("authorization", b"".to_vec())], None),
            (
                "/x?&&&=&=".into(),
                vec![("cookie", b";;=;JSESSIONID".to_vec())],
                None,
            ),
            (
                "/x?oauth_token=".into(),
                vec![("cookie", b"JSESSIONID=".to_vec())],
                None,
            ),
            (
                "/cqweb/oauth-authorize".into(),
                vec![form_owned()],
                Some(huge.clone()),
            ),
            (format!("/x?{many_pairs}"), vec![], None),
            (
                "/cqweb/oauth-authorize".into(),
                vec![form_owned()],
                Some(b"\x00\x01=\xff".to_vec()),
            ),
        ];
        for (uri, headers, body) in cases {
            let headers: Vec<(&str, &[u8])> =
                headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
            let creds = extract(&uri, &headers, body.as_deref());
            assert!(creds.is_empty(), "{uri}");
        }
    }

    fn form_owned() -> (&'static str, Vec<u8>) {
        (FORM.0, FORM.1.to_vec())
    }

    #[test]
    fn candidate_classes_accept_only_their_kinds() {
        assert!(C::OAuthToken.accepts(CredentialKind::RequestToken));
        assert!(C::OAuthToken.accepts(CredentialKind::AccessToken));
        assert!(!C::OAuthToken.accepts(CredentialKind::ConsumerKey));
        assert!(!C::SessionCookie.accepts(CredentialKind::BearerToken));
        assert_eq!(
            C::Bearer.kinds(),
            [
                CredentialKind::BearerToken,
                CredentialKind::RegistrationAccessToken
            ]
        );
        assert!(C::IssuedToken.accepts(CredentialKind::RefreshToken));
        assert!(!C::IssuedToken.accepts(CredentialKind::Code));
        assert!(!C::UserCode.accepts(CredentialKind::DeviceCode));
        assert!(!C::IdTokenHint.accepts(CredentialKind::BearerToken));
    }

    #[test]
    fn clone_ids_are_the_parts_after_the_session_id_in_order() {
        let cases: &[(&str, &[&str])] = &[
            ("0000abcDEF:lbcq_1", &["lbcq_1"]),
            ("0000abc:c1:c2", &["c1", "c2"]),
            ("0000abc::c2:", &["c2"]),
            ("0000abc", &[]),
            ("0000abc:", &[]),
            (":x", &["x"]),
            ("", &[]),
        ];
        for &(value, want) in cases {
            assert_eq!(clone_ids(value).collect::<Vec<_>>(), want, "{value}");
            assert_eq!(clone_id(value), want.first().copied(), "{value}");
        }
    }

    fn basic(credentials: &str) -> Vec<u8> {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
        .into_bytes()
    }

    #[test]
    fn oauth2_family_requests_yield_their_candidates() {
        let b = basic("cid:secret");
        let b_enc = basic("urn%3Acid:se%3Acret");
        let cases: &[(&str, Headers<'_>, Option<&[u8]>, Want<'_>)] = &[
            // RFC 6749 §2.3.1 client authentication, on each endpoint where a client authenticates.
            (
                "/as/token",
                &[FORM, ("authorization", &b)],
                Some(b"grant_type=client_credentials"),
                &[(C::ClientId, S::Authorization, "cid")],
            ),
            (
                "/as/token",
                &[FORM, ("authorization", &b_enc)],
                Some(b"grant_type=client_credentials"),
                &[(C::ClientId, S::Authorization, "urn:cid")],
            ),
            (
                "/as/revoke",
                &[FORM, ("authorization", &b)],
                Some(b"token=T&token_type_hint=refresh_token"),
                &[
                    (C::ClientId, S::Authorization, "cid"),
                    (C::IssuedToken, S::Body, "T"),
                ],
            ),
            (
                "/as/introspect",
                &[FORM],
                Some(b"token=T&token_type_hint=access_token&client_id=cid"),
                &[(C::IssuedToken, S::Body, "T"), (C::ClientId, S::Body, "cid")],
            ),
            (
                "/as/par",
                &[FORM, ("authorization", &b)],
                Some(b"response_type=code&client_id=cid&redirect_uri=x"),
                &[(C::ClientId, S::Authorization, "cid")],
            ),
            (
                "/as/device_authorization",
                &[FORM],
                Some(b"client_id=cid&scope=read"),
                &[(C::ClientId, S::Body, "cid")],
            ),
            // Elsewhere `Basic` is a user's login, not a client: nothing.
            ("/as/userinfo", &[("authorization", &b)], None, &[]),
            ("/as/authorize?response_type=code", &[("authorization", &b)], None, &[]),
            ("/api/data", &[("authorization", &b)], None, &[]),
            // RFC 8628: the device code is polled at the token endpoint, the user code typed on the page.
            (
                "/as/token",
                &[FORM],
                Some(b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=D&client_id=cid"),
                &[(C::DeviceCode, S::Body, "D"), (C::ClientId, S::Body, "cid")],
            ),
            (
                "/device?user_code=wdjb-mjht",
                &[],
                None,
                &[(C::UserCode, S::Query, "WDJBMJHT")],
            ),
            (
                "/device",
                &[FORM],
                Some(b"user_code=WDJB+MJHT&action=allow"),
                &[(C::UserCode, S::Body, "WDJBMJHT")],
            ),
            ("/device?user_code=--", &[], None, &[]),
            ("/as/token", &[FORM], Some(b"user_code=X&token=T"), &[]),
            // RFC 9126: the request URI comes back in the authorization request.
            (
                "/as/authorize?client_id=cid&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Abwc4",
                &[],
                None,
                &[
                    (C::ClientId, S::Query, "cid"),
                    (C::RequestUri, S::Query, "urn:ietf:params:oauth:request_uri:bwc4"),
                ],
            ),
            ("/as/token?request_uri=u", &[], None, &[]),
            // RFC 7592: client configuration by registration access token and the client id in the path.
            (
                "/register/s6Bhd%2BRk",
                &[("authorization", b"Bearer reg.at")],
                None,
                &[
                    (C::ClientId, S::Path, "s6Bhd+Rk"),
                    (C::Bearer, S::Authorization, "reg.at"),
                ],
            ),
            // OpenID Connect end-session.
            (
                "/connect/logout?id_token_hint=eyJ.eyJ.sig&post_logout_redirect_uri=x",
                &[],
                None,
                &[(C::IdTokenHint, S::Query, "eyJ.eyJ.sig")],
            ),
            (
                "/session/end",
                &[FORM],
                Some(b"sid=S1&state=x"),
                &[(C::Sid, S::Body, "S1")],
            ),
            ("/api/x?id_token_hint=i&sid=s&token=t&device_code=d", &[], None, &[]),
            (
                "/userinfo",
                &[FORM],
                Some(b"access_token=AT"),
                &[(C::Bearer, S::Body, "AT")],
            ),
        ];
        for &(uri, headers, body, want) in cases {
            let creds = extract(uri, headers, body);
            assert_eq!(found(&creds), want, "{uri}");
            assert!(!creds.ambiguous && !creds.malformed, "{uri}");
        }
    }

    #[test]
    fn a_malformed_basic_header_names_no_client_and_is_no_error() {
        let cases: &[&[u8]] = &[
            b"Basic !!!",
            b"Basic",
            b"basic bm8tY29sb24=",
            b"Basic OnNlY3JldA==",
            b"Basic /w==",
        ];
        for &header in cases {
            let creds = extract(
                "/as/token",
                &[FORM, ("authorization", header)],
                Some(b"grant_type=authorization_code&code=C"),
            );
            assert_eq!(
                found(&creds),
                [(C::Code, S::Body, "C")],
                "{:?}",
                String::from_utf8_lossy(header)
            );
            assert!(creds.malformed && !creds.ambiguous);
        }
    }

    #[test]
    fn basic_and_body_client_ids_agree_or_are_dropped_as_ambiguous() {
        let b = basic("cid:secret");
        let same = extract(
            "/as/token",
            &[FORM, ("authorization", &b)],
            Some(b"client_id=cid"),
        );
        assert_eq!(found(&same), [(C::ClientId, S::Authorization, "cid")]);
        let other = extract(
            "/as/token",
            &[FORM, ("authorization", &b)],
            Some(b"client_id=evil"),
        );
        assert!(other.is_empty() && other.ambiguous);
    }

    #[test]
    fn a_basic_secret_never_becomes_a_candidate() {
        let b = basic("cid:canary-secret");
        let creds = extract("/as/token", &[FORM, ("authorization", &b)], Some(b""));
        assert!(creds
            .candidates
            .iter()
            .all(|c| !c.value.expose().contains("canary")));
    }

    #[test]
    fn user_codes_normalise_case_and_punctuation() {
        let cases = [
            ("WDJB-MJHT", "WDJBMJHT"),
            ("wdjb mjht", "WDJBMJHT"),
            ("123-456", "123456"),
            ("ß-x", "SSX"),
            ("--", ""),
        ];
        for (typed, want) in cases {
            assert_eq!(normalize_user_code(typed), want, "{typed}");
        }
    }

    #[test]
    fn debug_output_never_contains_values() {
        let creds = extract(
            "/x?oauth_token=canary-query",
            &[("cookie", b"JSESSIONID=canary-cookie")],
            None,
        );
        assert_eq!(creds.candidates.len(), 2);
        assert!(!format!("{creds:?}").contains("canary"));
    }
}

//! Credentials a request carries, as candidates to look up in the learned table.
//!
//! A request value does not say which kind of credential it is (an `oauth_token` may be a request token or an
//! access token), so extraction returns [`Candidate`]s tagged with a [`CandidateClass`]; the proxy fingerprints
//! each value, looks it up, and keeps a hit only if the entry's kind is one the class allows
//! ([`CandidateClass::accepts`]). Nothing here inserts anything: request data never changes the table.
//!
//! Places looked at (BRIEF 2.2): the `Authorization` header (`OAuth` and `Bearer`), the query, a single-part
//! `application/x-www-form-urlencoded` body, and the configured session cookies. When one parameter carries
//! different values in different places (header vs query vs body, or twice in one query), nobody can tell
//! which one the backend uses, so that parameter is dropped and [`RequestCredentials::ambiguous`] is set.

use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use http::request::Parts;

use crate::oauth::authorization::{self, Authorization};
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
    /// `Authorization: Bearer`, or `access_token` in a query or form body (RFC 6750 §2.2, §2.3).
    Bearer,
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
            CandidateClass::Bearer => &[CredentialKind::BearerToken],
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
    let role = rules.role_for(parts.uri.path());
    let mut found = Collector::default();

    for header in parts.headers.get_all(AUTHORIZATION) {
        match authorization::parse(header.as_bytes()) {
            Ok(Authorization::OAuth(params)) => {
                for (name, value) in params.iter() {
                    if let Some(class) = oauth_param_class(name) {
                        found.offer(
                            Slot::Param(class),
                            CandidateSource::Authorization,
                            value.expose(),
                        );
                    }
                }
            }
            Ok(Authorization::Bearer(token)) => {
                found.offer(
                    Slot::Param(CandidateClass::Bearer),
                    CandidateSource::Authorization,
                    token.expose(),
                );
            }
            Ok(Authorization::Other) => {}
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

    if !rules.cookie_names().is_empty() {
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
                    Ok(value) => found.offer(Slot::Cookie(name), CandidateSource::Cookie, value),
                    Err(_) => found.malformed = true,
                }
            }
        }
    }

    found.finish()
}

/// The WebSphere clone id of a session cookie value (`0000<session>:<cloneid>`): the part after the last `:`,
/// or `None` when there is no non-empty one.
pub fn clone_id(cookie_value: &str) -> Option<&str> {
    cookie_value
        .rsplit_once(':')
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty())
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
    match (name, source, role) {
        ("access_token", _, _) => Some(CandidateClass::Bearer),
        ("key", _, Some(EndpointRole::ConsumerApproval)) => Some(CandidateClass::ConsumerKey),
        ("client_id", CandidateSource::Query, _) => Some(CandidateClass::ClientId),
        ("client_id", _, Some(EndpointRole::OAuth2Token)) => Some(CandidateClass::ClientId),
        ("code", CandidateSource::Body, Some(EndpointRole::OAuth2Token)) => {
            Some(CandidateClass::Code)
        }
        ("refresh_token", CandidateSource::Body, Some(EndpointRole::OAuth2Token)) => {
            Some(CandidateClass::RefreshToken)
        }
        _ => None,
    }
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
                    if let Some(class) = form_param_class(name, source, role) {
                        self.offer(Slot::Param(class), source, value);
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
        assert_eq!(C::Bearer.kinds(), [CredentialKind::BearerToken]);
    }

    #[test]
    fn clone_id_is_the_part_after_the_last_colon() {
        let cases: &[(&str, Option<&str>)] = &[
            ("0000abcDEF:lbcq_1", Some("lbcq_1")),
            ("0000abc:c1:c2", Some("c2")),
            ("0000abc", None),
            ("0000abc:", None),
            (":x", Some("x")),
            ("", None),
        ];
        for &(value, want) in cases {
            assert_eq!(clone_id(value), want, "{value}");
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

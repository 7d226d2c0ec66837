//! The parameters of a received request (RFC 5849 §3.4.1.3.1): the query, the `Authorization: OAuth` header
//! (§3.5.1) and a form body, each decoded exactly once; a protocol parameter seen twice is refused.

use std::collections::BTreeMap;

use super::ParamError;
use crate::oauth::percent;

/// A parsed `Authorization: OAuth ...` header: `realm` apart, the other parameters decoded, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    /// The `realm` parameter, which is not signed.
    pub realm: Option<String>,
    /// Every other parameter, decoded once.
    pub params: Vec<(String, String)>,
}

/// Parses an `Authorization` header value. `Ok(None)` when the scheme is not `OAuth` (case-insensitive).
///
/// Parameters are `name="value"` pairs separated by commas with optional whitespace (§3.5.1); names and values
/// are percent-decoded exactly once.
pub fn parse_authorization(value: &str) -> Result<Option<AuthorizationHeader>, ParamError> {
    let value = value.trim_start();
    let (scheme, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("OAuth") {
        return Ok(None);
    }
    let mut realm = None;
    let mut params = Vec::new();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or(ParamError::MalformedHeader)?;
        let name = rest[..eq].trim();
        if name.is_empty() || name.contains(|c: char| c == ',' || c.is_ascii_whitespace()) {
            return Err(ParamError::MalformedHeader);
        }
        let after = rest[eq + 1..].trim_start();
        let quoted = after.strip_prefix('"').ok_or(ParamError::MalformedHeader)?;
        let close = quoted.find('"').ok_or(ParamError::MalformedHeader)?;
        let raw_value = &quoted[..close];
        rest = quoted[close + 1..].trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(ParamError::MalformedHeader),
        }
        let name = percent::decode(name)?;
        let value = percent::decode(raw_value)?;
        if name == "realm" {
            realm = Some(value);
        } else {
            params.push((name, value));
        }
    }
    Ok(Some(AuthorizationHeader { realm, params }))
}

/// The parameters of a received request, collected from every source §3.4.1.3.1 names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestParams {
    /// Every parameter that the base string covers (query, header without `realm`, form body), decoded.
    pub all: Vec<(String, String)>,
    /// The `oauth_*` protocol parameters (including `oauth_signature`), each at most once.
    pub oauth: BTreeMap<String, String>,
}

impl RequestParams {
    /// A protocol parameter, if present.
    pub fn oauth(&self, name: &str) -> Option<&str> {
        self.oauth.get(name).map(String::as_str)
    }

    /// Whether the request carries any `oauth_*` protocol parameter at all.
    pub fn has_oauth(&self) -> bool {
        !self.oauth.is_empty()
    }
}

/// Collects request parameters from the raw query, the `Authorization` header and the form body.
///
/// `form_body` must be passed only when the request is a single-part `application/x-www-form-urlencoded`
/// body (the caller checks `Content-Type`). A protocol parameter seen twice, in one place or across places,
/// is an error: a request whose meaning is ambiguous is not verified.
pub fn collect_params(
    query: Option<&str>,
    authorization: Option<&str>,
    form_body: Option<&[u8]>,
) -> Result<RequestParams, ParamError> {
    let mut out = RequestParams::default();
    let push = |out: &mut RequestParams, name: String, value: String| {
        if name.starts_with("oauth_") {
            if out.oauth.contains_key(&name) {
                return Err(ParamError::Duplicate(name));
            }
            out.oauth.insert(name.clone(), value.clone());
        }
        out.all.push((name, value));
        Ok(())
    };
    if let Some(q) = query {
        for (n, v) in percent::parse_form(q.as_bytes())? {
            push(&mut out, n, v)?;
        }
    }
    if let Some(h) = authorization {
        if let Some(header) = parse_authorization(h)? {
            for (n, v) in header.params {
                push(&mut out, n, v)?;
            }
        }
    }
    if let Some(body) = form_body {
        for (n, v) in percent::parse_form(body)? {
            push(&mut out, n, v)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_scheme_is_case_insensitive_and_other_schemes_are_ignored() {
        let h = parse_authorization("oauth   realm=\"r\",oauth_token=\"a%20b\" ,x=\"\"")
            .unwrap()
            .unwrap();
        assert_eq!(h.realm.as_deref(), Some("r"));
        assert_eq!(
            h.params,
            vec![
                ("oauth_token".to_string(), "a b".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(parse_authorization("Bearer abc").unwrap(), None);
        assert!(parse_authorization("OAuth oauth_token=unquoted").is_err());
        assert!(parse_authorization("OAuth a=\"1\" b=\"2\"").is_err());
    }

    #[test]
    fn duplicated_protocol_parameters_are_rejected_across_locations() {
        let err = collect_params(Some("oauth_nonce=1"), Some("OAuth oauth_nonce=\"2\""), None)
            .unwrap_err();
        assert_eq!(err, ParamError::Duplicate("oauth_nonce".into()));
        // Ordinary parameters may repeat (RFC 5849 §3.4.1.3.2 sorts duplicates by value).
        assert!(collect_params(Some("a=1&a=2"), None, None).is_ok());
    }

    #[test]
    fn query_plus_is_a_space_but_encoded_plus_is_a_plus() {
        let params = collect_params(Some("a=1+2&b=1%2B2"), None, None).unwrap();
        assert_eq!(
            params.all,
            vec![("a".into(), "1 2".into()), ("b".into(), "1+2".into())]
        );
    }
}

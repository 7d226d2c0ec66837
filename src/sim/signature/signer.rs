//! The consumer's side: signing a request with `HMAC-SHA1` and placing its protocol parameters in the header,
//! the form body or the query (RFC 5849 §3.5).

use super::{base_string, base_string_uri, sign_hmac_sha1, ParamError, ParamLocation, HMAC_SHA1};
use crate::oauth::percent::{self, encode};
use crate::secret::Secret;

/// A consumer's credentials: the client credentials and, once it has one, a (request or access) token.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// `oauth_consumer_key`.
    pub consumer_key: String,
    /// The consumer secret.
    pub consumer_secret: Secret,
    /// `oauth_token`, absent for the request-token call.
    pub token: Option<String>,
    /// The token secret; empty when there is no token (§2.1).
    pub token_secret: Secret,
}

impl ClientCredentials {
    /// Client credentials alone, for the temporary-credential request.
    pub fn consumer(key: impl Into<String>, secret: Secret) -> Self {
        ClientCredentials {
            consumer_key: key.into(),
            consumer_secret: secret,
            token: None,
            token_secret: Secret::new(""),
        }
    }

    /// The same client credentials with a token and its secret.
    pub fn with_token(&self, token: impl Into<String>, secret: Secret) -> Self {
        ClientCredentials {
            token: Some(token.into()),
            token_secret: secret,
            ..self.clone()
        }
    }
}

/// A request to be signed: method, absolute URL (its query is signed too), form parameters and extra
/// protocol parameters such as `oauth_callback` or `oauth_verifier`.
#[derive(Debug, Clone)]
pub struct OAuthRequest {
    method: String,
    url: String,
    form: Vec<(String, String)>,
    extra_oauth: Vec<(String, String)>,
    realm: Option<String>,
}

/// A signed request, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The upper-case method.
    pub method: String,
    /// The absolute URL, with the protocol parameters appended when they travel in the query.
    pub url: String,
    /// The `Authorization` header value when the parameters travel in the header.
    pub authorization: Option<String>,
    /// The `application/x-www-form-urlencoded` body, if there is one.
    pub body: Option<String>,
    /// The base string that was signed (useful in test failures; it holds no secret).
    pub base_string: String,
}

impl OAuthRequest {
    /// A request with no form parameters.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        OAuthRequest {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            form: Vec::new(),
            extra_oauth: Vec::new(),
            realm: None,
        }
    }

    /// Adds a form-body parameter (the body is then `application/x-www-form-urlencoded` and signed).
    pub fn form(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.form.push((name.into(), value.into()));
        self
    }

    /// Adds a protocol parameter beyond the standard ones (`oauth_callback`, `oauth_verifier`).
    pub fn oauth_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_oauth.push((name.into(), value.into()));
        self
    }

    /// Sets the `realm` of the `Authorization` header (not signed).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Signs with `HMAC-SHA1` and places the protocol parameters at `location`.
    pub fn sign(
        &self,
        creds: &ClientCredentials,
        location: ParamLocation,
        nonce: &str,
        timestamp: u64,
    ) -> Result<SignedRequest, ParamError> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|_| ParamError::BadUrl(self.url.clone()))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(ParamError::BadUrl(self.url.clone()));
        };
        let mut oauth: Vec<(String, String)> = vec![
            ("oauth_consumer_key".into(), creds.consumer_key.clone()),
            ("oauth_signature_method".into(), HMAC_SHA1.into()),
            ("oauth_timestamp".into(), timestamp.to_string()),
            ("oauth_nonce".into(), nonce.into()),
            ("oauth_version".into(), "1.0".into()),
        ];
        if let Some(token) = &creds.token {
            oauth.push(("oauth_token".into(), token.clone()));
        }
        oauth.extend(self.extra_oauth.iter().cloned());

        let mut all = match uri.query() {
            Some(q) => percent::parse_form(q.as_bytes())?,
            None => Vec::new(),
        };
        all.extend(self.form.iter().cloned());
        all.extend(oauth.iter().cloned());
        let base_uri = base_string_uri(scheme, authority.as_str(), uri.path());
        let base = base_string(&self.method, &base_uri, &all);
        let signature = sign_hmac_sha1(
            &base,
            creds.consumer_secret.expose(),
            creds.token_secret.expose(),
        );
        oauth.push(("oauth_signature".into(), signature));

        let mut url = self.url.clone();
        let mut authorization = None;
        let mut body_pairs = self.form.clone();
        match location {
            ParamLocation::Header => {
                let mut value = String::from("OAuth ");
                if let Some(realm) = &self.realm {
                    value.push_str(&format!("realm=\"{}\", ", encode(realm)));
                }
                let fields: Vec<String> = oauth
                    .iter()
                    .map(|(n, v)| format!("{}=\"{}\"", encode(n), encode(v)))
                    .collect();
                value.push_str(&fields.join(", "));
                authorization = Some(value);
            }
            ParamLocation::Body => body_pairs.extend(oauth),
            ParamLocation::Query => {
                url.push(if uri.query().is_some() { '&' } else { '?' });
                url.push_str(&form_encode(&oauth));
            }
        }
        let body = (!body_pairs.is_empty()).then(|| form_encode(&body_pairs));
        Ok(SignedRequest {
            method: self.method.clone(),
            url,
            authorization,
            body,
            base_string: base,
        })
    }
}

/// Encodes pairs as `name=value&...` with RFC 5849 §3.6 encoding (a valid form body and query).
pub fn form_encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::signature::{collect_params, verify_hmac_sha1};

    fn verify_signed(signed: &SignedRequest, host: &str, secret: &str, token_secret: &str) -> bool {
        let uri: http::Uri = signed.url.parse().unwrap();
        let params = collect_params(
            uri.query(),
            signed.authorization.as_deref(),
            signed.body.as_deref().map(str::as_bytes),
        )
        .unwrap();
        let base = base_string(
            &signed.method,
            &base_string_uri("http", host, uri.path()),
            &params.all,
        );
        verify_hmac_sha1(
            &base,
            secret,
            token_secret,
            params.oauth("oauth_signature").unwrap(),
        )
    }

    fn sample_request() -> (OAuthRequest, ClientCredentials) {
        let req = OAuthRequest::new("post", "http://node.test:9080/cqweb/x?q=a+b%2B&t=~")
            .form("title", "a b+c/é")
            .oauth_param("oauth_callback", "http://cb.test/back?flow=1")
            .realm("cqweb");
        let creds = ClientCredentials::consumer("key 1", Secret::new("s&cret"))
            .with_token("tok", Secret::new("tsec"));
        (req, creds)
    }

    #[test]
    fn signed_requests_verify_in_every_location() {
        let (req, creds) = sample_request();
        for loc in [
            ParamLocation::Header,
            ParamLocation::Body,
            ParamLocation::Query,
        ] {
            let signed = req.sign(&creds, loc, "n0nce", 1_700_000_000).unwrap();
            assert!(
                verify_signed(&signed, "node.test:9080", "s&cret", "tsec"),
                "{loc:?}"
            );
            assert_eq!(signed.authorization.is_some(), loc == ParamLocation::Header);
        }
    }

    #[test]
    fn tampering_with_any_signed_part_breaks_the_signature() {
        let (req, creds) = sample_request();
        let signed = req
            .sign(&creds, ParamLocation::Header, "n0nce", 1_700_000_000)
            .unwrap();
        assert!(verify_signed(&signed, "node.test:9080", "s&cret", "tsec"));
        // Host as received.
        assert!(!verify_signed(&signed, "other.test:9080", "s&cret", "tsec"));
        // Method.
        let mut m = signed.clone();
        m.method = "PUT".into();
        assert!(!verify_signed(&m, "node.test:9080", "s&cret", "tsec"));
        // Path.
        let mut p = signed.clone();
        p.url = p.url.replace("/cqweb/x", "/cqweb/y");
        assert!(!verify_signed(&p, "node.test:9080", "s&cret", "tsec"));
        // Query.
        let mut q = signed.clone();
        q.url = q.url.replace("t=~", "t=%7E%7E");
        assert!(!verify_signed(&q, "node.test:9080", "s&cret", "tsec"));
        // Body.
        let mut b = signed.clone();
        b.body = Some(b.body.unwrap().replace("title=", "title=x"));
        assert!(!verify_signed(&b, "node.test:9080", "s&cret", "tsec"));
        // Secrets.
        assert!(!verify_signed(&signed, "node.test:9080", "s&cret", "other"));
    }
}

//! Pure extraction of OAuth credentials from requests and responses.
//!
//! Nothing here does I/O or touches the learned table: the proxy hands in request parts, response headers and
//! (small, capped) bodies, and gets back values to look up or learn.
//!
//! - [`authorization`]: the `Authorization` header (RFC 5849 §3.5.1 `OAuth`, RFC 6750 §2.1 `Bearer`, the client
//!   id of RFC 6749 §2.3.1 `Basic`).
//! - [`rules`]: where to look (endpoint roles by path suffix, presets, session cookie names), TTLs, body caps;
//!   its module doc has the table of roles: what each learns and what routes it.
//! - [`request`]: credentials a request carries, as candidates to look up (never to learn).
//! - [`response`]: credentials a backend response issues, to learn with the answering node as issuer.
//! - [`percent`]: RFC 5849 §3.6 percent-encoding and form parsing.
//! - [`problems`]: the problem names a node answers when it lacks a credential.
//! - [`kind`]: the credential kinds and their routing specificity.

pub mod authorization;
pub mod kind;
pub mod percent;
pub mod problems;
pub mod request;
pub mod response;
pub mod rules;

pub use authorization::{Authorization, OAuthParams};
pub use kind::{CredentialKind, Specificity};
pub use request::{
    clone_id, clone_ids, extract_request, extract_request_for, extract_session_cookies,
    normalize_user_code, Candidate, CandidateClass, CandidateSource, RequestCredentials,
};
pub use response::{learn_from_response, KeyEvent, Learned};
pub use rules::{EndpointRole, EndpointRule, Preset, Rules};

use thiserror::Error;

/// A credential value as it travels through the proxy: redacted in `Debug`, read with `expose()`.
pub type CredentialValue = crate::secret::Secret;

/// What can go wrong reading OAuth data or building [`Rules`]. Parsers return it; the proxy treats a request
/// whose credentials fail to parse as carrying none (it is forwarded, not rejected).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OAuthError {
    /// The header does not follow the `Authorization` grammar; the text says where it went wrong.
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    /// A parameter appears more than once, so no value of it can be trusted (RFC 5849 §3.5.1).
    #[error("a parameter appears more than once")]
    Ambiguous,
    /// More parameters than any OAuth request carries: refused to bound the work.
    #[error("more than {max} parameters")]
    TooManyParameters {
        /// The limit.
        max: usize,
    },
    /// A name or value is not valid RFC 5849 §3.6 percent-encoding.
    #[error("bad percent-encoding")]
    Encoding(#[source] percent::PercentError),
    /// An endpoint rule or cookie name given to [`Rules`] is unusable; the text says why.
    #[error("invalid rule: {0}")]
    InvalidRule(&'static str),
}

/// Random inputs against every parser of untrusted bytes: none may panic, whatever it returns. A seeded
/// generator keeps failures reproducible; the dedicated fuzz targets go deeper.
#[cfg(test)]
mod no_panic_tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Bytes biased towards the grammar's own characters, so inputs get past the first check.
    fn bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
        const ALPHABET: &[u8] = b"OAuthBearer oauth_token=\"\",%2F%zz+&;:=?#{}[]\"key\\\t\xff\x00";
        let len = rng.gen_range(0..=max);
        (0..len)
            .map(|_| {
                if rng.gen_bool(0.8) {
                    ALPHABET[rng.gen_range(0..ALPHABET.len())]
                } else {
                    rng.gen()
                }
            })
            .collect()
    }

    #[test]
    fn random_bytes_never_panic_any_parser() {
        let mut rng = StdRng::seed_from_u64(0x70_6b_6e_72);
        let rules = Rules::from_presets(&[Preset::Oslc, Preset::OAuth2]);
        let paths = [
            "/cqweb/oauth-authorize",
            "/cqweb/oauth-approve-consumer",
            "/as/token",
            "/as/revoke",
            "/as/device",
            "/register/abc",
            "/x",
        ];
        for _ in 0..20_000 {
            let input = bytes(&mut rng, 96);
            let _ = authorization::parse(&input);
            let _ = percent::parse_form(&input);

            let path = paths[rng.gen_range(0..paths.len())];
            let query: String = String::from_utf8_lossy(&input)
                .chars()
                .filter(|c| {
                    c.is_ascii_graphic() && !matches!(c, '#' | '"' | '\\' | '{' | '}' | '[' | ']')
                })
                .collect();
            let mut builder = Request::builder()
                .method("POST")
                .uri(format!("{path}?{query}"))
                .header("content-type", "application/x-www-form-urlencoded");
            for name in ["authorization", "cookie"] {
                if let Ok(value) = HeaderValue::from_bytes(&input) {
                    builder = builder.header(name, value);
                }
            }
            if let Ok(request) = builder.body(()) {
                let (parts, ()) = request.into_parts();
                let _ = extract_request(&parts, Some(&input), &rules);
            }

            let mut headers = HeaderMap::new();
            for name in ["location", "set-cookie", "content-type"] {
                if let Ok(value) = HeaderValue::from_bytes(&input) {
                    headers.append(name, value);
                }
            }
            let _ = authorization::basic_client_id(&input);
            let role = EndpointRole::ALL[rng.gen_range(0..EndpointRole::ALL.len())];
            for role in [Some(role), None] {
                for status in [StatusCode::OK, StatusCode::CREATED, StatusCode::FOUND] {
                    let _ = learn_from_response(
                        role,
                        &Method::POST,
                        Some(&query),
                        status,
                        &headers,
                        Some(&input),
                        &rules,
                    );
                }
            }
        }
    }
}

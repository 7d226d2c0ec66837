//! Pure extraction of OAuth credentials from requests and responses.
//!
//! Nothing here does I/O or touches the learned table: the proxy hands in request parts, response headers and
//! (small, capped) bodies, and gets back values to look up or learn.
//!
//! - [`authorization`]: the `Authorization` header (RFC 5849 §3.5.1 `OAuth`, RFC 6750 §2.1 `Bearer`).
//! - [`rules`]: where to look (endpoint roles by path suffix, presets, session cookie names), TTLs, body caps.
//! - [`request`]: credentials a request carries, as candidates to look up (never to learn).
//! - [`response`]: credentials a backend response issues, to learn with the answering node as issuer.
//! - [`percent`]: RFC 5849 §3.6 percent-encoding and form parsing.
//! - [`kind`]: the credential kinds and their routing specificity.

pub mod authorization;
pub mod kind;
pub mod percent;
pub mod request;
pub mod response;
pub mod rules;

pub use authorization::{Authorization, OAuthParams};
pub use kind::{CredentialKind, Specificity};
pub use request::{
    clone_id, extract_request, Candidate, CandidateClass, CandidateSource, RequestCredentials,
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

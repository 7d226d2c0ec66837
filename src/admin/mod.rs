//! Operating tokenroute: the admin HTTP API (the metrics it renders live in [`crate::metrics`]).
//!
//! - [`serve`]: the admin server on its own listener. It knows nothing of the proxy: it calls an
//!   [`AdminBackend`], so the API is tested against a fake and the proxy side (reload, refresh, drain) lives with
//!   the proxy.
//! - `page`: the status page at `/` (HTML, script and style compiled in), a live view of `/status` whose
//!   drain/enable/refresh buttons send the admin token the operator types into it.
//!
//! Authentication: a bearer token, compared in constant time, guards every write endpoint (without a token
//! configured they are refused), and every endpoint when the listener is not on a loopback address
//! ([`check_settings`] refuses such a listener without a token). The status page's three files hold no data and
//! are served to anyone who can reach the listener.

mod api;
mod page;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use http::StatusCode;
use thiserror::Error;

use crate::secret::Secret;

pub use api::serve;

/// A boxed, sendable future: what the [`AdminBackend`]'s asynchronous operations return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the admin API asks of the running proxy. Implemented by the proxy; tests use a fake.
///
/// Synchronous methods must not block: they are called from the admin server's tasks.
pub trait AdminBackend: Send + Sync + 'static {
    /// Whether tokenroute should be sent traffic; the error says why not (`/ready` answers 503 with it).
    fn ready(&self) -> Result<(), String>;
    /// The `/status` document.
    fn status(&self) -> serde_json::Value;
    /// The `/metrics` exposition, in the Prometheus text format 0.0.4.
    fn metrics(&self) -> String;
    /// Re-reads and applies the configuration file. An invalid file is [`AdminError::InvalidConfig`] with the
    /// validation errors (key paths and values, never secrets); the old configuration keeps serving.
    fn reload(&self) -> BoxFuture<Result<serde_json::Value, AdminError>>;
    /// Runs the refresh exchange on the node called `name` now.
    fn refresh_node(&self, name: &str) -> BoxFuture<Result<serde_json::Value, AdminError>>;
    /// Stops (`true`) or resumes (`false`) sending new requests to the node called `name`.
    fn set_draining(&self, name: &str, draining: bool) -> Result<(), AdminError>;
    /// What the table knows of `credential`: kind, owners and expiry, keyed by fingerprint. The answer must
    /// never contain the credential itself. `None` when it is unknown.
    fn lookup(&self, credential: &str) -> Option<serde_json::Value>;
    /// Removes the node called `name` from every owner set; how many entries changed.
    fn forget_node(&self, name: &str) -> Result<usize, AdminError>;
}

/// Why an admin operation failed.
#[derive(Debug, Error)]
pub enum AdminError {
    /// No node has this name in the configuration in force.
    #[error("no node is called {0:?}")]
    UnknownNode(String),
    /// The configuration file does not parse or validate; the message lists every error.
    #[error("{0}")]
    InvalidConfig(String),
    /// The operation was attempted and failed; the message is for the operator.
    #[error("{0}")]
    Failed(String),
}

impl AdminError {
    /// The status the admin client receives: the one place admin errors become HTTP.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::UnknownNode(_) => StatusCode::NOT_FOUND,
            // The request was understood; the file it asks to apply is not acceptable.
            AdminError::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Where the admin API listens and the token that guards it.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// The listener's address (default `127.0.0.1:9901`).
    pub address: SocketAddr,
    /// The bearer token (from an environment variable, never from the config file).
    pub token: Option<Secret>,
}

/// Refuses settings that would expose the admin API: a non-loopback address without a token, or a token that
/// cannot be sent in an `Authorization` header. The message names the problem, never the token.
pub fn check_settings(settings: &AdminSettings) -> Result<(), String> {
    match &settings.token {
        Some(token) if !api::is_valid_token(token.expose()) => Err(
            "the admin token must be non-empty and hold only visible ASCII characters (no spaces)"
                .to_owned(),
        ),
        Some(_) => Ok(()),
        None if settings.address.ip().is_loopback() => Ok(()),
        None => Err(format!(
            "the admin API listens on {}, which is not a loopback address: set an admin token",
            settings.address
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(address: &str, token: Option<&str>) -> AdminSettings {
        AdminSettings {
            address: address.parse().unwrap(),
            token: token.map(Secret::new),
        }
    }

    #[test]
    fn loopback_without_token_is_accepted() {
        assert!(check_settings(&settings("127.0.0.1:9901", None)).is_ok());
        assert!(check_settings(&settings("[::1]:9901", None)).is_ok());
    }

    #[test]
    fn non_loopback_without_token_is_refused() {
        let err = check_settings(&settings("0.0.0.0:9901", None)).unwrap_err();
        assert!(err.contains("0.0.0.0:9901"), "{err}");
        assert!(check_settings(&settings("10.1.2.3:9901", None)).is_err());
    }

    #[test]
    fn non_loopback_with_token_is_accepted() {
        assert!(check_settings(&settings("0.0.0.0:9901", Some("s3cret-token"))).is_ok());
    }

    #[test]
    fn unusable_token_is_refused_without_naming_it() {
        for bad in ["", "two words", "tab\there", "caf\u{e9}"] {
            let err = check_settings(&settings("127.0.0.1:9901", Some(bad))).unwrap_err();
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
    }

    #[test]
    fn errors_map_to_404_and_500() {
        assert_eq!(
            AdminError::UnknownNode("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            AdminError::Failed("x".into()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}

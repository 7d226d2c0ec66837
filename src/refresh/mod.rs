//! Refreshing nodes: the technote's "log in on each server", done by the proxy, directly on one node.
//!
//! - `single_flight`: [`Refresher`] sends the configured exchanges (e.g. a form login) to a node, bypassing
//!   balancing; concurrent refreshes of one node coalesce into one exchange.
//! - `triggers`: *when* a node is refreshed — every trigger (key event, node up, timer, route, stale answer,
//!   admin) is a method of [`Refreshes`], which also records what a successful refresh taught the table.
//! - `fanout`: after a key is registered or approved, every other healthy node at once, with retries and a
//!   deadline.

mod fanout;
mod order;
mod single_flight;
mod triggers;

use std::time::Duration;

use http::header::HeaderName;
use http::{Method, StatusCode};

use crate::secret::Secret;
pub use single_flight::{RefreshError, Refresher, Tick};
pub use triggers::{CurrentPool, KeyEventGuard, Refreshes};

/// How requests carrying a consumer key that not every node holds are routed (BRIEF 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only to nodes that hold the key.
    Pin,
    /// By policy over healthy nodes; a chosen node that lacks the key is refreshed first.
    Refresh,
    /// To nodes that hold the key, while the others are refreshed in the background.
    PinRefresh,
}

impl std::str::FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pin" => Ok(Strategy::Pin),
            "refresh" => Ok(Strategy::Refresh),
            "pin+refresh" => Ok(Strategy::PinRefresh),
            _ => Err("expected \"pin\", \"refresh\" or \"pin+refresh\"".into()),
        }
    }
}

/// One HTTP exchange of a refresh, with secrets already interpolated from the environment.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Headers; values may hold credentials.
    pub headers: Vec<(HeaderName, Secret)>,
    /// Body; may hold credentials.
    pub body: Secret,
    /// Statuses that mean success.
    pub expect: Vec<StatusCode>,
}

/// The `[refresh]` settings, validated.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// Consumer-key routing strategy.
    pub strategy: Strategy,
    /// Exchanges of one refresh, in order; empty: refresh is not configured.
    pub exchanges: Vec<Exchange>,
    /// Limit for one refresh of one node.
    pub timeout: Duration,
    /// Limit for a whole fan-out.
    pub fanout_deadline: Duration,
    /// Retries of a failed refresh within a fan-out.
    pub retries: u32,
    /// Wait before the first retry (doubles each time), and before a background trigger retries a failed node.
    pub backoff: Duration,
    /// Refresh every node this often; `None`: no timer.
    pub interval: Option<Duration>,
}

impl RefreshSettings {
    /// Whether refreshing is configured at all.
    pub fn enabled(&self) -> bool {
        !self.exchanges.is_empty()
    }
}

/// Replaces every `${NAME}` in `template` with the environment variable `NAME`.
pub fn interpolate(template: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unterminated ${...}")?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("bad variable name {name:?}"));
        }
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "CQ_USER" => Some("admin".into()),
            "CQ_PASSWORD" => Some("p&ss".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_from_the_environment() {
        assert_eq!(
            interpolate("username=${CQ_USER}&password=${CQ_PASSWORD}", env).unwrap(),
            "username=admin&password=p&ss"
        );
        assert_eq!(interpolate("no variables", env).unwrap(), "no variables");
    }

    #[test]
    fn a_missing_or_malformed_variable_is_an_error_naming_it() {
        assert_eq!(
            interpolate("${NOPE}", env).unwrap_err(),
            "environment variable NOPE is not set"
        );
        assert!(interpolate("${CQ_USER", env).is_err());
        assert!(interpolate("${bad-name}", env).is_err());
    }

    #[test]
    fn strategies_parse() {
        assert_eq!("pin".parse(), Ok(Strategy::Pin));
        assert_eq!("refresh".parse(), Ok(Strategy::Refresh));
        assert_eq!("pin+refresh".parse(), Ok(Strategy::PinRefresh));
        assert!("sticky".parse::<Strategy>().is_err());
    }
}

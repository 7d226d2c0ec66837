//! Checking a signed request against this node's memory: required parameters, signature method and version,
//! the timestamp window, the consumer key (known here, approved), the token (known here, same consumer, not
//! expired), the `HMAC-SHA1` signature, and the nonce last, so that an unsigned request cannot fill the nonce
//! store.

use http::header::AUTHORIZATION;
use http::request::Parts;
use http::StatusCode;
use tokio::time::Instant;

use super::super::signature::{self, RequestParams, HMAC_SHA1};
use super::super::unix_now;
use super::super::wire::{param, problem};
use super::exchange::{host_of, is_form, problem_with, text};
use super::{Memory, NodeState, Resp};
use crate::secret::Secret;

/// Above this many remembered nonces, those older than the timestamp window are dropped.
const NONCE_PRUNE_THRESHOLD: usize = 4096;

/// Which token a signed request must carry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenUse {
    None,
    Request,
    Access,
}

impl NodeState {
    /// Verifies a signed request against this node's memory and returns its consumer key.
    ///
    /// Checks run in the order that keeps each answer honest: parameters, method, timestamp, consumer key,
    /// token, signature, and the nonce last, so that an unsigned request cannot fill the nonce store.
    pub(super) fn verify(
        &self,
        mem: &mut Memory,
        parts: &Parts,
        params: &RequestParams,
        token_use: TokenUse,
        extra: &[&str],
    ) -> Result<String, Reject> {
        let mut required = vec![
            "oauth_consumer_key",
            "oauth_signature_method",
            "oauth_signature",
            "oauth_timestamp",
            "oauth_nonce",
        ];
        if token_use != TokenUse::None {
            required.push(param::OAUTH_TOKEN);
        }
        required.extend_from_slice(extra);
        let absent: Vec<&str> = required
            .into_iter()
            .filter(|name| params.oauth(name).is_none())
            .collect();
        if !absent.is_empty() {
            return Err(Reject::problem_with(
                StatusCode::BAD_REQUEST,
                problem::PARAMETER_ABSENT,
                &[(param::OAUTH_PARAMETERS_ABSENT, &absent.join("&"))],
            ));
        }
        let get = |name: &str| params.oauth(name).unwrap_or_default();
        if get("oauth_signature_method") != HMAC_SHA1 {
            return Err(Reject::problem(
                StatusCode::BAD_REQUEST,
                problem::SIGNATURE_METHOD_REJECTED,
            ));
        }
        if params.oauth("oauth_version").is_some_and(|v| v != "1.0") {
            return Err(Reject::problem(
                StatusCode::BAD_REQUEST,
                problem::VERSION_REJECTED,
            ));
        }
        let Ok(timestamp) = get("oauth_timestamp").parse::<u64>() else {
            return Err(Reject::problem(
                StatusCode::BAD_REQUEST,
                problem::PARAMETER_REJECTED,
            ));
        };
        let now = unix_now();
        let window = self.config.timestamp_window.as_secs();
        if timestamp.abs_diff(now) > window {
            let range = format!("{}-{}", now.saturating_sub(window), now + window);
            return Err(Reject::problem_with(
                StatusCode::UNAUTHORIZED,
                problem::TIMESTAMP_REFUSED,
                &[(param::OAUTH_ACCEPTABLE_TIMESTAMPS, &range)],
            ));
        }
        let consumer_key = get("oauth_consumer_key");
        let Some(consumer) = mem.registry.get(consumer_key) else {
            return Err(Reject::problem(
                StatusCode::UNAUTHORIZED,
                problem::CONSUMER_KEY_UNKNOWN,
            ));
        };
        if !consumer.approved {
            return Err(Reject::problem(
                StatusCode::UNAUTHORIZED,
                problem::CONSUMER_KEY_REJECTED,
            ));
        }
        let consumer_secret = consumer.secret.clone();
        let token = get(param::OAUTH_TOKEN);
        let now_instant = Instant::now();
        let token_secret = match token_use {
            TokenUse::None => Secret::new(""),
            TokenUse::Request => match mem.request_tokens.get(token) {
                Some(t) if t.consumer_key != consumer_key => {
                    return Err(Reject::problem(
                        StatusCode::UNAUTHORIZED,
                        problem::TOKEN_REJECTED,
                    ))
                }
                Some(t) if now_instant >= t.expires_at => {
                    mem.request_tokens.remove(token);
                    return Err(Reject::problem(
                        StatusCode::UNAUTHORIZED,
                        problem::TOKEN_EXPIRED,
                    ));
                }
                Some(t) => t.secret.clone(),
                None => {
                    return Err(Reject::problem(
                        StatusCode::UNAUTHORIZED,
                        problem::TOKEN_REJECTED,
                    ))
                }
            },
            TokenUse::Access => match mem.access_tokens.get(token) {
                Some(t) if t.consumer_key != consumer_key => {
                    return Err(Reject::problem(
                        StatusCode::UNAUTHORIZED,
                        problem::TOKEN_REJECTED,
                    ))
                }
                Some(t) if t.expires_at.is_some_and(|at| now_instant >= at) => {
                    mem.access_tokens.remove(token);
                    return Err(Reject::problem(
                        StatusCode::UNAUTHORIZED,
                        problem::TOKEN_EXPIRED,
                    ));
                }
                Some(t) => t.secret.clone(),
                None => {
                    return Err(Reject::problem(
                        StatusCode::UNAUTHORIZED,
                        problem::TOKEN_REJECTED,
                    ))
                }
            },
        };
        let Some(host) = host_of(parts) else {
            return Err(Reject::Plain(StatusCode::BAD_REQUEST, "missing Host"));
        };
        let base = signature::base_string(
            parts.method.as_str(),
            &signature::base_string_uri(self.public_scheme(parts), host, parts.uri.path()),
            &params.all,
        );
        if !signature::verify_hmac_sha1(
            &base,
            consumer_secret.expose(),
            token_secret.expose(),
            get("oauth_signature"),
        ) {
            return Err(Reject::problem(
                StatusCode::UNAUTHORIZED,
                problem::SIGNATURE_INVALID,
            ));
        }
        if mem.nonces.len() >= NONCE_PRUNE_THRESHOLD {
            let oldest = now.saturating_sub(window);
            mem.nonces.retain(|(_, _, ts)| *ts >= oldest);
        }
        let nonce = (
            consumer_key.to_string(),
            get("oauth_nonce").to_string(),
            timestamp,
        );
        if !mem.nonces.insert(nonce) {
            return Err(Reject::problem(
                StatusCode::UNAUTHORIZED,
                problem::NONCE_USED,
            ));
        }
        Ok(consumer_key.to_string())
    }
}

/// Why a request is refused, kept as data until the edge turns it into a response.
pub(super) enum Reject {
    /// An OAuth Problem Reporting answer (see [`problem_with`]).
    Problem {
        status: StatusCode,
        problem: &'static str,
        extra: Option<(&'static str, String)>,
    },
    /// A plain-text answer without `oauth_problem`.
    Plain(StatusCode, &'static str),
}

impl Reject {
    pub(super) fn problem(status: StatusCode, problem: &'static str) -> Self {
        Reject::Problem {
            status,
            problem,
            extra: None,
        }
    }

    fn problem_with(
        status: StatusCode,
        problem: &'static str,
        extra: &[(&'static str, &str)],
    ) -> Self {
        Reject::Problem {
            status,
            problem,
            extra: extra.first().map(|(n, v)| (*n, v.to_string())),
        }
    }

    pub(super) fn into_response(self) -> Resp {
        match self {
            Reject::Problem {
                status,
                problem,
                extra: None,
            } => problem_with(status, problem, &[]),
            Reject::Problem {
                status,
                problem,
                extra: Some((name, value)),
            } => problem_with(status, problem, &[(name, &value)]),
            Reject::Plain(status, body) => text(status, body),
        }
    }
}

pub(super) fn oauth_params(parts: &Parts, body: &[u8]) -> Result<RequestParams, Reject> {
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let form = is_form(parts).then_some(body);
    signature::collect_params(parts.uri.query(), authorization, form).map_err(|e| match e {
        signature::ParamError::Duplicate(_) => {
            Reject::problem(StatusCode::BAD_REQUEST, problem::PARAMETER_REJECTED)
        }
        _ => Reject::Plain(StatusCode::BAD_REQUEST, "malformed OAuth parameters"),
    })
}

//! What the OAuth 2 client reports: each flow's steps with their outcomes, totals per step, failure reasons
//! as `<status> <error>` (RFC 6749 §5.2 / RFC 6750 §3.1 codes), and an aligned table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::sim::consumer::Reply;
use crate::sim::SimError;

use super::client::{AuthMethod, Grant};
use super::wire;

/// Every step any flow can take, in the order flows take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// `GET /.well-known/openid-configuration`.
    Discovery,
    /// RFC 7591 registration.
    Register,
    /// RFC 7592 read of the client configuration.
    ReadClient,
    /// RFC 9126 pushed authorization request.
    Par,
    /// Browser: `GET` the authorization endpoint (login page).
    AuthorizeForm,
    /// Browser: `POST` credentials → 302 with `code` and `state`.
    Authorize,
    /// Code + PKCE verifier → tokens and a verified id_token carrying the nonce.
    CodeExchange,
    /// `client_credentials` → an access token.
    ClientCredentials,
    /// RFC 8628 device authorization.
    DeviceAuthorization,
    /// The first poll, before the user acts: must be `authorization_pending`.
    DevicePending,
    /// Browser: the user approves the user code at the verification page.
    DeviceApprove,
    /// The poll after approval → tokens.
    DeviceToken,
    /// OpenID Connect userinfo with the bearer token.
    Userinfo,
    /// `refresh_token` grant; the refresh token must rotate.
    Refresh,
    /// RFC 7662 introspection of the access token: active.
    Introspect,
    /// RFC 7009 revocation of the access token.
    Revoke,
    /// Introspection after revocation: inactive.
    IntrospectRevoked,
    /// OpenID Connect RP-initiated logout with `id_token_hint`.
    EndSession,
}

impl Step {
    /// Every step, in flow order.
    pub const ALL: [Step; 18] = [
        Step::Discovery,
        Step::Register,
        Step::ReadClient,
        Step::Par,
        Step::AuthorizeForm,
        Step::Authorize,
        Step::CodeExchange,
        Step::ClientCredentials,
        Step::DeviceAuthorization,
        Step::DevicePending,
        Step::DeviceApprove,
        Step::DeviceToken,
        Step::Userinfo,
        Step::Refresh,
        Step::Introspect,
        Step::Revoke,
        Step::IntrospectRevoked,
        Step::EndSession,
    ];

    /// The name shown in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Discovery => "discovery",
            Step::Register => "register",
            Step::ReadClient => "read client",
            Step::Par => "par",
            Step::AuthorizeForm => "authorize form",
            Step::Authorize => "authorize",
            Step::CodeExchange => "code exchange",
            Step::ClientCredentials => "client credentials",
            Step::DeviceAuthorization => "device authz",
            Step::DevicePending => "device pending",
            Step::DeviceApprove => "device approve",
            Step::DeviceToken => "device token",
            Step::Userinfo => "userinfo",
            Step::Refresh => "refresh",
            Step::Introspect => "introspect",
            Step::Revoke => "revoke",
            Step::IntrospectRevoked => "introspect revoked",
            Step::EndSession => "end session",
        }
    }
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status, if an answer arrived.
    pub status: Option<u16>,
    /// The OAuth `error` code, from the JSON body or a `WWW-Authenticate` challenge.
    pub error: Option<String>,
    /// `X-Served-By` of the failing answer.
    pub served_by: Option<String>,
    /// A short description (the first line of a non-JSON body, or what the client found wrong).
    pub detail: String,
}

impl Failure {
    /// A failure found by the client itself (a wrong value in a successful answer, a transport error).
    pub fn local(detail: impl Into<String>) -> Failure {
        Failure {
            status: None,
            error: None,
            served_by: None,
            detail: detail.into(),
        }
    }

    /// A wrong value in an answer that otherwise arrived from `served_by`.
    pub fn wrong(reply: &Reply, detail: impl Into<String>) -> Failure {
        Failure {
            served_by: reply.served_by(),
            ..Failure::local(detail)
        }
    }

    /// An answer with an unexpected status.
    pub fn from_reply(reply: &Reply) -> Failure {
        let error = serde_json::from_slice::<wire::ErrorBody>(&reply.body)
            .ok()
            .map(|e| e.error)
            .or_else(|| challenge_error(reply));
        Failure {
            status: Some(reply.status.as_u16()),
            error,
            served_by: reply.served_by(),
            detail: reply.detail(),
        }
    }

    /// The reason as the report groups it: `400 invalid_client`, `401 invalid_token`, `400 unknown or
    /// expired user code`, or the client's own finding.
    pub fn reason(&self) -> String {
        match (self.status, &self.error) {
            (Some(status), Some(error)) => format!("{status} {error}"),
            (Some(status), None) => format!("{status} {}", self.detail),
            (None, _) => self.detail.clone(),
        }
    }
}

/// `error="..."` of a `WWW-Authenticate` challenge.
fn challenge_error(reply: &Reply) -> Option<String> {
    let value = reply
        .headers
        .get(http::header::WWW_AUTHENTICATE)?
        .to_str()
        .ok()?;
    let rest = &value[value.find("error=\"")? + 7..];
    Some(rest[..rest.find('"')?].to_string())
}

impl From<SimError> for Failure {
    fn from(e: SimError) -> Self {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let _ = write!(detail, ": {s}");
            source = s.source();
        }
        Failure::local(detail)
    }
}

/// What happened to one step of one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Done; the node that answered.
    Ok {
        /// `X-Served-By`.
        served_by: Option<String>,
    },
    /// Failed; the flow stopped here.
    Failed(Failure),
    /// Not attempted because an earlier step failed.
    Skipped,
}

/// One flow: its grant, its client authentication, and every planned step with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowResult {
    /// Flow number, from 0.
    pub flow: usize,
    /// The grant it played.
    pub grant: Grant,
    /// How the client authenticated.
    pub auth: AuthMethod,
    /// The planned steps in order.
    pub steps: Vec<(Step, StepOutcome)>,
}

impl FlowResult {
    /// Whether every step succeeded.
    pub fn passed(&self) -> bool {
        self.steps
            .iter()
            .all(|(_, o)| matches!(o, StepOutcome::Ok { .. }))
    }

    /// The outcome of `step`, if the flow planned it.
    pub fn outcome(&self, step: Step) -> Option<&StepOutcome> {
        self.steps.iter().find(|(s, _)| *s == step).map(|(_, o)| o)
    }

    /// The node that answered `step`, when reached.
    pub fn served_by(&self, step: Step) -> Option<&str> {
        match self.outcome(step)? {
            StepOutcome::Ok { served_by } => served_by.as_deref(),
            StepOutcome::Failed(f) => f.served_by.as_deref(),
            StepOutcome::Skipped => None,
        }
    }

    /// The failing step and why.
    pub fn failure(&self) -> Option<(Step, &Failure)> {
        self.steps.iter().find_map(|(s, o)| match o {
            StepOutcome::Failed(f) => Some((*s, f)),
            _ => None,
        })
    }
}

/// Totals of one step over the flows that planned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSummary {
    /// The step.
    pub step: Step,
    /// Succeeded.
    pub ok: usize,
    /// Failed.
    pub failed: usize,
    /// Never reached.
    pub skipped: usize,
    /// `X-Served-By` → answers from that node.
    pub nodes: BTreeMap<String, usize>,
    /// Reason → count.
    pub reasons: BTreeMap<String, usize>,
}

/// The outcome of [`super::run_flows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowReport {
    /// The base URL the flows ran against.
    pub target: String,
    /// One entry per flow, by flow number.
    pub flows: Vec<FlowResult>,
}

impl FlowReport {
    /// Flows where every step succeeded.
    pub fn passed(&self) -> usize {
        self.flows.iter().filter(|f| f.passed()).count()
    }

    /// Flows with a failed step.
    pub fn failed(&self) -> usize {
        self.flows.len() - self.passed()
    }

    /// Totals of `step`.
    pub fn step(&self, step: Step) -> StepSummary {
        let mut s = StepSummary {
            step,
            ok: 0,
            failed: 0,
            skipped: 0,
            nodes: BTreeMap::new(),
            reasons: BTreeMap::new(),
        };
        for outcome in self.flows.iter().filter_map(|f| f.outcome(step)) {
            let node = match outcome {
                StepOutcome::Ok { served_by } => {
                    s.ok += 1;
                    served_by
                }
                StepOutcome::Failed(f) => {
                    s.failed += 1;
                    *s.reasons.entry(f.reason()).or_default() += 1;
                    &f.served_by
                }
                StepOutcome::Skipped => {
                    s.skipped += 1;
                    &None
                }
            };
            if let Some(node) = node {
                *s.nodes.entry(node.clone()).or_default() += 1;
            }
        }
        s
    }

    /// Totals of every step some flow planned, in flow order.
    pub fn steps(&self) -> Vec<StepSummary> {
        Step::ALL
            .iter()
            .map(|s| self.step(*s))
            .filter(|s| s.ok + s.failed + s.skipped > 0)
            .collect()
    }

    /// Failure reason → failed flows, over all steps.
    pub fn reasons(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (_, f) in self.flows.iter().filter_map(FlowResult::failure) {
            *out.entry(f.reason()).or_default() += 1;
        }
        out
    }

    /// An aligned table (step, ok, failed, skipped, nodes, top reasons) ending with `N passed, M failed`.
    pub fn render_table(&self) -> String {
        let header = ["step", "ok", "failed", "skipped", "nodes", "failures"];
        let rows: Vec<[String; 6]> = self
            .steps()
            .into_iter()
            .map(|s| {
                let nodes: Vec<String> = s.nodes.iter().map(|(n, c)| format!("{n}:{c}")).collect();
                let mut reasons: Vec<(&String, &usize)> = s.reasons.iter().collect();
                reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let failures: Vec<String> = reasons
                    .iter()
                    .take(3)
                    .map(|(r, c)| format!("{r} ({c})"))
                    .collect();
                [
                    s.step.as_str().to_string(),
                    s.ok.to_string(),
                    s.failed.to_string(),
                    s.skipped.to_string(),
                    if nodes.is_empty() {
                        "-".into()
                    } else {
                        nodes.join(" ")
                    },
                    failures.join(", "),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 6]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let _ = match i {
                    1..=3 => write!(l, "{cell:>w$}  "),
                    _ => write!(l, "{cell:<w$}  "),
                };
            }
            l.trim_end().to_string() + "\n"
        };
        let mut out = format!(
            "{} OAuth 2 flows against {}\n",
            self.flows.len(),
            self.target
        );
        out.push_str(&line(header));
        for row in &rows {
            out.push_str(&line(row.each_ref().map(String::as_str)));
        }
        let _ = write!(out, "{} passed, {} failed", self.passed(), self.failed());
        out
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};

    use super::*;

    fn reply(status: u16, headers: &[(&'static str, &'static str)], body: &'static str) -> Reply {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.insert(*n, HeaderValue::from_static(v));
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn reasons_name_the_oauth_error_from_the_body_or_the_challenge() {
        let json = reply(
            400,
            &[("x-served-by", "as_2")],
            r#"{"error":"invalid_grant"}"#,
        );
        let f = Failure::from_reply(&json);
        assert_eq!(
            (f.reason(), f.served_by.as_deref()),
            ("400 invalid_grant".into(), Some("as_2"))
        );
        let challenge = reply(
            401,
            &[(
                "www-authenticate",
                "Bearer realm=\"r\", error=\"invalid_token\"",
            )],
            "",
        );
        assert_eq!(
            Failure::from_reply(&challenge).reason(),
            "401 invalid_token"
        );
        let page = reply(400, &[], "unknown or expired user code\n");
        assert_eq!(
            Failure::from_reply(&page).reason(),
            "400 unknown or expired user code"
        );
    }

    #[test]
    fn steps_no_flow_planned_are_left_out_of_the_table() {
        let report = FlowReport {
            target: "http://127.0.0.1:1".into(),
            flows: vec![FlowResult {
                flow: 0,
                grant: Grant::ClientCredentials,
                auth: AuthMethod::Basic,
                steps: vec![
                    (
                        Step::Register,
                        StepOutcome::Ok {
                            served_by: Some("as_1".into()),
                        },
                    ),
                    (
                        Step::ClientCredentials,
                        StepOutcome::Failed(Failure {
                            status: Some(401),
                            error: Some("invalid_client".into()),
                            served_by: Some("as_3".into()),
                            detail: String::new(),
                        }),
                    ),
                    (Step::Introspect, StepOutcome::Skipped),
                ],
            }],
        };
        let table = report.render_table();
        assert!(table.ends_with("\n0 passed, 1 failed"), "{table}");
        assert!(table.contains("401 invalid_client (1)"), "{table}");
        assert!(!table.contains("code exchange"), "{table}");
        assert_eq!(report.reasons().get("401 invalid_client"), Some(&1));
    }
}

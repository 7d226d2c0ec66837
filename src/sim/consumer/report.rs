//! What a run of flows produced: each flow's outcome per step, per-step totals across flows, and the aligned
//! text table `tokenroute flow` and the demo print.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::super::SimError;
use super::options::ParamMode;
#[cfg(doc)]
use super::run_flows;

/// The steps of one flow, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// `GET .../discovery` (server to server).
    Discovery,
    /// `POST oauth-request-consumer` (server to server).
    Register,
    /// Admin browser: `GET oauth-approve-consumer?key=K`.
    ApproveForm,
    /// Admin browser: `POST oauth-approve-consumer?key=K`.
    Approve,
    /// Signed `POST oauth-request-token` (server to server).
    RequestToken,
    /// User browser: `GET oauth-authorize?oauth_token=T`.
    AuthorizeForm,
    /// User browser: `POST oauth-authorize` → 302.
    Authorize,
    /// User browser follows the 302 to the consumer's own callback.
    Callback,
    /// Signed `POST oauth-access-token` (server to server).
    AccessToken,
    /// First signed protected read.
    Read1,
    /// Second signed protected read.
    Read2,
    /// Third signed protected read.
    Read3,
}

impl Step {
    /// Every step, in flow order.
    pub const ALL: [Step; 12] = [
        Step::Discovery,
        Step::Register,
        Step::ApproveForm,
        Step::Approve,
        Step::RequestToken,
        Step::AuthorizeForm,
        Step::Authorize,
        Step::Callback,
        Step::AccessToken,
        Step::Read1,
        Step::Read2,
        Step::Read3,
    ];

    /// The name shown in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Discovery => "discovery",
            Step::Register => "register",
            Step::ApproveForm => "approve form",
            Step::Approve => "approve",
            Step::RequestToken => "request token",
            Step::AuthorizeForm => "authorize form",
            Step::Authorize => "authorize",
            Step::Callback => "callback",
            Step::AccessToken => "access token",
            Step::Read1 => "read 1",
            Step::Read2 => "read 2",
            Step::Read3 => "read 3",
        }
    }
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// `oauth_problem` from `WWW-Authenticate` (or the body), if any.
    pub oauth_problem: Option<String>,
    /// Whether the body names `invalid_expired_token`, the technote's symptom.
    pub invalid_expired_token: bool,
    /// `X-Served-By` of the failing response.
    pub served_by: Option<String>,
    /// A short human description (first line of the body, or the transport error).
    pub detail: String,
}

impl Failure {
    pub(super) fn local(detail: impl Into<String>) -> Self {
        Failure {
            status: None,
            oauth_problem: None,
            invalid_expired_token: false,
            served_by: None,
            detail: detail.into(),
        }
    }

    /// The reason as the report groups it: `401 consumer_key_unknown`, `401 login required`, or the error.
    pub fn reason(&self) -> String {
        match (self.status, &self.oauth_problem) {
            (Some(status), Some(problem)) => format!("{status} {problem}"),
            (Some(status), None) => format!("{status} {}", self.detail),
            (None, _) => self.detail.clone(),
        }
    }
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
    /// Done; the node that answered (`None` for the consumer's own callback).
    Ok {
        /// `X-Served-By` of the response.
        served_by: Option<String>,
    },
    /// Failed; the flow stopped here.
    Failed(Failure),
    /// Not attempted because an earlier step failed.
    Skipped,
}

/// One flow's outcome, one entry per [`Step`] in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowResult {
    /// Flow number, from 0.
    pub flow: usize,
    /// Every step with its outcome.
    pub steps: Vec<(Step, StepOutcome)>,
}

impl FlowResult {
    /// Whether every step succeeded.
    pub fn passed(&self) -> bool {
        self.steps
            .iter()
            .all(|(_, o)| matches!(o, StepOutcome::Ok { .. }))
    }

    /// The outcome of `step`.
    pub fn outcome(&self, step: Step) -> Option<&StepOutcome> {
        self.steps.iter().find(|(s, _)| *s == step).map(|(_, o)| o)
    }

    /// The node that answered `step` (`X-Served-By`), when it was reached.
    pub fn served_by(&self, step: Step) -> Option<&str> {
        match self.outcome(step)? {
            StepOutcome::Ok { served_by } => served_by.as_deref(),
            StepOutcome::Failed(f) => f.served_by.as_deref(),
            StepOutcome::Skipped => None,
        }
    }

    /// The failing step and why, if the flow failed.
    pub fn failure(&self) -> Option<(Step, &Failure)> {
        self.steps.iter().find_map(|(s, o)| match o {
            StepOutcome::Failed(f) => Some((*s, f)),
            _ => None,
        })
    }
}

/// Totals for one step across flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSummary {
    /// The step.
    pub step: Step,
    /// Flows where it succeeded.
    pub ok: usize,
    /// Flows where it failed.
    pub failed: usize,
    /// Flows that never reached it.
    pub skipped: usize,
    /// `X-Served-By` → responses (successful or not) from that node.
    pub nodes: BTreeMap<String, usize>,
    /// Failure reason → count.
    pub reasons: BTreeMap<String, usize>,
}

/// The outcome of [`run_flows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowReport {
    /// The base URL the flows ran against.
    pub target: String,
    /// Where OAuth parameters travelled.
    pub params: ParamMode,
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

    /// Totals for one step.
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
            match outcome {
                StepOutcome::Ok { served_by } => {
                    s.ok += 1;
                    if let Some(node) = served_by {
                        *s.nodes.entry(node.clone()).or_default() += 1;
                    }
                }
                StepOutcome::Failed(f) => {
                    s.failed += 1;
                    if let Some(node) = &f.served_by {
                        *s.nodes.entry(node.clone()).or_default() += 1;
                    }
                    *s.reasons.entry(f.reason()).or_default() += 1;
                }
                StepOutcome::Skipped => s.skipped += 1,
            }
        }
        s
    }

    /// Totals for every step, in flow order.
    pub fn steps(&self) -> Vec<StepSummary> {
        Step::ALL.iter().map(|s| self.step(*s)).collect()
    }

    /// Failure reason → count, over all steps.
    pub fn reasons(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (_, f) in self.flows.iter().filter_map(FlowResult::failure) {
            *out.entry(f.reason()).or_default() += 1;
        }
        out
    }

    /// An aligned text table (step, ok, failed, skipped, nodes used, top failure reasons) ending with the
    /// line `N passed, M failed`.
    pub fn render_table(&self) -> String {
        let header = ["step", "ok", "failed", "skipped", "nodes", "failures"];
        let mut rows: Vec<[String; 6]> = Vec::new();
        for s in self.steps() {
            let nodes = if s.nodes.is_empty() {
                "-".to_string()
            } else {
                s.nodes
                    .iter()
                    .map(|(n, c)| format!("{n}:{c}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut reasons: Vec<(&String, &usize)> = s.reasons.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let failures = reasons
                .iter()
                .take(3)
                .map(|(r, c)| format!("{r} ({c})"))
                .collect::<Vec<_>>()
                .join(", ");
            rows.push([
                s.step.as_str().to_string(),
                s.ok.to_string(),
                s.failed.to_string(),
                s.skipped.to_string(),
                nodes,
                failures,
            ]);
        }
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!(
            "{} flows against {} (params: {})\n",
            self.flows.len(),
            self.target,
            self.params.as_str()
        );
        let line = |cells: [&str; 6]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                // Text columns left-aligned, counts right-aligned.
                let _ = match i {
                    1..=3 => write!(l, "{cell:>w$}  "),
                    _ => write!(l, "{cell:<w$}  "),
                };
            }
            l.trim_end().to_string() + "\n"
        };
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
    use super::*;

    fn report() -> FlowReport {
        let ok = |node: &str| StepOutcome::Ok {
            served_by: Some(node.to_string()),
        };
        let passed = FlowResult {
            flow: 0,
            steps: Step::ALL.iter().map(|s| (*s, ok("lbcq_1"))).collect(),
        };
        let mut steps: Vec<(Step, StepOutcome)> =
            Step::ALL[..5].iter().map(|s| (*s, ok("lbcq_2"))).collect();
        steps.push((
            Step::AuthorizeForm,
            StepOutcome::Failed(Failure {
                status: Some(401),
                oauth_problem: Some("token_rejected".into()),
                invalid_expired_token: true,
                served_by: Some("lbcq_3".into()),
                detail: "401: invalid_expired_token".into(),
            }),
        ));
        steps.extend(Step::ALL[6..].iter().map(|s| (*s, StepOutcome::Skipped)));
        FlowReport {
            target: "http://127.0.0.1:1".into(),
            params: ParamMode::Mixed,
            flows: vec![passed, FlowResult { flow: 1, steps }],
        }
    }

    #[test]
    fn report_counts_steps_nodes_and_reasons() {
        let r = report();
        assert_eq!((r.passed(), r.failed()), (1, 1));
        let s = r.step(Step::AuthorizeForm);
        assert_eq!((s.ok, s.failed, s.skipped), (1, 1, 0));
        assert_eq!(s.nodes.get("lbcq_3"), Some(&1));
        assert_eq!(s.reasons.get("401 token_rejected"), Some(&1));
        assert_eq!(r.step(Step::Read3).skipped, 1);
        assert_eq!(r.reasons().get("401 token_rejected"), Some(&1));
    }

    #[test]
    fn table_is_aligned_and_ends_with_the_totals_line() {
        let table = report().render_table();
        assert!(table.ends_with("\n1 passed, 1 failed"), "{table}");
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].starts_with("step"));
        let failures_col = lines[1].find("failures").unwrap();
        let row = lines
            .iter()
            .find(|l| l.starts_with("authorize form"))
            .unwrap();
        assert_eq!(row.find("401 token_rejected (1)"), Some(failures_col));
        assert!(row.contains("lbcq_2:1 lbcq_3:1") || row.contains("lbcq_1:1 lbcq_3:1"));
    }
}

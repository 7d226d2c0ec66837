//! `/metrics` output checked by Prometheus's own linter, `promtool check metrics` (Debian package
//! `prometheus`).
//!
//! Without promtool the test is skipped with a message, unless `TOKENROUTE_REQUIRE_PROMTOOL` is set (CI sets
//! it and installs the package): then a missing promtool fails the test instead of passing it silently.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::StatusCode;
use tokenroute::admin::{Metrics, MetricsView, NodeView, RefreshTrigger, ReplayOutcome};
use tokenroute::affinity::{NodeId, TableStats};
use tokenroute::oauth::CredentialKind;
use tokenroute::proxy::route::RouteReason;

/// A scrape of a busy three-node deployment: every counter moved, one node down, one drained.
fn realistic_exposition() -> String {
    let metrics = Metrics::new();
    let ids: Vec<NodeId> = (0..3).map(|i| NodeId::new(i).unwrap()).collect();
    for (i, status) in [200, 200, 201, 302, 401, 403, 404, 500, 502, 503]
        .into_iter()
        .enumerate()
    {
        let status = StatusCode::from_u16(status).unwrap();
        metrics.observe_response(Some(ids[i % 3]), status);
        metrics
            .observe_upstream_latency(ids[i % 3], Duration::from_micros(300 * (i as u64 + 1) * 7));
    }
    metrics.observe_response(None, StatusCode::SERVICE_UNAVAILABLE);
    metrics.observe_upstream_latency(ids[1], Duration::from_secs(12));
    for reason in RouteReason::ALL {
        metrics.observe_route(reason);
    }
    for trigger in RefreshTrigger::ALL {
        metrics.observe_refresh(trigger, true);
    }
    metrics.observe_refresh(RefreshTrigger::StaleAnswer, false);
    for outcome in ReplayOutcome::ALL {
        metrics.observe_replay(outcome);
    }
    metrics.observe_reload(true);
    metrics.observe_reload(false);
    metrics.observe_body_too_large();
    metrics.observe_learn_skipped();

    let names = ["lbcq_1", "lbcq_2", "lbcq_3"];
    let view = MetricsView {
        nodes: ids
            .iter()
            .zip(names)
            .map(|(&id, name)| NodeView {
                id,
                name,
                healthy: id.index() != 2,
                draining: id.index() == 1,
                inflight: 4 - id.index(),
                owned_keys: 2,
            })
            .collect(),
        table: TableStats {
            len: 12,
            max_entries: 100_000,
            inserts: 40,
            evictions: 3,
            expiries: 25,
        },
        table_by_kind: CredentialKind::ALL.map(|k| (k, k.index() + 1)),
    };
    metrics.render(&view)
}

fn promtool_available() -> bool {
    Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn promtool_accepts_the_metrics_exposition() {
    if !promtool_available() {
        if std::env::var_os("TOKENROUTE_REQUIRE_PROMTOOL").is_some() {
            panic!("TOKENROUTE_REQUIRE_PROMTOOL is set but promtool is missing: install the `prometheus` package");
        }
        eprintln!(
            "SKIPPED promtool_accepts_the_metrics_exposition: promtool not found \
             (apt-get install prometheus; set TOKENROUTE_REQUIRE_PROMTOOL=1 to make this a failure)"
        );
        return;
    }
    let exposition = realistic_exposition();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // promtool exits non-zero on parse errors and on lint problems alike; any output is a problem.
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics failed:\n{report}\n--- exposition ---\n{exposition}"
    );
}

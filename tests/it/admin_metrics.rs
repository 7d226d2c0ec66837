//! `/metrics` output checked by Prometheus's own linter, `promtool check metrics` (Debian package
//! `prometheus`).
//!
//! Without promtool the test is skipped with a message, unless `TOKENROUTE_REQUIRE_PROMTOOL` is set (CI sets
//! it and installs the package): then a missing promtool fails the test instead of passing it silently.

use std::time::Duration;

use http::StatusCode;
use tokenroute::affinity::{NodeId, TableStats};
use tokenroute::metrics::RouteReason;
use tokenroute::metrics::{
    CertificateView, Metrics, MetricsView, NodeView, RefreshTrigger, ReplayOutcome,
};
use tokenroute::oauth::CredentialKind;

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
                checks: [5, 1, 0, 0, 0, 0],
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
        store: None,
        certificates: vec![CertificateView {
            listener: "public",
            server_name: "lbcq.example",
            not_after: 1_893_542_400,
        }],
    };
    metrics.render(&view)
}

#[test]
fn promtool_accepts_the_metrics_exposition() {
    let exposition = realistic_exposition();
    if let Some(result) = crate::support::promtool_check(&exposition) {
        result.unwrap_or_else(|report| {
            panic!("promtool check metrics failed:\n{report}\n--- exposition ---\n{exposition}")
        });
    }
}

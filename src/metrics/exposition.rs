//! Rendering: the Prometheus text exposition (format 0.0.4) and the counters `/status` shows, both read from
//! the registry's atomics and a [`MetricsView`] of the current nodes and table.

use std::fmt::{Display, Write as _};
use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Map, Value};

use super::*;

impl Metrics {
    /// The Prometheus text exposition (format 0.0.4) of every metric; node series only for `view.nodes`.
    pub fn render(&self, view: &MetricsView<'_>) -> String {
        let mut out = Exposition(String::with_capacity(4096 + view.nodes.len() * 2048));

        out.family(
            names::REQUESTS_TOTAL,
            "counter",
            "Responses sent to clients, by status class and node (- when the proxy answered itself).",
        );
        let rows = view
            .nodes
            .iter()
            .map(|n| (n.name, n.id.index()))
            .chain([(names::NO_NODE, NO_NODE_ROW)]);
        for (name, row) in rows {
            for (class, counter) in STATUS_CLASSES.iter().zip(&self.responses[row]) {
                out.sample(
                    names::REQUESTS_TOTAL,
                    &[(label::CLASS, class), (label::NODE, name)],
                    counter.load(Relaxed),
                );
            }
        }

        out.family(
            names::UPSTREAM_LATENCY_SECONDS,
            "histogram",
            "Time from sending a request to a node to receiving its response head, by node.",
        );
        let bucket = format!("{}_bucket", names::UPSTREAM_LATENCY_SECONDS);
        let sum = format!("{}_sum", names::UPSTREAM_LATENCY_SECONDS);
        let count = format!("{}_count", names::UPSTREAM_LATENCY_SECONDS);
        for node in &view.nodes {
            let histogram = &self.latency[node.id.index()];
            let bounds = LATENCY_BUCKETS.iter().map(|&(_, le)| le).chain(["+Inf"]);
            let mut cumulative = 0u64;
            for (le, slot) in bounds.zip(&histogram.buckets) {
                cumulative += slot.load(Relaxed);
                out.sample(
                    &bucket,
                    &[(label::NODE, node.name), (label::LE, le)],
                    cumulative,
                );
            }
            let seconds = histogram.sum_nanos.load(Relaxed) as f64 / 1e9;
            out.sample(&sum, &[(label::NODE, node.name)], seconds);
            out.sample(&count, &[(label::NODE, node.name)], cumulative);
        }

        let gauges: [(&str, &str, NodeGauge); 4] = [
            (
                names::NODE_HEALTHY,
                "1 when health checks consider the node up, 0 when down.",
                |n| usize::from(n.healthy),
            ),
            (
                names::NODE_DRAINING,
                "1 when an administrator drained the node, 0 otherwise.",
                |n| usize::from(n.draining),
            ),
            (
                names::NODE_INFLIGHT,
                "Requests sent to the node and not yet finished.",
                |n| n.inflight,
            ),
            (
                names::NODE_OWNED_KEYS,
                "Learned consumer keys and client ids the node is an owner of.",
                |n| n.owned_keys,
            ),
        ];
        for (name, help, value) in gauges {
            out.family(name, "gauge", help);
            for node in &view.nodes {
                out.sample(name, &[(label::NODE, node.name)], value(node));
            }
        }

        out.family(
            names::HEALTH_CHECKS_TOTAL,
            "counter",
            "Active health checks, by node and result.",
        );
        for node in &view.nodes {
            for (result, n) in HEALTH_CHECK_RESULTS.iter().zip(node.checks) {
                out.sample(
                    names::HEALTH_CHECKS_TOTAL,
                    &[(label::NODE, node.name), (label::RESULT, result)],
                    n,
                );
            }
        }

        out.family(
            names::TABLE_ENTRIES,
            "gauge",
            "Entries in the learned table (expired ones not yet swept included), by credential kind.",
        );
        for (kind, n) in view.table_by_kind {
            out.sample(names::TABLE_ENTRIES, &[(label::KIND, kind.as_str())], n);
        }
        let table: [(&str, &str, &str, u64); 4] = [
            (
                names::TABLE_MAX_ENTRIES,
                "gauge",
                "The bound on the learned table.",
                view.table.max_entries as u64,
            ),
            (
                names::TABLE_INSERTS_TOTAL,
                "counter",
                "Entries added to the learned table.",
                view.table.inserts,
            ),
            (
                names::TABLE_EVICTIONS_TOTAL,
                "counter",
                "Live entries removed from the learned table to make room.",
                view.table.evictions,
            ),
            (
                names::TABLE_EXPIRIES_TOTAL,
                "counter",
                "Expired entries removed from the learned table.",
                view.table.expiries,
            ),
        ];
        for (name, kind, help, value) in table {
            out.family(name, kind, help);
            out.sample(name, &[], value);
        }
        if let Some(store) = &view.store {
            let rows: [(&str, &str, &str, u64); 8] = [
                (
                    names::STORE_UP,
                    "gauge",
                    "1 while the shared store (Redis) is in use, 0 while this instance runs on its own table.",
                    u64::from(store.up),
                ),
                (
                    names::STORE_DEGRADED_OPERATIONS_TOTAL,
                    "counter",
                    "Table operations done on this instance's table only because the shared store was unavailable.",
                    store.degraded_ops,
                ),
                (
                    names::STORE_OUTAGES_TOTAL,
                    "counter",
                    "Times the shared store became unavailable.",
                    store.outages,
                ),
                (
                    names::STORE_READ_THROUGH_TOTAL,
                    "counter",
                    "Entries read through from the shared store on a local miss.",
                    store.read_through,
                ),
                (
                    names::STORE_CHANGES_APPLIED_TOTAL,
                    "counter",
                    "Changes made by other instances applied to this instance's table.",
                    store.applied,
                ),
                (
                    names::STORE_WRITTEN_BACK_TOTAL,
                    "counter",
                    "Entries written back to the shared store after an outage.",
                    store.written_back,
                ),
                (
                    names::STORE_LEASES_LOST_TOTAL,
                    "counter",
                    "Refreshes left to another instance holding the lease.",
                    store.leases_lost,
                ),
                (
                    names::STORE_PENDING_WRITE_BACK,
                    "gauge",
                    "Entries changed during an outage of the shared store, waiting to be written back.",
                    store.pending as u64,
                ),
            ];
            for (name, kind, help, value) in rows {
                out.family(name, kind, help);
                out.sample(name, &[], value);
            }
        }

        out.family(
            names::ROUTE_DECISIONS_TOTAL,
            "counter",
            "Routing decisions, by the rule that decided.",
        );
        for reason in RouteReason::ALL {
            out.sample(
                names::ROUTE_DECISIONS_TOTAL,
                &[(label::REASON, reason.as_str())],
                self.routes[route_index(reason)].load(Relaxed),
            );
        }

        out.family(
            names::REFRESHES_TOTAL,
            "counter",
            "Node refreshes, by what started them and how they ended.",
        );
        for trigger in RefreshTrigger::ALL {
            for (result, counter) in RESULTS.iter().zip(&self.refreshes[trigger_index(trigger)]) {
                out.sample(
                    names::REFRESHES_TOTAL,
                    &[(label::TRIGGER, trigger.as_str()), (label::RESULT, result)],
                    counter.load(Relaxed),
                );
            }
        }

        out.family(
            names::REPLAYS_TOTAL,
            "counter",
            "Requests considered for replay after a stale-credential answer, by outcome.",
        );
        for outcome in ReplayOutcome::ALL {
            out.sample(
                names::REPLAYS_TOTAL,
                &[(label::OUTCOME, outcome.as_str())],
                self.replays[outcome_index(outcome)].load(Relaxed),
            );
        }

        out.family(
            names::CONFIG_RELOADS_TOTAL,
            "counter",
            "Configuration reload attempts, by result.",
        );
        for (result, counter) in RESULTS.iter().zip(&self.reloads) {
            out.sample(
                names::CONFIG_RELOADS_TOTAL,
                &[(label::RESULT, result)],
                counter.load(Relaxed),
            );
        }

        let singles = [
            (
                names::REQUEST_BODY_TOO_LARGE_TOTAL,
                "Requests refused because their body exceeded the buffering cap.",
                &self.body_too_large,
            ),
            (
                names::RESPONSES_NOT_LEARNED_TOTAL,
                "Backend responses relayed without learning from them: too large to inspect.",
                &self.learn_skipped,
            ),
        ];
        for (name, help, counter) in singles {
            out.family(name, "counter", help);
            out.sample(name, &[], counter.load(Relaxed));
        }

        out.family(
            names::BUILD_INFO,
            "gauge",
            "Always 1; the version label says which build is running.",
        );
        out.sample(
            names::BUILD_INFO,
            &[(label::VERSION, env!("CARGO_PKG_VERSION"))],
            1,
        );

        out.family(
            names::REQUEST_DURATION_SECONDS,
            "histogram",
            "Time from a request's head arriving to its response head leaving, as clients see it.",
        );
        out.histogram(names::REQUEST_DURATION_SECONDS, &[], &self.requests);

        let listeners = self.listeners.lock().clone();
        type ListenerCounter = fn(&ListenerCounters) -> u64;
        let families: [(&str, &str, &str, ListenerCounter); 3] = [
            (
                names::CONNECTIONS_ACCEPTED_TOTAL,
                "counter",
                "Connections accepted, by listener.",
                |c| c.accepted.load(Relaxed),
            ),
            (
                names::CONNECTIONS_OPEN,
                "gauge",
                "Connections open now, by listener.",
                |c| c.open.load(Relaxed),
            ),
            (
                names::TLS_HANDSHAKE_FAILURES_TOTAL,
                "counter",
                "TLS handshakes that failed or timed out, by listener.",
                |c| c.tls_failures.load(Relaxed),
            ),
        ];
        for (name, kind, help, read) in families {
            out.family(name, kind, help);
            for (listener, counters) in &listeners {
                out.sample(name, &[(label::LISTENER, listener)], read(counters));
            }
        }

        out.family(
            names::WORKER_CONNECTIONS_OPEN,
            "gauge",
            "Connections open now, by connection worker.",
        );
        let workers = self.workers.lock().clone();
        for (i, open) in workers.iter().enumerate() {
            out.sample(
                names::WORKER_CONNECTIONS_OPEN,
                &[(label::WORKER, &(i + 1).to_string())],
                open.load(Relaxed),
            );
        }

        out.family(
            names::LISTENER_CERTIFICATE_NOT_AFTER_SECONDS,
            "gauge",
            "When the certificate a TLS listener serves for a server name expires, in Unix seconds (* is the default certificate).",
        );
        for c in &view.certificates {
            out.sample(
                names::LISTENER_CERTIFICATE_NOT_AFTER_SECONDS,
                &[
                    (label::LISTENER, c.listener),
                    (label::SERVER_NAME, c.server_name),
                ],
                c.not_after,
            );
        }

        if let Some(stats) = process::read() {
            let process: [(&str, &str, &str, f64); 4] = [
                (
                    names::process::CPU_SECONDS_TOTAL,
                    "counter",
                    "User and system CPU time spent, in seconds.",
                    stats.cpu_seconds,
                ),
                (
                    names::process::RESIDENT_MEMORY_BYTES,
                    "gauge",
                    "Resident memory size in bytes.",
                    stats.resident_bytes as f64,
                ),
                (
                    names::process::OPEN_FDS,
                    "gauge",
                    "Open file descriptors.",
                    stats.open_fds as f64,
                ),
                (
                    names::process::START_TIME_SECONDS,
                    "gauge",
                    "Start time of the process since the Unix epoch, in seconds.",
                    stats.start_time_seconds,
                ),
            ];
            for (name, kind, help, value) in process {
                out.family(name, kind, help);
                out.sample(name, &[], value);
            }
        }

        out.0
    }

    /// The process-wide counters for `/status`: routes, refreshes, replays, reloads and body caps. They count
    /// since start and do not reset on reload.
    pub fn counters_json(&self) -> Value {
        let routes: Map<String, Value> = RouteReason::ALL
            .into_iter()
            .map(|r| {
                let n = self.routes[route_index(r)].load(Relaxed);
                (r.as_str().to_owned(), n.into())
            })
            .collect();
        let by_result = |pair: &Counters<2>| -> Value {
            RESULTS
                .iter()
                .zip(pair)
                .map(|(r, c)| ((*r).to_owned(), Value::from(c.load(Relaxed))))
                .collect::<Map<String, Value>>()
                .into()
        };
        let refreshes: Map<String, Value> = RefreshTrigger::ALL
            .into_iter()
            .map(|t| {
                let counts = by_result(&self.refreshes[trigger_index(t)]);
                (t.as_str().to_owned(), counts)
            })
            .collect();
        let replays: Map<String, Value> = ReplayOutcome::ALL
            .into_iter()
            .map(|o| {
                let n = self.replays[outcome_index(o)].load(Relaxed);
                (o.as_str().to_owned(), n.into())
            })
            .collect();
        json!({
            "routes": routes,
            "refreshes": refreshes,
            "replays": replays,
            "reloads": by_result(&self.reloads),
            "request_body_too_large": self.body_too_large.load(Relaxed),
            "responses_too_large_to_learn": self.learn_skipped.load(Relaxed),
        })
    }
}

/// A text exposition being written.
struct Exposition(String);

impl Exposition {
    /// Writes one histogram series (`_bucket` per bound, `_sum`, `_count`) with `labels` besides `le`.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let bucket = format!("{name}_bucket");
        let bounds = LATENCY_BUCKETS.iter().map(|&(_, le)| le).chain(["+Inf"]);
        let mut cumulative = 0u64;
        for (le, slot) in bounds.zip(&histogram.buckets) {
            cumulative += slot.load(Relaxed);
            let mut with_le = labels.to_vec();
            with_le.push((label::LE, le));
            self.sample(&bucket, &with_le, cumulative);
        }
        let seconds = histogram.sum_nanos.load(Relaxed) as f64 / 1e9;
        self.sample(&format!("{name}_sum"), labels, seconds);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    /// Opens a metric family. Each family is written once, with all its samples right after.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Help texts are constants without backslashes or newlines, so they need no escaping.
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// Writes one sample line, escaping label values.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(key);
                self.0.push_str("=\"");
                escape_label_value(&mut self.0, value);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Escapes a label value as the text format requires: backslash, double quote and line feed.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

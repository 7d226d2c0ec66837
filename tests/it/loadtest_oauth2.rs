//! `tokenroute loadtest --protocol oauth2`: OAuth 2 / OpenID Connect flows against the OAuth 2 stand-in
//! directly and through tokenroute all pass, every planned step has its latency row under its OAuth 2 name,
//! failures behind a plain balancer are counted by step and reason, and the chart is a well-formed SVG.

use std::time::Duration;

use tokenroute::sim::consumer::ParamMode;
use tokenroute::sim::loadtest::{loadtest, LoadtestArgs, LoadtestReport};
use tokenroute::sim::oauth2::{self, Cluster, Step};
use tokenroute::sim::Protocol;

use super::loadtest::{assert_well_formed, temp_svg};
use super::support::{config_text, spawn_proxy};

fn args(target: String, flows: usize, name: &str) -> LoadtestArgs {
    LoadtestArgs {
        target,
        protocol: Protocol::OAuth2,
        flows: Some(flows),
        concurrency: 4,
        params: ParamMode::Mixed,
        duration: None,
        svg: temp_svg(name),
        ca: None,
        resolve: Vec::new(),
        insecure: false,
    }
}

/// tokenroute (or a plain balancer: `token_aware = false`) with the OAuth 2 presets in front of `cluster`.
fn front(cluster: &Cluster, token_aware: bool) -> String {
    let nodes: Vec<(String, String)> = cluster
        .node_names()
        .into_iter()
        .zip(cluster.node_urls())
        .collect();
    let refs: Vec<(&str, String)> = nodes.iter().map(|(n, u)| (n.as_str(), u.clone())).collect();
    config_text(
        &refs,
        &format!(
            "[health]\npath = \"/health\"\n\n[routing]\ntoken_aware = {token_aware}\npresets = [\"oauth2\"]\n"
        ),
    )
}

/// The chart of `report`, checked well formed and removed.
fn take_chart(report: &LoadtestReport) -> String {
    let text = std::fs::read_to_string(&report.svg).unwrap();
    std::fs::remove_file(&report.svg).unwrap();
    assert_well_formed(&text);
    text
}

/// Every flow passed, and every step the flows plan has one latency per flow that plans it.
fn assert_every_flow_and_step_passed(report: &LoadtestReport, flows: usize) {
    let text = report.render();
    assert_eq!(
        (report.passed, report.failed, report.not_run()),
        (flows, 0, 0),
        "{text}"
    );
    assert!(report.failures.is_empty(), "{text}");
    // Flow n plays grant n % 3 (see `oauth2::client`), with every optional step but PAR.
    let opts = oauth2::FlowOptions::new("http://x");
    let plans: Vec<Vec<Step>> = (0..flows)
        .map(|n| opts.plan(opts.grants[n % opts.grants.len()]))
        .collect();
    let planned: Vec<&str> = Step::ALL
        .into_iter()
        .filter(|s| plans.iter().any(|p| p.contains(s)))
        .map(Step::as_str)
        .collect();
    let rows: Vec<&str> = report.steps.iter().map(|s| s.step).collect();
    assert_eq!(rows, planned, "{text}");
    for row in &report.steps {
        let step = Step::ALL
            .into_iter()
            .find(|s| s.as_str() == row.step)
            .unwrap();
        let expected = plans.iter().filter(|p| p.contains(&step)).count();
        assert_eq!(row.latency.count, expected, "{}\n{text}", row.step);
        assert!(row.latency.p50 <= row.latency.p90 && row.latency.p90 <= row.latency.p99);
        assert!(row.latency.p99 > Duration::ZERO, "{}", row.step);
    }
    let steps: usize = plans.iter().map(Vec::len).sum();
    assert_eq!(report.all_steps.count, steps, "{text}");
    for name in [
        "code exchange",
        "device token",
        "client credentials",
        "introspect revoked",
    ] {
        assert!(
            text.contains(&format!("\n{name} ")),
            "no {name} row:\n{text}"
        );
    }
    assert!(!text.contains("request token"), "an OAuth 1 step:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_flows_against_the_stand_in_all_pass_with_a_row_per_oauth2_step() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    // 12 flows: every grant with both client authentication methods, twice.
    let report = loadtest(args(cluster.node_urls()[0].clone(), 12, "loadtest-oauth2"))
        .await
        .unwrap();
    assert_every_flow_and_step_passed(&report, 12);
    assert!(report.render().starts_with("12 OAuth 2 flows against "));
    let in_buckets: usize = report.timeline.iter().map(|b| b.latency.count).sum();
    assert_eq!(in_buckets, report.all_steps.count);

    let svg = take_chart(&report);
    for series in ["p50", "p90", "p99", "requests/s", "failures/s"] {
        assert!(svg.contains(&format!("class=\"{series}\"")), "{series}");
    }
    assert!(svg.contains("Step latency and throughput, 12 OAuth 2 flows against "));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_flows_through_tokenroute_all_pass() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front(&cluster, true)).await;
    let mut a = args(proxy.url(), 24, "loadtest-oauth2-proxy");
    a.concurrency = 6;
    let report = loadtest(a).await.unwrap();
    assert_every_flow_and_step_passed(&report, 24);
    take_chart(&report);
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_failures_behind_a_plain_balancer_are_counted_by_step_and_reason() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front(&cluster, false)).await;
    let mut a = args(proxy.url(), 24, "loadtest-oauth2-plain");
    a.concurrency = 6;
    let report = loadtest(a).await.unwrap();
    let text = report.render();

    assert_eq!(report.ran(), 24, "{text}");
    assert!(report.failed > 0, "{text}");
    assert_eq!(
        report.failures.values().sum::<usize>(),
        report.failed,
        "{text}"
    );
    let names: Vec<&str> = Step::ALL.into_iter().map(Step::as_str).collect();
    for reason in report.failures.keys() {
        let (step, why) = reason.split_once(": ").expect("step: reason");
        assert!(names.contains(&step) && !why.is_empty(), "{reason}");
    }
    let failures: usize = report.timeline.iter().map(|b| b.failures).sum();
    assert_eq!(failures, report.failed, "one failed step per failed flow");
    assert!(take_chart(&report).contains("class=\"failures/s\""));
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn oauth2_runs_refuse_the_tls_options_of_the_oauth1_consumer() {
    let mut a = args("http://127.0.0.1:1".into(), 1, "loadtest-oauth2-tls");
    a.resolve = vec!["x:1:127.0.0.1".parse().unwrap()];
    let err = loadtest(a).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "--resolve does not apply to --protocol oauth2"
    );
    let mut a = args("http://127.0.0.1:1".into(), 1, "loadtest-oauth2-tls");
    a.insecure = true;
    let err = loadtest(a).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "--insecure does not apply to --protocol oauth2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_plays_oauth2_flows_when_asked_to() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let svg = temp_svg("loadtest-oauth2-bin");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .args(["loadtest", "--protocol", "oauth2", "--target"])
        .arg(&cluster.node_urls()[0])
        .args(["--flows", "3", "--concurrency", "3", "--svg"])
        .arg(&svg)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("loadtest finished within a minute")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("3 OAuth 2 flows against ") && stdout.contains("3 passed, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("\ncode exchange "), "{stdout}");
    assert_well_formed(&std::fs::read_to_string(&svg).unwrap());
    std::fs::remove_file(&svg).unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_run_bounded_only_by_its_duration_runs_flows_until_the_time_is_up() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let duration = Duration::from_millis(1_000);
    let mut a = args(cluster.node_urls()[0].clone(), 0, "loadtest-oauth2-until");
    a.flows = None;
    a.duration = Some(duration);
    let report = loadtest(a).await.unwrap();
    take_chart(&report);

    assert_eq!(report.flows, None);
    assert!(report.elapsed >= duration, "{:?}", report.elapsed);
    assert_eq!(
        (report.failed, report.not_run()),
        (0, 0),
        "{}",
        report.render()
    );
    assert!(report.passed > 0, "{}", report.render());
    cluster.shutdown().await;
}

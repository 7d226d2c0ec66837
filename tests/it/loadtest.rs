//! The flow load tester against the stand-in cluster directly (no proxy): flows complete, latency figures
//! cover every step, the chart is a well-formed SVG file, a duration alone bounds a run, and the summary
//! survives a chart that cannot be written.

use std::path::PathBuf;
use std::time::Duration;

use tokenroute::sim::consumer::{ParamMode, Step};
use tokenroute::sim::loadtest::{loadtest, LoadtestArgs};
use tokenroute::sim::{Cluster, Protocol};

pub fn temp_svg(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "tokenroute-{name}-{}-{nanos}.svg",
        std::process::id()
    ))
}

fn args(target: String, flows: usize, svg: PathBuf) -> LoadtestArgs {
    LoadtestArgs {
        target,
        protocol: Protocol::OAuth1,
        flows: Some(flows),
        concurrency: 4,
        params: ParamMode::Mixed,
        duration: None,
        svg,
        ca: None,
        resolve: Vec::new(),
        insecure: false,
    }
}

/// Checks that every element opened is closed in order, attributes are quoted, and every `&` starts an
/// entity: enough XML well-formedness for a generated file with no comments, CDATA or doctype.
pub fn assert_well_formed(svg: &str) {
    let mut open: Vec<String> = Vec::new();
    let mut rest = svg.trim();
    assert!(rest.starts_with("<svg"), "does not start with <svg");
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "bare & in text: {text:?}"
            );
        }
        assert!(!text.contains('>'), "stray > in text: {text:?}");
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        assert!(!tag.contains('<'), "< inside a tag: {tag:?}");
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes: {tag:?}"
        );
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                open.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("tag name");
            open.push(name.to_string());
        }
        rest = &rest[gt + 1..];
        if open.is_empty() {
            assert!(rest.trim().is_empty(), "content after the root element");
        }
    }
    assert!(open.is_empty(), "unclosed elements: {open:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_complete_and_the_chart_is_a_well_formed_svg() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let svg = temp_svg("loadtest");
    let report = loadtest(args(cluster.node_urls()[0].clone(), 12, svg.clone()))
        .await
        .unwrap();

    assert_eq!(
        (report.passed, report.failed, report.not_run()),
        (12, 0, 0),
        "{}",
        report.render()
    );
    assert!(report.failures.is_empty());
    assert!(report.flows_per_sec() > 0.0);
    assert_eq!(report.steps.len(), Step::ALL.len());
    for s in &report.steps {
        assert_eq!(s.latency.count, 12, "{:?}", s.step);
        assert!(s.latency.p50 <= s.latency.p90 && s.latency.p90 <= s.latency.p99);
        assert!(s.latency.p99 > Duration::ZERO);
    }
    assert_eq!(report.all_steps.count, 12 * Step::ALL.len());
    let in_buckets: usize = report.timeline.iter().map(|b| b.latency.count).sum();
    assert_eq!(in_buckets, report.all_steps.count);

    let text = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).unwrap();
    assert_well_formed(&text);
    for series in ["p50", "p90", "p99", "requests/s", "failures/s"] {
        assert!(text.contains(&format!("class=\"{series}\"")), "{series}");
    }
    assert!(text.contains("step latency (ms)"));
    assert!(text.contains("Step latency and throughput, 12 flows against "));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_duration_starts_no_more_flows_and_still_writes_the_chart() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let svg = temp_svg("loadtest-duration");
    let mut a = args(cluster.node_urls()[0].clone(), 1_000, svg.clone());
    a.duration = Some(Duration::ZERO);
    let report = loadtest(a).await.unwrap();

    assert_eq!(
        (report.passed, report.failed, report.not_run()),
        (0, 0, 1_000)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).unwrap();
    assert_well_formed(&text);
    assert!(text.contains("no successful step"));
    assert!(
        text.contains("Step latency and throughput, 0 flows against "),
        "the title counts flows that ran"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unwritable_chart_path_is_an_error_after_the_flows_ran() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let svg = std::env::temp_dir().join("tokenroute-no-such-dir/x/loadtest.svg");
    let err = loadtest(args(cluster.node_urls()[0].clone(), 1, svg))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("cannot write "), "{err}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_without_a_flow_count_runs_flows_until_the_time_is_up() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let svg = temp_svg("loadtest-until");
    let duration = Duration::from_millis(1_500);
    let mut a = args(cluster.node_urls()[0].clone(), 0, svg.clone());
    a.flows = None;
    a.duration = Some(duration);
    let report = loadtest(a).await.unwrap();
    std::fs::remove_file(&svg).unwrap();

    assert_eq!(report.flows, None);
    assert!(report.elapsed >= duration, "{:?}", report.elapsed);
    assert_eq!(
        (report.failed, report.not_run()),
        (0, 0),
        "{}",
        report.render()
    );
    assert!(report.passed > 0);
    // Flows started until the deadline: the last slices of the run still saw requests end.
    let late: usize = report
        .timeline
        .iter()
        .filter(|b| b.start >= duration.mul_f64(0.8) && b.end <= duration)
        .map(|b| b.requests)
        .sum();
    assert!(late > 0, "no request ended in the last fifth of the run");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_that_cannot_be_written_still_leaves_the_printed_summary() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let svg = std::env::temp_dir().join("tokenroute-no-such-dir/x/loadtest.svg");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .args(["loadtest", "--target", &cluster.node_urls()[0]])
        .args(["--flows", "3", "--concurrency", "1", "--svg"])
        .arg(&svg)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("loadtest finished within a minute")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("3 flows against ") && stdout.contains("3 passed, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("all steps"), "{stdout}");
    assert!(
        stdout.contains("chart: not written: cannot write "),
        "{stdout}"
    );
    assert!(stderr.contains("cannot write "), "{stderr}");
    cluster.shutdown().await;
}

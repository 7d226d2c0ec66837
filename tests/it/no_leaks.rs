//! Secrets stay secret: credentials that crossed the proxy never appear in its logs or its files.
//!
//! One test per binary: it installs the process-wide log subscriber (at TRACE) and captures everything.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::support::flow::ManualFlow;
use crate::support::*;
use tokenroute::sim::signature::ParamLocation;
use tokenroute::sim::Cluster;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_logs_or_snapshot_files() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("tokenroute-leaks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot = dir.join("affinity.snapshot");
    let extra = format!(
        "[affinity]\nsnapshot_path = \"{}\"\n{}",
        snapshot.display(),
        refresh_section("pin+refresh")
    );
    let proxy = spawn_proxy(&cluster_config(&cluster, &extra)).await;
    let mut seen = Vec::new();
    for (i, location) in [
        ParamLocation::Header,
        ParamLocation::Body,
        ParamLocation::Query,
    ]
    .into_iter()
    .enumerate()
    {
        let mut flow = ManualFlow::register_and_approve(&proxy.url(), &format!("canary-{i}")).await;
        flow.request_and_authorize(location).await;
        flow.access_and_read(location).await;
        seen.push(flow.seen.clone());
    }
    let logins: u64 = (0..cluster.len()).map(|i| cluster.logins(i)).sum();
    assert!(logins > 0, "the refresh fan-out logged in on the nodes");
    // The journal before shutdown compacts it into the snapshot: every learned fact is in it now.
    let journal = std::fs::read(tokenroute::affinity::journal::active_path(&snapshot)).unwrap();
    assert!(
        journal.len() > 9 * tokenroute::affinity::journal::record::PUT_LEN,
        "the journal holds the learned entries"
    );
    proxy.shutdown().await;
    cluster.shutdown().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("consumer key event"),
        "the capture works: it saw the proxy's own log lines"
    );
    // The access log (on by default) wrote a line for every request, query-carried tokens included.
    let access_lines = logs
        .lines()
        .filter(|l| l.contains("tokenroute::access"))
        .count();
    assert!(
        access_lines >= 3 * 5,
        "the access log saw every request: {access_lines} lines"
    );
    assert!(
        logs.contains("path=/cqweb/oauth/authorize") || logs.contains("path=/cqweb"),
        "the access log names paths"
    );
    let snapshot_text = std::fs::read_to_string(&snapshot).unwrap();
    assert!(
        snapshot_text.lines().count() > 9,
        "the snapshot holds the learned entries"
    );
    let mut files = vec![
        ("snapshot", snapshot_text),
        ("journal", String::from_utf8_lossy(&journal).into_owned()),
    ];
    files.push(("logs", logs));
    // The refresh exchanges' credentials (the fan-out logged in on every node with them) stay secret too.
    let refresh_password = test_env("SIM_PASSWORD").unwrap();
    for (what, text) in &files {
        assert!(
            !text.contains(&refresh_password),
            "the refresh password appeared in the {what}"
        );
    }
    for creds in &seen {
        for value in creds.all() {
            assert!(
                value.len() >= 8,
                "credential values are long enough to grep for: {value:?}"
            );
            for (what, text) in &files {
                assert!(!text.contains(value), "a credential appeared in the {what}");
            }
        }
    }
}

//! The admin listener's status page, loaded in a real headless Chromium against a running tokenroute in front
//! of the stand-in cluster: what it shows (from a DOM dump), how it is served, and a screenshot kept as a
//! test artifact (`target/test-artifacts/status-page.png`).
//!
//! Chromium is optional locally (the browser test prints why it skipped); `.ci/run` installs it and sets
//! `TOKENROUTE_REQUIRE_CHROMIUM=1`, which turns the skip into a failure.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokenroute::sim::signature::ParamLocation;
use tokenroute::sim::Cluster;

use crate::support::flow::ManualFlow;
use crate::support::*;

/// How long one Chromium run may take on a loaded machine before it is killed and the test fails.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(90);

async fn admin_call(method: &str, url: &str, token: bool) -> (u16, http::HeaderMap, String) {
    let mut request = http::Request::builder().method(method).uri(url);
    if token {
        request = request.header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    }
    let response = http1_client()
        .request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn status_json(admin: &str) -> serde_json::Value {
    let (status, _, body) = admin_call("GET", &format!("{admin}/status"), false).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A proxy in front of three stand-in nodes, after one whole friendship flow (a key learned and fanned out
/// to every node, tokens learned and routed) and with `lbcq_3` drained.
async fn busy_proxy() -> (Cluster, ProxyHandle, String, ManualFlow) {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let text = cluster_config(
        &cluster,
        &format!("interval = \"200ms\"\n{}", refresh_section("pin+refresh")),
    );
    let proxy = spawn_proxy(&text).await;
    let admin = format!(
        "http://{}",
        proxy.admin.expect("the test config has [admin]")
    );
    eventually("ready", Duration::from_secs(10), async || {
        admin_call("GET", &format!("{admin}/ready"), false).await.0 == 200
    })
    .await;
    let mut flow = ManualFlow::register_and_approve(&proxy.url(), "status-page").await;
    flow.request_and_authorize(ParamLocation::Header).await;
    flow.access_and_read(ParamLocation::Header).await;
    // The key's fan-out reaches both other nodes: every node owns it.
    eventually(
        "the key is owned by every node",
        Duration::from_secs(20),
        async || {
            let status = status_json(&admin).await;
            status["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["owned_keys"] == 1)
        },
    )
    .await;
    let (status, _, body) = admin_call("POST", &format!("{admin}/nodes/lbcq_3/drain"), true).await;
    assert_eq!(status, 200, "{body}");
    (cluster, proxy, admin, flow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_version_uptime_and_requests_per_node() {
    let (cluster, proxy, admin, flow) = busy_proxy().await;
    let status = status_json(&admin).await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["uptime_seconds"].is_u64(), "{status}");
    // Every reply the flow saw came from a node, and each node counted at least those it served.
    for node in status["nodes"].as_array().unwrap() {
        let name = node["name"].as_str().unwrap();
        let served = flow.served_by.iter().filter(|(_, n)| n == name).count() as u64;
        let requests = node["requests"]
            .as_u64()
            .expect("a request counter per node");
        assert!(
            requests >= served,
            "{name}: {requests} < {served}: {status}"
        );
    }
    assert!(!flow.served_by.is_empty());
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_locked_down_and_without_data() {
    let (cluster, proxy, admin, flow) = busy_proxy().await;
    for (path, content_type) in [
        ("/", "text/html"),
        ("/status.js", "text/javascript"),
        ("/status.css", "text/css"),
    ] {
        let (status, headers, body) = admin_call("GET", &format!("{admin}{path}"), false).await;
        assert_eq!(status, 200, "{path}");
        let header = |name: &str| headers[name].to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(content_type), "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        for secret in flow.seen.all().into_iter().chain([ADMIN_TOKEN]) {
            assert!(!body.contains(secret), "{path} carries a secret");
        }
        for node in cluster.node_names() {
            assert!(
                !body.contains(&node),
                "{path} is not a template: no data in it"
            );
        }
    }
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_nodes_table_and_counters_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (cluster, proxy, admin, flow) = busy_proxy().await;
    let page = format!("{admin}/");

    let dom = tokio::task::spawn_blocking({
        let (chromium, page) = (chromium.clone(), page.clone());
        move || run_chromium(&chromium, &["--dump-dom".to_owned(), page])
    })
    .await
    .unwrap();
    // Read after the page did: nothing changes now (no traffic, the fan-out is over).
    let status = status_json(&admin).await;

    assert!(dom.contains("Live: refreshed every 2 s."), "{dom}");
    assert_eq!(
        text_of(&dom, "id=\"version\">"),
        env!("CARGO_PKG_VERSION"),
        "{dom}"
    );
    for node in status["nodes"].as_array().unwrap() {
        let name = node["name"].as_str().unwrap();
        let row = row_of(&dom, &format!("data-node=\"{name}\""));
        assert!(row.contains(&format!(">{name}</th>")), "{row}");
        assert!(row.contains("✔ healthy"), "{name}: {row}");
        let owned = node["owned_keys"].to_string();
        assert!(
            row.contains(&format!("owned-keys\">{owned}</td>")),
            "{name}: {row}"
        );
        // Two samples were taken, so requests/s is a figure, not a dash.
        let rate = text_of(row, "rate\">");
        assert!(
            rate.parse::<f64>().is_ok(),
            "{name}: rate {rate:?} in {row}"
        );
        // Without a token every action button is disabled.
        assert_eq!(row.matches("<button").count(), 2, "{row}");
        assert_eq!(row.matches("disabled=\"\"").count(), 2, "{row}");
        if name == "lbcq_3" {
            assert!(
                row.contains("yes (drained)") && row.contains(">Enable<"),
                "{row}"
            );
        } else {
            assert!(row.contains(">no</td>") && row.contains(">Drain<"), "{row}");
        }
    }
    let table = &status["table"];
    assert_eq!(
        text_of(&dom, "id=\"table-entries\">"),
        table["entries"].to_string()
    );
    for (kind, count) in table["by_kind"].as_object().unwrap() {
        let row = row_of(&dom, &format!("data-key=\"{kind}\""));
        assert!(
            row.contains(&format!("\"num\">{count}</td>")),
            "{kind}: {row}"
        );
    }
    let refreshes = row_of(
        &dom[dom.find("id=\"refreshes-body\"").unwrap()..],
        "data-key=\"key_event\"",
    );
    let key_event_ok = status["counters"]["refreshes"]["key_event"]["ok"].to_string();
    assert_ne!(key_event_ok, "0");
    assert!(
        refreshes.contains(&format!("\"num\">{key_event_ok}</td>")),
        "{refreshes}"
    );
    let routes = row_of(
        &dom[dom.find("id=\"routes-body\"").unwrap()..],
        "data-key=\"token\"",
    );
    let token_routes = status["counters"]["routes"]["token"].to_string();
    assert!(
        routes.contains(&format!("\"num\">{token_routes}</td>")),
        "{routes}"
    );
    assert_eq!(text_of(&dom, "id=\"reload-version\">"), "1");
    assert_eq!(text_of(&dom, "id=\"reload-error\">"), "none");
    for secret in flow.seen.all().into_iter().chain([ADMIN_TOKEN]) {
        assert!(!dom.contains(secret), "a secret reached the page");
    }

    // The screenshot, for a person to judge.
    let png = artifacts_dir().join("status-page.png");
    let _ = std::fs::remove_file(&png);
    tokio::task::spawn_blocking({
        let png = png.clone();
        move || {
            run_chromium(
                &chromium,
                &[
                    format!("--screenshot={}", png.display()),
                    "--window-size=1280,900".to_owned(),
                    page,
                ],
            )
        }
    })
    .await
    .unwrap();
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000);
    eprintln!("status page screenshot: {}", png.display());

    proxy.shutdown().await;
    cluster.shutdown().await;
}

/// The text between `marker` and the next `<`.
fn text_of<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in {html}"))
        + marker.len();
    let rest = &html[start..];
    &rest[..rest.find('<').unwrap_or(rest.len())]
}

/// The table row whose opening tag holds `attribute`, up to its `</tr>`.
fn row_of<'a>(html: &'a str, attribute: &str) -> &'a str {
    let start = html
        .find(attribute)
        .unwrap_or_else(|| panic!("no row with {attribute} in {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

/// Where tests keep files for people to look at: `target/test-artifacts/`.
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Chromium binary, or `None` (with the reason printed) when it is absent and not required.
fn chromium() -> Option<String> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("TOKENROUTE_REQUIRE_CHROMIUM").is_none(),
            "TOKENROUTE_REQUIRE_CHROMIUM is set but chromium is missing: apt-get install chromium"
        );
        eprintln!(
            "SKIPPED status page browser test: chromium not found (apt-get install chromium)"
        );
    }
    found.map(str::to_owned)
}

/// Runs headless Chromium on a fresh profile with `args` after the common ones, waits at most
/// [`CHROMIUM_DEADLINE`] (then kills its process group and panics), and returns its standard output.
fn run_chromium(binary: &str, args: &[String]) -> String {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let profile = std::env::temp_dir().join(format!(
        "tokenroute-chromium-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .env("HOME", &profile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a kill at the deadline reaches the renderer and helper processes too.
        .process_group(0)
        .spawn()
        .expect("chromium starts");
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let until = Instant::now() + CHROMIUM_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > until {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let _ = std::fs::remove_dir_all(&profile);
    match status {
        Some(s) if s.success() => stdout,
        Some(s) => panic!("chromium failed ({s}):\n{stderr}"),
        None => panic!("chromium ran over {CHROMIUM_DEADLINE:?} and was killed:\n{stderr}"),
    }
}

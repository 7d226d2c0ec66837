//! The operator's view of a running `tokenroute` binary: health with its reasons in `/status`, the log and the
//! metrics; readiness; signals; the access log.

use std::time::Duration;

use crate::support::process::{spawn_binary, spawn_binary_with_env, RunningBinary};
use crate::support::*;

fn temp_config(stem: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenroute-ops-{stem}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[cfg(feature = "sim")]
/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[cfg(feature = "sim")]
async fn admin_json(running: &RunningBinary, path: &str) -> serde_json::Value {
    let (_, _, body) = get(&format!("http://{}{path}", running.admin.unwrap())).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

#[cfg(feature = "sim")]
fn node<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {status}"))
}

#[cfg(feature = "sim")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reasons_of_a_wrong_ca_and_a_closed_port_show_in_status_log_and_metrics() {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    // A node serving a certificate no configured CA signed.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let cluster = tokenroute::sim::Cluster::builder()
        .nodes(1)
        .tls(std::sync::Arc::new(tls))
        .start()
        .await
        .unwrap();
    let other_ca = TestPki::new(&[]);
    let text = config_text(
        &[
            ("wrong_ca", cluster.node_urls()[0].clone()),
            ("closed", format!("http://127.0.0.1:{}", closed_port())),
        ],
        &format!(
            "[upstream]\nca_file = \"{}\"\n[health]\npath = \"/cqweb/health\"\ninterval = \"200ms\"\nfall = 1\n",
            other_ca.dir.join("ca.pem").display()
        ),
    );
    let running = spawn_binary_with_env(&temp_config("health", &text), &[("RUST_LOG", None)]);

    let mut status = serde_json::Value::Null;
    eventually(
        "both nodes are down with a reason",
        Duration::from_secs(20),
        async || {
            status = admin_json(&running, "/status").await;
            ["wrong_ca", "closed"]
                .iter()
                .all(|n| node(&status, n)["health"]["reason"].is_string())
        },
    )
    .await;
    let wrong_ca = &node(&status, "wrong_ca")["health"];
    assert_eq!(wrong_ca["last_result"], "tls_error", "{wrong_ca}");
    assert!(
        wrong_ca["reason"]
            .as_str()
            .unwrap()
            .starts_with("TLS error: invalid peer certificate"),
        "{wrong_ca}"
    );
    let closed = &node(&status, "closed")["health"];
    assert_eq!(closed["last_result"], "connect_error", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{closed}"
    );
    for health in [wrong_ca, closed] {
        assert_eq!(health["healthy"], false, "{health}");
        assert!(health["consecutive_failures"].as_u64().unwrap() >= 1);
        assert_eq!(health["consecutive_successes"], 0);
        assert!(health["last_check"].as_u64().unwrap() >= health["since"].as_u64().unwrap());
        assert!(health["latency_ms"].is_number(), "{health}");
    }

    // The log says it once per transition, with the same reason.
    let mut downs = Vec::new();
    eventually(
        "the log names both reasons",
        Duration::from_secs(10),
        async || {
            downs = running
                .log_lines()
                .into_iter()
                .filter(|l| l.contains("node is down"))
                .collect();
            downs.len() >= 2
        },
    )
    .await;
    assert_eq!(downs.len(), 2, "one line per transition: {downs:#?}");
    assert!(downs
        .iter()
        .any(|l| l.contains("wrong_ca") && l.contains("TLS error: invalid peer certificate")));
    assert!(downs.iter().any(|l| l.contains("closed")
        && l.contains("connect error")
        && l.contains("Connection refused")));

    let (_, _, metrics) = get(&format!("http://{}/metrics", running.admin.unwrap())).await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("tokenroute_health_checks_total{node=\"wrong_ca\",result=\"tls_error\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(metrics.lines().any(|l| l
        .starts_with("tokenroute_health_checks_total{node=\"closed\",result=\"connect_error\"}")
        && !l.ends_with(" 0")));
    drop(running);
    cluster.shutdown().await;
}

/// A node that accepts connections, reads the request and never answers; counts requests it holds.
struct SilentNode {
    addr: std::net::SocketAddr,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl SilentNode {
    async fn start() -> SilentNode {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = held.clone();
        let task = tokio::spawn(async move {
            let mut streams = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                if stream.read(&mut buf).await.unwrap_or(0) > 0 {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                streams.push(stream);
            }
        });
        SilentNode {
            addr,
            held,
            _task: task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn ready(admin: std::net::SocketAddr) -> (u16, String) {
    let (status, _, body) = get(&format!("http://{admin}/ready")).await;
    (status.as_u16(), body)
}

/// A binary fronting one node that never answers, with no health checks, a long drain and a snapshot: a
/// request to it stays in flight as long as the test wants.
async fn binary_holding_a_request(stem: &str) -> (RunningBinary, SilentNode, std::path::PathBuf) {
    let node = SilentNode::start().await;
    let dir = std::env::temp_dir().join(format!("tokenroute-ops-{stem}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot = dir.join("table.snapshot");
    let text = config_text(
        &[("silent", node.url())],
        &format!(
            "[runtime]\ndrain_timeout = \"120s\"\n[limits]\nresponse_header_timeout = \"120s\"\n\
             [health]\nenabled = false\n[affinity]\nsnapshot_path = \"{}\"\n",
            snapshot.display()
        ),
    );
    let running = spawn_binary(&temp_config(stem, &text));
    let addr: std::net::SocketAddr = running.addr.parse().unwrap();
    tokio::spawn(raw_exchange(
        addr,
        b"GET /hangs HTTP/1.1\r\nHost: lbcq\r\n\r\n",
    ));
    eventually(
        "the request is in flight",
        Duration::from_secs(20),
        async || node.held() >= 1,
    )
    .await;
    (running, node, snapshot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_ready_to_503_while_draining_and_a_second_signal_exits_at_once_with_the_snapshot(
) {
    let (mut running, _node, snapshot) = binary_holding_a_request("drain").await;
    let admin = running.admin.unwrap();
    assert_eq!(ready(admin).await, (200, "ready\n".to_owned()));
    running.signal("TERM");
    let mut answer = (0, String::new());
    eventually(
        "ready turns 503 while draining",
        Duration::from_secs(20),
        async || {
            answer = ready(admin).await;
            answer.0 == 503
        },
    )
    .await;
    assert_eq!(answer.1, "not ready: draining: shutting down\n");
    assert_eq!(
        get(&format!("http://{admin}/healthz")).await.0,
        200,
        "still alive"
    );
    assert!(!snapshot.exists(), "nothing written before the drain ends");
    running.signal("INT");
    let status = tokio::task::spawn_blocking(move || {
        let status = running.wait_exit(Duration::from_secs(20));
        (status, running.log_lines())
    })
    .await
    .unwrap();
    let (status, log) = status;
    assert_eq!(
        status.expect("the second signal ends the process").code(),
        Some(1),
        "{log:#?}"
    );
    assert!(
        snapshot.exists(),
        "the snapshot was written before exiting: {log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("drained")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigquit_exits_at_once_without_draining_or_writing_the_snapshot() {
    let (mut running, _node, snapshot) = binary_holding_a_request("quit").await;
    running.signal("QUIT");
    let status = tokio::task::spawn_blocking(move || running.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(status.expect("SIGQUIT ends the process").code(), Some(131));
    assert!(!snapshot.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_logs_each_node_s_health_sigusr2_is_ignored_and_neither_stops_the_proxy() {
    let origin = Origin::start("n1").await;
    let mut running = spawn_binary(&temp_config(
        "usr",
        &config_text(&[("n1", origin.url())], ""),
    ));
    running.signal("USR1");
    running.signal("USR2");
    eventually(
        "SIGUSR1 wrote the status",
        Duration::from_secs(20),
        async || {
            let log = running.log_lines();
            log.iter()
                .any(|l| l.contains("status on SIGUSR1") && l.contains("node=n1"))
                && log.iter().any(|l| l.contains("SIGUSR2"))
        },
    )
    .await;
    let (status, served_by, _) = get(&format!("http://{}/x", running.addr)).await;
    assert_eq!((status.as_u16(), served_by.as_str()), (200, "n1"));
    running.signal("TERM");
    let status = tokio::task::spawn_blocking(move || running.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(status.expect("SIGTERM drains and exits").code(), Some(0));
}

#[tokio::test]
async fn ready_is_503_with_no_healthy_node_and_200_again_when_one_is_back() {
    let origin = Origin::start("n1").await;
    let extra = "[health]\npath = \"/health\"\ninterval = \"50ms\"\nrise = 1\nfall = 1\n";
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], extra)).await;
    let admin = proxy.admin.unwrap();
    eventually(
        "ready after the first check",
        Duration::from_secs(10),
        async || ready(admin).await.0 == 200,
    )
    .await;
    origin.set_healthy(false);
    let mut answer = (0, String::new());
    eventually(
        "503 with the node down",
        Duration::from_secs(10),
        async || {
            answer = ready(admin).await;
            answer.0 == 503
        },
    )
    .await;
    assert_eq!(answer.1, "not ready: no healthy node\n");
    assert_eq!(
        get(&format!("http://{admin}/healthz")).await.0,
        200,
        "liveness is not readiness"
    );
    origin.set_healthy(true);
    eventually("ready again", Duration::from_secs(10), async || {
        ready(admin).await.0 == 200
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn ready_is_503_until_every_node_had_its_first_check() {
    let node = SilentNode::start().await;
    let extra = "[health]\ninterval = \"50ms\"\ntimeout = \"60s\"\n";
    let proxy = spawn_proxy(&config_text(&[("silent", node.url())], extra)).await;
    let admin = proxy.admin.unwrap();
    eventually(
        "the first check is under way",
        Duration::from_secs(10),
        async || node.held() >= 1,
    )
    .await;
    assert_eq!(
        ready(admin).await,
        (
            503,
            "not ready: waiting for the first health checks\n".to_owned()
        )
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_are_json_with_every_field_and_no_query() {
    let origin = Origin::start("n1").await;
    let canary = "QueryCanary5f1e2d3c4b";
    let text = config_text(&[("n1", origin.url())], "[log]\nformat = \"json\"\n");
    let running = spawn_binary_with_env(&temp_config("access", &text), &[("RUST_LOG", None)]);
    let client = http1_client();
    let request = http::Request::post(format!(
        "http://{}/cqweb/oauth/authorize?oauth_token={canary}&x=1",
        running.addr
    ))
    .header("host", "lbcq")
    .header("x-request-id", "req-42.a")
    .header("content-type", "text/plain")
    .body(http_body_util::Full::new(bytes::Bytes::from_static(
        b"twelve bytes",
    )))
    .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    let mut access = serde_json::Value::Null;
    eventually(
        "the access line is written",
        Duration::from_secs(20),
        async || {
            let found = running.log_lines().into_iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(&l).ok()?;
                (v["target"] == "tokenroute::access" && v["request_id"] == "req-42.a").then_some(v)
            });
            found.map(|v| access = v).is_some()
        },
    )
    .await;
    for (field, want) in [
        ("method", "POST"),
        ("path", "/cqweb/oauth/authorize"),
        ("node", "n1"),
        ("route", "policy"),
        ("refresh", "-"),
        ("level", "INFO"),
    ] {
        assert_eq!(access[field], want, "{field} in {access}");
    }
    assert_eq!(access["status"], 200, "{access}");
    assert_eq!(access["replayed"], false);
    assert_eq!(access["complete"], true);
    assert_eq!(access["bytes_in"], 12, "{access}");
    assert_eq!(
        access["bytes_out"], 12,
        "the origin echoes the body: {access}"
    );
    assert!(access["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(access["time"].as_str().unwrap().ends_with('Z'));
    let (upstream, total) = (
        access["upstream_ms"].as_f64().unwrap(),
        access["total_ms"].as_f64().unwrap(),
    );
    assert!(0.0 <= upstream && upstream <= total, "{access}");
    let log = running.log_lines();
    for line in &log {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "every line is JSON: {line}"
        );
        assert!(
            !line.contains(canary),
            "the query never reaches the log: {line}"
        );
    }
}

#[tokio::test]
async fn metrics_count_connections_and_tls_failures_per_listener_request_durations_and_the_process()
{
    let origin = Origin::start("n1").await;
    let pki = TestPki::new(&[("lbcq", &["lbcq", "127.0.0.1"])]);
    let text = format!(
        "[[listener]]\nname = \"plain\"\naddress = \"127.0.0.1:0\"\n\
         [[listener]]\nname = \"secure\"\naddress = \"127.0.0.1:0\"\n\
         [[listener.tls.certificate]]\ncert = \"lbcq.pem\"\nkey = \"lbcq.key\"\nserver_names = [\"lbcq\"]\n\
         [admin]\naddress = \"127.0.0.1:0\"\n[[upstream.node]]\nname = \"n1\"\nurl = \"{}\"\n",
        origin.url()
    );
    let config = tokenroute::config::parse_with_env(
        &text,
        std::path::Path::new("t.toml"),
        &pki.dir,
        &test_env,
    )
    .unwrap();
    let app = tokenroute::app::App::bind(config, None).await.unwrap();
    let [plain, secure] = app.listener_addrs()[..] else {
        panic!("two listeners")
    };
    let admin = app.admin_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    assert_eq!(get(&format!("http://{plain}/x")).await.0, 200);
    // Not TLS at all: the secure listener's handshake fails.
    let answer = raw_exchange(secure, b"GET / HTTP/1.1\r\nHost: lbcq\r\n\r\n").await;
    assert!(!answer.contains("200"), "{answer}");

    let mut metrics = String::new();
    let sample = |metrics: &str, prefix: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    eventually(
        "the failed handshake is counted",
        Duration::from_secs(10),
        async || {
            metrics = get(&format!("http://{admin}/metrics")).await.2;
            sample(
                &metrics,
                "tokenroute_tls_handshake_failures_total{listener=\"secure\"}",
            ) == Some(1.0)
        },
    )
    .await;
    assert_eq!(
        sample(
            &metrics,
            "tokenroute_connections_accepted_total{listener=\"plain\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "tokenroute_tls_handshake_failures_total{listener=\"plain\"}"
        ),
        Some(0.0)
    );
    assert!(sample(&metrics, "tokenroute_connections_open{listener=\"plain\"}").is_some());
    assert_eq!(
        sample(&metrics, "tokenroute_request_duration_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!(
                "tokenroute_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    if std::path::Path::new("/proc/self/stat").exists() {
        assert!(sample(&metrics, "process_resident_memory_bytes").unwrap() > 0.0);
        assert!(sample(&metrics, "process_open_fds").unwrap() >= 3.0);
        assert!(sample(&metrics, "process_start_time_seconds").unwrap() > 1.6e9);
        assert!(sample(&metrics, "process_cpu_seconds_total").is_some());
    }
    if let Some(checked) = promtool_check(&metrics) {
        checked.unwrap();
    }
    let _ = stop.send(());
    running.await.unwrap();
}

//! The admin API against a fake backend on 127.0.0.1:0: each endpoint's happy path, the bearer token on every
//! write endpoint, 404/405/413, and that neither answers nor logs ever carry the token or a looked-up
//! credential.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use tokenroute::admin::{
    check_settings, serve, AdminBackend, AdminError, AdminSettings, BoxFuture,
};
use tokenroute::secret::Secret;

const TOKEN: &str = "admin-token-7f3a9c";
const KNOWN_CREDENTIAL: &str = "tok-known-credential-0042";
const NODES: [&str; 2] = ["lbcq_1", "lbcq_2"];

/// A backend that records each call and knows two nodes and one credential.
#[derive(Debug, Default)]
struct FakeBackend {
    calls: Mutex<Vec<String>>,
    not_ready: AtomicBool,
    failing_reload: AtomicBool,
    /// Makes `lookup` (wrongly) put the credential in its answer.
    echoing_lookup: AtomicBool,
}

impl FakeBackend {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn known(name: &str) -> Result<(), AdminError> {
        if NODES.contains(&name) {
            Ok(())
        } else {
            Err(AdminError::UnknownNode(name.to_owned()))
        }
    }
}

impl AdminBackend for FakeBackend {
    fn ready(&self) -> Result<(), String> {
        if self.not_ready.load(Ordering::Relaxed) {
            Err("the fake says so".to_owned())
        } else {
            Ok(())
        }
    }

    fn status(&self) -> Value {
        json!({ "nodes": [{ "name": "lbcq_1", "healthy": true }], "config_version": 3 })
    }

    fn metrics(&self) -> String {
        "# HELP tokenroute_x_total X.\n# TYPE tokenroute_x_total counter\ntokenroute_x_total 1\n"
            .into()
    }

    fn reload(&self) -> BoxFuture<Result<Value, AdminError>> {
        self.record("reload".into());
        let fail = self.failing_reload.load(Ordering::Relaxed);
        Box::pin(async move {
            if fail {
                Err(AdminError::InvalidConfig(
                    "upstream.node[0].url = \"htp://x\": unsupported scheme".into(),
                ))
            } else {
                Ok(json!({ "config_version": 4 }))
            }
        })
    }

    fn refresh_node(&self, name: &str) -> BoxFuture<Result<Value, AdminError>> {
        self.record(format!("refresh {name}"));
        let answer = Self::known(name).map(|()| json!({ "node": name, "refreshed": true }));
        Box::pin(async move { answer })
    }

    fn set_draining(&self, name: &str, draining: bool) -> Result<(), AdminError> {
        self.record(format!("draining {name} {draining}"));
        Self::known(name)
    }

    fn lookup(&self, credential: &str) -> Option<Value> {
        self.record("lookup".into());
        if credential != KNOWN_CREDENTIAL {
            return None;
        }
        let mut answer = json!({
            "fingerprint": "9c1e0b7d2a4f6e8c9c1e0b7d2a4f6e8c",
            "kind": "access_token",
            "owners": ["lbcq_1"],
            "expires_at": 1_900_000_000u64,
        });
        if self.echoing_lookup.load(Ordering::Relaxed) {
            answer["note"] = json!(format!("looked up {credential}"));
        }
        Some(answer)
    }

    fn forget_node(&self, name: &str) -> Result<usize, AdminError> {
        self.record(format!("forget {name}"));
        Self::known(name).map(|()| 5)
    }
}

/// A running admin server.
struct Admin {
    addr: SocketAddr,
    backend: Arc<FakeBackend>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Admin {
    async fn start(token: Option<&str>) -> Admin {
        Admin::start_on("127.0.0.1:0", token).await
    }

    async fn start_on(bind: &str, token: Option<&str>) -> Admin {
        let listener = TcpListener::bind(bind).await.unwrap();
        let bound = listener.local_addr().unwrap();
        let settings = AdminSettings {
            address: bound,
            token: token.map(Secret::new),
        };
        let backend = Arc::new(FakeBackend::default());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, settings, backend.clone(), async {
            let _ = stopped.await;
        }));
        Admin {
            addr: SocketAddr::from(([127, 0, 0, 1], bound.port())),
            backend,
            stop: Some(stop),
            task,
        }
    }

    async fn request(&self, method: &str, target: &str) -> Reply {
        self.send(method, target, &[], b"").await
    }

    async fn authed(&self, method: &str, target: &str, body: &[u8]) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        self.send(method, target, &[("Authorization", &auth)], body)
            .await
    }

    /// One HTTP/1.1 request on a fresh connection, read to its end.
    async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body);
        exchange(self.addr, &wire).await
    }
}

/// Writes `wire` and reads the whole answer (the server closes after a `Connection: close` request).
async fn exchange(addr: SocketAddr, wire: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(wire).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the admin server answers within 10 s")
        .unwrap();
    Reply::parse(&raw)
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Reply {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// The write endpoints, each with a request that would succeed with the token.
const WRITES: [(&str, &str, &str); 7] = [
    ("POST", "/reload", ""),
    ("POST", "/nodes/lbcq_1/refresh", ""),
    ("POST", "/nodes/lbcq_1/drain", ""),
    ("POST", "/nodes/lbcq_1/enable", ""),
    ("POST", "/affinity/lookup", KNOWN_CREDENTIAL),
    ("DELETE", "/affinity?node=lbcq_1", ""),
    ("DELETE", "/affinity?node=lbcq_2", ""),
];

#[tokio::test]
async fn healthz_answers_ok() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin.request("GET", "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn ready_follows_the_backend() {
    let admin = Admin::start(None).await;
    assert_eq!(admin.request("GET", "/ready").await.status, 200);
    admin.backend.not_ready.store(true, Ordering::Relaxed);
    let r = admin.request("GET", "/ready").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "not ready: the fake says so\n")
    );
}

#[tokio::test]
async fn status_is_the_backends_json() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin.request("GET", "/status").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["config_version"], 3);
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin.request("GET", "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(r.body.contains("tokenroute_x_total 1"));
}

#[tokio::test]
async fn reload_answers_the_backends_result() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin.authed("POST", "/reload", b"").await;
    assert_eq!(
        (r.status, r.json()["config_version"].clone()),
        (200, json!(4))
    );

    admin.backend.failing_reload.store(true, Ordering::Relaxed);
    let r = admin.authed("POST", "/reload", b"").await;
    assert_eq!(r.status, 422, "an invalid config is the caller's to fix");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("upstream.node[0].url"),
        "the operator sees which key was refused: {}",
        r.body
    );
    assert_eq!(admin.backend.calls(), ["reload", "reload"]);
}

#[tokio::test]
async fn refresh_runs_on_the_named_node() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin.authed("POST", "/nodes/lbcq_2/refresh", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["node"], "lbcq_2");
    assert_eq!(admin.backend.calls(), ["refresh lbcq_2"]);
}

#[tokio::test]
async fn drain_and_enable_set_the_draining_flag() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin.authed("POST", "/nodes/lbcq_1/drain", b"").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"node": "lbcq_1", "draining": true}))
    );
    let r = admin.authed("POST", "/nodes/lbcq_1/enable", b"").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"node": "lbcq_1", "draining": false}))
    );
    assert_eq!(
        admin.backend.calls(),
        ["draining lbcq_1 true", "draining lbcq_1 false"]
    );
}

#[tokio::test]
async fn unknown_nodes_are_not_found() {
    let admin = Admin::start(Some(TOKEN)).await;
    for (method, target) in [
        ("POST", "/nodes/nope/refresh"),
        ("POST", "/nodes/nope/drain"),
        ("POST", "/nodes/nope/enable"),
        ("DELETE", "/affinity?node=nope"),
    ] {
        let r = admin.authed(method, target, b"").await;
        assert_eq!(r.status, 404, "{method} {target}");
        assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    }
}

#[tokio::test]
async fn lookup_answers_by_fingerprint_as_raw_text_or_json() {
    let admin = Admin::start(Some(TOKEN)).await;
    let json_body = json!({ "credential": KNOWN_CREDENTIAL }).to_string();
    for body in [KNOWN_CREDENTIAL.to_owned(), json_body] {
        let r = admin
            .authed("POST", "/affinity/lookup", body.as_bytes())
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["kind"], "access_token");
        assert_eq!(r.json()["owners"], json!(["lbcq_1"]));
        assert!(!r.body.contains(KNOWN_CREDENTIAL), "echoed: {}", r.body);
    }
}

#[tokio::test]
async fn lookup_of_an_unknown_credential_is_not_found_and_not_echoed() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin
        .authed("POST", "/affinity/lookup", b"tok-unknown-credential-77")
        .await;
    assert_eq!(r.status, 404);
    assert!(!r.body.contains("tok-unknown-credential-77"), "{}", r.body);
}

#[tokio::test]
async fn lookup_answer_that_would_echo_the_credential_is_withheld() {
    let admin = Admin::start(Some(TOKEN)).await;
    admin.backend.echoing_lookup.store(true, Ordering::Relaxed);
    let r = admin
        .authed("POST", "/affinity/lookup", KNOWN_CREDENTIAL.as_bytes())
        .await;
    assert_eq!(r.status, 500);
    assert!(!r.body.contains(KNOWN_CREDENTIAL), "{}", r.body);
}

#[tokio::test]
async fn lookup_without_a_credential_is_a_bad_request() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin.authed("POST", "/affinity/lookup", b"  ").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn forget_removes_the_node_from_owner_sets() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin.authed("DELETE", "/affinity?node=lbcq_2", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "node": "lbcq_2", "entries_changed": 5 }));
    assert_eq!(admin.backend.calls(), ["forget lbcq_2"]);
    let r = admin.authed("DELETE", "/affinity", b"").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn every_write_endpoint_answers_401_without_the_token_or_with_a_wrong_one() {
    let admin = Admin::start(Some(TOKEN)).await;
    let wrong = [
        None,
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", TOKEN.to_uppercase())),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
    ];
    for (method, target, body) in WRITES {
        for auth in &wrong {
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let r = admin.send(method, target, &headers, body.as_bytes()).await;
            assert_eq!(r.status, 401, "{method} {target} with {auth:?}");
            assert!(
                r.header("www-authenticate").unwrap().starts_with("Bearer"),
                "{method} {target}"
            );
            assert!(!r.body.contains(TOKEN));
        }
    }
    assert!(
        admin.backend.calls().is_empty(),
        "no refused request reached the backend: {:?}",
        admin.backend.calls()
    );
    // And the right token opens every one of them.
    for (method, target, body) in WRITES {
        let r = admin.authed(method, target, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{method} {target}: {}", r.body);
    }
}

#[tokio::test]
async fn read_endpoints_need_no_token_on_loopback() {
    let admin = Admin::start(Some(TOKEN)).await;
    for target in ["/healthz", "/ready", "/status", "/metrics"] {
        assert_eq!(admin.request("GET", target).await.status, 200, "{target}");
    }
}

#[tokio::test]
async fn off_loopback_every_endpoint_needs_the_token() {
    let admin = Admin::start_on("0.0.0.0:0", Some(TOKEN)).await;
    for target in ["/healthz", "/ready", "/status", "/metrics"] {
        let r = admin.request("GET", target).await;
        assert_eq!(r.status, 401, "{target}");
        assert_eq!(
            admin.authed("GET", target, b"").await.status,
            200,
            "{target}"
        );
    }
}

#[tokio::test]
async fn off_loopback_without_a_token_everything_is_refused() {
    // `check_settings` stops this at startup; if it is skipped, the server still fails closed.
    let admin = Admin::start_on("0.0.0.0:0", None).await;
    assert_eq!(admin.request("GET", "/status").await.status, 401);
    assert_eq!(admin.request("POST", "/reload").await.status, 401);
    assert!(admin.backend.calls().is_empty());
}

#[test]
fn check_settings_refuses_a_public_address_without_a_token() {
    let public = AdminSettings {
        address: "0.0.0.0:9901".parse().unwrap(),
        token: None,
    };
    assert!(check_settings(&public).is_err());
    let with_token = AdminSettings {
        token: Some(Secret::new(TOKEN)),
        ..public
    };
    assert!(check_settings(&with_token).is_ok());
    let loopback = AdminSettings {
        address: "127.0.0.1:9901".parse().unwrap(),
        token: None,
    };
    assert!(check_settings(&loopback).is_ok());
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let admin = Admin::start(Some(TOKEN)).await;
    let r = admin.authed("GET", "/reload", b"").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = admin.request("POST", "/status").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = admin.authed("GET", "/affinity?node=lbcq_1", b"").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("DELETE")));
    assert!(admin.backend.calls().is_empty());
}

#[tokio::test]
async fn unknown_path_is_404() {
    let admin = Admin::start(Some(TOKEN)).await;
    for target in [
        "/index.html",
        "/nodes",
        "/nodes/lbcq_1",
        "/status/x",
        "/affinity/lookup/x",
    ] {
        assert_eq!(
            admin.authed("GET", target, b"").await.status,
            404,
            "{target}"
        );
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let admin = Admin::start(Some(TOKEN)).await;
    // Declared too large: refused before a byte of it is read.
    let wire = format!(
        "POST /affinity/lookup HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        64 * 1024 + 1
    );
    assert_eq!(exchange(admin.addr, wire.as_bytes()).await.status, 413);
    // Exactly at the cap: read, then answered on its merits.
    let at_cap = vec![b'x'; 64 * 1024];
    assert_eq!(
        admin
            .authed("POST", "/affinity/lookup", &at_cap)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn serve_returns_after_shutdown() {
    let mut admin = Admin::start(None).await;
    let _ = admin.stop.take().unwrap().send(());
    tokio::time::timeout(Duration::from_secs(10), &mut admin.task)
        .await
        .expect("serve returns once shutdown completes")
        .unwrap();
    assert!(
        TcpStream::connect(admin.addr).await.is_err(),
        "listener closed"
    );
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Current-thread runtime: the server's tasks run on this thread, so the thread-local subscriber sees them.
#[tokio::test(flavor = "current_thread")]
async fn logs_never_carry_the_token_or_a_looked_up_credential() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let admin = Admin::start(Some(TOKEN)).await;
    let wrong = format!("Bearer {TOKEN}-but-wrong");
    for (method, target, body) in WRITES {
        admin
            .send(
                method,
                target,
                &[("Authorization", &wrong)],
                body.as_bytes(),
            )
            .await;
        admin.authed(method, target, body.as_bytes()).await;
    }
    admin.backend.echoing_lookup.store(true, Ordering::Relaxed);
    admin
        .authed("POST", "/affinity/lookup", KNOWN_CREDENTIAL.as_bytes())
        .await;
    admin.backend.failing_reload.store(true, Ordering::Relaxed);
    admin.authed("POST", "/reload", b"").await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("admin request"),
        "the test saw the logs: {logs}"
    );
    assert!(!logs.contains(TOKEN), "token in logs: {logs}");
    assert!(
        !logs.contains(KNOWN_CREDENTIAL),
        "credential in logs: {logs}"
    );
}

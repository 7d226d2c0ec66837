//! Test builders: origin servers, a proxy on 127.0.0.1:0, raw and hyper clients, throwaway certificates.

#[cfg(feature = "sim")]
pub mod alternate;
#[cfg(feature = "sim")]
pub mod flow;
pub mod process;
#[cfg(feature = "sim")]
pub mod redis;

pub use process::spawn_binary;
pub mod recording;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use tokenroute::app::App;
use tokenroute::{config, proxy::Proxy};

/// What an origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A small origin: answers every request with 200, `X-Served-By: <name>` and the request body echoed.
/// `/health` (and any health probe) answers 200 or 503 depending on `set_healthy`, without counting as a hit;
/// `/slow` waits 3 s before answering.
#[derive(Clone)]
pub struct Origin {
    pub name: String,
    pub addr: SocketAddr,
    pub healthy: Arc<AtomicBool>,
    pub hits: Arc<AtomicUsize>,
    pub seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    /// TCP connections accepted.
    pub connections: Arc<AtomicUsize>,
    _stop: Arc<oneshot::Sender<()>>,
}

impl Origin {
    pub async fn start(name: &str) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let origin = Origin {
            name: name.to_owned(),
            addr,
            healthy: healthy.clone(),
            hits: hits.clone(),
            seen: seen.clone(),
            connections: connections.clone(),
            _stop: Arc::new(stop_tx),
        };
        let state = origin.clone_state();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
                    _ = &mut stop_rx => return,
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.answer(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        origin
    }

    fn clone_state(&self) -> OriginState {
        OriginState {
            name: self.name.clone(),
            healthy: self.healthy.clone(),
            hits: self.hits.clone(),
            seen: self.seen.clone(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_healthy(&self, ok: bool) {
        self.healthy.store(ok, Ordering::SeqCst);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn last_seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("origin saw a request")
    }
}

#[derive(Clone)]
struct OriginState {
    name: String,
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl OriginState {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let probe = req
            .headers()
            .get("user-agent")
            .is_some_and(|ua| ua == "tokenroute-health");
        if path == "/health" || probe {
            let status = if self.healthy.load(Ordering::SeqCst) {
                200
            } else {
                503
            };
            return Response::builder()
                .status(status)
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        self.hits.fetch_add(1, Ordering::SeqCst);
        let method = req.method().to_string();
        let target = req.uri().to_string();
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        self.seen.lock().unwrap().push(Seen {
            method,
            target,
            headers,
            body: body.clone(),
        });
        if path == "/slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Response::builder()
            .status(StatusCode::OK)
            .header("x-served-by", &self.name)
            .header("connection", "keep-alive, x-origin-hop")
            .header("x-origin-hop", "must not reach the client")
            .header("keep-alive", "timeout=5")
            .body(Full::new(body))
            .unwrap()
    }
}

/// A running proxy on 127.0.0.1:0.
pub struct ProxyHandle {
    pub addr: SocketAddr,
    /// The admin API, when the config enables it.
    pub admin: Option<SocketAddr>,
    pub proxy: Proxy,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Triggers graceful shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Config text with one listener on port 0 and the given nodes; `extra` is appended (other sections).
pub fn config_text(nodes: &[(&str, String)], extra: &str) -> String {
    let mut text = String::from(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n",
    );
    for (name, url) in nodes {
        text.push_str(&format!(
            "[[upstream.node]]\nname = \"{name}\"\nurl = \"{url}\"\n\n"
        ));
    }
    text.push_str(extra);
    text
}

#[cfg(feature = "sim")]
/// Config text fronting every node of a stand-in cluster, health-checked on its own endpoint, plus `extra`.
pub fn cluster_config(cluster: &tokenroute::sim::Cluster, extra: &str) -> String {
    let nodes: Vec<(String, String)> = cluster
        .node_names()
        .into_iter()
        .zip(cluster.node_urls())
        .collect();
    let refs: Vec<(&str, String)> = nodes.iter().map(|(n, u)| (n.as_str(), u.clone())).collect();
    config_text(
        &refs,
        &format!("[health]\npath = \"/cqweb/health\"\n{extra}"),
    )
}

/// Starts a proxy from config text (relative paths resolve against `base_dir`, default the temp dir).
pub async fn spawn_proxy(text: &str) -> ProxyHandle {
    spawn_proxy_in(text, &std::env::temp_dir()).await
}

pub async fn spawn_proxy_in(text: &str, base_dir: &std::path::Path) -> ProxyHandle {
    spawn_app(text, base_dir, None).await
}

/// Starts a proxy from config text that reloads from `path` (on `POST /reload`, SIGHUP or a change of the
/// file), exactly as `tokenroute run --config path` does.
pub async fn spawn_proxy_reloading_from(text: &str, path: &std::path::Path) -> ProxyHandle {
    spawn_app(text, &std::env::temp_dir(), Some(path.to_owned())).await
}

async fn spawn_app(text: &str, base_dir: &std::path::Path, path: Option<PathBuf>) -> ProxyHandle {
    let config =
        config::parse_with_env(text, std::path::Path::new("test.toml"), base_dir, &test_env)
            .unwrap_or_else(|e| panic!("{e}"));
    let app = App::bind(config, path).await.unwrap();
    let addr = app.listener_addrs()[0];
    let admin = app.admin_addr();
    let proxy = app.proxy().clone();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async {
        let _ = stop_rx.await;
    }));
    ProxyHandle {
        addr,
        admin,
        proxy,
        stop: Some(stop_tx),
        task,
    }
}

/// The admin API's bearer token in every proxy the tests start.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";

/// The environment tests configure proxies with: the stand-in's demo user for refresh exchanges, and the
/// admin token.
pub fn test_env(name: &str) -> Option<String> {
    match name {
        "TOKENROUTE_ADMIN_TOKEN" => Some(ADMIN_TOKEN.to_owned()),
        #[cfg(feature = "sim")]
        "SIM_USER" => Some(tokenroute::sim::repository::USER.to_owned()),
        #[cfg(feature = "sim")]
        "SIM_PASSWORD" => Some(tokenroute::sim::repository::USER_PASSWORD.to_owned()),
        _ => None,
    }
}

#[cfg(feature = "sim")]
/// A `[refresh]` section logging in on the stand-in (`POST /cqweb/login`) with `strategy`.
pub fn refresh_section(strategy: &str) -> String {
    format!(
        "[refresh]\nstrategy = \"{strategy}\"\nbackoff = \"100ms\"\n[[refresh.exchange]]\npath = \"/cqweb/login\"\nheaders = {{ \"content-type\" = \"application/x-www-form-urlencoded\" }}\nbody = \"username=${{SIM_USER}}&password=${{SIM_PASSWORD}}\"\n"
    )
}

/// Sends raw bytes and reads the whole response until the server closes or `Connection: close` applies.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP/1.1 client (no pooling surprises: one connection per request is fine for tests).
pub fn http1_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a GET and returns status, `x-served-by` and body.
pub async fn get(url: &str) -> (StatusCode, String, String) {
    let response = http1_client().get(url.parse().unwrap()).await.unwrap();
    let status = response.status();
    let served_by = response
        .headers()
        .get("x-served-by")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        served_by,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Polls `condition` until it holds or `deadline` passes; panics with `what` on timeout.
pub async fn eventually(what: &str, deadline: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if condition().await {
            return;
        }
        if tokio::time::Instant::now() > until {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A leaf certificate to make: file stem, SAN names, and `notAfter` (year, month, day) when not rcgen's.
pub type Leaf<'a> = (&'a str, &'a [&'a str], Option<(i32, u8, u8)>);

/// A throwaway CA and leaf certificates for `names`, written as PEM files in a fresh temp directory.
pub struct TestPki {
    pub dir: PathBuf,
    pub ca_pem: String,
}

impl TestPki {
    /// Creates a CA and one leaf per entry of `leaves` (file stem, SAN names).
    pub fn new(leaves: &[(&str, &[&str])]) -> TestPki {
        let leaves: Vec<_> = leaves
            .iter()
            .map(|&(stem, names)| (stem, names, None))
            .collect();
        TestPki::expiring(&leaves)
    }

    /// [`TestPki::new`] with each leaf's `notAfter` date (year, month, day; midnight UTC) when given.
    pub fn expiring(leaves: &[Leaf<'_>]) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tokenroute-pki-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tokenroute test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let ca_pem = ca.pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        for (stem, names, not_after) in leaves {
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                    .unwrap();
            if let Some((year, month, day)) = *not_after {
                params.not_after = rcgen::date_time_ymd(year, month, day);
            }
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
        }
        TestPki { dir, ca_pem }
    }

    /// A rustls client config trusting this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// Runs `promtool check metrics` on `exposition`. `None` when promtool is missing and not required
/// (`TOKENROUTE_REQUIRE_PROMTOOL` unset); panics when it is required but missing.
pub fn promtool_check(exposition: &str) -> Option<Result<(), String>> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let available = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            std::env::var_os("TOKENROUTE_REQUIRE_PROMTOOL").is_none(),
            "TOKENROUTE_REQUIRE_PROMTOOL is set but promtool is missing: install the `prometheus` package"
        );
        eprintln!("SKIPPED promtool check: promtool not found (apt-get install prometheus)");
        return None;
    }
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
    Some(if output.status.success() && report.trim().is_empty() {
        Ok(())
    } else {
        Err(report)
    })
}

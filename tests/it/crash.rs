//! `kill -9` of the real `tokenroute` binary in the middle of OAuth flows: with the journal, every credential
//! whose response reached the client still routes to the node that issued it after the restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use rand::{Rng, SeedableRng};

use crate::support::flow::{browser, client, DB};
use crate::support::*;
use tokenroute::secret::Secret;
use tokenroute::sim::consumer::{Failure, Served};
use tokenroute::sim::repository::{ADMIN_PASSWORD, ADMIN_USER, USER, USER_PASSWORD};
use tokenroute::sim::signature::{ClientCredentials, ParamLocation};
use tokenroute::sim::Cluster;

const KILLS: usize = 20;
const FLOWS_IN_PARALLEL: usize = 4;
const CALLBACK: &str = "http://127.0.0.1:9/callback";
/// How long one step may keep failing because the proxy is down before the test gives up on it.
const OUTAGE_LIMIT: Duration = Duration::from_secs(15);

/// The proxy as a child process, killed with SIGKILL on drop.
struct ProxyProcess {
    child: Child,
    addr: String,
}

impl ProxyProcess {
    /// Starts `tokenroute --config path` and waits for the address it logs.
    fn start(config: &std::path::Path) -> ProxyProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenroute"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening") && line.contains("listener=") {
                    if let Some(rest) = line.split(" addr=").nth(1) {
                        let _ = tx.send(rest.chars().take_while(|c| !c.is_whitespace()).collect());
                    }
                }
                // Read to the end so the child never blocks on a full pipe.
            }
        });
        let addr: String = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the proxy logs its address");
        ProxyProcess { child, addr }
    }

    /// `kill -9`, and wait until the process is gone.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the flows saw: every step that reached the client, and every one that did not route as it must.
#[derive(Default)]
struct Ledger {
    /// Steps whose response reached the client.
    steps: AtomicUsize,
    /// Steps that used a credential issued before the latest restart they crossed.
    across_restarts: AtomicUsize,
    /// Steps that failed with an answer, or were served by a node other than the credential's issuer.
    violations: Mutex<Vec<String>>,
    /// The proxy's restart count, so a flow knows whether a restart came between two of its steps.
    generation: AtomicU64,
    stop: AtomicBool,
}

impl Ledger {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }
}

/// How a step ended.
enum Outcome<T> {
    /// Answered; the value and the node that served it.
    Served(T, String),
    /// The proxy was killed under the request; the client never saw an answer.
    Lost,
    /// An answer that is not the expected one (recorded as a violation).
    Failed,
}

/// Runs `send` until it gets an answer, retrying while the proxy is down (the transport fails), at most
/// `OUTAGE_LIMIT`. With `retry` false a lost request is reported as such: repeating it is not safe.
async fn step<T>(
    ledger: &Ledger,
    name: &str,
    retry: bool,
    mut send: impl AsyncFnMut() -> Result<Served<T>, Failure>,
) -> Outcome<T> {
    let until = Instant::now() + OUTAGE_LIMIT;
    loop {
        match send().await {
            Ok(served) => {
                ledger.steps.fetch_add(1, Ordering::Relaxed);
                return Outcome::Served(served.value, served.served_by.unwrap_or_default());
            }
            Err(f) if f.status.is_none() => {
                if !retry {
                    return Outcome::Lost;
                }
                if Instant::now() > until {
                    ledger.violation(format!(
                        "{name}: proxy unreachable for {OUTAGE_LIMIT:?}: {}",
                        f.detail
                    ));
                    return Outcome::Failed;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(f) => {
                ledger.violation(format!("{name}: {}", f.reason()));
                return Outcome::Failed;
            }
        }
    }
}

/// One friendship flow. Every step after registration carries a credential the registering node issued
/// (no refresh is configured, so that node stays the key's only owner): it must be served there.
async fn one_flow(ledger: &Ledger, base: &str, id: usize) {
    let location = [
        ParamLocation::Header,
        ParamLocation::Body,
        ParamLocation::Query,
    ][id % 3];
    let Outcome::Served(discovery, _) = step(ledger, "discovery", true, async || {
        client().discover(base, DB).await
    })
    .await
    else {
        return;
    };
    let secret = Secret::new(format!("secret-crash-{id}"));
    let name = format!("crash-{id}");
    let Outcome::Served(key, issuer) = step(ledger, "register", true, async || {
        client()
            .register_consumer(&discovery.oauth_request_consumer_key_url, &name, &secret)
            .await
    })
    .await
    else {
        return;
    };
    let issued_in = ledger.generation.load(Ordering::SeqCst);
    let check = |what: &str, served_by: &str, sent_in: u64| {
        if served_by != issuer {
            ledger.violation(format!(
                "{what} of a credential issued by {issuer} served by {served_by}"
            ));
        } else if sent_in > issued_in {
            ledger.across_restarts.fetch_add(1, Ordering::Relaxed);
        }
    };

    let mut approver = browser();
    let sent_in = ledger.generation.load(Ordering::SeqCst);
    match step(ledger, "approve", false, async || {
        approver
            .approve_with_credentials(
                &discovery.oauth_approval_module_url,
                &key,
                ADMIN_USER,
                &Secret::new(ADMIN_PASSWORD),
            )
            .await
    })
    .await
    {
        Outcome::Served((), by) => check("approve", &by, sent_in),
        Outcome::Lost | Outcome::Failed => return,
    }

    let creds = ClientCredentials::consumer(key.clone(), secret.clone());
    let sent_in = ledger.generation.load(Ordering::SeqCst);
    let Outcome::Served(pair, by) = step(ledger, "request token", true, async || {
        client()
            .request_token(
                &discovery.oauth_request_token_url,
                &creds,
                CALLBACK,
                location,
            )
            .await
    })
    .await
    else {
        return;
    };
    check("request token", &by, sent_in);

    let mut user = browser();
    let sent_in = ledger.generation.load(Ordering::SeqCst);
    let Outcome::Served(redirect, by) = step(ledger, "authorize", false, async || {
        user.authorize(
            &discovery.oauth_user_authorization_url,
            &pair.token,
            USER,
            &Secret::new(USER_PASSWORD),
        )
        .await
    })
    .await
    else {
        return;
    };
    check("authorize", &by, sent_in);
    let query = redirect.split_once('?').map_or("", |(_, q)| q);
    let Some(verifier) = tokenroute::oauth::percent::parse_form(query.as_bytes())
        .unwrap_or_default()
        .into_iter()
        .find(|(n, _)| n == "oauth_verifier")
        .map(|(_, v)| v)
    else {
        ledger.violation("authorize: no verifier in the redirect".into());
        return;
    };

    let with_request_token = creds.with_token(pair.token.clone(), pair.secret.clone());
    let sent_in = ledger.generation.load(Ordering::SeqCst);
    let Outcome::Served(access, by) = step(ledger, "access token", false, async || {
        client()
            .access_token(
                &discovery.oauth_access_token_url,
                &with_request_token,
                &verifier,
                location,
            )
            .await
    })
    .await
    else {
        return;
    };
    check("access token", &by, sent_in);

    let with_access_token = creds.with_token(access.token.clone(), access.secret.clone());
    let url = format!("{}1", discovery.resource_url);
    for _ in 0..3 {
        let sent_in = ledger.generation.load(Ordering::SeqCst);
        let Outcome::Served(_, by) = step(ledger, "read", true, async || {
            client()
                .read_resource(&url, &with_access_token, location)
                .await
        })
        .await
        else {
            return;
        };
        check("read", &by, sent_in);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_credential_a_client_saw_routes_to_its_issuer_after_twenty_kill_9s() {
    let started = Instant::now();
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let dir = std::env::temp_dir().join(format!(
        "tokenroute-crash-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot = dir.join("affinity.snapshot");
    let nodes: Vec<(String, String)> = cluster
        .node_names()
        .into_iter()
        .zip(cluster.node_urls())
        .collect();
    let nodes: Vec<(&str, String)> = nodes.iter().map(|(n, u)| (n.as_str(), u.clone())).collect();
    // Snapshots every 200 ms, so that kills also land in the middle of journal compactions. No repair: a
    // request routed to the wrong node must show up as a failure, not be quietly replayed on the right one.
    let extra = format!(
        "[affinity]\nsnapshot_path = \"{}\"\nsnapshot_interval = \"200ms\"\njournal_fsync = \"never\"\n\n[repair]\nenabled = false\n",
        snapshot.display()
    );
    let config = dir.join("config.toml");
    std::fs::write(&config, config_text(&nodes, &extra)).unwrap();
    let proxy = tokio::task::spawn_blocking({
        let config = config.clone();
        move || ProxyProcess::start(&config)
    })
    .await
    .unwrap();
    // Every restart binds the same address: the consumer's URLs and signatures name it.
    let addr = proxy.addr.clone();
    std::fs::write(
        &config,
        config_text(&nodes, &extra)
            .replace("127.0.0.1:0\"\n\n[admin]", &format!("{addr}\"\n\n[admin]")),
    )
    .unwrap();
    let base = format!("http://{addr}");

    let ledger = Ledger::default();
    // The flows run in this task beside the killer (`join!`, not `spawn`: their steps borrow the ledger).
    let worker = async |first: usize| {
        let mut n = first;
        while !ledger.stop.load(Ordering::SeqCst) {
            one_flow(&ledger, &base, n).await;
            n += FLOWS_IN_PARALLEL;
        }
    };
    let killer = async {
        let mut proxy = proxy;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for kill in 0..KILLS {
            let target = ledger.steps.load(Ordering::SeqCst) + rng.gen_range(3..25);
            eventually(
                &format!("{target} steps before kill {kill}"),
                Duration::from_secs(20),
                async || ledger.steps.load(Ordering::SeqCst) >= target,
            )
            .await;
            let config = config.clone();
            proxy = tokio::task::spawn_blocking(move || {
                proxy.kill9();
                ProxyProcess::start(&config)
            })
            .await
            .unwrap();
            assert_eq!(proxy.addr, addr, "restarted on the same address");
            ledger.generation.fetch_add(1, Ordering::SeqCst);
        }
        // A last stretch after the 20th restart, so that its flows continue too.
        let target = ledger.steps.load(Ordering::SeqCst) + 20;
        eventually(
            "steps after the last restart",
            Duration::from_secs(20),
            async || ledger.steps.load(Ordering::SeqCst) >= target,
        )
        .await;
        ledger.stop.store(true, Ordering::SeqCst);
        proxy
    };
    let all = async { tokio::join!(worker(0), worker(1), worker(2), worker(3), killer) };
    let (.., proxy) = tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("flows and kills finish");
    drop(proxy);
    cluster.shutdown().await;

    let violations = ledger.violations.lock().unwrap().clone();
    let (steps, across) = (
        ledger.steps.load(Ordering::SeqCst),
        ledger.across_restarts.load(Ordering::SeqCst),
    );
    eprintln!("crash test: {KILLS} kills, {steps} steps answered, {across} used a credential from before a restart, {:?}", started.elapsed());
    assert!(
        violations.is_empty(),
        "{} of {steps} steps misrouted or failed: {violations:#?}",
        violations.len()
    );
    assert!(
        across >= KILLS,
        "only {across} steps crossed a restart: the test did not exercise recovery"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

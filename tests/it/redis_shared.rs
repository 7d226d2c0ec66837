//! Several tokenroute instances sharing one learned table through a real `redis-server` (issue 11): flows whose
//! consecutive requests meet different instances, an outage of Redis, and instances that must refuse to share.

use std::time::Duration;

use crate::support::alternate::Alternating;
use crate::support::redis::RedisServer;
use crate::support::*;
use tokenroute::app::App;
use tokenroute::sim::oauth2;
use tokenroute::sim::{run_flows, Cluster, FlowOptions, ParamMode};

/// A key file path no other test uses (created by the first instance that reads it).
fn key_file(label: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "tokenroute-redis-key-{label}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

fn shared_config(
    cluster: &Cluster,
    redis: &RedisServer,
    key: &std::path::Path,
    strategy: &str,
) -> String {
    cluster_config(
        cluster,
        &format!(
            "interval = \"100ms\"\nrise = 1\nfall = 1\n{}\n[affinity]\nstore = \"redis\"\nfingerprint_key_file = \"{}\"\n[affinity.redis]\nurl = \"{}\"\ncommand_timeout = \"2s\"\n",
            refresh_section(strategy),
            key.display(),
            redis.url()
        ),
    )
}

fn logins(cluster: &Cluster) -> u64 {
    (0..cluster.len()).map(|i| cluster.logins(i)).sum()
}

/// Waits until every instance sees every node healthy and the start-up refreshes (node up) are done, so that
/// the logins counted afterwards are the key events' only.
async fn settled(cluster: &Cluster, instances: &[&ProxyHandle]) -> u64 {
    for instance in instances {
        let proxy = instance.proxy.clone();
        eventually("every node healthy", Duration::from_secs(10), async || {
            proxy.current().pool.healthy().len() == 3
        })
        .await;
        let redis = instance.proxy.redis().unwrap().clone();
        eventually("Redis in use", Duration::from_secs(10), async || {
            redis.is_up()
        })
        .await;
    }
    let mut last = logins(cluster);
    eventually(
        "start-up refreshes done",
        Duration::from_secs(10),
        async || {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = logins(cluster);
            std::mem::replace(&mut last, now) == now
        },
    )
    .await;
    last
}

/// How the front in front of the instances spreads requests.
#[derive(Clone, Copy)]
enum Front {
    /// Each request to the next instance in turn.
    Alternate,
    /// Each request to an instance drawn at random from this seed.
    Random(u64),
}

impl Front {
    async fn start(self, proxies: &[ProxyHandle]) -> Alternating {
        let targets = proxies.iter().map(|p| p.addr).collect();
        match self {
            Front::Alternate => Alternating::start(targets).await,
            Front::Random(seed) => Alternating::random(targets, seed).await,
        }
    }
}

async fn alternated_flows(
    instances: usize,
    flows: usize,
    concurrency: usize,
    strategy: &str,
    mode: Front,
) {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let key = key_file("alt");
    let text = shared_config(&cluster, &redis, &key, strategy);
    let mut proxies = Vec::new();
    for _ in 0..instances {
        proxies.push(spawn_proxy(&text).await);
    }
    let before = settled(&cluster, &proxies.iter().collect::<Vec<_>>()).await;
    let front = mode.start(&proxies).await;
    let report = run_flows(
        FlowOptions::new(front.url())
            .flows(flows)
            .concurrency(concurrency)
            .params(ParamMode::Mixed),
    )
    .await
    .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());
    // Each flow registers a key and approves it: two key events, each refreshing the two other nodes at most
    // once cluster-wide (fan-outs that meet at one node share its login: single flight). Without the leases,
    // the instances that did not see an event refresh the missing owners too.
    let mut last = logins(&cluster);
    eventually("fan-outs done", Duration::from_secs(20), async || {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = logins(&cluster);
        std::mem::replace(&mut last, now) == now
    })
    .await;
    let done = last - before;
    assert!(
        done > 0 && done <= 4 * flows as u64,
        "{done} logins for {flows} flows: more than one per other node per key event"
    );
    for proxy in proxies {
        proxy.shutdown().await;
    }
    cluster.shutdown().await;
    let _ = std::fs::remove_file(&key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_alternated_per_request_fail_no_flow_and_log_in_at_most_once_per_node_per_key_event(
) {
    alternated_flows(2, 200, 1, "pin+refresh", Front::Alternate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_picked_at_random_per_request_fail_no_flow() {
    alternated_flows(2, 200, 2, "pin+refresh", Front::Random(0x5eed_0011)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_alternated_per_request_fail_no_flow_with_the_pin_strategy() {
    alternated_flows(3, 200, 4, "pin", Front::Alternate).await;
}

/// Config for the OAuth 2 stand-in's nodes behind one instance: `presets = ["oauth2"]`, and `store` with its
/// settings (`[affinity]` onwards).
fn oauth2_config(cluster: &oauth2::Cluster, affinity: &str) -> String {
    let nodes: Vec<(String, String)> = cluster
        .node_names()
        .into_iter()
        .zip(cluster.node_urls())
        .collect();
    let refs: Vec<(&str, String)> = nodes.iter().map(|(n, u)| (n.as_str(), u.clone())).collect();
    config_text(
        &refs,
        &format!("[health]\npath = \"/health\"\ninterval = \"100ms\"\nrise = 1\nfall = 1\n\n[routing]\npresets = [\"oauth2\"]\n\n{affinity}"),
    )
}

/// 200 OAuth 2 flows (every grant, both client authentication methods, PAR, introspection, revocation,
/// end-session) through two instances alternated per request, sharing the table through `affinity`.
async fn oauth2_alternated(
    redis: &RedisServer,
    affinity: impl Fn(&RedisServer) -> String,
) -> oauth2::FlowReport {
    let cluster = oauth2::Cluster::builder().nodes(3).start().await.unwrap();
    let text = oauth2_config(&cluster, &affinity(redis));
    let proxies = vec![spawn_proxy(&text).await, spawn_proxy(&text).await];
    for instance in &proxies {
        let proxy = instance.proxy.clone();
        eventually("every node healthy", Duration::from_secs(10), async || {
            proxy.current().pool.healthy().len() == 3
        })
        .await;
        if let Some(redis) = instance.proxy.redis().cloned() {
            eventually("Redis in use", Duration::from_secs(10), async || {
                redis.is_up()
            })
            .await;
        }
    }
    let front = Front::Alternate.start(&proxies).await;
    let report = oauth2::run_flows(
        oauth2::FlowOptions::new(front.url())
            .grants(&[
                oauth2::Grant::Code,
                oauth2::Grant::ClientCredentials,
                oauth2::Grant::Device,
            ])
            .auth(&[oauth2::AuthMethod::Basic, oauth2::AuthMethod::Post])
            .par(true)
            .flows(200)
            .concurrency(4),
    )
    .await
    .unwrap();
    for proxy in proxies {
        proxy.shutdown().await;
    }
    cluster.shutdown().await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_flows_of_every_grant_and_client_auth_through_two_alternated_instances_fail_none() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let key = key_file("oauth2");
    let report = oauth2_alternated(&redis, |redis| {
        format!(
            "[affinity]\nstore = \"redis\"\nfingerprint_key_file = \"{}\"\n[affinity.redis]\nurl = \"{}\"\ncommand_timeout = \"2s\"\n",
            key.display(),
            redis.url()
        )
    })
    .await;
    let _ = std::fs::remove_file(&key);
    assert_eq!(report.flows.len(), 200);
    assert_eq!(report.failed(), 0, "{}", report.render_table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_flows_through_two_alternated_instances_fail_with_the_memory_store() {
    // The control for the test above: without a shared table the instances learn disjoint halves.
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let report = oauth2_alternated(&redis, |_| "[affinity]\nstore = \"memory\"\n".to_owned()).await;
    // Measured: 41 of 200 failed (a flow fails when one of its steps meets the instance that did not learn).
    assert!(report.failed() > 0, "{}", report.render_table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_no_flow_and_what_was_learned_meanwhile_reaches_the_other_instance() {
    let Some(mut redis) = RedisServer::start_or_skip() else {
        return;
    };
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let key = key_file("outage");
    let text = shared_config(&cluster, &redis, &key, "pin+refresh");
    let a = spawn_proxy(&text).await;
    let b = spawn_proxy(&text).await;
    settled(&cluster, &[&a, &b]).await;

    // Clients that stay on instance A, while Redis dies mid-run and comes back.
    let url = a.url();
    let flows = tokio::spawn(async move {
        run_flows(FlowOptions::new(url).flows(60).concurrency(3))
            .await
            .unwrap()
    });
    let store_a = a.proxy.redis().unwrap().clone();
    eventually("some flows ran", Duration::from_secs(20), async || {
        store_a.stats().applied + a.proxy.table().stats().inserts > 20
    })
    .await;
    redis.kill();
    eventually(
        "A notices the outage",
        Duration::from_secs(10),
        async || !store_a.is_up(),
    )
    .await;
    // Learned by A while Redis is down.
    let registered = crate::support::flow::client()
        .register_consumer(
            &crate::support::flow::client()
                .discover(&a.url(), crate::support::flow::DB)
                .await
                .unwrap()
                .value
                .oauth_request_consumer_key_url,
            "during-outage",
            &tokenroute::secret::Secret::new("s3cret"),
        )
        .await
        .unwrap();
    let fp = a.proxy.fingerprint(&registered.value);
    assert!(b
        .proxy
        .table()
        .lookup(fp, tokenroute::affinity::unix_now())
        .is_none());
    // The outage is shown, and the instance stays ready.
    let admin = format!("http://{}", a.admin.unwrap());
    let (status, _, body) = get(&format!("{admin}/ready")).await;
    assert_eq!(status, 200, "{body}");
    let (_, _, status_body) = get(&format!("{admin}/status")).await;
    assert!(status_body.contains("\"degraded\""), "{status_body}");
    let (_, _, metrics) = get(&format!("{admin}/metrics")).await;
    assert!(metrics.contains("tokenroute_store_up 0"), "{metrics}");
    redis.restart();
    let report = flows.await.unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());
    assert!(store_a.stats().outages >= 1);
    assert!(store_a.stats().degraded_ops > 0);

    // Back: A writes back what it learned, B reconnects and finds it.
    let store_b = b.proxy.redis().unwrap().clone();
    eventually(
        "both instances use Redis again",
        Duration::from_secs(15),
        async || store_a.is_up() && store_b.is_up(),
    )
    .await;
    let table_b = b.proxy.table().clone();
    eventually(
        "B knows the key learned during the outage",
        Duration::from_secs(10),
        async || {
            let now = tokenroute::affinity::unix_now();
            table_b.lookup(fp, now).is_some() || store_b.read_through(&[fp], now).await > 0
        },
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
    cluster.shutdown().await;
    let _ = std::fs::remove_file(&key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_another_fingerprint_key_refuses_to_start_and_says_why() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let (key_a, key_b) = (key_file("a"), key_file("b"));
    let a = spawn_proxy(&shared_config(&cluster, &redis, &key_a, "pin")).await;
    let text = shared_config(&cluster, &redis, &key_b, "pin");
    let config = tokenroute::config::parse_with_env(
        &text,
        std::path::Path::new("test.toml"),
        &std::env::temp_dir(),
        &test_env,
    )
    .unwrap();
    let err = App::bind(config, None).await.unwrap_err();
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(chain.contains("fingerprint key differs"), "{chain}");
    assert!(chain.contains("fingerprint_key_file"), "{chain}");
    // The same key is accepted.
    let b = spawn_proxy(&shared_config(&cluster, &redis, &key_a, "pin")).await;
    a.shutdown().await;
    b.shutdown().await;
    cluster.shutdown().await;
    let _ = std::fs::remove_file(&key_a);
    let _ = std::fs::remove_file(&key_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_is_in_redis_with_its_kinds_ttl_before_its_response_is_relayed() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let key = key_file("ttl");
    let a = spawn_proxy(&shared_config(&cluster, &redis, &key, "pin")).await;
    let discovery = crate::support::flow::client()
        .discover(&a.url(), crate::support::flow::DB)
        .await
        .unwrap()
        .value;
    let registered = crate::support::flow::client()
        .register_consumer(
            &discovery.oauth_request_consumer_key_url,
            "ttl",
            &tokenroute::secret::Secret::new("s3cret"),
        )
        .await
        .unwrap();
    // Read as soon as the response is in hand: no waiting.
    let fp = a.proxy.fingerprint(&registered.value);
    let ttl = redis.command(&format!("PTTL tokenroute:e:{fp}"));
    let millis: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
    let thirty_days = 30 * 24 * 3600 * 1000;
    assert!(
        millis > thirty_days - 60_000 && millis <= thirty_days,
        "{ttl}"
    );
    a.shutdown().await;
    cluster.shutdown().await;
    let _ = std::fs::remove_file(&key);
}

/// Runs `tokenroute table <action> --config <config>` with `input` on standard input; returns its output.
fn table_command(action: &str, config: &std::path::Path, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .args(["table", action, "--config"])
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_exported_from_a_snapshot_and_imported_into_redis_routes_to_the_issuer() {
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let dir = key_file("table-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot = dir.join("table.jsonl");
    let memory_text = cluster_config(
        &cluster,
        &format!("[affinity]\nsnapshot_path = \"{}\"\n", snapshot.display()),
    );
    // Learned by an instance on the memory store: a consumer key, journalled (no snapshot taken yet).
    let a = spawn_proxy(&memory_text).await;
    let discovery = crate::support::flow::client()
        .discover(&a.url(), crate::support::flow::DB)
        .await
        .unwrap()
        .value;
    let registered = crate::support::flow::client()
        .register_consumer(
            &discovery.oauth_request_consumer_key_url,
            "moved",
            &tokenroute::secret::Secret::new("s3cret"),
        )
        .await
        .unwrap();
    let issuer = registered.served_by.clone().unwrap();
    let fp = a.proxy.fingerprint(&registered.value);
    a.shutdown().await;

    let memory_config = dir.join("memory.toml");
    std::fs::write(&memory_config, &memory_text).unwrap();
    let export = table_command("export", &memory_config, b"");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let lines = String::from_utf8(export.stdout).unwrap();
    assert!(lines.contains(&format!("\"fp\":\"{fp}\"")), "{lines}");
    assert!(
        !lines.contains(&registered.value),
        "a credential in the export"
    );

    // The Redis deployment fingerprints with the memory store's key.
    let redis_text = cluster_config(
        &cluster,
        &format!(
            "[affinity]\nstore = \"redis\"\nfingerprint_key_file = \"{}\"\n[affinity.redis]\nurl = \"{}\"\n",
            tokenroute::affinity::snapshot::key_path(&snapshot).display(),
            redis.url()
        ),
    );
    let redis_config = dir.join("redis.toml");
    std::fs::write(&redis_config, &redis_text).unwrap();
    let import = table_command("import", &redis_config, lines.as_bytes());
    let report = String::from_utf8_lossy(&import.stderr).into_owned();
    assert!(import.status.success(), "{report}");
    assert!(report.contains("imported 1 entries"), "{report}");

    // An instance on that Redis knows the key's issuer without having seen it.
    let b = spawn_proxy(&redis_text).await;
    let store = b.proxy.redis().unwrap().clone();
    eventually("Redis in use", Duration::from_secs(10), async || {
        store.is_up()
    })
    .await;
    assert_eq!(b.proxy.fingerprint(&registered.value), fp);
    let now = tokenroute::affinity::unix_now();
    assert_eq!(store.read_through(&[fp], now).await, 1);
    let owners = b.proxy.table().lookup(fp, now).unwrap().owners();
    let names: Vec<String> = b
        .proxy
        .current()
        .pool
        .nodes()
        .iter()
        .filter(|n| owners.contains(n.id))
        .map(|n| n.spec.name.clone())
        .collect();
    assert_eq!(names, vec![issuer]);
    b.shutdown().await;
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The read-through's negative cache (issue 11's CPU target): an absence Redis reported is trusted for a moment,
/// so a credential no instance learned costs no round trip per request; it ends at once when another instance
/// publishes a change of that credential, and on its own after its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absence_read_through_is_cached_until_its_ttl_or_a_published_change() {
    use tokenroute::affinity::{unix_now, NodeId};
    use tokenroute::oauth::CredentialKind;
    let Some(redis) = RedisServer::start_or_skip() else {
        return;
    };
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let key = key_file("absent");
    let config = shared_config(&cluster, &redis, &key, "pin");
    let a = spawn_proxy(&config).await;
    let b = spawn_proxy(&config).await;
    let (store_a, store_b) = (a.proxy.redis().unwrap(), b.proxy.redis().unwrap());
    for store in [store_a, store_b] {
        let store = store.clone();
        eventually("Redis in use", Duration::from_secs(10), async || {
            store.is_up()
        })
        .await;
    }
    let now = unix_now();
    let hour = Duration::from_secs(3600);
    let node = NodeId::new(1).unwrap();
    let (issued, unseen, published) = (
        a.proxy.fingerprint("issued"),
        a.proxy.fingerprint("unseen"),
        a.proxy.fingerprint("published"),
    );
    store_a
        .learn(issued, CredentialKind::AccessToken, node, hour, now)
        .await;

    // B asks for `unseen`: Redis has nothing. Then the entry appears in Redis without a published change
    // (copied by hand): B still trusts the absence, without a round trip, until the TTL has passed.
    assert_eq!(store_b.read_through(&[unseen], now).await, 0);
    let copied = redis.command(&format!("COPY tokenroute:e:{issued} tokenroute:e:{unseen}"));
    assert!(copied.starts_with(":1"), "{copied}");
    assert_eq!(
        store_b.read_through(&[unseen], now).await,
        0,
        "cached absence"
    );
    assert_eq!(
        store_b.read_through(&[unseen], now + 2).await,
        1,
        "an absence is trusted for 2 s at most"
    );

    // An absence ends as soon as another instance publishes a change of the credential.
    assert_eq!(store_b.read_through(&[published], now).await, 0);
    store_a
        .learn(published, CredentialKind::AccessToken, node, hour, now)
        .await;
    let b_store = store_b.clone();
    eventually(
        "the published change ends the absence",
        Duration::from_secs(5),
        async || b_store.read_through(&[published], now).await == 1,
    )
    .await;

    a.shutdown().await;
    b.shutdown().await;
    cluster.shutdown().await;
    let _ = std::fs::remove_file(&key);
}

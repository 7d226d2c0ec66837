//! Several tokenroute instances sharing one learned table through a real `redis-server` (issue 11): flows whose
//! consecutive requests meet different instances, an outage of Redis, and instances that must refuse to share.

use std::time::Duration;

use crate::support::alternate::Alternating;
use crate::support::redis::RedisServer;
use crate::support::*;
use tokenroute::app::App;
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

async fn alternated_flows(instances: usize, flows: usize, concurrency: usize, strategy: &str) {
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
    let front = Alternating::start(proxies.iter().map(|p| p.addr).collect()).await;
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
    alternated_flows(2, 200, 1, "pin+refresh").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_alternated_per_request_fail_no_flow_with_the_pin_strategy() {
    alternated_flows(3, 200, 4, "pin").await;
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

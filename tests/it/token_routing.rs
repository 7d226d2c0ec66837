//! Token-aware routing end to end: the stand-in cluster, the signing consumer, and tokenroute between them.

use std::time::Duration;

use crate::support::flow::ManualFlow;
use crate::support::*;
use tokenroute::oauth::CredentialKind;
use tokenroute::sim::consumer::Step;
use tokenroute::sim::signature::ParamLocation;
use tokenroute::sim::{run_flows, Cluster, FlowOptions, FlowReport, ParamMode};

fn front_config(cluster: &Cluster, extra: &str) -> String {
    cluster_config(cluster, extra)
}

async fn flows(url: &str, n: usize, params: ParamMode) -> FlowReport {
    run_flows(
        FlowOptions::new(url.to_owned())
            .flows(n)
            .concurrency(8)
            .params(params),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_flows_pass_with_parameters_in_every_location() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front_config(&cluster, "")).await;
    let mut registered_on = std::collections::BTreeSet::new();
    for params in [
        ParamMode::Header,
        ParamMode::Body,
        ParamMode::Query,
        ParamMode::Mixed,
    ] {
        let report = flows(&proxy.url(), 50, params).await;
        assert_eq!(report.failed(), 0, "{params:?}:\n{}", report.render_table());
        registered_on.extend(report.step(Step::Register).nodes.into_keys());
        // Every step of a flow that carries a token lands on the node that issued it.
        for step in [
            Step::AuthorizeForm,
            Step::Authorize,
            Step::AccessToken,
            Step::Read1,
            Step::Read3,
        ] {
            assert_eq!(report.step(step).ok, 50, "{step:?}");
        }
    }
    // New keys land on every node: routing stays balanced instead of pinning the pool to one node.
    assert_eq!(registered_on.len(), 3, "{registered_on:?}");
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_flows_fail_behind_a_plain_balancer() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front_config(&cluster, "[routing]\ntoken_aware = false\n")).await;
    let report = flows(&proxy.url(), 30, ParamMode::Mixed).await;
    assert!(report.failed() > 0, "{}", report.render_table());
    let stale: usize = report
        .flows
        .iter()
        .filter_map(|f| f.failure())
        .filter(|(_, f)| f.status == Some(401) && f.invalid_expired_token)
        .count();
    assert!(
        stale > 0,
        "no 401 invalid_expired_token:\n{}",
        report.render_table()
    );
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_approval_passes_because_approval_is_routed_by_key() {
    let cluster = Cluster::builder()
        .nodes(3)
        .strict_approval(true)
        .start()
        .await
        .unwrap();
    let proxy = spawn_proxy(&front_config(&cluster, "")).await;
    let report = flows(&proxy.url(), 30, ParamMode::Mixed).await;
    assert_eq!(report.failed(), 0, "{}", report.render_table());
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_flow_reaches_the_node_that_issued_its_credentials() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front_config(&cluster, "")).await;
    for i in 0..6 {
        let mut flow = ManualFlow::register_and_approve(&proxy.url(), &format!("rtc-{i}")).await;
        flow.request_and_authorize(ParamLocation::Header).await;
        flow.access_and_read(ParamLocation::Query).await;
        assert!(flow.single_node().is_some(), "{:?}", flow.served_by);
    }
    let by_kind = proxy.proxy.table().len_by_kind();
    let count = |kind| by_kind.iter().find(|(k, _)| *k == kind).unwrap().1;
    assert_eq!(count(CredentialKind::ConsumerKey), 6);
    assert_eq!(count(CredentialKind::RequestToken), 6);
    assert_eq!(count(CredentialKind::AccessToken), 6);
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_proxy_with_its_snapshot_completes_flows_in_progress() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("tokenroute-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot = dir.join("affinity.snapshot");
    let extra = format!("[affinity]\nsnapshot_path = \"{}\"\n", snapshot.display());
    let first = spawn_proxy(&front_config(&cluster, &extra)).await;
    let addr = first.addr;
    let mut in_progress = Vec::new();
    for i in 0..6 {
        let mut flow = ManualFlow::register_and_approve(&first.url(), &format!("rtc-{i}")).await;
        flow.request_and_authorize(ParamLocation::Body).await;
        in_progress.push(flow);
    }
    first.shutdown().await;
    let mode = std::fs::metadata(&snapshot).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o077,
        0
    );

    // Same address (the consumer's URLs and signatures name it), fresh process state.
    let text = front_config(&cluster, &extra).replacen("127.0.0.1:0", &addr.to_string(), 1);
    let second = spawn_proxy(&text).await;
    assert!(
        second.proxy.table().len() >= 18,
        "snapshot restored {} entries",
        second.proxy.table().len()
    );
    for flow in &mut in_progress {
        flow.access_and_read(ParamLocation::Header).await;
        assert!(flow.single_node().is_some(), "{:?}", flow.served_by);
    }
    second.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_unknown_credentials_never_grow_the_table() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    // The proxy runs as a process of its own, so its memory is measured alone.
    let dir = std::env::temp_dir().join(format!("tokenroute-growth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, front_config(&cluster, "")).unwrap();
    let proxy = spawn_binary(&path);
    let admin = format!("http://{}", proxy.admin.expect("the admin API is on"));
    let table = async || -> (u64, u64) {
        let (_, _, body) = get(&format!("{admin}/status")).await;
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        let t = &status["table"];
        (
            t["entries"].as_u64().unwrap(),
            t["inserts"].as_u64().unwrap(),
        )
    };
    let before = table().await;
    let url = format!("http://{}", proxy.addr);
    let client = http1_client();
    let send = move |n: usize| {
        let request =
            http::Request::post(format!("{url}/cqweb/oauth-access-token?oauth_token=q{n}"))
                .header(
                    "authorization",
                    format!(
                "OAuth oauth_consumer_key=\"k{n}\", oauth_token=\"t{n}\", oauth_verifier=\"v{n}\""
            ),
                )
                .header("cookie", format!("JSESSIONID=s{n}:clone"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                    "oauth_token=b{n}&code=c{n}"
                ))))
                .unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            // The node refuses them (its own 4xx comes back), and nothing is learned from a refusal.
            assert!(response.status().is_client_error(), "{}", response.status());
            http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap();
        }
    };
    // Warm up allocator pools and connections before the memory baseline.
    for n in 0..2_000 {
        send(n).await;
    }
    let rss_before = proxy.resident_bytes();
    const TOTAL: usize = 100_000;
    const TASKS: usize = 16;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let send = send.clone();
        tasks.spawn(async move {
            for i in 0..TOTAL / TASKS {
                send(2_000 + t * (TOTAL / TASKS) + i).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(table().await, before);
    let growth = proxy.resident_bytes().saturating_sub(rss_before);
    assert!(growth < 32 << 20, "resident memory grew by {growth} bytes");
    drop(proxy);
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_oversized_oauth_request_body_gets_413_and_other_large_forms_stream_through() {
    let origin = Origin::start("n1").await;
    let proxy = spawn_proxy(&config_text(
        &[("n1", origin.url())],
        "[routing]\nmax_body = \"1KiB\"\n",
    ))
    .await;
    let big = format!("oauth_token=t&pad={}", "x".repeat(4096));
    for (path, want) in [("/cqweb/oauth-access-token", 413), ("/cqweb/upload", 200)] {
        let request = http::Request::post(format!("{}{path}", proxy.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(big.clone())))
            .unwrap();
        let response = http1_client().request(request).await.unwrap();
        assert_eq!(response.status(), want, "{path}");
    }
    assert_eq!(origin.last_seen().body, big.as_bytes());
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_issuer_is_down_goes_to_a_healthy_node() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let fast_health = "interval = \"50ms\"\nrise = 1\nfall = 1\n";
    let proxy = spawn_proxy(&cluster_config(&cluster, fast_health)).await;
    let mut flow = ManualFlow::register_and_approve(&proxy.url(), "rtc").await;
    flow.request_and_authorize(ParamLocation::Header).await;
    let issuer = flow.single_node().unwrap().to_owned();
    let index = cluster
        .node_names()
        .iter()
        .position(|n| *n == issuer)
        .unwrap();
    cluster.stop_node(index).await.unwrap();
    let healthy = proxy.proxy.current().pool.clone();
    eventually("issuer marked down", Duration::from_secs(5), async || {
        healthy.healthy().len() == 2
    })
    .await;
    // The token died with its node: the client gets a real backend answer (401), not a proxy error.
    let failure = crate::support::flow::client()
        .access_token(
            &flow.discovery.oauth_access_token_url,
            &flow.creds,
            &flow.seen.verifier,
            ParamLocation::Header,
        )
        .await
        .unwrap_err();
    assert_eq!(failure.status, Some(401));
    assert_ne!(failure.served_by.as_deref(), Some(issuer.as_str()));
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_websphere_session_cookie_routes_to_the_node_declaring_its_clone_id() {
    let a = Origin::start("a").await;
    let b = Origin::start("b").await;
    let text = config_text(&[("a", a.url()), ("b", b.url())], "")
        .replace("name = \"a\"\n", "name = \"a\"\nclone_id = \"15d8ke2pl\"\n")
        .replace("name = \"b\"\n", "name = \"b\"\nclone_id = \"15d8ke3sn\"\n");
    let proxy = spawn_proxy(&text).await;
    let client = http1_client();
    for _ in 0..6 {
        // Never learned (no Set-Cookie went through this proxy): the clone id alone decides.
        let request = http::Request::get(format!("{}/cqweb/main", proxy.url()))
            .header("cookie", "JSESSIONID=0000Xy3kQ-8a:15d8ke3sn")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.headers()["x-served-by"], "b");
    }
    // An unknown clone id is balanced as usual.
    let mut served = std::collections::HashSet::new();
    for _ in 0..4 {
        let request = http::Request::get(format!("{}/cqweb/main", proxy.url()))
            .header("cookie", "JSESSIONID=0000Xy3kQ-8a:someoneelse")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        served.insert(
            response.headers()["x-served-by"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(served.len(), 2, "{served:?}");
    proxy.shutdown().await;
}

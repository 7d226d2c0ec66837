//! The admin API in front of a real proxy: status, readiness, metrics under real traffic, drain, lookup,
//! reload and refresh.

use std::time::Duration;

use crate::support::flow::ManualFlow;
use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokenroute::sim::signature::ParamLocation;
use tokenroute::sim::Cluster;

async fn call(method: &str, url: &str, body: &str) -> (u16, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = http1_client().request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_reports_and_controls_a_running_proxy() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("tokenroute-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = cluster_config(
        &cluster,
        &format!("interval = \"100ms\"\n{}", refresh_section("pin+refresh")),
    );
    let path = dir.join("config.toml");
    // The file the reload reads: the same pool, without the refresh section (its credentials come from the
    // test's environment, not the process's). The listener stays on port 0: the one bound is kept.
    std::fs::write(&path, cluster_config(&cluster, "interval = \"100ms\"\n")).unwrap();
    let proxy = spawn_proxy_reloading_from(&text, &path).await;
    let admin = format!(
        "http://{}",
        proxy.admin.expect("the test config enables the admin API")
    );

    eventually(
        "ready after the first health round",
        Duration::from_secs(5),
        async || call("GET", &format!("{admin}/ready"), "").await.0 == 200,
    )
    .await;
    let mut flow = ManualFlow::register_and_approve(&proxy.url(), "admin-test").await;
    flow.request_and_authorize(ParamLocation::Header).await;
    flow.access_and_read(ParamLocation::Header).await;

    let (status, body) = call("GET", &format!("{admin}/status"), "").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 3);
    assert!(json["table"]["by_kind"]["access_token"].as_u64().unwrap() >= 1);
    for value in flow.seen.all() {
        assert!(!body.contains(value), "a credential appeared in /status");
    }

    let (status, metrics) = call("GET", &format!("{admin}/metrics"), "").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tokenroute_route_decisions_total{reason=\"token\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("tokenroute_refreshes_total"), "{metrics}");
    for value in flow.seen.all() {
        assert!(
            !metrics.contains(value),
            "a credential appeared in /metrics"
        );
    }
    if let Some(result) = promtool_check(&metrics) {
        result.unwrap_or_else(|report| panic!("promtool: {report}\n{metrics}"));
    }

    // Lookup answers by fingerprint and never echoes the credential.
    let (status, answer) = call(
        "POST",
        &format!("{admin}/affinity/lookup"),
        &flow.seen.consumer_key,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("consumer_key") && !answer.contains(&flow.seen.consumer_key),
        "{answer}"
    );

    // Drain a node: new requests avoid it; enable: it serves again.
    let name = cluster.node_names()[0].clone();
    assert_eq!(
        call("POST", &format!("{admin}/nodes/{name}/drain"), "")
            .await
            .0,
        200
    );
    let pool = proxy.proxy.current().pool.clone();
    assert!(!pool.healthy().contains(pool.by_name(&name).unwrap().id));
    assert_eq!(
        call("POST", &format!("{admin}/nodes/{name}/enable"), "")
            .await
            .0,
        200
    );
    assert!(pool.healthy().contains(pool.by_name(&name).unwrap().id));

    // Refresh on request, and reload from the file.
    let (status, body) = call("POST", &format!("{admin}/nodes/{name}/refresh"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        call("POST", &format!("{admin}/nodes/nosuch/refresh"), "")
            .await
            .0,
        404
    );
    let (status, body) = call("POST", &format!("{admin}/reload"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.proxy.reload_status().version, 2);

    // An invalid file is the caller's to fix: 422 with every error by key; the running config stays.
    let valid = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        valid.replacen("[[upstream.node]]", "[[upstream.node]]\nweight = 257", 1),
    )
    .unwrap();
    let (status, body) = call("POST", &format!("{admin}/reload"), "").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("upstream.node[0].weight = 257"), "{body}");
    assert_eq!(proxy.proxy.reload_status().version, 2);

    proxy.shutdown().await;
    cluster.shutdown().await;
}

//! Refresh fan-out and stale-answer repair, end to end against the stand-in cluster.

use std::time::Duration;

use crate::support::flow::{client, ManualFlow, DB};
use crate::support::*;
use tokenroute::sim::consumer::Step;
use tokenroute::sim::signature::ParamLocation;
use tokenroute::sim::{run_flows, Cluster, FlowOptions, ParamMode};

fn front_config(cluster: &Cluster, extra: &str) -> String {
    cluster_config(
        cluster,
        &format!("interval = \"100ms\"\nrise = 1\nfall = 1\n{extra}"),
    )
}

fn total_logins(cluster: &Cluster) -> Vec<u64> {
    (0..cluster.len()).map(|i| cluster.logins(i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_strategy_spreads_key_steps_over_every_node_with_no_failed_flow() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front_config(&cluster, &refresh_section("refresh"))).await;
    let report = run_flows(
        FlowOptions::new(proxy.url())
            .flows(200)
            .concurrency(8)
            .params(ParamMode::Mixed),
    )
    .await
    .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());
    // The request-token step carries only a consumer key: it spreads over the pool.
    let spread = report.step(Step::RequestToken).nodes;
    assert_eq!(spread.len(), 3, "{spread:?}");
    // Token steps stay on the issuer of their token, flow by flow.
    for flow in &report.flows {
        let issuer = flow.served_by(Step::RequestToken);
        for step in [Step::AuthorizeForm, Step::Authorize] {
            assert_eq!(flow.served_by(step), issuer, "flow {}", flow.flow);
        }
        assert_eq!(
            flow.served_by(Step::Read1),
            flow.served_by(Step::AccessToken)
        );
    }
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_is_owned_by_every_node_one_refresh_round_trip_after_registration() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front_config(&cluster, &refresh_section("pin+refresh"))).await;
    let before = total_logins(&cluster);
    let discovery = client().discover(&proxy.url(), DB).await.unwrap().value;
    let registered = client()
        .register_consumer(
            &discovery.oauth_request_consumer_key_url,
            "rtc",
            &tokenroute::secret::Secret::new("s3cret-consumer"),
        )
        .await
        .unwrap();
    let fp = proxy.proxy.fingerprint(&registered.value);
    let table = proxy.proxy.table().clone();
    let started = tokio::time::Instant::now();
    eventually(
        "every node owns the key",
        Duration::from_secs(5),
        async || {
            table
                .lookup(fp, tokenroute::affinity::unix_now())
                .is_some_and(|e| e.owners().len() == 3)
        },
    )
    .await;
    let elapsed = started.elapsed();
    // One login per other node, none on the issuer: no amplification.
    let after = total_logins(&cluster);
    let issuer = cluster
        .node_names()
        .iter()
        .position(|n| Some(n) == registered.served_by.as_ref())
        .unwrap();
    for i in 0..3 {
        let want = u64::from(i != issuer);
        assert_eq!(after[i] - before[i], want, "logins on node {i}");
    }
    assert!(elapsed < Duration::from_secs(2), "fan-out took {elapsed:?}");
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_in_progress_survive_a_restart_without_snapshot_through_repair() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let first = spawn_proxy(&front_config(&cluster, &refresh_section("pin+refresh"))).await;
    let addr = first.addr;
    let mut in_progress = Vec::new();
    for i in 0..6 {
        let mut flow = ManualFlow::register_and_approve(&first.url(), &format!("rtc-{i}")).await;
        flow.request_and_authorize(ParamLocation::Header).await;
        in_progress.push(flow);
    }
    first.shutdown().await;
    // Same address, empty table: nothing learned survives.
    let text = front_config(&cluster, &refresh_section("pin+refresh")).replacen(
        "127.0.0.1:0",
        &addr.to_string(),
        1,
    );
    let second = spawn_proxy(&text).await;
    assert_eq!(second.proxy.table().len(), 0);
    for flow in &mut in_progress {
        // `access_and_read` unwraps every answer: a 401 reaching the consumer fails the test.
        flow.access_and_read(ParamLocation::Body).await;
    }
    second.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_registered_behind_the_proxys_back_is_repaired_on_first_use() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front_config(&cluster, &refresh_section("pin+refresh"))).await;
    for i in 0..4 {
        // Registered and approved directly on node 0: the proxy never saw it.
        let mut flow =
            ManualFlow::register_and_approve(&cluster.node_urls()[0], &format!("direct-{i}")).await;
        flow.base = proxy.url();
        flow.discovery = client().discover(&proxy.url(), DB).await.unwrap().value;
        flow.request_and_authorize(ParamLocation::Query).await;
        flow.access_and_read(ParamLocation::Header).await;
    }
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_and_a_node_down_during_fan_out_fail_no_flow_that_could_succeed() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front_config(&cluster, &refresh_section("pin+refresh"))).await;
    // A node that restarts loses its tokens; flows whose tokens live elsewhere must not notice.
    let mut flows = Vec::new();
    for i in 0..6 {
        let mut flow = ManualFlow::register_and_approve(&proxy.url(), &format!("r-{i}")).await;
        flow.request_and_authorize(ParamLocation::Header).await;
        flows.push(flow);
    }
    let restarted = cluster.node_names()[1].clone();
    cluster.restart_node(1).await.unwrap();
    for flow in flows
        .iter_mut()
        .filter(|f| f.node_of("request token") != Some(restarted.as_str()))
    {
        flow.access_and_read(ParamLocation::Header).await;
    }
    // A node down while keys are registered: flows go to the nodes that hold their key.
    cluster.stop_node(2).await.unwrap();
    let report = run_flows(FlowOptions::new(proxy.url()).flows(20).concurrency(4))
        .await
        .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());
    // It comes back: it is refreshed and serves again.
    cluster.restart_node(2).await.unwrap();
    let pool = proxy.proxy.current().pool.clone();
    eventually("node 2 healthy again", Duration::from_secs(5), async || {
        pool.healthy().len() == 3
    })
    .await;
    let report = run_flows(FlowOptions::new(proxy.url()).flows(20).concurrency(4))
        .await
        .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());
    proxy.shutdown().await;
    cluster.shutdown().await;
}

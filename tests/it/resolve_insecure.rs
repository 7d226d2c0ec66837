//! `flow` and `loadtest` with `--resolve HOST:PORT:ADDR` and `--insecure`, against tokenroute's TLS listener
//! whose certificate names a host that does not resolve (`.invalid` never does, RFC 6761): the tools dial the
//! given address while URLs, `Host` and the TLS name stay the certificate's.

use std::time::Duration;

use tokenroute::sim::consumer::{Resolve, Step};
use tokenroute::sim::loadtest::{loadtest, LoadtestArgs};
use tokenroute::sim::{run_flows, Cluster, FlowOptions, ParamMode, Protocol};

use crate::support::*;

const HOST: &str = "proxy.tokenroute.invalid";

/// A stand-in cluster behind a tokenroute TLS listener presenting a certificate for [`HOST`] only, signed by
/// the test CA.
async fn tls_proxy() -> (Cluster, ProxyHandle, TestPki) {
    let pki = TestPki::new(&[("proxy", &[HOST])]);
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let text = cluster_config(&cluster, "").replacen(
        "address = \"127.0.0.1:0\"\n",
        "address = \"127.0.0.1:0\"\n[[listener.tls.certificate]]\ncert = \"proxy.pem\"\nkey = \"proxy.key\"\n",
        1,
    );
    let proxy = spawn_proxy_in(&text, &pki.dir).await;
    (cluster, proxy, pki)
}

fn target(proxy: &ProxyHandle) -> String {
    format!("https://{HOST}:{}", proxy.addr.port())
}

fn resolve(proxy: &ProxyHandle) -> Resolve {
    format!("{HOST}:{}:127.0.0.1", proxy.addr.port())
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_reach_an_unresolvable_name_through_resolve_and_only_so() {
    let (cluster, proxy, pki) = tls_proxy().await;

    // The name alone does not resolve: the run fails at its first request, with no answer.
    let report = run_flows(
        FlowOptions::new(target(&proxy))
            .flows(1)
            .ca_pem(pki.ca_pem.as_bytes()),
    )
    .await
    .unwrap();
    let (step, failure) = report.flows[0]
        .failure()
        .expect("no route to an .invalid name");
    assert_eq!((step, failure.status), (Step::Discovery, None));

    // With --resolve every step (discovery URLs included, which name the host) reaches the proxy, and the
    // certificate is checked against the name: the CA alone is trusted.
    let report = run_flows(
        FlowOptions::new(target(&proxy))
            .flows(3)
            .concurrency(3)
            .params(ParamMode::Mixed)
            .ca_pem(pki.ca_pem.as_bytes())
            .resolve([resolve(&proxy)]),
    )
    .await
    .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());

    // An entry for another port does not apply.
    let elsewhere: Resolve = format!("{HOST}:{}:127.0.0.1", proxy.addr.port() ^ 1)
        .parse()
        .unwrap();
    let report = run_flows(
        FlowOptions::new(target(&proxy))
            .flows(1)
            .ca_pem(pki.ca_pem.as_bytes())
            .resolve([elsewhere]),
    )
    .await
    .unwrap();
    assert_eq!(report.failed(), 1);

    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_accepts_a_certificate_no_trusted_ca_signed() {
    let (cluster, proxy, _pki) = tls_proxy().await;

    // Without the CA the certificate is refused: the handshake fails before any answer.
    let report = run_flows(
        FlowOptions::new(target(&proxy))
            .flows(1)
            .resolve([resolve(&proxy)]),
    )
    .await
    .unwrap();
    let (step, failure) = report.flows[0].failure().expect("untrusted certificate");
    assert_eq!((step, failure.status), (Step::Discovery, None));

    let report = run_flows(
        FlowOptions::new(target(&proxy))
            .flows(2)
            .insecure(true)
            .resolve([resolve(&proxy)]),
    )
    .await
    .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());

    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_takes_resolve_and_insecure() {
    let (cluster, proxy, _pki) = tls_proxy().await;
    let svg = std::env::temp_dir().join(format!(
        "tokenroute-loadtest-resolve-{}.svg",
        std::process::id()
    ));
    let report = loadtest(LoadtestArgs {
        target: target(&proxy),
        protocol: Protocol::OAuth1,
        flows: Some(4),
        concurrency: 2,
        params: ParamMode::Mixed,
        duration: None,
        svg: svg.clone(),
        ca: None,
        resolve: vec![resolve(&proxy)],
        insecure: true,
    })
    .await
    .unwrap();
    assert_eq!((report.passed, report.failed), (4, 0));
    let _ = std::fs::remove_file(svg);
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_command_takes_resolve_and_ca() {
    let (cluster, proxy, pki) = tls_proxy().await;
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_tokenroute"))
        .args(["flow", "--flows", "2", "--target", &target(&proxy)])
        .arg("--resolve")
        .arg(format!("{HOST}:{}:127.0.0.1", proxy.addr.port()))
        .arg("--ca")
        .arg(pki.dir.join("ca.pem"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("flow finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    proxy.shutdown().await;
    cluster.shutdown().await;
}

//! Nodes serving HTTPS and the consumer trusting a CA from PEM.

use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokenroute::sim::consumer::{tls_client_config, HttpClient};
use tokenroute::sim::{run_flows, Cluster, FlowOptions, ParamMode};

fn server_config() -> (Arc<rustls::ServerConfig>, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (Arc::new(config), cert.cert.pem())
}

#[tokio::test]
async fn flows_pass_over_https_with_the_ca_from_pem() {
    let (tls, ca_pem) = server_config();
    let cluster = Cluster::builder().nodes(1).tls(tls).start().await.unwrap();
    let target = cluster.node_urls()[0].clone();
    assert!(target.starts_with("https://127.0.0.1:"));

    let discovery = HttpClient::new(
        tls_client_config(Some(ca_pem.as_bytes())).unwrap(),
        std::time::Duration::from_secs(10),
    )
    .discover(&target, "cqschema")
    .await
    .unwrap()
    .value;
    assert!(discovery.oauth_request_token_url.starts_with("https://"));

    let report = run_flows(
        FlowOptions::new(&target)
            .flows(3)
            .concurrency(3)
            .params(ParamMode::Mixed)
            .ca_pem(ca_pem.as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());
    cluster.shutdown().await;
}

#[tokio::test]
async fn https_target_without_the_ca_fails_at_discovery() {
    let (tls, _) = server_config();
    let cluster = Cluster::builder().nodes(1).tls(tls).start().await.unwrap();
    let report = run_flows(FlowOptions::new(&cluster.node_urls()[0]).flows(1))
        .await
        .unwrap();
    assert_eq!(report.failed(), 1);
    let (step, failure) = report.flows[0].failure().unwrap();
    assert_eq!(step, tokenroute::sim::consumer::Step::Discovery);
    assert_eq!(failure.status, None);
    cluster.shutdown().await;
}

//! `tokenroute_listener_certificate_not_after_seconds`: what a running proxy's `/metrics` says about the
//! certificates its TLS listeners serve, before and after a reload swaps one.

use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// 2031-05-06, 2032-07-08 and 2033-09-10 at midnight UTC, in Unix seconds.
const MAY_2031: f64 = 1_935_792_000.0;
const JULY_2032: f64 = 1_972_857_600.0;
const SEPTEMBER_2033: f64 = 2_009_923_200.0;

/// A plain listener (first, so the test helpers address it) and a TLS one whose default certificate is
/// `default_stem` and which answers `lbcq.example` with `named.pem`. Absolute paths: the start-up text and
/// the reloaded file resolve them alike.
fn config(pki: &TestPki, default_stem: &str, node: &str) -> String {
    let dir = pki.dir.display();
    format!(
        "[[listener]]\nname = \"plain\"\naddress = \"127.0.0.1:0\"\n\
         [[listener]]\nname = \"secure\"\naddress = \"127.0.0.1:0\"\n\
         [[listener.tls.certificate]]\ncert = \"{dir}/{default_stem}.pem\"\nkey = \"{dir}/{default_stem}.key\"\n\
         [[listener.tls.certificate]]\ncert = \"{dir}/named.pem\"\nkey = \"{dir}/named.key\"\n\
         server_names = [\"LBCQ.example\"]\n\
         [admin]\naddress = \"127.0.0.1:0\"\n[[upstream.node]]\nname = \"n1\"\nurl = \"{node}\"\n"
    )
}

async fn admin_call(method: &str, url: &str) -> (u16, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = http1_client().request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn expiry(metrics: &str, listener: &str, server_name: &str) -> Option<f64> {
    let prefix = format!(
        "tokenroute_listener_certificate_not_after_seconds{{listener=\"{listener}\",server_name=\"{server_name}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_certificate_expiry_is_exported_per_server_name_and_follows_a_reload() {
    let origin = Origin::start("n1").await;
    let pki = TestPki::expiring(&[
        ("first", &["lbcq"], Some((2031, 5, 6))),
        ("named", &["lbcq.example"], Some((2032, 7, 8))),
        ("renewed", &["lbcq"], Some((2033, 9, 10))),
    ]);
    let path = pki.dir.join("config.toml");
    std::fs::write(&path, config(&pki, "renewed", &origin.url())).unwrap();
    let proxy = spawn_proxy_reloading_from(&config(&pki, "first", &origin.url()), &path).await;
    let admin = format!(
        "http://{}",
        proxy.admin.expect("the config enables the admin API")
    );

    let (status, metrics) = admin_call("GET", &format!("{admin}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(expiry(&metrics, "secure", "*"), Some(MAY_2031), "{metrics}");
    assert_eq!(
        expiry(&metrics, "secure", "lbcq.example"),
        Some(JULY_2032),
        "{metrics}"
    );
    assert!(
        !metrics.contains("tokenroute_listener_certificate_not_after_seconds{listener=\"plain\""),
        "a plain listener has no certificate: {metrics}"
    );
    if let Some(checked) = promtool_check(&metrics) {
        checked.unwrap_or_else(|report| panic!("promtool refused /metrics:\n{report}\n{metrics}"));
    }

    // The file on disk names the renewed certificate as the default: a reload shows its expiry.
    let (status, body) = admin_call("POST", &format!("{admin}/reload")).await;
    assert_eq!(status, 200, "{body}");
    let mut metrics = String::new();
    eventually(
        "the renewed certificate's expiry is exported",
        Duration::from_secs(10),
        async || {
            metrics = admin_call("GET", &format!("{admin}/metrics")).await.1;
            expiry(&metrics, "secure", "*") == Some(SEPTEMBER_2033)
        },
    )
    .await;
    assert_eq!(
        expiry(&metrics, "secure", "lbcq.example"),
        Some(JULY_2032),
        "{metrics}"
    );
    proxy.shutdown().await;
}

//! The proxy core end to end: real sockets, real HTTP/1.1, HTTP/2 and TLS, origins on 127.0.0.1:0.

use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

const FAST_HEALTH: &str = r#"
[health]
path = "/health"
interval = "50ms"
timeout = "500ms"
rise = 1
fall = 1
"#;

#[tokio::test]
async fn method_target_host_and_body_reach_the_node_byte_for_byte() {
    let origin = Origin::start("n1").await;
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], "")).await;
    let target = "/cqweb/a%2fb/%7Euser/../x;p=1?b=2&a=%3d%3D&sp=a+b%20c&empty=&oauth_token=t%2Bk";
    let body = "oauth_consumer_key=k%2B1&oauth_token=t+2&z=%7E";
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: LBCQ.Example:8080\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let seen = origin.last_seen();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, target);
    assert_eq!(seen.header("host"), Some("LBCQ.Example:8080"));
    assert_eq!(seen.body, body.as_bytes());
    proxy.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_on_both_legs() {
    let origin = Origin::start("n1").await;
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], "")).await;
    let request = "GET /x HTTP/1.1\r\nHost: lbcq\r\nConnection: close, X-Client-Hop\r\nX-Client-Hop: secret\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nUpgrade: websocket\r\nX-Kept: yes\r\n\r\n";
    let response = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let seen = origin.last_seen();
    for gone in [
        "x-client-hop",
        "keep-alive",
        "te",
        "proxy-connection",
        "upgrade",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} reached the node");
    }
    assert_eq!(seen.header("x-kept"), Some("yes"));
    let lower = response.to_ascii_lowercase();
    assert!(!lower.contains("x-origin-hop"), "{response}");
    assert!(!lower.contains("keep-alive: timeout"), "{response}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn chunked_request_reaches_the_node_without_a_stale_content_length() {
    let origin = Origin::start("n1").await;
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], "")).await;
    let request = "POST /x HTTP/1.1\r\nHost: lbcq\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let response = raw_exchange(proxy.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(origin.last_seen().body, "hello world");
    proxy.shutdown().await;
}

#[tokio::test]
async fn request_without_host_or_with_two_hosts_gets_400() {
    let origin = Origin::start("n1").await;
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], "")).await;
    let none = raw_exchange(proxy.addr, b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(none.starts_with("HTTP/1.1 400"), "{none}");
    let two = raw_exchange(
        proxy.addr,
        b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(two.starts_with("HTTP/1.1 400"), "{two}");
    assert_eq!(origin.hits(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_default_header_bound_is_one_hundred_fields() {
    let origin = Origin::start("n1").await;
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], "")).await;
    let request = |fields: usize| {
        let mut text = String::from("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
        for i in 0..fields - 2 {
            text.push_str(&format!("X-H{i}: v\r\n"));
        }
        text + "\r\n"
    };
    // The proxy adds its own fields (X-Forwarded-For, X-Request-Id, ...), which count against the node's bound.
    let response = raw_exchange(proxy.addr, request(90).as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let response = raw_exchange(proxy.addr, request(101).as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    assert_eq!(origin.hits(), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let origin = Origin::start("n1").await;
    let extra = "[limits]\nmax_headers = 10\nmax_header_bytes = \"8KiB\"\n";
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], extra)).await;
    let mut many = String::from("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
    for i in 0..20 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let response = raw_exchange(proxy.addr, many.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    let big = format!(
        "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    let response = raw_exchange(proxy.addr, big.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    assert_eq!(origin.hits(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn untrusted_forwarding_headers_are_replaced_and_trusted_ones_extended() {
    let origin = Origin::start("n1").await;
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], "")).await;
    let request = "GET /x HTTP/1.1\r\nHost: lbcq\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n$WSIS: true\r\nConnection: close\r\n\r\n";
    raw_exchange(proxy.addr, request.as_bytes()).await;
    let seen = origin.last_seen();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("lbcq"));
    assert_eq!(seen.header("$wsis"), None);
    proxy.shutdown().await;

    let trusted =
        "[forwarding]\ntrusted_proxies = [\"127.0.0.0/8\"]\nwebsphere_private_headers = true\n";
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], trusted)).await;
    raw_exchange(proxy.addr, request.as_bytes()).await;
    let seen = origin.last_seen();
    assert_eq!(seen.header("x-forwarded-for"), Some("6.6.6.6, 127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("$wssc"), Some("http"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn round_robin_spreads_requests_by_weight() {
    let a = Origin::start("a").await;
    let b = Origin::start("b").await;
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[upstream.node]]\nname = \"a\"\nurl = \"{}\"\nweight = 3\n[[upstream.node]]\nname = \"b\"\nurl = \"{}\"\n[admin]\naddress = \"127.0.0.1:0\"\n",
        a.url(),
        b.url()
    );
    let proxy = spawn_proxy(&text).await;
    for _ in 0..40 {
        let (status, _, _) = get(&format!("{}/x", proxy.url())).await;
        assert_eq!(status, 200);
    }
    assert_eq!((a.hits(), b.hits()), (30, 10));
    proxy.shutdown().await;
}

#[tokio::test]
async fn least_requests_avoids_a_busy_node() {
    let a = Origin::start("a").await;
    let b = Origin::start("b").await;
    let extra = "[upstream]\npolicy = \"least_requests\"\n";
    let proxy = spawn_proxy(&config_text(&[("a", a.url()), ("b", b.url())], extra)).await;
    let url = proxy.url();
    let slow_url = format!("{url}/slow");
    let slow = tokio::spawn(async move { get(&slow_url).await });
    eventually(
        "slow request in flight",
        Duration::from_secs(5),
        async || a.hits() + b.hits() == 1,
    )
    .await;
    let busy = if a.hits() == 1 { "a" } else { "b" };
    // One outstanding request on the busy node, none on the other: power of two choices sees both.
    for _ in 0..10 {
        let (status, served_by, _) = get(&format!("{url}/fast")).await;
        assert_eq!(status, 200);
        assert_ne!(served_by, busy);
    }
    slow.abort();
    proxy.shutdown().await;
}

#[tokio::test]
async fn no_healthy_node_gets_503_with_a_body_that_says_so() {
    let origin = Origin::start("n1").await;
    origin.set_healthy(false);
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], FAST_HEALTH)).await;
    let url = format!("{}/x", proxy.url());
    eventually("node ejected", Duration::from_secs(5), async || {
        get(&url).await.0 == 503
    })
    .await;
    let (status, _, body) = get(&url).await;
    assert_eq!(status, 503);
    assert!(body.contains("no healthy backend node"), "{body}");
    origin.set_healthy(true);
    eventually("node restored", Duration::from_secs(5), async || {
        get(&url).await.0 == 200
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_failed_connect_is_retried_once_on_another_node() {
    let origin = Origin::start("up").await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = spawn_proxy(&config_text(
        &[("down", format!("http://{closed}")), ("up", origin.url())],
        "",
    ))
    .await;
    let client = http1_client();
    for _ in 0..6 {
        let request = http::Request::post(format!("{}/x", proxy.url()))
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-served-by"], "up");
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "payload"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_node_that_answers_too_slowly_gets_504() {
    let origin = Origin::start("n1").await;
    let extra = "[limits]\nresponse_header_timeout = \"200ms\"\n[health]\nenabled = false\n";
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], extra)).await;
    let (status, _, body) = get(&format!("{}/slow", proxy.url())).await;
    assert_eq!(status, 504);
    assert!(body.contains("timed out"), "{body}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn large_bodies_stream_through_in_both_directions() {
    let origin = Origin::start("n1").await;
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], "")).await;
    let payload: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let request = http::Request::put(format!("{}/blob", proxy.url()))
        .body(Full::new(Bytes::from(payload.clone())))
        .unwrap();
    let response = http1_client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload);
    proxy.shutdown().await;
}

#[tokio::test]
async fn tls_listener_serves_http2_and_http11_and_picks_certificates_by_sni() {
    let pki = TestPki::new(&[("default", &["default.test"]), ("lbcq", &["lbcq.test"])]);
    let origin = Origin::start("n1").await;
    let tls = r#"
[[listener.tls.certificate]]
cert = "default.pem"
key = "default.key"
[[listener.tls.certificate]]
cert = "lbcq.pem"
key = "lbcq.key"
server_names = ["lbcq.test"]
"#;
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n{tls}\n[[upstream.node]]\nname = \"n1\"\nurl = \"{}\"\n[admin]\naddress = \"127.0.0.1:0\"\n",
        origin.url()
    );
    let proxy = spawn_proxy_in(&text, &pki.dir).await;

    for (alpn, server_name, want_version) in [
        (&b"h2"[..], "lbcq.test", http::Version::HTTP_2),
        (&b"http/1.1"[..], "default.test", http::Version::HTTP_11),
    ] {
        // The client verifies the name, so a wrong certificate choice fails the handshake.
        let connector = tokio_rustls::TlsConnector::from(pki.client_config(&[alpn]));
        let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        let io = TokioIo::new(stream);
        let response = if want_version == http::Version::HTTP_2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let request = http::Request::get(format!("https://{server_name}/over-tls"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let request = http::Request::get("/over-tls")
                .header("host", server_name)
                .body(Full::new(Bytes::new()))
                .unwrap();
            sender.send_request(request).await.unwrap()
        };
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), want_version);
        let seen = origin.last_seen();
        assert_eq!(seen.header("host"), Some(server_name));
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn https_nodes_are_verified_against_the_configured_ca() {
    let pki = TestPki::new(&[("node", &["node.test"])]);
    // A TLS origin: the proxy's own TLS listener in front of a plain origin plays the https node.
    let origin = Origin::start("inner").await;
    let tls_node_text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener.tls.certificate]]\ncert = \"node.pem\"\nkey = \"node.key\"\n[[upstream.node]]\nname = \"inner\"\nurl = \"{}\"\n[admin]\naddress = \"127.0.0.1:0\"\n",
        origin.url()
    );
    let tls_node = spawn_proxy_in(&tls_node_text, &pki.dir).await;
    let front_text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[upstream]\nca_file = \"ca.pem\"\n[[upstream.node]]\nname = \"secure\"\nurl = \"https://127.0.0.1:{}\"\nsni = \"node.test\"\n[admin]\naddress = \"127.0.0.1:0\"\n",
        tls_node.addr.port()
    );
    let front = spawn_proxy_in(&front_text, &pki.dir).await;
    let (status, served_by, _) = get(&format!("{}/through-tls", front.url())).await;
    assert_eq!(status, 200);
    assert_eq!(served_by, "inner");
    front.shutdown().await;
    tls_node.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let origin = Origin::start("n1").await;
    let extra = "[runtime]\ndrain_timeout = \"20s\"\n";
    let proxy = spawn_proxy(&config_text(&[("n1", origin.url())], extra)).await;
    let url = format!("{}/slow", proxy.url());
    let in_flight = tokio::spawn(async move { get(&url).await });
    eventually(
        "request reached the node",
        Duration::from_secs(5),
        async || origin.hits() == 1,
    )
    .await;
    let addr = proxy.addr;
    proxy.shutdown().await;
    let (status, served_by, _) = in_flight.await.unwrap();
    assert_eq!((status.as_u16(), served_by.as_str()), (200, "n1"));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener still accepting"
    );
}

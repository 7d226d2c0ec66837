//! The PROXY protocol on a listener: from a trusted proxy the header is required and the client it names is
//! the one the node sees in X-Forwarded-For (plain and TLS listeners); from anyone else a header is refused and
//! a plain request served as a direct client's. Each case is checked against what a recording node received.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::recording::RecordingNode;
use crate::support::*;

const REQUEST: &[u8] =
    b"GET /pp HTTP/1.1\r\nHost: lbcq\r\nX-Forwarded-For: 203.0.113.66\r\nConnection: close\r\n\r\n";

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn v2_tcp6(source: &str, port: u16) -> Vec<u8> {
    let mut body = source
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets()
        .to_vec();
    body.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(&port.to_be_bytes());
    body.extend_from_slice(&443u16.to_be_bytes());
    v2(1, 0x21, &body)
}

fn v2_tcp4(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut body = source.to_vec();
    body.extend_from_slice(&[198, 51, 100, 1]);
    body.extend_from_slice(&port.to_be_bytes());
    body.extend_from_slice(&443u16.to_be_bytes());
    v2(1, 0x11, &body)
}

/// Writes `bytes` and reads until the proxy closes (bounded).
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn with(header: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    out.extend_from_slice(REQUEST);
    out
}

fn config(node: &RecordingNode, trusted: &str) -> String {
    let text = config_text(
        &[("n1", node.url())],
        &format!("[health]\nenabled = false\n[limits]\nheader_read_timeout = \"2s\"\n[forwarding]\ntrusted_proxies = [\"{trusted}\"]\n"),
    );
    text.replacen(
        "address = \"127.0.0.1:0\"\n",
        "address = \"127.0.0.1:0\"\nproxy_protocol = true\n",
        1,
    )
}

/// The X-Forwarded-For the node received for the one request it parsed.
fn forwarded_for(node: &RecordingNode) -> Vec<String> {
    let (requests, _) = node.take();
    requests
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect()
}

#[tokio::test]
async fn a_trusted_proxy_s_header_names_the_client_the_node_sees() {
    let node = RecordingNode::start().await;
    let proxy = spawn_proxy(&config(&node, "127.0.0.1")).await;
    // The header, what the node must see as X-Forwarded-For. A client named by the header is not a trusted
    // proxy: its X-Forwarded-For (203.0.113.66) is replaced. With no address in the header the client is the
    // connection's peer, the trusted proxy itself: its X-Forwarded-For is extended.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "v1 tcp4",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n".to_vec(),
            "192.0.2.7",
        ),
        (
            "v1 tcp6",
            b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n".to_vec(),
            "2001:db8::7",
        ),
        (
            "v1 unknown",
            b"PROXY UNKNOWN\r\n".to_vec(),
            "203.0.113.66, 127.0.0.1",
        ),
        ("v2 tcp4", v2_tcp4([192, 0, 2, 8], 51001), "192.0.2.8"),
        ("v2 tcp6", v2_tcp6("2001:db8::9", 40001), "2001:db8::9"),
        ("v2 local", v2(0, 0x00, &[]), "203.0.113.66, 127.0.0.1"),
    ];
    for (name, header, want) in cases {
        let response = exchange(proxy.addr, &with(&header)).await;
        assert!(response.starts_with("HTTP/1.1 200 "), "{name}: {response}");
        assert_eq!(forwarded_for(&node), [want], "{name}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_trusted_proxy_without_a_header_or_with_a_bad_one_is_refused() {
    let node = RecordingNode::start().await;
    let proxy = spawn_proxy(&config(&node, "127.0.0.1")).await;
    for (name, bytes) in [
        ("no header", REQUEST.to_vec()),
        ("v1 garbled", with(b"PROXY TCP4 192.0.2.7 nowhere 1 2\r\n")),
        ("v2 udp", with(&v2(1, 0x12, &[0; 12]))),
        ("header cut short", b"PROXY TCP4 192.0.2.7".to_vec()),
    ] {
        let response = exchange(proxy.addr, &bytes).await;
        assert_eq!(
            response, "",
            "{name}: the connection is closed without an answer"
        );
    }
    let (requests, _) = node.take();
    assert!(requests.is_empty());
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_header_from_a_peer_that_is_not_a_trusted_proxy_is_refused_and_its_plain_request_served()
{
    let node = RecordingNode::start().await;
    // The test connects from 127.0.0.1, which is not the trusted proxy here.
    let proxy = spawn_proxy(&config(&node, "192.0.2.1")).await;
    for header in [
        b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n".to_vec(),
        v2_tcp4([192, 0, 2, 8], 51001),
    ] {
        assert_eq!(exchange(proxy.addr, &with(&header)).await, "");
    }
    assert!(
        node.take().0.is_empty(),
        "a spoofed client reached the node"
    );
    let response = exchange(proxy.addr, REQUEST).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert_eq!(forwarded_for(&node), ["127.0.0.1"]);
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_header_precedes_the_tls_handshake_on_a_tls_listener() {
    let pki = TestPki::new(&[("site", &["site.test"])]);
    let node = RecordingNode::start().await;
    let text = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n[[listener.tls.certificate]]\ncert = \"site.pem\"\nkey = \"site.key\"\n[[upstream.node]]\nname = \"n1\"\nurl = \"{}\"\n[health]\nenabled = false\n[forwarding]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        node.url()
    );
    let proxy = spawn_proxy_in(&text, &pki.dir).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n")
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(pki.client_config(&[b"http/1.1"]));
    let name = rustls::pki_types::ServerName::try_from("site.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(REQUEST).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    let response = String::from_utf8_lossy(&out);
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let (requests, _) = node.take();
    assert_eq!(requests.len(), 1);
    let text = requests[0].text().to_ascii_lowercase();
    assert!(text.contains("x-forwarded-for: 192.0.2.7\r\n"), "{text}");
    assert!(text.contains("x-forwarded-proto: https\r\n"), "{text}");
    proxy.shutdown().await;
}

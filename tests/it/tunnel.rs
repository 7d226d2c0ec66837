//! Upgrades through the proxy: a WebSocket handshake the node answers 101 is spliced to the node and echoes
//! both ways; an idle tunnel is closed; a tunnel ends when the proxy shuts down. (An upgrade answered 200 stays
//! HTTP: the corpus in `edge.rs`.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// A node that accepts every upgrade with 101 and then echoes every byte; it keeps each request head.
struct EchoNode {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl EchoNode {
    async fn start() -> EchoNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Some(head) = read_head(&mut stream).await else {
                        return;
                    };
                    seen.lock().unwrap().push(head);
                    let _ = stream
                        .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
                        .await;
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        EchoNode { addr, heads }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The echo node upgrades every request, health probes included: no probes.
const NO_PROBES: &str = "[health]\nenabled = false\n";

/// Reads up to the end of a head (CRLF CRLF), byte by byte so nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

const HANDSHAKE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: lbcq\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Connects, sends the handshake and returns the stream positioned after the 101 head.
async fn open_tunnel(proxy: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(HANDSHAKE).await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
        .await
        .expect("the proxy answers the handshake")
        .expect("a complete head");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket\r\n"), "{head}");
    assert!(lower.contains("connection: upgrade\r\n"), "{head}");
    assert!(lower.contains("sec-websocket-accept: "), "{head}");
    stream
}

async fn echo(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
    let mut back = vec![0u8; bytes.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
        .await
        .expect("the echo comes back")
        .unwrap();
    assert_eq!(back, bytes);
}

/// Reads until the proxy closes the connection; panics after `deadline`.
async fn closed_within(stream: &mut TcpStream, deadline: Duration) {
    let mut rest = Vec::new();
    tokio::time::timeout(deadline, stream.read_to_end(&mut rest))
        .await
        .expect("the proxy closes the tunnel")
        .ok();
}

#[tokio::test]
async fn a_websocket_handshake_answered_101_is_spliced_to_the_node_both_ways() {
    let node = EchoNode::start().await;
    let proxy = spawn_proxy(&config_text(&[("n1", node.url())], NO_PROBES)).await;
    let mut stream = open_tunnel(proxy.addr).await;
    // A masked WebSocket text frame ("Hello", RFC 6455 §5.7), then raw bytes: the proxy does not look.
    echo(
        &mut stream,
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    )
    .await;
    for i in 0..20 {
        echo(
            &mut stream,
            format!("message {i} GET / HTTP/1.1\r\n\r\n").as_bytes(),
        )
        .await;
    }
    let heads = node.heads.lock().unwrap().clone();
    assert_eq!(
        heads.len(),
        1,
        "one handshake, the rest is tunnel: {heads:?}"
    );
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /chat http/1.1\r\n"), "{head}");
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
    assert!(
        head.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n"),
        "{head}"
    );
    assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_after_the_idle_timeout() {
    let node = EchoNode::start().await;
    let proxy = spawn_proxy(&config_text(
        &[("n1", node.url())],
        &format!("{NO_PROBES}[limits]\ntunnel_idle_timeout = \"300ms\"\n"),
    ))
    .await;
    let mut stream = open_tunnel(proxy.addr).await;
    echo(&mut stream, b"still here").await;
    let started = tokio::time::Instant::now();
    closed_within(&mut stream, Duration::from_secs(10)).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_open_tunnel_ends_when_the_proxy_shuts_down() {
    let node = EchoNode::start().await;
    let proxy = spawn_proxy(&config_text(&[("n1", node.url())], NO_PROBES)).await;
    let mut stream = open_tunnel(proxy.addr).await;
    echo(&mut stream, b"before shutdown").await;
    tokio::time::timeout(Duration::from_secs(20), proxy.shutdown())
        .await
        .expect("shutdown is not held by an open tunnel");
    closed_within(&mut stream, Duration::from_secs(5)).await;
}

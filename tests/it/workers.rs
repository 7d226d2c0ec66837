//! Thread-per-core connection workers, end to end: connections are spread over the workers, each worker keeps
//! its own upstream connections, and the metrics show both.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Sends one keep-alive GET on `stream` and reads its whole answer (the origin's bodies carry a length).
async fn exchange(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: lbcq\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the proxy closed a keep-alive connection");
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text[..head_end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a content-length");
            if answer.len() >= head_end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn connections_are_spread_over_the_workers_and_each_worker_reuses_its_own_upstream_connection(
) {
    let origin = Origin::start("n1").await;
    let text = format!(
        "[runtime]\nworker_threads = 2\n[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [admin]\naddress = \"127.0.0.1:0\"\n[health]\nenabled = false\n\
         [[upstream.node]]\nname = \"n1\"\nurl = \"{}\"\n",
        origin.url()
    );
    let config = tokenroute::config::parse(
        &text,
        std::path::Path::new("t.toml"),
        std::path::Path::new("."),
    )
    .unwrap();
    let app = tokenroute::app::App::bind(config, None).await.unwrap();
    let proxy = app.listener_addrs()[0];
    let admin = app.admin_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    // Two client connections, answered one after the other: the first goes to worker 1, the second to worker
    // 2 (the fewest open). One shared pool would serve both from the one upstream connection the first opened;
    // a pool per worker opens one per worker and reuses it.
    let mut first = TcpStream::connect(proxy).await.unwrap();
    let mut second = TcpStream::connect(proxy).await.unwrap();
    for _ in 0..5 {
        assert!(exchange(&mut first).await.starts_with("HTTP/1.1 200"));
        assert!(exchange(&mut second).await.starts_with("HTTP/1.1 200"));
    }
    assert_eq!(origin.hits(), 10);
    assert_eq!(origin.connections.load(Ordering::SeqCst), 2);

    let sample = |metrics: &str, prefix: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let metrics = get(&format!("http://{admin}/metrics")).await.2;
    assert_eq!(
        sample(&metrics, "tokenroute_worker_connections_open{worker=\"1\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "tokenroute_worker_connections_open{worker=\"2\"}"),
        Some(1.0)
    );

    // A closed connection leaves its worker's count.
    drop(first);
    eventually(
        "worker 1's connection is counted closed",
        Duration::from_secs(10),
        async || {
            let metrics = get(&format!("http://{admin}/metrics")).await.2;
            sample(&metrics, "tokenroute_worker_connections_open{worker=\"1\"}") == Some(0.0)
        },
    )
    .await;
    drop(second);
    let _ = stop.send(());
    running.await.unwrap();
}

//! A tiny HTTP front that sends each request to the next of several targets in turn, as an L7 balancer in
//! front of several tokenroute instances would: consecutive requests of one flow meet different instances.
//! [`Alternating::random`] picks a target at random per request instead (seeded, so a failing run replays).
//! Requests go on unchanged (method, target, headers including `Host`, body), so OAuth signatures stay valid.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::Uri;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// A running front; stops when dropped.
pub struct Alternating {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Alternating {
    /// Starts a front on 127.0.0.1:0 over `targets`.
    pub async fn start(targets: Vec<SocketAddr>) -> Alternating {
        Alternating::serve(targets, None).await
    }

    /// Starts a front on 127.0.0.1:0 that sends each request to a target drawn at random, from `seed`.
    pub async fn random(targets: Vec<SocketAddr>, seed: u64) -> Alternating {
        Alternating::serve(targets, Some(seed)).await
    }

    async fn serve(targets: Vec<SocketAddr>, seed: Option<u64>) -> Alternating {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
        let next = Arc::new(AtomicUsize::new(0));
        let targets = Arc::new(targets);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, next, targets) = (client.clone(), next.clone(), targets.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |mut request: http::Request<Incoming>| {
                        let client = client.clone();
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let pick = match seed {
                            None => n,
                            Some(seed) => splitmix64(seed.wrapping_add(n as u64)) as usize,
                        };
                        let target = targets[pick % targets.len()];
                        async move {
                            let path = request
                                .uri()
                                .path_and_query()
                                .map_or("/", |p| p.as_str())
                                .to_owned();
                            *request.uri_mut() =
                                Uri::try_from(format!("http://{target}{path}")).unwrap();
                            client.request(request).await
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Alternating { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// SplitMix64's output function: the n-th draw of a seeded sequence, whatever order requests arrive in.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Drop for Alternating {
    fn drop(&mut self) {
        self.task.abort();
    }
}

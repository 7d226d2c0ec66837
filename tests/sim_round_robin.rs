//! The reproduction must keep reproducing: through a plain balancer (round robin per request, sticky on the
//! `JSESSIONID` clone id like the WebSphere plug-in, no token awareness, byte-exact forwarding), the
//! friendship flow fails with the technote's `invalid_expired_token`.
//!
//! The forwarder lives here rather than in the proxy so that this test does not depend on the proxy core.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokenroute::sim::consumer::Step;
use tokenroute::sim::{run_flows, Cluster, FlowOptions, ParamMode};
use tokio::net::TcpListener;

struct RoundRobin {
    nodes: Vec<SocketAddr>,
    clone_ids: Vec<String>,
    next: AtomicUsize,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl RoundRobin {
    async fn forward(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (mut parts, body) = req.into_parts();
        let node = match self.sticky_node(&parts.headers) {
            Some(i) => self.nodes[i],
            None => self.nodes[self.next.fetch_add(1, Ordering::Relaxed) % self.nodes.len()],
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = format!("http://{node}{path}").parse::<Uri>().unwrap();
        let body = body.collect().await.unwrap().to_bytes();
        // `Host` is kept as the client sent it, so signatures stay valid.
        let upstream = Request::from_parts(parts, Full::new(body));
        match self.client.request(upstream).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                Response::from_parts(parts, Full::new(body))
            }
            Err(_) => {
                let mut resp = Response::new(Full::new(Bytes::from_static(b"bad gateway")));
                *resp.status_mut() = StatusCode::BAD_GATEWAY;
                resp
            }
        }
    }
}

impl RoundRobin {
    /// The node whose clone id ends the request's `JSESSIONID`, if any.
    fn sticky_node(&self, headers: &http::HeaderMap) -> Option<usize> {
        let session = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("JSESSIONID="))?;
        let clone_id = session.rsplit_once(':')?.1;
        self.clone_ids.iter().position(|c| c == clone_id)
    }
}

async fn spawn_round_robin(
    nodes: Vec<SocketAddr>,
    clone_ids: Vec<String>,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let rr = Arc::new(RoundRobin {
        nodes,
        clone_ids,
        next: AtomicUsize::new(0),
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let rr = rr.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let rr = rr.clone();
                    async move { Ok::<_, Infallible>(rr.forward(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, task)
}

#[tokio::test]
async fn flows_through_a_plain_round_robin_balancer_fail_with_invalid_expired_token() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let (target, balancer) = spawn_round_robin(cluster.node_addrs(), cluster.clone_ids()).await;
    // One flow at a time makes the spread deterministic: consecutive requests hit consecutive nodes.
    let report = run_flows(
        FlowOptions::new(&target)
            .flows(3)
            .concurrency(1)
            .params(ParamMode::Mixed),
    )
    .await
    .unwrap();
    let table = report.render_table();
    println!("{table}");
    assert_eq!(report.passed(), 0, "{table}");
    assert!(table.ends_with("0 passed, 3 failed"), "{table}");
    assert!(
        report
            .flows
            .iter()
            .filter_map(|f| f.failure())
            .any(|(_, f)| f.status == Some(401) && f.invalid_expired_token),
        "{table}"
    );
    // Steps are spread over every node, which is the point of a balancer.
    assert_eq!(report.step(Step::Discovery).nodes.len(), 3, "{table}");
    balancer.abort();
    cluster.shutdown().await;
}

//! A fast origin for `bench/proxy-load.sh`, and the client that warms a proxy's learned table through it.
//!
//! `bench_origin serve NAME` binds `127.0.0.1:0`, prints the port on stdout, and answers every request on one
//! thread with a fixed 13-byte body and `X-Served-By: NAME`, except `POST .../oauth-request-token?n=K`,
//! which answers like a provider issuing a request token: the form body
//! `oauth_token=bench-K&oauth_token_secret=..&oauth_callback_confirmed=true`. Deterministic tokens let the
//! load script send requests whose `oauth_token` the proxy has learned, without reading any response.
//!
//! `bench_origin warm URL COUNT` sends `POST URL/cqweb/oauth-request-token?n=K` for K in 0..COUNT over
//! keep-alive connections (8 at a time) and exits non-zero unless every answer was 200.

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const BODY: &[u8] = b"hello, bench\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", name] => runtime.block_on(serve(name.to_string())),
        ["warm", url, count] => match count.parse() {
            Ok(count) => runtime.block_on(warm(url.trim_end_matches('/').to_string(), count)),
            Err(_) => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: bench_origin serve NAME | bench_origin warm URL COUNT");
    ExitCode::from(2)
}

async fn serve(name: String) -> ExitCode {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench_origin: cannot bind: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("{}", addr.port()),
        Err(e) => {
            eprintln!("bench_origin: {e}");
            return ExitCode::FAILURE;
        }
    }
    let served_by = HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("origin"));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let served_by = served_by.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let served_by = served_by.clone();
                async move { Ok::<_, Infallible>(answer(&req, served_by)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, served_by: HeaderValue) -> Response<Full<Bytes>> {
    let issued = (req.method() == Method::POST
        && req.uri().path().ends_with("/oauth-request-token"))
    .then(|| req.uri().query())
    .flatten()
    .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("n=")));
    let (body, content_type) = match issued {
        Some(n) => (
            Bytes::from(format!(
                "oauth_token=bench-{n}&oauth_token_secret=s{n}&oauth_callback_confirmed=true"
            )),
            "application/x-www-form-urlencoded",
        ),
        None => (Bytes::from_static(BODY), "text/plain"),
    };
    let mut resp = Response::new(Full::new(body));
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert("x-served-by", served_by);
    resp
}

async fn warm(base: String, count: usize) -> ExitCode {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, next, ok, base) = (client.clone(), next.clone(), ok.clone(), base.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let Ok(req) = Request::post(format!("{base}/cqweb/oauth-request-token?n={n}"))
                    .body(Empty::new())
                else {
                    break;
                };
                match client.request(req).await {
                    Ok(resp) => {
                        let good = resp.status() == StatusCode::OK;
                        if resp.into_body().collect().await.is_ok() && good {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        eprintln!("bench_origin warm: {e}");
                        break;
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let ok = ok.load(Ordering::Relaxed);
    println!("{ok}");
    if ok == count {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench_origin warm: {ok} of {count} requests answered 200");
        ExitCode::FAILURE
    }
}

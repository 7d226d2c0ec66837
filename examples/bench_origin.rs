//! A fast origin for `bench/proxy-load.sh`, and the client that warms a proxy's learned table through it.
//!
//! `bench_origin serve NAME [BODY_BYTES]` binds `127.0.0.1:0`, prints the port on stdout, and answers every
//! request on one thread with a fixed 13-byte body (or BODY_BYTES of `x`) and `X-Served-By: NAME`, except `POST .../oauth-request-token?n=K`,
//! which answers like a provider issuing a request token: the form body
//! `oauth_token=bench-K&oauth_token_secret=..&oauth_callback_confirmed=true`. Deterministic tokens let the
//! load script send requests whose `oauth_token` the proxy has learned, without reading any response.
//!
//! `bench_origin warm URL COUNT` sends `POST URL/cqweb/oauth-request-token?n=K` for K in 0..COUNT over
//! keep-alive connections (8 at a time) and exits non-zero unless every answer was 200.
//!
//! `bench_origin load URL CONNECTIONS COUNT [oauth KNOWN TOTAL]` sends exactly COUNT keep-alive
//! `GET URL/cqweb/oslc/resource` over CONNECTIONS connections (the same requests as the load script's, with its
//! `Authorization: OAuth ..` header when `oauth` is given) and exits non-zero unless every answer was 200. A
//! fixed amount of work, for instruction counts of the proxy under callgrind (`bench/README.md`).

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
        ["serve", name] => runtime.block_on(serve(name.to_string(), Bytes::from_static(BODY))),
        ["serve", name, bytes] => match bytes.parse::<usize>() {
            Ok(n) => runtime.block_on(serve(name.to_string(), Bytes::from(vec![b'x'; n]))),
            Err(_) => usage(),
        },
        ["warm", url, count] => match count.parse() {
            Ok(count) => runtime.block_on(warm(url.trim_end_matches('/').to_string(), count)),
            Err(_) => usage(),
        },
        ["load", url, connections, count, rest @ ..] => {
            let tokens = match rest {
                [] => None,
                ["oauth", known, total] => match (known.parse(), total.parse()) {
                    (Ok(k), Ok(t)) if t > 0 => Some((k, t)),
                    _ => return usage(),
                },
                _ => return usage(),
            };
            match (url.parse::<http::Uri>(), connections.parse(), count.parse()) {
                (Ok(url), Ok(connections), Ok(count)) => {
                    runtime.block_on(load(url, connections, count, tokens))
                }
                _ => usage(),
            }
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench_origin serve NAME [BODY_BYTES] | bench_origin warm URL COUNT | \
         bench_origin load URL CONNECTIONS COUNT [oauth KNOWN TOTAL]"
    );
    ExitCode::from(2)
}

async fn serve(name: String, plain: Bytes) -> ExitCode {
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
        let plain = plain.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let served_by = served_by.clone();
                let plain = plain.clone();
                async move { Ok::<_, Infallible>(answer(&req, served_by, plain)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, served_by: HeaderValue, plain: Bytes) -> Response<Full<Bytes>> {
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
        None => (plain, "text/plain"),
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

/// The load script's `Authorization` header for request `i` (tokens `bench-0` .. `bench-(total-1)`).
fn oauth_header(i: usize) -> String {
    format!(
        "OAuth realm=\"cqweb\", oauth_consumer_key=\"3f6c1e0a9b7d4e2f8a1c5b9d0e7f{:04x}\", oauth_token=\"bench-{i}\", \
         oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"{}\", oauth_nonce=\"{:08x}{:08x}\", \
         oauth_version=\"1.0\", oauth_signature=\"tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D\"",
        i % 16,
        1717171717 + i,
        (i as u64 * 2654435761) % 4294967296,
        i
    )
}

async fn load(
    url: http::Uri,
    connections: usize,
    count: usize,
    tokens: Option<(usize, usize)>,
) -> ExitCode {
    let Some(authority) = url.authority().cloned() else {
        return usage();
    };
    // The load script's mix: request i carries token i mod total; KNOWN of every TOTAL are learned ones.
    let headers: Vec<HeaderValue> = match tokens {
        Some((_known, total)) => (0..total)
            .filter_map(|i| HeaderValue::from_str(&oauth_header(i)).ok())
            .collect(),
        None => Vec::new(),
    };
    let headers = Arc::new(headers);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (next, ok, headers, authority) =
            (next.clone(), ok.clone(), headers.clone(), authority.clone());
        workers.spawn(async move {
            let Ok(stream) = tokio::net::TcpStream::connect(authority.as_str()).await else {
                eprintln!("bench_origin load: cannot connect to {authority}");
                return;
            };
            let _ = stream.set_nodelay(true);
            let Ok((mut sender, connection)) =
                hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                    .await
            else {
                return;
            };
            tokio::spawn(connection);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let mut req = Request::get("/cqweb/oslc/resource")
                    .header(http::header::HOST, authority.as_str());
                if !headers.is_empty() {
                    req = req.header(
                        http::header::AUTHORIZATION,
                        headers[n % headers.len()].clone(),
                    );
                }
                let Ok(req) = req.body(Empty::new()) else {
                    break;
                };
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let good = resp.status() == StatusCode::OK;
                        if resp.into_body().collect().await.is_ok() && good {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        eprintln!("bench_origin load: {e}");
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
        eprintln!("bench_origin load: {ok} of {count} requests answered 200");
        ExitCode::FAILURE
    }
}

//! The consumer's own callback endpoint: where the user's browser lands after authorizing, carrying the
//! request token and its verifier.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::super::repository::lock;
use super::super::wire::param;
use super::super::SimError;
use crate::oauth::percent;

/// The consumer's own callback endpoint on `127.0.0.1:0`: records `oauth_token` → `oauth_verifier`.
#[derive(Debug)]
pub struct CallbackServer {
    url: String,
    verifiers: Arc<Mutex<HashMap<String, String>>>,
    task: JoinHandle<()>,
}

impl CallbackServer {
    /// Binds `127.0.0.1:0` and serves `GET /callback?...&oauth_token=T&oauth_verifier=V`.
    pub async fn start() -> Result<CallbackServer, SimError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let verifiers: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let task = tokio::spawn(callback_loop(listener, verifiers.clone()));
        Ok(CallbackServer {
            url: format!("http://{local}/callback"),
            verifiers,
            task,
        })
    }

    /// The callback URL (without query).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Takes the verifier delivered for `token`, if the browser got there.
    pub fn take_verifier(&self, token: &str) -> Option<String> {
        lock(&self.verifiers).remove(token)
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn callback_loop(listener: TcpListener, verifiers: Arc<Mutex<HashMap<String, String>>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let verifiers = verifiers.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let verifiers = verifiers.clone();
                        async move { Ok::<_, Infallible>(callback(&verifiers, req.uri())) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

fn callback(verifiers: &Mutex<HashMap<String, String>>, uri: &http::Uri) -> Response<Full<Bytes>> {
    let pairs = uri
        .query()
        .and_then(|q| percent::parse_form(q.as_bytes()).ok())
        .unwrap_or_default();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let (status, body) = match (
        uri.path(),
        get(param::OAUTH_TOKEN),
        get(param::OAUTH_VERIFIER),
    ) {
        ("/callback", Some(token), Some(verifier)) => {
            lock(verifiers).insert(token, verifier);
            (StatusCode::OK, "linked")
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "missing oauth_token or oauth_verifier",
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

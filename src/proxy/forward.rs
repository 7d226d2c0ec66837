//! Forward: send the request to a node among those allowed; a connect failure (nothing sent) is retried once
//! on another node with the body taken back, never re-read. Also buffering a form body under the cap.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Response, Uri};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::error::ProxyError;
use super::Generation;
use crate::affinity::NodeSet;
use crate::transport::body::{self, Prefix, ProxyBody, Reclaimable, Sending, Watched};
use crate::upstream::balance::Basis;
use crate::upstream::client::{NodeBody, Outgoing};
use crate::upstream::{HealthFailure, HealthResult, InflightGuard, Node};

/// A node's answer to a forwarded request.
#[derive(Debug)]
pub(super) struct NodeAnswer {
    /// The node that answered.
    pub node: Arc<Node>,
    /// Counts the request as in flight on `node` until the answer's body has been relayed.
    pub guard: InflightGuard,
    /// The answer.
    pub response: Relayed,
}

/// A node's response: untouched, or with its body already (partly) read by the proxy.
#[derive(Debug)]
pub(super) enum Relayed {
    /// As it came from the node.
    Fresh(Response<NodeBody>),
    /// Its head, and a body that starts with what the proxy has read.
    Read(Response<ProxyBody>),
}

impl Relayed {
    /// The status the node answered.
    pub(super) fn status(&self) -> http::StatusCode {
        match self {
            Relayed::Fresh(r) => r.status(),
            Relayed::Read(r) => r.status(),
        }
    }
}

/// Sends the request to a node in `allowed`; a connect failure (nothing sent) is retried once elsewhere.
pub(super) async fn forward(
    generation: &Generation,
    parts: &http::request::Parts,
    mut allowed: NodeSet,
    basis: Basis,
    mut body: ProxyBody,
) -> Result<NodeAnswer, ProxyError> {
    let limits = &generation.config.limits;
    // Origin form: the node's connection is chosen by the client, not by the URI.
    let target = parts
        .uri
        .path_and_query()
        .cloned()
        .map_or_else(|| Uri::from_static("/"), Uri::from);
    let mut retried = false;
    loop {
        let node = generation
            .pool
            .pick(allowed, basis)
            .ok_or(ProxyError::NoHealthyNode)?
            .clone();
        let (sent_body, reclaim) = Reclaimable::new(body);
        // A request without a body needs no watch on its sending (see below).
        let (sent_body, sending) = if sent_body.is_end_stream() {
            (sent_body.boxed(), None)
        } else {
            let (watched, sending) = Watched::new(sent_body);
            (watched.boxed(), Some(sending))
        };
        let upstream = Outgoing {
            method: &parts.method,
            target: &target,
            headers: &parts.headers,
            body: sent_body,
        };
        let guard = node.start_request();
        let timeout = limits.response_header_timeout;
        let outcome = match sending {
            // Nothing to stream: the node's time runs from the start.
            None => tokio::time::timeout(timeout, node.client.send(upstream))
                .await
                .map_err(|_| Elapsed),
            // Boxed, like every rarer stage: inline, its state would enlarge every request's future (issue 12).
            Some(sending) => {
                Box::pin(answer_within(node.client.send(upstream), sending, timeout)).await
            }
        };
        match outcome {
            Ok(Ok(response)) => {
                return Ok(NodeAnswer {
                    node,
                    guard,
                    response: Relayed::Fresh(response),
                })
            }
            Ok(Err(source)) if source.is_connect() => {
                generation.pool.record_health(
                    &node,
                    HealthResult {
                        source: "connect failure",
                        failure: Some(HealthFailure::from_client_error(&source)),
                        latency: None,
                    },
                );
                match reclaim.take() {
                    Some(unsent) if !retried => {
                        tracing::debug!(node = %node.spec.name, "connect failed; retrying on another node");
                        retried = true;
                        allowed = allowed.without(node.id);
                        body = unsent;
                    }
                    _ => {
                        return Err(ProxyError::Connect {
                            node: node.spec.name.clone(),
                            source,
                        })
                    }
                }
            }
            // The client's body stalled or broke while streaming to the node: not the node's fault.
            Ok(Err(source)) if super::error::client_body_cause(&source).is_some() => {
                return Err(ProxyError::ClientBodyInFlight(source))
            }
            Ok(Err(source)) => {
                return Err(ProxyError::Upstream {
                    node: node.spec.name.clone(),
                    source,
                })
            }
            Err(_elapsed) => {
                generation.pool.record_health(
                    &node,
                    HealthResult {
                        source: "response timeout",
                        failure: Some(HealthFailure::Timeout(limits.response_header_timeout)),
                        latency: None,
                    },
                );
                return Err(ProxyError::UpstreamTimeout {
                    node: node.spec.name.clone(),
                    timeout: limits.response_header_timeout,
                });
            }
        }
    }
}

/// Waits for the node's response head. The node has `timeout` once the request body has been sent whole, and
/// `timeout` to take each frame handed to it; while the proxy waits for the client's next frame no deadline runs
/// here (the body's idle timeout guards that, and its failure is the client's, never the node's).
async fn answer_within<F: std::future::Future>(
    request: F,
    mut sending: tokio::sync::watch::Receiver<Sending>,
    timeout: Duration,
) -> Result<F::Output, Elapsed> {
    let mut request = std::pin::pin!(request);
    loop {
        // A closed channel: the body is done (sent, failed or dropped).
        let Ok(changed) = sending.has_changed() else {
            return tokio::time::timeout(timeout, request)
                .await
                .map_err(|_| Elapsed);
        };
        let phase = if changed {
            *sending.borrow_and_update()
        } else {
            *sending.borrow()
        };
        let node_deadline = async {
            match phase {
                Sending::Node => tokio::time::sleep(timeout).await,
                Sending::Client => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            output = &mut request => return Ok(output),
            () = node_deadline => return Err(Elapsed),
            _ = sending.changed() => {}
        }
    }
}

/// The node took longer than the response-header timeout.
#[derive(Debug)]
struct Elapsed;

/// Buffers a form body to read its credentials, under the cap: over it, an OAuth endpoint's request gets 413
/// (`strict`), any other is handed back as its head and unread rest.
pub(super) async fn read_request_body(
    parts: &http::request::Parts,
    body: ProxyBody,
    limit: usize,
    strict: bool,
) -> Result<Prefix<ProxyBody>, ProxyError> {
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        if strict {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        return Ok(Prefix::TooLarge {
            head: Bytes::new(),
            rest: body,
        });
    }
    match body::read_prefix(body, limit)
        .await
        .map_err(ProxyError::ClientBody)?
    {
        Prefix::TooLarge { .. } if strict => Err(ProxyError::BodyTooLarge { limit }),
        prefix => Ok(prefix),
    }
}

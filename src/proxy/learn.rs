//! Learn: record what a node's answer issued (tokens, keys, codes, cookies) before a byte of it reaches the
//! client, so the client's next step finds it; then relay. A key registration or approval also starts the
//! refresh fan-out.
//!
//! Only responses to requests the proxy itself routed are read, and only on configured endpoints (or for
//! `Set-Cookie`): nothing a client sends inserts or moves an entry.

use std::sync::Arc;

use http::header::{CONTENT_TYPE, SET_COOKIE};
use http::Response;
use http_body_util::{BodyExt, Full};

use super::error::ProxyError;
use super::forward::{NodeAnswer, Relayed};
use super::{headers, Generation, Proxy};
use crate::affinity::unix_now;
use crate::oauth::{self, CredentialKind, EndpointRole, KeyEvent};
use crate::transport::body::{self, BodyError, Prefix, Prefixed, ProxyBody, Relay};
use crate::upstream::Node;

impl Proxy {
    /// Learns what the node's answer issued, then hands the response back for relaying.
    pub(super) async fn learn_then_relay(
        &self,
        generation: &Arc<Generation>,
        request: &http::request::Parts,
        role: Option<EndpointRole>,
        answer: NodeAnswer,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let config = &generation.config;
        let routing = &config.routing;
        let NodeAnswer {
            node,
            guard,
            response,
        } = answer;
        let (mut head, body) = match response {
            Relayed::Fresh(response) => {
                let (head, upstream_body) = response.into_parts();
                let body = Relay::with_guard(
                    upstream_body.map_err(BodyError::from),
                    config.limits.body_idle_timeout,
                    Some(guard),
                )
                .boxed();
                (head, body)
            }
            Relayed::Read(response) => {
                drop(guard);
                response.into_parts()
            }
        };
        headers::strip_hop_by_hop(&mut head.headers);
        self.shared
            .metrics
            .observe_response(Some(node.id), head.status);

        let sets_cookie = routing.session_affinity && head.headers.contains_key(SET_COOKIE);
        if role.is_none() && !sets_cookie {
            return Ok(Response::from_parts(head, body));
        }
        // Boxed: most answers teach nothing, and inline this stage's state would enlarge every request's
        // future (issue 12).
        Box::pin(self.learn(generation, request, role, node, head, body)).await
    }

    /// Reads what the answer issued (its body too, on an endpoint that issues in the body), records it, starts
    /// a key event's fan-out, and hands the response back.
    async fn learn(
        &self,
        generation: &Arc<Generation>,
        request: &http::request::Parts,
        role: Option<EndpointRole>,
        node: Arc<Node>,
        head: http::response::Parts,
        mut body: ProxyBody,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let config = &generation.config;
        let routing = &config.routing;
        let rules = &routing.rules;
        let mut learned_body = None;
        if role.is_some()
            && rules.wants_response_body(role, head.status, head.headers.get(CONTENT_TYPE))
        {
            match body::read_prefix(body, rules.max_body()).await {
                Ok(Prefix::Complete(bytes)) => {
                    learned_body = Some(bytes.clone());
                    body = Full::new(bytes).map_err(|never| match never {}).boxed();
                }
                Ok(Prefix::TooLarge { head: prefix, rest }) => {
                    tracing::debug!(node = %node.spec.name, "response too large to learn from; relayed as is");
                    self.shared.metrics.observe_learn_skipped();
                    body = Prefixed::new(prefix, rest).boxed();
                }
                Err(source) => {
                    return Err(ProxyError::UpstreamBody {
                        node: node.spec.name.clone(),
                        source,
                    })
                }
            }
        }
        let learned = oauth::learn_from_response(
            role,
            &request.method,
            request.uri.query(),
            head.status,
            &head.headers,
            learned_body.as_deref(),
            rules,
        );
        let now = unix_now();
        let table = &self.shared.table;
        // A key event is ordered against refreshes before its key is learned: a refresh that started earlier
        // read the repository without it (or without its approval) and must not make its node an owner.
        let key_event = learned.key_event.as_ref().map(|event| match event {
            KeyEvent::Registered(v) => ("registered", self.fingerprint(v.expose()), false),
            KeyEvent::Approved(v) => ("approved", self.fingerprint(v.expose()), true),
        });
        let guard = match key_event {
            Some((_, fp, _)) => Some(self.shared.refreshes.key_event(fp).await),
            None => None,
        };
        for (kind, value) in &learned.credentials {
            let wanted = if *kind == CredentialKind::SessionCookie {
                routing.session_affinity
            } else {
                routing.token_aware
            };
            if wanted {
                let fp = self.fingerprint(value.expose());
                table.learn(fp, *kind, node.id, rules.ttl(*kind), now);
                if let Some(redis) = &self.shared.redis {
                    // Learned before relayed, for every instance: in Redis before a byte goes out.
                    redis.learn(fp, *kind, node.id, rules.ttl(*kind), now).await;
                }
            }
        }
        if let (Some((what, fp, approved)), Some(guard)) = (key_event, guard) {
            if approved {
                // Nodes that loaded the key before approval hold a stale provisional copy: only the approver
                // is known to hold the approved key until the others are refreshed.
                let kind = table
                    .lookup(fp, now)
                    .map_or(CredentialKind::ConsumerKey, |e| e.kind());
                table.forget(fp);
                table.learn(fp, kind, node.id, rules.ttl(kind), now);
                if let Some(redis) = &self.shared.redis {
                    redis.reset(fp, kind, node.id, rules.ttl(kind), now).await;
                }
            }
            let tick = guard.tick();
            drop(guard);
            tracing::debug!(node = %node.spec.name, event = what, "consumer key event");
            self.shared
                .refreshes
                .fan_out(&generation.pool, &config.refresh, fp, (what, tick), node.id)
                .await;
        }
        Ok(Response::from_parts(head, body))
    }
}

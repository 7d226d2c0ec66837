//! Repair: after a stale-credential answer ([`stale`] recognises one), replay the request once on a node that
//! can answer it (BRIEF 2.5), and refresh the stale node in the background.
//!
//! The safety rules, decided purely by [`plan_replay`] and [`plan_replay_step`] (in `plan.rs`):
//! - never on the node that refused (its nonce store has seen the request), never twice on one node;
//! - never after a success, and each replay only after the previous one was refused as stale too;
//! - OAuth 1 (401/403 naming a configured `oauth_problem`):
//!   - a known key: one replay on an owner, or, when no owner is left, on a node refreshed first;
//!   - nothing known (the table was lost): each other healthy node at most once, until one does not refuse;
//!   - a known token whose issuer refused it for a token problem: no replay (no other node can hold it);
//! - OAuth 2 (400/401 whose `error` is configured): the error names what the node found wanting (the client,
//!   the grant, the bearer token), and the table decides whether another node can answer:
//!   - that credential is known and the refusing node holds it: no replay — this is the credential's real
//!     answer (a wrong secret, a used or expired code, a revoked token);
//!   - known and held elsewhere (its owner was down, or another credential routed the request): one replay
//!     on a node that holds it;
//!   - not known (a restart without snapshot, a client registered behind the proxy's back): each other
//!     healthy node at most once; a node that then accepts an unknown client is learned as its owner;
//!   - in every case only on nodes holding every other credential the table knows the request carries (a
//!     code lives on one node: a client error from that node cannot be mended anywhere else).
//!
//! OAuth 2 answers never take ownership away or start a refresh: `invalid_client` is also what a wrong secret
//! gets, so a client could otherwise move entries, and a login cannot teach a node a client or a grant.

mod plan;
pub(super) mod stale;

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::classify::{Carried, Classified};
use super::error::ProxyError;
use super::forward::{self, NodeAnswer, Relayed};
use super::{Generation, Proxy};
use crate::affinity::{unix_now, Fingerprint, NodeId, NodeSet};
use crate::metrics::{RefreshTrigger, ReplayOutcome};
use crate::oauth::problems::OAuth2Subject;
use crate::oauth::{CredentialKind, Specificity};
use crate::transport::body::{self, BodyError, Prefix, Prefixed, Relay};
use crate::upstream::balance::Basis;
use plan::{plan_replay, plan_replay_step, Refusal, ReplayPlan};
use stale::Stale;

/// Whether a status can carry a stale answer (OAuth 1: 401/403; OAuth 2: 400/401).
pub(super) fn may_be_stale(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    )
}

impl Proxy {
    /// Reads a refusal's head; if it is a stale-credential answer, replays the request (see the module doc).
    /// Any other answer is handed back for relaying, its body intact.
    pub(super) async fn repair(
        &self,
        generation: &Arc<Generation>,
        parts: &http::request::Parts,
        classified: &Classified,
        replay: &Bytes,
        answer: NodeAnswer,
    ) -> Result<NodeAnswer, ProxyError> {
        let (refusal, stale) = read_refusal(generation, answer).await?;
        let Some(stale) = stale else {
            return Ok(refusal);
        };
        let (kind, problem) = match stale {
            Stale::OAuth1(problem) => (
                Refusal::OAuth1 {
                    key_missing: stale::KEY_PROBLEMS.contains(&problem),
                },
                problem,
            ),
            Stale::OAuth2(error) => (
                Refusal::OAuth2 {
                    subject: OAuth2Subject::of(error),
                    carried: &classified.carried,
                },
                error,
            ),
        };
        let pool = &generation.pool;
        let plan = plan_replay(
            kind,
            refusal.node.id,
            classified.route.credential,
            classified.key,
            pool.all().len(),
        );
        let ReplayPlan::Replay {
            attempts,
            stale_key,
            targets,
            learn,
        } = plan
        else {
            self.shared
                .metrics
                .observe_replay(ReplayOutcome::NotReplayable);
            return Ok(refusal);
        };
        let settings = &generation.config.refresh;
        if let Some(fp) = stale_key {
            self.shared.table.remove_owner(fp, refusal.node.id);
            if let Some(redis) = &self.shared.redis {
                redis.remove_owner(fp, refusal.node.id).await;
            }
            self.shared
                .refreshes
                .after_stale_answer(refusal.node.clone(), settings.clone(), fp);
        }
        let status = refusal.response.status();
        // Per request, so debug: the access log marks the replay (`replayed=true`).
        tracing::debug!(node = %refusal.node.spec.name, %status, problem, "stale-credential answer; replaying on another node");
        let mut tried = NodeSet::single(refusal.node.id);
        let mut last = refusal;
        for _ in 0..attempts {
            let owners = learn
                .and_then(|(fp, _)| self.shared.table.lookup(fp, unix_now()))
                .map_or(NodeSet::EMPTY, |e| e.owners());
            let Some(step) = plan_replay_step(pool.healthy(), tried, owners, targets) else {
                break;
            };
            let Some(target) = pool.pick(step.pick_from, Basis::Affinity).cloned() else {
                break;
            };
            if step.refresh_first {
                self.shared
                    .refreshes
                    .refresh_and_own(&target, settings, RefreshTrigger::StaleAnswer)
                    .await;
            }
            tried = tried.with(target.id);
            let body = Full::new(replay.clone())
                .map_err(|never| match never {})
                .boxed();
            let answer = forward::forward(
                generation,
                parts,
                NodeSet::single(target.id),
                Basis::Affinity,
                body,
            )
            .await?;
            let (answer, stale) = read_refusal(generation, answer).await?;
            last = answer;
            if stale.is_some() {
                continue;
            }
            let status = last.response.status();
            if let (Some((fp, kind)), true) = (learn, status.is_success()) {
                // The node accepted a request carrying the key or client id: it holds it.
                let (ttl, now) = (generation.config.routing.rules.ttl(kind), unix_now());
                self.shared.table.learn(fp, kind, target.id, ttl, now);
                if let Some(redis) = &self.shared.redis {
                    redis.learn(fp, kind, target.id, ttl, now).await;
                }
            }
            tracing::debug!(node = %last.node.spec.name, %status, "replay answered without a stale refusal");
            self.shared.metrics.observe_replay(ReplayOutcome::Repaired);
            return Ok(last);
        }
        self.shared.metrics.observe_replay(ReplayOutcome::Failed);
        Ok(last)
    }
}

/// Reads the head of a refusal's body (a 400/401/403 straight from a node) and recognises a stale answer.
/// Any other answer is handed back untouched, and so is the body, whatever was read of it.
async fn read_refusal<'g>(
    generation: &'g Generation,
    answer: NodeAnswer,
) -> Result<(NodeAnswer, Option<Stale<'g>>), ProxyError> {
    let status = answer.response.status();
    let Relayed::Fresh(response) = answer.response else {
        return Ok((answer, None));
    };
    if !may_be_stale(status) {
        let answer = NodeAnswer {
            response: Relayed::Fresh(response),
            ..answer
        };
        return Ok((answer, None));
    }
    let NodeAnswer { node, guard, .. } = answer;
    let (head, upstream_body) = response.into_parts();
    let upstream_body = Relay::new(
        upstream_body.map_err(BodyError::from),
        generation.config.limits.body_idle_timeout,
    )
    .boxed();
    let (body_head, rest) = match body::read_prefix(upstream_body, stale::SCAN_BYTES).await {
        Ok(Prefix::Complete(bytes)) => (
            bytes.clone(),
            Full::new(bytes).map_err(|never| match never {}).boxed(),
        ),
        Ok(Prefix::TooLarge { head: prefix, rest }) => {
            (prefix.clone(), Prefixed::new(prefix, rest).boxed())
        }
        Err(source) => {
            return Err(ProxyError::UpstreamBody {
                node: node.spec.name.clone(),
                source,
            })
        }
    };
    let repair = &generation.config.repair;
    let stale = stale::stale_answer(
        status,
        &head.headers,
        &body_head,
        &repair.stale_problems,
        &repair.oauth2_errors,
    );
    let answer = NodeAnswer {
        node,
        guard,
        response: Relayed::Read(Response::from_parts(head, rest)),
    };
    Ok((answer, stale))
}

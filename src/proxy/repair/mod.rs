//! Repair: after a stale-credential answer ([`stale`] recognises one), replay the request once on a node that
//! can answer it (BRIEF 2.5), and refresh the stale node in the background.
//!
//! The safety rules, decided purely by [`plan_replay`] and [`plan_replay_step`]:
//! - never on the node that refused (its nonce store has seen the request), never twice on one node;
//! - a known key: one replay on an owner, or, when no owner is left, on a node refreshed first;
//! - nothing known (the table was lost): each other healthy node at most once, until one does not refuse;
//! - a known token whose issuer refused it for a token problem: no replay (no other node can hold it);
//! - never after a non-stale answer: only 401/403 naming a configured problem start a replay.

pub(super) mod stale;

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::classify::Classified;
use super::error::ProxyError;
use super::forward::{self, NodeAnswer, Relayed};
use super::{Generation, Proxy};
use crate::affinity::{unix_now, Fingerprint, NodeSet};
use crate::metrics::{RefreshTrigger, ReplayOutcome};
use crate::oauth::{CredentialKind, Specificity};
use crate::transport::body::{self, BodyError, Prefix, Prefixed, Relay};
use crate::upstream::balance::Basis;

/// What to do after a stale-credential answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReplayPlan {
    /// Relay the refusal: no other node can answer.
    NotReplayable,
    /// Replay up to `attempts` times. `key` is the consumer key the stale node lacks (it loses ownership and
    /// is refreshed); `None` when the problem is not about a key.
    Replay {
        /// Replays at most.
        attempts: usize,
        /// The key the stale node lacks.
        key: Option<Fingerprint>,
    },
}

/// Plans the replay of a request refused with `problem`.
///
/// `known` is the credential that routed the request (from the table), `carried_key` the consumer key the
/// request carries whether the table knows it or not, `nodes` the size of the pool.
pub(super) fn plan_replay(
    key_missing: bool,
    known: Option<(Fingerprint, CredentialKind)>,
    carried_key: Option<Fingerprint>,
    nodes: usize,
) -> ReplayPlan {
    if known.is_some_and(|(_, k)| k.specificity() == Specificity::Token) && !key_missing {
        // The token's issuer itself no longer holds it (it restarted): no other node can answer.
        return ReplayPlan::NotReplayable;
    }
    let key = match known {
        Some((fp, kind)) if kind.specificity() == Specificity::Key => Some(fp),
        _ => carried_key,
    }
    .filter(|_| key_missing);
    // What routed is known: one replay. Nothing known: each other node at most once.
    let attempts = if known.is_some() {
        1
    } else {
        nodes.saturating_sub(1)
    };
    ReplayPlan::Replay { attempts, key }
}

/// Where one replay may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReplayStep {
    /// The balancer picks the target among these.
    pub pick_from: NodeSet,
    /// The target must be refreshed before the replay (it is not known to hold the missing key).
    pub refresh_first: bool,
}

/// Chooses the candidates of the next replay: healthy nodes not tried yet, owners of the key first.
pub(super) fn plan_replay_step(
    healthy: NodeSet,
    tried: NodeSet,
    key_owners: NodeSet,
    key_missing: bool,
) -> Option<ReplayStep> {
    let candidates = healthy.difference(tried);
    let owners = key_owners.intersection(candidates);
    if !owners.is_empty() {
        return Some(ReplayStep {
            pick_from: owners,
            refresh_first: false,
        });
    }
    (!candidates.is_empty()).then_some(ReplayStep {
        pick_from: candidates,
        refresh_first: key_missing,
    })
}

impl Proxy {
    /// Reads a 401/403 answer's head; if it is a stale-credential answer, replays the request (see the module
    /// doc). Any other answer is handed back for relaying, its body intact.
    pub(super) async fn repair(
        &self,
        generation: &Arc<Generation>,
        parts: &http::request::Parts,
        classified: &Classified,
        replay: &Bytes,
        answer: NodeAnswer,
    ) -> Result<NodeAnswer, ProxyError> {
        let status = answer.response.status();
        let Relayed::Fresh(response) = answer.response else {
            return Ok(answer);
        };
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            return Ok(NodeAnswer {
                response: Relayed::Fresh(response),
                ..answer
            });
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
        let problems = &generation.config.repair.stale_problems;
        let problem = stale::stale_problem(status, &head.headers, &body_head, problems);
        let refusal = NodeAnswer {
            node,
            guard,
            response: Relayed::Read(Response::from_parts(head, rest)),
        };
        let Some(problem) = problem else {
            return Ok(refusal);
        };
        let key_missing = stale::KEY_PROBLEMS.contains(&problem);
        let pool = &generation.pool;
        let (attempts, key) = match plan_replay(
            key_missing,
            classified.route.credential,
            classified.key,
            pool.all().len(),
        ) {
            ReplayPlan::NotReplayable => {
                self.shared
                    .metrics
                    .observe_replay(ReplayOutcome::NotReplayable);
                return Ok(refusal);
            }
            ReplayPlan::Replay { attempts, key } => (attempts, key),
        };
        let settings = &generation.config.refresh;
        if let Some(fp) = key {
            self.shared.table.remove_owner(fp, refusal.node.id);
            if let Some(redis) = &self.shared.redis {
                redis.remove_owner(fp, refusal.node.id).await;
            }
            self.shared
                .refreshes
                .after_stale_answer(refusal.node.clone(), settings.clone(), fp);
        }
        tracing::info!(node = %refusal.node.spec.name, %status, problem, "stale-credential answer; replaying on another node");
        let mut tried = NodeSet::single(refusal.node.id);
        let mut last = refusal;
        for _ in 0..attempts {
            let owners = key
                .and_then(|fp| self.shared.table.lookup(fp, unix_now()))
                .map_or(NodeSet::EMPTY, |e| e.owners());
            let Some(step) = plan_replay_step(pool.healthy(), tried, owners, key_missing) else {
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
            last = forward::forward(
                generation,
                parts,
                NodeSet::single(target.id),
                Basis::Affinity,
                body,
            )
            .await?;
            let status = last.response.status();
            if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
                if let (Some(fp), true) = (key, status.is_success()) {
                    // The node answered a request carrying the key: it holds it.
                    let ttl = generation
                        .config
                        .routing
                        .rules
                        .ttl(CredentialKind::ConsumerKey);
                    let now = unix_now();
                    self.shared
                        .table
                        .learn(fp, CredentialKind::ConsumerKey, target.id, ttl, now);
                    if let Some(redis) = &self.shared.redis {
                        redis
                            .learn(fp, CredentialKind::ConsumerKey, target.id, ttl, now)
                            .await;
                    }
                }
                tracing::info!(node = %last.node.spec.name, "replay repaired a stale answer");
                self.shared.metrics.observe_replay(ReplayOutcome::Repaired);
                return Ok(last);
            }
        }
        self.shared.metrics.observe_replay(ReplayOutcome::Failed);
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::{FingerprintKey, NodeId};

    fn set(ids: &[usize]) -> NodeSet {
        ids.iter().map(|&i| NodeId::new(i).unwrap()).collect()
    }

    #[test]
    fn replay_plans_follow_the_safety_table() {
        let key = FingerprintKey::generate();
        let (k, t) = (key.fingerprint("key"), key.fingerprint("token"));
        let known_key = Some((k, CredentialKind::ConsumerKey));
        let known_token = Some((t, CredentialKind::AccessToken));
        use ReplayPlan::*;
        // (key problem, known credential, carried key, nodes) → plan
        let cases = [
            // A known key the node lacks: one replay, the node loses the key.
            (
                true,
                known_key,
                Some(k),
                3,
                Replay {
                    attempts: 1,
                    key: Some(k),
                },
            ),
            // A known token refused for a token problem: its issuer lost it; nobody else can answer.
            (false, known_token, Some(k), 3, NotReplayable),
            // A known token refused for a key problem: the key is what is missing; one replay.
            (
                true,
                known_token,
                Some(k),
                3,
                Replay {
                    attempts: 1,
                    key: Some(k),
                },
            ),
            // Nothing known (a lost table): every other node at most once.
            (
                false,
                None,
                None,
                3,
                Replay {
                    attempts: 2,
                    key: None,
                },
            ),
            (
                true,
                None,
                Some(k),
                4,
                Replay {
                    attempts: 3,
                    key: Some(k),
                },
            ),
            // A token problem names no key to unown, even when the request carries one.
            (
                false,
                None,
                Some(k),
                3,
                Replay {
                    attempts: 2,
                    key: None,
                },
            ),
            // A pool of one: nowhere else to go.
            (
                false,
                None,
                None,
                1,
                Replay {
                    attempts: 0,
                    key: None,
                },
            ),
        ];
        for (key_missing, known, carried, nodes, expected) in cases {
            assert_eq!(
                plan_replay(key_missing, known, carried, nodes),
                expected,
                "key_missing={key_missing} known={known:?} nodes={nodes}"
            );
        }
    }

    #[test]
    fn replay_steps_prefer_untried_owners_and_refresh_only_non_owners() {
        // (healthy, tried, key owners, key missing) → step
        let cases = [
            // An untried healthy owner: replay there, no refresh.
            (
                &[0, 1, 2][..],
                &[0][..],
                &[0, 2][..],
                true,
                Some((set(&[2]), false)),
            ),
            // No owner left: any untried healthy node, refreshed first when the key is what is missing.
            (&[0, 1, 2], &[0], &[0], true, Some((set(&[1, 2]), true))),
            (&[0, 1, 2], &[0], &[], false, Some((set(&[1, 2]), false))),
            // An owner that is down does not count.
            (&[0, 1], &[0], &[2], true, Some((set(&[1]), true))),
            // Never the same node twice: everything healthy was tried.
            (&[0, 1], &[0, 1], &[1], true, None),
            (&[0], &[0], &[], false, None),
        ];
        for (healthy, tried, owners, key_missing, expected) in cases {
            let step = plan_replay_step(set(healthy), set(tried), set(owners), key_missing)
                .map(|s| (s.pick_from, s.refresh_first));
            assert_eq!(
                step, expected,
                "healthy={healthy:?} tried={tried:?} owners={owners:?}"
            );
        }
    }
}

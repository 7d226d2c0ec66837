//! Classify: read the credentials a request carries, look each up once, and decide where it may go.
//!
//! [`super::route::decide`] turns table hits into a [`Route`]; [`plan_key_route`] applies the consumer-key
//! strategy (BRIEF 2.3) when the credential that decided is a key not every healthy node holds. Both are pure;
//! `Proxy::apply_key_strategy` carries the plan out (refreshing nodes in the background or first).

use std::sync::Arc;

use super::route::{self, Route};
use super::{Generation, Proxy};
use crate::affinity::{unix_now, Fingerprint, NodeSet};
use crate::metrics::RouteReason;
use crate::oauth::{self, Candidate, CandidateClass, CredentialKind, EndpointRole, Specificity};
use crate::refresh::Strategy;
use crate::upstream::balance::Basis;
use crate::upstream::clone_id;

/// How many of a request's credentials [`Proxy::classify`] fingerprints and looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookups {
    /// Enough to route. Tokens are looked up first; once one is known, the request's consumer keys, client
    /// ids and session cookies cannot change the decision (the most specific credential wins) and are left
    /// alone: for a signed OAuth 1 request with a known token, one fingerprint and one lookup less (issue 12).
    ToRoute,
    /// Every credential, in the order the request carries them: what repair reads.
    All,
}

/// A request's routing decision, and what repair needs to know of its credentials afterwards.
#[derive(Debug)]
pub(super) struct Classified {
    /// Where the request may go, and why.
    pub route: Route,
    /// The consumer key or client id the request carries, fingerprinted, with the kind it would be learned
    /// as (known or not: repair needs it when the table has lost the key).
    pub key: Option<(Fingerprint, CredentialKind)>,
    /// Every credential looked up, with what the table knew of it.
    pub carried: Vec<Carried>,
    /// With a shared store only: credentials the local table did not know, to read through from Redis.
    pub misses: Vec<Fingerprint>,
    /// Whether `key` and `carried` cover every credential ([`Lookups::All`]).
    pub complete: bool,
}

/// One credential a request carries, as looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Carried {
    /// Where it was found.
    pub class: CandidateClass,
    /// The kind and owners of its table entry, when the table knew it.
    pub known: Option<(CredentialKind, NodeSet)>,
}

impl Classified {
    /// Nothing looked at: the balancing policy over `healthy`.
    pub(super) fn by_policy(healthy: NodeSet) -> Classified {
        Classified {
            route: route::decide(&[], healthy),
            key: None,
            carried: Vec::new(),
            misses: Vec::new(),
            complete: true,
        }
    }
}

/// How to route a request whose deciding credential is a consumer key (or client id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyRoute {
    /// As decided: every healthy node holds the key, or the strategy pins to its owners.
    AsDecided,
    /// As decided (to owners), while these healthy non-owners are refreshed in the background.
    AsDecidedRefreshing(NodeSet),
    /// By the balancing policy over every healthy node; a chosen node that is not an owner is refreshed first.
    ByPolicy,
}

/// The consumer-key strategy as a pure function of who owns the key and who is healthy.
pub(super) fn plan_key_route(
    strategy: Strategy,
    refresh_enabled: bool,
    owners: NodeSet,
    healthy: NodeSet,
) -> KeyRoute {
    let missing = healthy.difference(owners);
    if !refresh_enabled || missing.is_empty() {
        return KeyRoute::AsDecided;
    }
    let owner_up = !owners.intersection(healthy).is_empty();
    match strategy {
        Strategy::Pin if owner_up => KeyRoute::AsDecided,
        Strategy::PinRefresh if owner_up => KeyRoute::AsDecidedRefreshing(missing),
        // `refresh`, or no owner is up: any healthy node, refreshed first when it lacks the key.
        _ => KeyRoute::ByPolicy,
    }
}

/// Calls `look` on the candidates `lookups` asks for, in its order; `look` answers whether the table knew the
/// candidate. `All`: every candidate, in request order. `ToRoute`: the candidates that can only be tokens, then
/// the rest only if none of those was known. [`route::decide`] picks the last of the most specific hits, so
/// this order changes no decision.
fn visit_candidates<'a>(
    candidates: &'a [Candidate],
    lookups: Lookups,
    mut look: impl FnMut(&'a Candidate) -> bool,
) {
    let token_only = |c: &Candidate| {
        c.class
            .kinds()
            .iter()
            .all(|k| k.specificity() == Specificity::Token)
    };
    match lookups {
        Lookups::All => candidates.iter().for_each(|c| {
            look(c);
        }),
        Lookups::ToRoute => {
            let mut known = false;
            for c in candidates.iter().filter(|c| token_only(c)) {
                known |= look(c);
            }
            if !known {
                for c in candidates.iter().filter(|c| !token_only(c)) {
                    look(c);
                }
            }
        }
    }
}

impl Proxy {
    /// Looks up the credentials the request carries (each fingerprinted once; which ones: `lookups`) and
    /// decides where it may go. `role` is the path's endpoint role (`rules.role_for`), decided once by the caller.
    pub(super) fn classify(
        &self,
        generation: &Generation,
        parts: &http::request::Parts,
        role: Option<EndpointRole>,
        body: Option<&[u8]>,
        lookups: Lookups,
    ) -> Classified {
        let routing = &generation.config.routing;
        // Session affinity alone reads only cookies: the `Authorization` header and form parsing cost more
        // than the rest of a plain forward (bench/README.md, issue 12).
        let credentials = if routing.token_aware {
            oauth::extract_request_for(parts, body, &routing.rules, role)
        } else {
            oauth::extract_session_cookies(parts, &routing.rules)
        };
        let now = unix_now();
        let mut key = None;
        let mut hits = Vec::with_capacity(credentials.candidates.len());
        let mut carried = Vec::with_capacity(credentials.candidates.len());
        let mut misses = Vec::new();
        visit_candidates(&credentials.candidates, lookups, |c| {
            let wanted = if c.class == CandidateClass::SessionCookie {
                routing.session_affinity
            } else {
                routing.token_aware
            };
            if !wanted {
                return false;
            }
            let fp = self.fingerprint(c.value.expose());
            if key.is_none() {
                key = match c.class {
                    CandidateClass::ConsumerKey => Some((fp, CredentialKind::ConsumerKey)),
                    CandidateClass::ClientId => Some((fp, CredentialKind::ClientId)),
                    _ => None,
                };
            }
            let found = self.shared.table.lookup(fp, now);
            if found.is_none() && self.shared.redis.is_some() {
                misses.push(fp);
            }
            let entry = found.filter(|e| c.class.accepts(e.kind()));
            carried.push(Carried {
                class: c.class,
                known: entry.map(|e| (e.kind(), e.owners())),
            });
            if let Some(entry) = entry {
                hits.push((fp, entry));
            }
            entry.is_some()
        });
        let mut route = route::decide(&hits, generation.pool.healthy());
        if route.reason == RouteReason::Policy && routing.session_affinity {
            // Nothing learned: a WebSphere session cookie may still name its node by clone id.
            if let Some(id) = clone_id::node_in_pool(&generation.pool, &credentials, route.allowed)
            {
                let node = NodeSet::single(id);
                route = Route {
                    allowed: node,
                    reason: RouteReason::Cookie,
                    owners: Some(node),
                    credential: None,
                };
            }
        }
        Classified {
            route,
            key,
            carried,
            misses,
            complete: lookups == Lookups::All,
        }
    }

    /// Carries out [`plan_key_route`]: the nodes the request may go to, and the refresh it caused for the access
    /// log (`background`, `first`, `first_failed`).
    pub(super) async fn apply_key_strategy(
        &self,
        generation: &Arc<Generation>,
        route: &Route,
    ) -> (NodeSet, Option<&'static str>) {
        let settings = &generation.config.refresh;
        let Some((fp, kind)) = route.credential else {
            return (route.allowed, None);
        };
        if kind.specificity() != Specificity::Key {
            return (route.allowed, None);
        }
        let pool = &generation.pool;
        let healthy = pool.healthy();
        let owners = route.owners.unwrap_or(NodeSet::EMPTY);
        match plan_key_route(settings.strategy, settings.enabled(), owners, healthy) {
            KeyRoute::AsDecided => (route.allowed, None),
            KeyRoute::AsDecidedRefreshing(missing) => {
                self.shared
                    .refreshes
                    .refresh_in_background(pool, settings, missing);
                (route.allowed, Some("background"))
            }
            KeyRoute::ByPolicy => {
                let Some(node) = pool.pick(healthy, Basis::Affinity).cloned() else {
                    return (route.allowed, None);
                };
                if owners.contains(node.id) {
                    return (NodeSet::single(node.id), None);
                }
                if self
                    .shared
                    .refreshes
                    .refresh_for_key(&node, settings, fp)
                    .await
                {
                    (NodeSet::single(node.id), Some("first"))
                } else {
                    (route.allowed, Some("first_failed"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::NodeId;

    fn set(ids: &[usize]) -> NodeSet {
        ids.iter().map(|&i| NodeId::new(i).unwrap()).collect()
    }

    fn candidate(class: CandidateClass, value: &str) -> Candidate {
        Candidate {
            class,
            source: oauth::CandidateSource::Authorization,
            value: oauth::CredentialValue::new(value.to_owned()),
        }
    }

    /// The candidates `visit_candidates` looks up, given which of them the table knows.
    fn visited(candidates: &[Candidate], lookups: Lookups, known: &[&str]) -> Vec<String> {
        let mut seen = Vec::new();
        visit_candidates(candidates, lookups, |c| {
            seen.push(c.value.expose().to_owned());
            known.contains(&c.value.expose())
        });
        seen
    }

    #[test]
    fn a_known_token_leaves_the_key_and_cookie_unlooked_when_only_routing() {
        use CandidateClass::*;
        let request = [
            candidate(ConsumerKey, "key"),
            candidate(SessionCookie, "cookie"),
            candidate(OAuthToken, "token"),
            candidate(Verifier, "verifier"),
        ];
        // Tokens first; a known one ends the lookups.
        assert_eq!(
            visited(&request, Lookups::ToRoute, &["token", "key"]),
            ["token", "verifier"]
        );
        // No token known: the rest, in request order.
        assert_eq!(
            visited(&request, Lookups::ToRoute, &["key"]),
            ["token", "verifier", "key", "cookie"]
        );
        // Repair's view: everything, in request order, known or not.
        assert_eq!(
            visited(&request, Lookups::All, &["token"]),
            ["key", "cookie", "token", "verifier"]
        );
    }

    #[test]
    fn looking_up_only_to_route_decides_what_looking_up_everything_decides() {
        use crate::affinity::{Entry, FingerprintKey};
        use CandidateClass::*;
        let fps = FingerprintKey::generate();
        let request = [
            candidate(ConsumerKey, "key"),
            candidate(OAuthToken, "token"),
            candidate(SessionCookie, "cookie"),
            candidate(Bearer, "bearer"),
            candidate(ClientId, "client"),
        ];
        let healthy = set(&[0, 1, 2, 3, 4]);
        // Every subset of the candidates known, each owned by its own node.
        for known in 0u32..1 << request.len() {
            let decide = |lookups| {
                let mut hits = Vec::new();
                visit_candidates(&request, lookups, |c| {
                    let i = request.iter().position(|r| r == c).unwrap();
                    let hit = known & 1 << i != 0;
                    if hit {
                        let entry = Entry::new(c.class.kinds()[0], set(&[i]), u64::MAX);
                        hits.push((fps.fingerprint(c.value.expose()), entry));
                    }
                    hit
                });
                route::decide(&hits, healthy)
            };
            assert_eq!(
                decide(Lookups::ToRoute),
                decide(Lookups::All),
                "known {known:05b}"
            );
        }
    }

    #[test]
    fn key_routes_follow_the_strategy_table() {
        use KeyRoute::*;
        use Strategy::*;
        // (strategy, refresh configured, owners, healthy) → plan
        let cases = [
            // Every healthy node holds the key: nothing to do, whatever the strategy.
            (Pin, true, &[0, 1, 2][..], &[0, 1, 2][..], AsDecided),
            (Refresh, true, &[0, 1, 2], &[0, 1], AsDecided),
            (PinRefresh, true, &[0, 1], &[0, 1], AsDecided),
            // Refresh not configured: owners only, never a refresh.
            (PinRefresh, false, &[0], &[0, 1, 2], AsDecided),
            (Refresh, false, &[0], &[1, 2], AsDecided),
            // pin: owners while one is up.
            (Pin, true, &[0], &[0, 1, 2], AsDecided),
            // pin+refresh: owners, and the healthy non-owners refreshed in the background.
            (
                PinRefresh,
                true,
                &[0],
                &[0, 1, 2],
                AsDecidedRefreshing(set(&[1, 2])),
            ),
            (
                PinRefresh,
                true,
                &[0, 3],
                &[0, 1],
                AsDecidedRefreshing(set(&[1])),
            ),
            // refresh: by policy whenever some healthy node lacks the key.
            (Refresh, true, &[0], &[0, 1, 2], ByPolicy),
            // No owner is up: by policy (refresh first) for every strategy.
            (Pin, true, &[0], &[1, 2], ByPolicy),
            (PinRefresh, true, &[0], &[1, 2], ByPolicy),
            (Refresh, true, &[], &[1], ByPolicy),
        ];
        for (strategy, enabled, owners, healthy, expected) in cases {
            assert_eq!(
                plan_key_route(strategy, enabled, set(owners), set(healthy)),
                expected,
                "{strategy:?} refresh={enabled} owners={owners:?} healthy={healthy:?}"
            );
        }
    }
}

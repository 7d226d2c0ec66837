//! The pure half of repair: which nodes, if any, a refused request may be replayed on (the safety rules are
//! in the parent module's doc). Table-driven tests below.

use super::*;

/// What a stale answer says the refusing node lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal<'a> {
    /// An OAuth 1 problem; `key_missing` when it is about the consumer key (a refresh fixes that).
    OAuth1 {
        /// The problem is one of [`stale::KEY_PROBLEMS`].
        key_missing: bool,
    },
    /// An OAuth 2 error about `subject`; `carried` is every credential of the request, as looked up.
    OAuth2 {
        /// What the error is about.
        subject: OAuth2Subject,
        /// The request's credentials and what the table knew of them.
        carried: &'a [Carried],
    },
}

/// Which nodes a replay may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Targets {
    /// Owners of the key first (looked up afresh before each replay); when none is left, any other healthy
    /// node, refreshed first when `refresh`.
    OwnersFirst {
        /// Refresh a non-owner before replaying on it.
        refresh: bool,
    },
    /// Only these nodes: those the table says hold what the request needs.
    Only(NodeSet),
}

/// What to do after a stale-credential answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReplayPlan {
    /// Relay the refusal: no other node can answer.
    NotReplayable,
    /// Replay up to `attempts` times.
    Replay {
        /// Replays at most.
        attempts: usize,
        /// The consumer key the refusing node lacks: it loses ownership and is refreshed (OAuth 1 only).
        stale_key: Option<Fingerprint>,
        /// Where replays may go.
        targets: Targets,
        /// A node that accepts the replay holds this key or client id: it is learned as an owner.
        learn: Option<(Fingerprint, CredentialKind)>,
    },
}

/// Plans the replay of a request that `refused_by` refused.
///
/// `known` is the credential that routed the request (from the table), `carried_key` the consumer key or
/// client id the request carries whether the table knows it or not, `nodes` the size of the pool.
pub(super) fn plan_replay(
    refusal: Refusal<'_>,
    refused_by: NodeId,
    known: Option<(Fingerprint, CredentialKind)>,
    carried_key: Option<(Fingerprint, CredentialKind)>,
    nodes: usize,
) -> ReplayPlan {
    let others = nodes.saturating_sub(1);
    let key_missing = match refusal {
        Refusal::OAuth1 { key_missing } => key_missing,
        Refusal::OAuth2 { subject, carried } => {
            return plan_oauth2_replay(subject, carried, refused_by, carried_key, others)
        }
    };
    if known.is_some_and(|(_, k)| k.specificity() == Specificity::Token) && !key_missing {
        // The token's issuer itself no longer holds it (it restarted): no other node can answer.
        return ReplayPlan::NotReplayable;
    }
    let key = match known {
        Some(known) if known.1.specificity() == Specificity::Key => Some(known),
        _ => carried_key,
    }
    .filter(|_| key_missing);
    ReplayPlan::Replay {
        // What routed is known: one replay. Nothing known: each other node at most once.
        attempts: if known.is_some() { 1 } else { others },
        stale_key: key.map(|(fp, _)| fp),
        targets: Targets::OwnersFirst {
            refresh: key_missing,
        },
        learn: key,
    }
}

/// The OAuth 2 part of [`plan_replay`] (see the module doc).
fn plan_oauth2_replay(
    subject: OAuth2Subject,
    carried: &[Carried],
    refused_by: NodeId,
    carried_key: Option<(Fingerprint, CredentialKind)>,
    others: usize,
) -> ReplayPlan {
    let mut concerned = false;
    let mut holders: Option<NodeSet> = None;
    let mut needed: Option<NodeSet> = None;
    for c in carried {
        let about = subject.concerns(c.class);
        concerned |= about;
        let Some((kind, owners)) = c.known else {
            continue;
        };
        let merge = |set: Option<NodeSet>, f: fn(NodeSet, NodeSet) -> NodeSet| {
            Some(set.map_or(owners, |s| f(s, owners)))
        };
        if about {
            holders = merge(holders, NodeSet::union);
        } else if kind.specificity() != Specificity::Session {
            // A session cookie is not needed to answer; every other known credential is.
            needed = merge(needed, NodeSet::intersection);
        }
    }
    if !concerned {
        // The error is about nothing the request carries: every node would say the same.
        return ReplayPlan::NotReplayable;
    }
    let (attempts, only, learn) = match holders {
        Some(holders) if holders.contains(refused_by) => return ReplayPlan::NotReplayable,
        Some(holders) => (
            1,
            Some(needed.map_or(holders, |n| n.intersection(holders))),
            None,
        ),
        None => (
            others,
            needed,
            carried_key.filter(|_| subject == OAuth2Subject::Client),
        ),
    };
    if only.is_some_and(|o| o.without(refused_by).is_empty()) {
        return ReplayPlan::NotReplayable;
    }
    ReplayPlan::Replay {
        attempts,
        stale_key: None,
        targets: only.map_or(Targets::OwnersFirst { refresh: false }, Targets::Only),
        learn,
    }
}

/// Where one replay may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReplayStep {
    /// The balancer picks the target among these.
    pub pick_from: NodeSet,
    /// The target must be refreshed before the replay (it is not known to hold the missing key).
    pub refresh_first: bool,
}

/// Chooses the candidates of the next replay: healthy nodes not tried yet among `targets`, owners of the
/// key first.
pub(super) fn plan_replay_step(
    healthy: NodeSet,
    tried: NodeSet,
    key_owners: NodeSet,
    targets: Targets,
) -> Option<ReplayStep> {
    let candidates = healthy.difference(tried);
    let refresh = match targets {
        Targets::Only(only) => {
            let pick_from = candidates.intersection(only);
            return (!pick_from.is_empty()).then_some(ReplayStep {
                pick_from,
                refresh_first: false,
            });
        }
        Targets::OwnersFirst { refresh } => refresh,
    };
    let owners = key_owners.intersection(candidates);
    if !owners.is_empty() {
        return Some(ReplayStep {
            pick_from: owners,
            refresh_first: false,
        });
    }
    (!candidates.is_empty()).then_some(ReplayStep {
        pick_from: candidates,
        refresh_first: refresh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::FingerprintKey;
    use crate::oauth::CandidateClass;

    fn id(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn set(ids: &[usize]) -> NodeSet {
        ids.iter().map(|&i| id(i)).collect()
    }

    /// An OAuth 1 replay: `key` is the key the refusing node lacks (unowned, refreshed, learned on success).
    fn oauth1(key: Option<Fingerprint>, targets: Targets, attempts: usize) -> ReplayPlan {
        ReplayPlan::Replay {
            attempts,
            stale_key: key,
            targets,
            learn: key.map(|k| (k, CredentialKind::ConsumerKey)),
        }
    }

    #[test]
    fn oauth1_replay_plans_follow_the_safety_table() {
        let key = FingerprintKey::generate();
        let (k, t) = (key.fingerprint("key"), key.fingerprint("token"));
        let known_key = Some((k, CredentialKind::ConsumerKey));
        let known_token = Some((t, CredentialKind::AccessToken));
        let carried = Some((k, CredentialKind::ConsumerKey));
        let refresh = Targets::OwnersFirst { refresh: true };
        let any = Targets::OwnersFirst { refresh: false };
        use ReplayPlan::*;
        // (key problem, known credential, carried key, nodes) → plan
        let cases = [
            // A known key the node lacks: one replay, the node loses the key.
            (true, known_key, carried, 3, oauth1(Some(k), refresh, 1)),
            // A known token refused for a token problem: its issuer lost it; nobody else can answer.
            (false, known_token, carried, 3, NotReplayable),
            // A known token refused for a key problem: the key is what is missing; one replay.
            (true, known_token, carried, 3, oauth1(Some(k), refresh, 1)),
            // Nothing known (a lost table): every other node at most once.
            (false, None, None, 3, oauth1(None, any, 2)),
            (true, None, carried, 4, oauth1(Some(k), refresh, 3)),
            // A token problem names no key to unown, even when the request carries one.
            (false, None, carried, 3, oauth1(None, any, 2)),
            // A pool of one: nowhere else to go.
            (false, None, None, 1, oauth1(None, any, 0)),
        ];
        for (key_missing, known, carried, nodes, expected) in cases {
            assert_eq!(
                plan_replay(
                    Refusal::OAuth1 { key_missing },
                    id(0),
                    known,
                    carried,
                    nodes
                ),
                expected,
                "key_missing={key_missing} known={known:?} nodes={nodes}"
            );
        }
    }

    fn carried(class: CandidateClass, known: Option<(CredentialKind, &[usize])>) -> Carried {
        Carried {
            class,
            known: known.map(|(kind, owners)| (kind, set(owners))),
        }
    }

    #[test]
    fn oauth2_replay_plans_follow_what_the_table_knows_of_the_credential_the_error_names() {
        use CandidateClass as C;
        use CredentialKind as K;
        use OAuth2Subject::*;
        use ReplayPlan::*;
        let client = FingerprintKey::generate().fingerprint("client");
        let client_id = Some((client, K::ClientId));
        let unknown_client = carried(C::ClientId, None);
        let client_on = |o: &'static [usize]| carried(C::ClientId, Some((K::ClientId, o)));
        let code_on = |o: &'static [usize]| carried(C::Code, Some((K::Code, o)));
        let unknown_code = carried(C::Code, None);
        let bearer_on = |o: &'static [usize]| carried(C::Bearer, Some((K::BearerToken, o)));
        let cookie_on =
            |o: &'static [usize]| carried(C::SessionCookie, Some((K::SessionCookie, o)));
        let any = Targets::OwnersFirst { refresh: false };
        let replay = |attempts, targets, learn| Replay {
            attempts,
            stale_key: None,
            targets,
            learn,
        };
        // (error subject, carried credentials, carried client id) → plan; node 0 refused, pool of 3.
        let cases: Vec<(OAuth2Subject, Vec<Carried>, _, ReplayPlan)> = vec![
            // The client is unknown (a restart without snapshot, a client registered behind the proxy's
            // back): every other node once, and the one that accepts it is learned.
            (
                Client,
                vec![unknown_client],
                client_id,
                replay(2, any, client_id),
            ),
            (
                Client,
                vec![unknown_client, unknown_code],
                client_id,
                replay(2, any, client_id),
            ),
            // The client is known on the node that refused it: a wrong secret. Relayed as is.
            (Client, vec![client_on(&[0])], client_id, NotReplayable),
            (Client, vec![client_on(&[0, 1])], client_id, NotReplayable),
            // Known elsewhere (its owner was down, or a token routed the request): one replay there.
            (
                Client,
                vec![client_on(&[2])],
                client_id,
                replay(1, Targets::Only(set(&[2])), None),
            ),
            // The code that routed lives only on the refusing node: nowhere else can answer.
            (
                Client,
                vec![unknown_client, code_on(&[0])],
                client_id,
                NotReplayable,
            ),
            // ... unless it lives where the client does.
            (
                Client,
                vec![client_on(&[1, 2]), code_on(&[2])],
                client_id,
                replay(1, Targets::Only(set(&[2])), None),
            ),
            // A grant known on the refusing node: used, expired or another client's. Relayed.
            (
                Grant,
                vec![client_on(&[0]), code_on(&[0])],
                client_id,
                NotReplayable,
            ),
            // A grant the table never saw: any node holding the client (learned: only where it is).
            (
                Grant,
                vec![client_on(&[0, 2]), unknown_code],
                client_id,
                replay(2, Targets::Only(set(&[0, 2])), None),
            ),
            (
                Grant,
                vec![unknown_client, unknown_code],
                client_id,
                replay(2, any, None),
            ),
            // A bearer token: its issuer refusing it is final; unknown, every other node once.
            (Token, vec![bearer_on(&[0])], None, NotReplayable),
            (
                Token,
                vec![carried(C::Bearer, None)],
                None,
                replay(2, any, None),
            ),
            // A session cookie is not needed to answer and does not narrow the targets.
            (
                Token,
                vec![carried(C::Bearer, None), cookie_on(&[0])],
                None,
                replay(2, any, None),
            ),
            // The error is about nothing the request carries: every node would answer the same.
            (Token, vec![client_on(&[1])], client_id, NotReplayable),
            (Client, vec![], None, NotReplayable),
            // A configured error the RFCs tie to no credential: about all of them.
            (Any, vec![client_on(&[0])], client_id, NotReplayable),
            (Any, vec![unknown_client], client_id, replay(2, any, None)),
        ];
        for (subject, carried, key, expected) in cases {
            assert_eq!(
                plan_replay(
                    Refusal::OAuth2 {
                        subject,
                        carried: &carried
                    },
                    id(0),
                    None,
                    key,
                    3
                ),
                expected,
                "{subject:?} {carried:?}"
            );
        }
    }

    #[test]
    fn replay_steps_prefer_untried_owners_and_refresh_only_non_owners() {
        let refresh = Targets::OwnersFirst { refresh: true };
        let any = Targets::OwnersFirst { refresh: false };
        // (healthy, tried, key owners, targets) → step
        let cases = [
            // An untried healthy owner: replay there, no refresh.
            (
                &[0, 1, 2][..],
                &[0][..],
                &[0, 2][..],
                refresh,
                Some((set(&[2]), false)),
            ),
            // No owner left: any untried healthy node, refreshed first when the key is what is missing.
            (&[0, 1, 2], &[0], &[0], refresh, Some((set(&[1, 2]), true))),
            (&[0, 1, 2], &[0], &[], any, Some((set(&[1, 2]), false))),
            // An owner that is down does not count.
            (&[0, 1], &[0], &[2], refresh, Some((set(&[1]), true))),
            // Never the same node twice: everything healthy was tried.
            (&[0, 1], &[0, 1], &[1], refresh, None),
            (&[0], &[0], &[], any, None),
            // Only the nodes the table names, never refreshed; none of them up and untried: no replay.
            (
                &[0, 1, 2],
                &[0],
                &[],
                Targets::Only(set(&[2])),
                Some((set(&[2]), false)),
            ),
            (
                &[0, 1, 2],
                &[0],
                &[1],
                Targets::Only(set(&[0, 2])),
                Some((set(&[2]), false)),
            ),
            (&[0, 1], &[0], &[], Targets::Only(set(&[2])), None),
            (&[0, 1, 2], &[0, 2], &[], Targets::Only(set(&[2])), None),
        ];
        for (healthy, tried, owners, targets, expected) in cases {
            let step = plan_replay_step(set(healthy), set(tried), set(owners), targets)
                .map(|s| (s.pick_from, s.refresh_first));
            assert_eq!(
                step, expected,
                "healthy={healthy:?} tried={tried:?} owners={owners:?} {targets:?}"
            );
        }
    }
}

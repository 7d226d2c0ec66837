//! The routing decision (BRIEF 2.3), pure: which nodes may serve a request, and why.
//!
//! The caller looks up every credential the request carries and passes the hits; the most specific kind wins
//! (a token over a consumer key over a session cookie). The decision is a set of allowed nodes, so the
//! balancing policy still chooses among owners of a consumer key.

use crate::affinity::{Entry, Fingerprint, NodeSet};
pub(super) use crate::metrics::RouteReason;
use crate::oauth::{CredentialKind, Specificity};

/// Where a request may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Route {
    /// Nodes the balancer may choose from.
    pub allowed: NodeSet,
    /// Why.
    pub reason: RouteReason,
    /// The owners of the credential that decided, when one did (even if they are down).
    pub owners: Option<NodeSet>,
    /// The credential that decided: its fingerprint and kind.
    pub credential: Option<(Fingerprint, CredentialKind)>,
}

/// Decides from the table hits of a request's credentials and the healthy set.
pub(super) fn decide(hits: &[(Fingerprint, Entry)], healthy: NodeSet) -> Route {
    let best = hits.iter().max_by_key(|(_, e)| e.kind().specificity());
    let Some((fp, entry)) = best else {
        return Route {
            allowed: healthy,
            reason: RouteReason::Policy,
            owners: None,
            credential: None,
        };
    };
    let credential = Some((*fp, entry.kind()));
    let owners = entry.owners();
    let usable = owners.intersection(healthy);
    let reason = match entry.kind().specificity() {
        Specificity::Token => RouteReason::Token,
        Specificity::Key => RouteReason::Key,
        Specificity::Session => RouteReason::Cookie,
    };
    if usable.is_empty() {
        Route {
            allowed: healthy,
            reason: RouteReason::OwnerDown,
            owners: Some(owners),
            credential,
        }
    } else {
        Route {
            allowed: usable,
            reason,
            owners: Some(owners),
            credential,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::{FingerprintKey, NodeId, Table};
    use std::time::Duration;

    fn id(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn set(ids: &[usize]) -> NodeSet {
        ids.iter().map(|&i| id(i)).collect()
    }

    /// Builds real entries through a table, the only way entries come to exist.
    fn entry(kind: CredentialKind, owners: &[usize]) -> (Fingerprint, Entry) {
        let table = Table::new(16);
        let fp = FingerprintKey::generate().fingerprint("v");
        for &o in owners {
            table.learn(fp, kind, id(o), Duration::from_secs(60), 1_000);
        }
        (fp, table.lookup(fp, 1_000).unwrap())
    }

    #[test]
    fn nothing_known_routes_by_policy_over_healthy_nodes() {
        let r = decide(&[], set(&[0, 2]));
        assert_eq!(
            (r.allowed, r.reason, r.owners),
            (set(&[0, 2]), RouteReason::Policy, None)
        );
    }

    #[test]
    fn a_token_goes_to_its_issuer() {
        let r = decide(
            &[entry(CredentialKind::RequestToken, &[1])],
            set(&[0, 1, 2]),
        );
        assert_eq!((r.allowed, r.reason), (set(&[1]), RouteReason::Token));
    }

    #[test]
    fn a_token_beats_a_consumer_key_and_a_cookie() {
        let hits = [
            entry(CredentialKind::SessionCookie, &[0]),
            entry(CredentialKind::ConsumerKey, &[0, 2]),
            entry(CredentialKind::AccessToken, &[1]),
        ];
        assert_eq!(decide(&hits, set(&[0, 1, 2])).allowed, set(&[1]));
    }

    #[test]
    fn a_consumer_key_allows_every_healthy_owner() {
        let hits = [
            entry(CredentialKind::ConsumerKey, &[0, 2]),
            entry(CredentialKind::SessionCookie, &[1]),
        ];
        let r = decide(&hits, set(&[0, 1, 2]));
        assert_eq!((r.allowed, r.reason), (set(&[0, 2]), RouteReason::Key));
        assert_eq!(decide(&hits, set(&[1, 2])).allowed, set(&[2]));
    }

    #[test]
    fn a_session_cookie_goes_to_its_node() {
        let r = decide(
            &[entry(CredentialKind::SessionCookie, &[2])],
            set(&[0, 1, 2]),
        );
        assert_eq!((r.allowed, r.reason), (set(&[2]), RouteReason::Cookie));
    }

    #[test]
    fn owners_all_down_fall_back_to_healthy_nodes_and_say_so() {
        let r = decide(&[entry(CredentialKind::AccessToken, &[1])], set(&[0, 2]));
        assert_eq!(
            (r.allowed, r.reason, r.owners),
            (set(&[0, 2]), RouteReason::OwnerDown, Some(set(&[1])))
        );
    }
}

//! WebSphere clone-id affinity: the IBM HTTP Server plug-in's own session affinity, without learned state.
//!
//! A WebSphere node appends its clone id to the session cookies it sets (`JSESSIONID=0000<session>:<clone>`),
//! and after a fail-over the node that took the session over appends its own. A node may declare its clone id
//! (`clone_id` in `[[upstream.node]]`); a request whose session cookie names one then goes to that node even if
//! tokenroute never saw the cookie being set (set before a restart with no snapshot, by another instance, or
//! through another balancer). Clone ids are tried in the order the cookie lists them, as the plug-in does,
//! and only nodes in the allowed (healthy) set count. Every configured session cookie is read, since a
//! WebSphere administrator may rename `JSESSIONID`; a clone id is explicitly declared, so an unrelated cookie
//! value that happens to end in one is the only false match, and it costs nothing but a routing choice.
//!
//! The routing wiring is the caller's: this applies only when nothing learned routed the request.

use crate::affinity::{NodeId, NodeSet};
use crate::oauth::{clone_ids, CandidateClass, RequestCredentials};

use super::Pool;

/// The node the request's session cookies name by clone id, if one of them names a node in `allowed`.
/// `node_of` maps a clone id to the node that declares it.
pub fn node_for_clone_ids(
    credentials: &RequestCredentials,
    allowed: NodeSet,
    node_of: impl Fn(&str) -> Option<NodeId>,
) -> Option<NodeId> {
    credentials
        .candidates
        .iter()
        .filter(|c| c.class == CandidateClass::SessionCookie)
        .flat_map(|c| clone_ids(c.value.expose()))
        .filter_map(node_of)
        .find(|id| allowed.contains(*id))
}

/// [`node_for_clone_ids`] over the pool's declared clone ids: a scan of at most
/// [`crate::affinity::MAX_NODES`] names per clone id, no allocation.
pub fn node_in_pool(
    pool: &Pool,
    credentials: &RequestCredentials,
    allowed: NodeSet,
) -> Option<NodeId> {
    node_for_clone_ids(credentials, allowed, |clone| {
        pool.nodes()
            .iter()
            .find(|n| n.spec.clone_id.as_deref() == Some(clone))
            .map(|n| n.id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{extract_request, Preset, Rules};

    fn id(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    fn creds(cookie: &str) -> RequestCredentials {
        let mut rules = Rules::from_presets(&[Preset::Oslc]);
        rules.add_cookie_name("MYSESSION").unwrap();
        let parts = http::Request::builder()
            .uri("/cqweb/main")
            .header("cookie", cookie)
            .body(())
            .unwrap()
            .into_parts()
            .0;
        extract_request(&parts, None, &rules)
    }

    /// Clone ids c0..c2 declared by nodes 0..2; node 3 declares none.
    fn node_of(clone: &str) -> Option<NodeId> {
        ["c0", "c1", "c2"].iter().position(|c| *c == clone).map(id)
    }

    #[test]
    fn a_session_cookie_routes_to_the_first_healthy_node_its_clone_ids_name() {
        let all: NodeSet = (0..4).map(id).collect();
        let without_1 = all.without(id(1));
        let cases: &[(&str, NodeSet, Option<usize>)] = &[
            ("JSESSIONID=0000abc:c1", all, Some(1)),
            ("JSESSIONID=0000abc:c1:c2", all, Some(1)),
            // The first clone is down: the session was replicated to the next one listed.
            ("JSESSIONID=0000abc:c1:c2", without_1, Some(2)),
            ("JSESSIONID=0000abc:c1", without_1, None),
            ("JSESSIONID=0000abc:unknown:c0", all, Some(0)),
            ("JSESSIONID=0000abc", all, None),
            ("JSESSIONID=c1", all, None),
            ("JSESSIONID=0000abc:", all, None),
            ("MYSESSION=x:c2", all, Some(2)),
            // Only configured session cookies count.
            ("OTHER=x:c2", all, None),
            ("", all, None),
        ];
        for &(cookie, allowed, want) in cases {
            assert_eq!(
                node_for_clone_ids(&creds(cookie), allowed, node_of),
                want.map(id),
                "{cookie}"
            );
        }
    }

    #[test]
    fn an_ambiguous_session_cookie_names_no_node() {
        let all: NodeSet = (0..3).map(id).collect();
        let two = creds("JSESSIONID=0000a:c1; JSESSIONID=0000b:c2");
        assert_eq!(node_for_clone_ids(&two, all, node_of), None);
    }

    #[test]
    fn the_pool_maps_declared_clone_ids_to_its_nodes() {
        let text = r#"
[[listener]]
address = "127.0.0.1:0"
[[upstream.node]]
name = "a"
url = "http://127.0.0.1:1"
[[upstream.node]]
name = "b"
url = "http://127.0.0.1:2"
clone_id = "v544d0o0"
"#;
        let config = crate::config::parse(
            text,
            std::path::Path::new("t.toml"),
            std::path::Path::new("."),
        )
        .unwrap();
        let pool = Pool::new(&config.upstream, None);
        let b = pool.by_name("b").unwrap().id;
        let c = creds("JSESSIONID=0000A2MB4IJozU_VM8IffsMNfdR:v544d0o0");
        assert_eq!(node_in_pool(&pool, &c, pool.all()), Some(b));
        assert_eq!(node_in_pool(&pool, &c, pool.all().without(b)), None);
        assert_eq!(
            node_in_pool(&pool, &creds("JSESSIONID=0000x:a"), pool.all()),
            None
        );
    }
}

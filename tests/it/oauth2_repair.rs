//! OAuth 2 stale-answer repair (issue 13), end to end against the OAuth 2 stand-in through tokenroute: a 400/401
//! `invalid_client` / `invalid_grant` / `invalid_token` about a credential the table does not know, or knows to
//! live elsewhere, is replayed on a node that can answer; the same error from the node that holds the
//! credential is its real answer and reaches the client untouched.
//!
//! The proxies here run without health checks, so every request a node counts came from a client through
//! the proxy (or from the test itself, directly).

use http::header::{AUTHORIZATION, LOCATION};
use http::{HeaderName, Method, StatusCode};
use tokenroute::sim::consumer::{tls_client_config, Browser, HttpClient, Reply};
use tokenroute::sim::oauth2::client::REDIRECT_URI;
use tokenroute::sim::oauth2::wire::{self, error, grant};
use tokenroute::sim::oauth2::{basic, pkce, AuthMethod, Cluster};
use tokenroute::sim::repository::{USER, USER_PASSWORD};

use crate::support::*;

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn http() -> HttpClient {
    HttpClient::new(tls_client_config(None).unwrap(), TIMEOUT)
}

/// tokenroute with the OAuth 2 preset in front of every node; no health checks (see the module doc).
fn front(cluster: &Cluster) -> String {
    let nodes: Vec<(String, String)> = cluster
        .node_names()
        .into_iter()
        .zip(cluster.node_urls())
        .collect();
    let refs: Vec<(&str, String)> = nodes.iter().map(|(n, u)| (n.as_str(), u.clone())).collect();
    config_text(
        &refs,
        "[health]\nenabled = false\n\n[routing]\npresets = [\"oauth2\"]\n",
    )
}

fn requests(cluster: &Cluster) -> Vec<u64> {
    (0..cluster.len())
        .map(|i| cluster.stats(i).unwrap().requests())
        .collect()
}

fn delta(before: &[u64], after: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(v: &str) -> String {
    tokenroute::oauth::percent::encode(v)
}

fn oauth_error(reply: &Reply) -> String {
    serde_json::from_slice::<wire::ErrorBody>(&reply.body)
        .map(|e| e.error)
        .unwrap_or_else(|_| format!("no RFC 6749 error in {:?}", reply.text()))
}

fn expect(reply: Reply, status: StatusCode, what: &str) -> Reply {
    assert_eq!(
        reply.status,
        status,
        "{what}: {} from {:?}",
        reply.text(),
        reply.served_by()
    );
    reply
}

/// One OAuth 2 client and its user, played step by step through `base` (a proxy or a node).
struct Client {
    base: String,
    auth: AuthMethod,
    info: wire::ClientInformation,
    browser: Browser,
}

impl Client {
    /// Registers a client for the code, client-credentials and refresh grants at `at`, then talks to `base`.
    async fn register(at: &str, base: &str, auth: AuthMethod) -> Client {
        let metadata = wire::ClientMetadata {
            redirect_uris: vec![REDIRECT_URI.into()],
            token_endpoint_auth_method: Some(auth.as_str().into()),
            grant_types: [
                grant::AUTHORIZATION_CODE,
                grant::CLIENT_CREDENTIALS,
                grant::REFRESH_TOKEN,
            ]
            .map(String::from)
            .to_vec(),
            response_types: vec!["code".into()],
            scope: Some("openid profile api".into()),
            ..wire::ClientMetadata::default()
        };
        let reply = http()
            .send(
                Method::POST,
                &format!("{at}{}", wire::REGISTER),
                &[],
                Some((
                    "application/json",
                    serde_json::to_string(&metadata).unwrap(),
                )),
            )
            .await
            .unwrap();
        let reply = expect(reply, StatusCode::CREATED, "register");
        Client {
            base: base.to_owned(),
            auth,
            info: serde_json::from_slice(&reply.body).unwrap(),
            browser: Browser::new(tls_client_config(None).unwrap(), TIMEOUT),
        }
    }

    /// `POST {base}{path}` with the client's authentication, its secret replaced by `secret` when given.
    async fn authed(&self, path: &str, params: &[(&str, &str)], secret: Option<&str>) -> Reply {
        let secret = secret.unwrap_or(&self.info.client_secret);
        let mut pairs = params.to_vec();
        let mut headers: Vec<(HeaderName, String)> = Vec::new();
        match self.auth {
            AuthMethod::Basic => {
                headers.push((AUTHORIZATION, basic::encode(&self.info.client_id, secret)))
            }
            AuthMethod::Post => {
                pairs.push(("client_id", &self.info.client_id));
                pairs.push(("client_secret", secret));
            }
        }
        http()
            .send(
                Method::POST,
                &format!("{}{path}", self.base),
                &headers,
                Some(("application/x-www-form-urlencoded", form(&pairs))),
            )
            .await
            .unwrap()
    }

    async fn client_credentials(&self) -> Reply {
        self.authed(
            wire::TOKEN,
            &[("grant_type", grant::CLIENT_CREDENTIALS)],
            None,
        )
        .await
    }

    /// The authorization request (login form, then login): the code and its PKCE verifier.
    async fn authorize(&mut self) -> (String, String) {
        let verifier = pkce::new_verifier();
        let query = form(&[
            ("response_type", "code"),
            ("client_id", &self.info.client_id),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid profile"),
            ("state", "s"),
            ("code_challenge", &pkce::challenge(&verifier)),
            ("code_challenge_method", "S256"),
        ]);
        let url = format!("{}{}?{query}", self.base, wire::AUTHORIZE);
        let mut reply = self.browser.get(&url).await.unwrap();
        if reply.status != StatusCode::FOUND {
            // No session on the node yet: the login form, then the login.
            expect(reply, StatusCode::OK, "authorization form");
            let login = [
                ("username".to_string(), USER.to_string()),
                ("password".to_string(), USER_PASSWORD.to_string()),
            ];
            reply = expect(
                self.browser.post_form(&url, &login).await.unwrap(),
                StatusCode::FOUND,
                "login",
            );
        }
        let location = reply.headers[LOCATION].to_str().unwrap();
        let query = location.split_once('?').unwrap().1;
        let pairs = tokenroute::oauth::percent::parse_form(query.as_bytes()).unwrap();
        let code = pairs.iter().find(|(n, _)| n == "code").unwrap().1.clone();
        (code, verifier)
    }

    async fn exchange(&self, code: &str, verifier: &str) -> Reply {
        self.authed(
            wire::TOKEN,
            &[
                ("grant_type", grant::AUTHORIZATION_CODE),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
            None,
        )
        .await
    }

    async fn userinfo(&self, access: &str) -> Reply {
        let bearer = [(AUTHORIZATION, format!("Bearer {access}"))];
        http()
            .send(
                Method::GET,
                &format!("{}{}", self.base, wire::USERINFO),
                &bearer,
                None,
            )
            .await
            .unwrap()
    }

    async fn refresh(&self, refresh: &str) -> Reply {
        self.authed(
            wire::TOKEN,
            &[
                ("grant_type", grant::REFRESH_TOKEN),
                ("refresh_token", refresh),
            ],
            None,
        )
        .await
    }

    async fn introspect(&self, token: &str) -> wire::Introspection {
        let reply = self
            .authed(wire::INTROSPECT, &[("token", token)], None)
            .await;
        serde_json::from_slice(&expect(reply, StatusCode::OK, "introspect").body).unwrap()
    }

    /// Code exchange, userinfo, refresh, userinfo with the new token, introspection: each must succeed.
    async fn finish_code_flow(&self, code: &str, verifier: &str) {
        let t = expect(
            self.exchange(code, verifier).await,
            StatusCode::OK,
            "exchange",
        );
        let t: wire::TokenResponse = serde_json::from_slice(&t.body).unwrap();
        expect(
            self.userinfo(&t.access_token).await,
            StatusCode::OK,
            "userinfo",
        );
        let r = expect(
            self.refresh(t.refresh_token.as_deref().unwrap()).await,
            StatusCode::OK,
            "refresh",
        );
        let r: wire::TokenResponse = serde_json::from_slice(&r.body).unwrap();
        expect(
            self.userinfo(&r.access_token).await,
            StatusCode::OK,
            "userinfo after refresh",
        );
        assert!(self.introspect(&r.access_token).await.active);
    }
}

const BOTH: [AuthMethod; 2] = [AuthMethod::Basic, AuthMethod::Post];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_flows_in_progress_survive_a_restart_without_snapshot_through_repair() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let first = spawn_proxy(&front(&cluster)).await;
    let addr = first.addr;
    // Six clients registered through tokenroute (two per node, round robin): three stop with a code in hand,
    // three with only their registration, and every one holds a refresh token from a first code flow.
    let mut flows = Vec::new();
    for i in 0..6 {
        let mut client = Client::register(&first.url(), &first.url(), BOTH[i % 2]).await;
        let (code, verifier) = client.authorize().await;
        let pending = (i < 3).then_some((code, verifier));
        flows.push((client, pending));
    }
    let mut refresh_tokens = Vec::new();
    for (client, pending) in &mut flows {
        if pending.is_none() {
            let (code, verifier) = client.authorize().await;
            let t = expect(
                client.exchange(&code, &verifier).await,
                StatusCode::OK,
                "exchange",
            );
            let t: wire::TokenResponse = serde_json::from_slice(&t.body).unwrap();
            refresh_tokens.push(t.refresh_token.unwrap());
        }
    }
    first.shutdown().await;

    // Same address, empty table: nothing learned survives.
    let text = front(&cluster).replacen("127.0.0.1:0", &addr.to_string(), 1);
    let second = spawn_proxy(&text).await;
    assert_eq!(second.proxy.table().len(), 0);
    let mut refresh_tokens = refresh_tokens.into_iter();
    for (client, pending) in &mut flows {
        match pending.take() {
            // A code issued before the restart: exchanged, then used, on its issuer.
            Some((code, verifier)) => client.finish_code_flow(&code, &verifier).await,
            None => {
                // A refresh token from before the restart, then a whole new code flow.
                let old = refresh_tokens.next().unwrap();
                expect(
                    client.refresh(&old).await,
                    StatusCode::OK,
                    "refresh from before the restart",
                );
                let (code, verifier) = client.authorize().await;
                client.finish_code_flow(&code, &verifier).await;
            }
        }
        expect(
            client.client_credentials().await,
            StatusCode::OK,
            "client credentials",
        );
    }
    second.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_registered_directly_on_a_node_is_found_through_tokenroute_and_then_learned() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front(&cluster)).await;
    for (i, node) in cluster.node_urls().iter().enumerate() {
        for auth in BOTH {
            // Registered behind the proxy's back: tokenroute never saw this client id.
            let mut client = Client::register(node, &proxy.url(), auth).await;
            let fp = proxy.proxy.fingerprint(&client.info.client_id);
            assert!(proxy.proxy.table().lookup(fp, 0).is_none());
            // Round robin sends one of any three such requests to a node that refuses the client; the replay
            // finds its node, which is then learned as the client's owner.
            let mut owners = None;
            for _ in 0..3 {
                let reply = expect(
                    client.client_credentials().await,
                    StatusCode::OK,
                    "client credentials of an unknown client",
                );
                assert_eq!(reply.served_by(), Some(cluster.node_names()[i].clone()));
                owners = proxy
                    .proxy
                    .table()
                    .lookup(fp, tokenroute::affinity::unix_now())
                    .map(|e| e.owners().iter().map(|n| n.index()).collect::<Vec<_>>());
                if owners.is_some() {
                    break;
                }
            }
            assert_eq!(owners, Some(vec![i]), "{auth:?}");
            let before = requests(&cluster);
            for _ in 0..3 {
                expect(
                    client.client_credentials().await,
                    StatusCode::OK,
                    "client credentials",
                );
            }
            let mut want = vec![0; 3];
            want[i] = 3;
            assert_eq!(delta(&before, &requests(&cluster)), want);
            let (code, verifier) = client.authorize().await;
            client.finish_code_flow(&code, &verifier).await;
        }
    }
    proxy.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_gets_the_nodes_own_answer_and_is_never_replayed_beyond_the_rules() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front(&cluster)).await;
    let url = proxy.url();
    for auth in BOTH {
        let want_status = match auth {
            AuthMethod::Basic => StatusCode::UNAUTHORIZED,
            AuthMethod::Post => StatusCode::BAD_REQUEST,
        };
        // Registered through tokenroute: the client's node is known, and its refusal is final.
        let known = Client::register(&url, &url, auth).await;
        let before = requests(&cluster);
        let reply = known
            .authed(
                wire::TOKEN,
                &[("grant_type", grant::CLIENT_CREDENTIALS)],
                Some("not-the-secret"),
            )
            .await;
        assert_eq!(
            (reply.status, oauth_error(&reply)),
            (want_status, error::INVALID_CLIENT.to_string())
        );
        assert_eq!(
            delta(&before, &requests(&cluster)).iter().sum::<u64>(),
            1,
            "{auth:?}: a known client's refusal was replayed"
        );

        // Unknown to tokenroute: each other node is asked once, none twice, and the client gets a node's answer.
        let unknown = Client::register(&cluster.node_urls()[1], &url, auth).await;
        let before = requests(&cluster);
        let reply = unknown
            .authed(
                wire::TOKEN,
                &[("grant_type", grant::CLIENT_CREDENTIALS)],
                Some("not-the-secret"),
            )
            .await;
        assert_eq!(
            (reply.status, oauth_error(&reply)),
            (want_status, error::INVALID_CLIENT.to_string())
        );
        assert_eq!(
            delta(&before, &requests(&cluster)),
            [1, 1, 1],
            "{auth:?}: every node once"
        );
        let fp = proxy.proxy.fingerprint(&unknown.info.client_id);
        assert!(
            proxy.proxy.table().lookup(fp, 0).is_none(),
            "a refusal taught nothing"
        );
    }

    // A code used twice: its issuer's invalid_grant is the answer, and no other node sees the request.
    let mut client = Client::register(&url, &url, AuthMethod::Post).await;
    let (code, verifier) = client.authorize().await;
    expect(
        client.exchange(&code, &verifier).await,
        StatusCode::OK,
        "exchange",
    );
    let before = requests(&cluster);
    let reply = client.exchange(&code, &verifier).await;
    assert_eq!(
        (reply.status, oauth_error(&reply)),
        (StatusCode::BAD_REQUEST, error::INVALID_GRANT.to_string())
    );
    assert_eq!(delta(&before, &requests(&cluster)).iter().sum::<u64>(), 1);
    // A bearer token no node issued: each other node is asked once, and the client gets a 401.
    let before = requests(&cluster);
    let reply = client.userinfo("never-issued-anywhere").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        delta(&before, &requests(&cluster)),
        [1, 1, 1],
        "an unknown bearer token: every node once"
    );
    proxy.shutdown().await;
    cluster.shutdown().await;
}

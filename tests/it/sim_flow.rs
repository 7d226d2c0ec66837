//! The stand-in cluster and the scripted consumer against each other, over real sockets.

use std::time::Duration;

use http::header::{SET_COOKIE, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use tokenroute::secret::Secret;
use tokenroute::sim::consumer::{
    sign_now, tls_client_config, Browser, HttpClient, ParamMode, Reply, Step, StepOutcome,
};
use tokenroute::sim::repository::{ADMIN_PASSWORD, ADMIN_USER, USER, USER_PASSWORD};
use tokenroute::sim::signature::{ClientCredentials, OAuthRequest, ParamLocation};
use tokenroute::sim::wire::Discovery;
use tokenroute::sim::{run_flows, Cluster, FlowOptions};

const TIMEOUT: Duration = Duration::from_secs(10);
const DB: &str = "cqschema";

fn client() -> HttpClient {
    HttpClient::new(tls_client_config(None).unwrap(), TIMEOUT)
}

fn browser() -> Browser {
    Browser::new(tls_client_config(None).unwrap(), TIMEOUT)
}

async fn discover(base: &str) -> Discovery {
    client().discover(base, DB).await.unwrap().value
}

/// Registers a key on `base` and has the admin approve it there; returns the client credentials.
async fn approved_key(base: &str) -> ClientCredentials {
    let d = discover(base).await;
    let secret = Secret::new("consumer-secret");
    let key = client()
        .register_consumer(&d.oauth_request_consumer_key_url, "rtc", &secret)
        .await
        .unwrap()
        .value;
    let mut admin = browser();
    admin
        .login(&d.login_url, ADMIN_USER, &Secret::new(ADMIN_PASSWORD))
        .await
        .unwrap();
    admin
        .approve(&d.oauth_approval_module_url, &key, true)
        .await
        .unwrap();
    ClientCredentials::consumer(key, secret)
}

/// A request token from `base` (callback `oob`).
async fn request_token(base: &str, creds: &ClientCredentials) -> ClientCredentials {
    let d = discover(base).await;
    let pair = client()
        .request_token(
            &d.oauth_request_token_url,
            creds,
            "oob",
            ParamLocation::Header,
        )
        .await
        .unwrap()
        .value;
    creds.with_token(pair.token, pair.secret)
}

/// Authorizes a request token on `base` with an `oob` callback and returns the verifier.
async fn authorize_oob(base: &str, token: &str) -> Reply {
    let d = discover(base).await;
    browser()
        .post_form(
            &d.oauth_user_authorization_url,
            &[
                ("oauth_token".into(), token.into()),
                ("username".into(), USER.into()),
                ("password".into(), USER_PASSWORD.into()),
            ],
        )
        .await
        .unwrap()
}

/// Access-token credentials obtained entirely on `base`.
async fn access_token(base: &str) -> ClientCredentials {
    let creds = approved_key(base).await;
    let req = request_token(base, &creds).await;
    let token = req.token.clone().unwrap();
    let reply = authorize_oob(base, &token).await;
    assert_eq!(reply.status, StatusCode::OK);
    let verifier = reply
        .text()
        .trim()
        .strip_prefix("oauth_verifier=")
        .unwrap()
        .to_string();
    let d = discover(base).await;
    let pair = client()
        .access_token(
            &d.oauth_access_token_url,
            &req,
            &verifier,
            ParamLocation::Body,
        )
        .await
        .unwrap()
        .value;
    creds.with_token(pair.token, pair.secret)
}

fn resource_url(base: &str, id: &str) -> String {
    format!("{base}/cqweb/oslc/repo/{DB}/resource/{id}")
}

fn assert_problem(reply: &Reply, status: StatusCode, problem: &str, stale: bool) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let www = reply.headers[WWW_AUTHENTICATE].to_str().unwrap();
    assert_eq!(
        www,
        format!("OAuth realm=\"cqweb\", oauth_problem=\"{problem}\""),
        "{}",
        reply.text()
    );
    assert_eq!(reply.oauth_problem().as_deref(), Some(problem));
    assert_eq!(
        reply.text().contains("invalid_expired_token"),
        stale,
        "{}",
        reply.text()
    );
}

async fn all_flows_pass_on_one_node(mode: ParamMode) {
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let target = cluster.node_urls()[0].clone();
    let report = run_flows(
        FlowOptions::new(&target)
            .flows(6)
            .concurrency(3)
            .params(mode),
    )
    .await
    .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());
    assert_eq!(report.passed(), 6);
    assert!(report.render_table().ends_with("6 passed, 0 failed"));
    for summary in report.steps() {
        assert_eq!(summary.ok, 6, "{:?}", summary.step);
        if summary.step != Step::Callback {
            assert_eq!(summary.nodes.len(), 1, "{:?}", summary.step);
            assert_eq!(summary.nodes.get("lbcq_1"), Some(&6));
        }
    }
    assert_eq!(cluster.requests(1), 0);
    // The administrator approves with credentials typed into the prompt: no login, so no registry refresh.
    assert_eq!(cluster.logins(0), 0);
    cluster.shutdown().await;
}

#[tokio::test]
async fn flows_straight_to_one_node_all_pass_with_params_in_the_header() {
    all_flows_pass_on_one_node(ParamMode::Header).await;
}

#[tokio::test]
async fn flows_straight_to_one_node_all_pass_with_params_in_the_body() {
    all_flows_pass_on_one_node(ParamMode::Body).await;
}

#[tokio::test]
async fn flows_straight_to_one_node_all_pass_with_params_in_the_query() {
    all_flows_pass_on_one_node(ParamMode::Query).await;
}

#[tokio::test]
async fn flows_straight_to_one_node_all_pass_with_mixed_params() {
    all_flows_pass_on_one_node(ParamMode::Mixed).await;
}

#[tokio::test]
async fn request_token_from_one_node_is_unknown_on_another() {
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let [a, b] = [
        cluster.node_urls()[0].clone(),
        cluster.node_urls()[1].clone(),
    ];
    let creds = approved_key(&a).await;
    let req = request_token(&a, &creds).await;
    let token = req.token.clone().unwrap();

    let reply = browser()
        .get(&format!("{b}/cqweb/oauth-authorize?oauth_token={token}"))
        .await
        .unwrap();
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "token_rejected", true);
    assert!(reply.text().contains("401: invalid_expired_token"));
    assert_eq!(reply.served_by().as_deref(), Some("lbcq_2"));

    let reply = authorize_oob(&b, &token).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "token_rejected", true);

    // On the issuing node the same token is fine.
    let reply = browser()
        .get(&format!("{a}/cqweb/oauth-authorize?oauth_token={token}"))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.served_by().as_deref(), Some("lbcq_1"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn key_registered_on_one_node_is_unknown_on_another_until_a_login_there() {
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let [a, b] = [
        cluster.node_urls()[0].clone(),
        cluster.node_urls()[1].clone(),
    ];
    let creds = approved_key(&a).await;

    let signed = sign_now(
        &OAuthRequest::new("POST", format!("{b}/cqweb/oauth-request-token"))
            .oauth_param("oauth_callback", "oob"),
        &creds,
        ParamLocation::Query,
    )
    .unwrap();
    let reply = client().send_signed(&signed).await.unwrap();
    assert_problem(
        &reply,
        StatusCode::UNAUTHORIZED,
        "consumer_key_unknown",
        true,
    );

    let logins_before = cluster.logins(1);
    let d = discover(&b).await;
    browser()
        .login(&d.login_url, USER, &Secret::new(USER_PASSWORD))
        .await
        .unwrap();
    assert_eq!(cluster.logins(1), logins_before + 1);

    let req = request_token(&b, &creds).await;
    assert!(req.token.is_some());
    cluster.shutdown().await;
}

#[tokio::test]
async fn key_registered_behind_the_proxy_is_known_only_on_its_node() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let key = cluster.register_key_on(2, "rtc", "s3cret").unwrap();
    let urls = cluster.node_urls();
    let d = discover(&urls[2]).await;
    let mut admin = browser();
    admin
        .login(&d.login_url, ADMIN_USER, &Secret::new(ADMIN_PASSWORD))
        .await
        .unwrap();
    admin
        .approve(&d.oauth_approval_module_url, &key, true)
        .await
        .unwrap();
    let creds = ClientCredentials::consumer(key, Secret::new("s3cret"));
    for (i, url) in urls.iter().enumerate() {
        let d = discover(url).await;
        let result = client()
            .request_token(
                &d.oauth_request_token_url,
                &creds,
                "oob",
                ParamLocation::Body,
            )
            .await;
        match i {
            2 => assert!(result.is_ok()),
            _ => assert_eq!(result.unwrap_err().reason(), "401 consumer_key_unknown"),
        }
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn approval_updates_the_repository_but_not_other_nodes_snapshots() {
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let key = cluster.register_key_on(0, "rtc", "s").unwrap();
    let urls = cluster.node_urls();
    // B loads the key while it is still provisional.
    let db = discover(&urls[1]).await;
    browser()
        .login(&db.login_url, USER, &Secret::new(USER_PASSWORD))
        .await
        .unwrap();
    assert!(cluster.repository().approve(&key));
    let creds = ClientCredentials::consumer(key, Secret::new("s"));
    let failure = client()
        .request_token(
            &db.oauth_request_token_url,
            &creds,
            "oob",
            ParamLocation::Header,
        )
        .await
        .unwrap_err();
    assert_eq!(failure.reason(), "401 consumer_key_rejected");
    // The next login on B refreshes its snapshot.
    browser()
        .login(&db.login_url, USER, &Secret::new(USER_PASSWORD))
        .await
        .unwrap();
    assert!(request_token(&urls[1], &creds).await.token.is_some());
    cluster.shutdown().await;
}

#[tokio::test]
async fn logging_in_on_every_node_fixes_key_failures_but_not_token_failures() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let urls = cluster.node_urls();
    let creds = approved_key(&urls[0]).await;
    let req = request_token(&urls[0], &creds).await;
    let token = req.token.clone().unwrap();
    for url in &urls {
        let d = discover(url).await;
        browser()
            .login(&d.login_url, USER, &Secret::new(USER_PASSWORD))
            .await
            .unwrap();
    }
    for url in &urls[1..] {
        // The key now works everywhere...
        assert!(request_token(url, &creds).await.token.is_some());
        // ...but the request token still lives on its issuer only.
        let reply = authorize_oob(url, &token).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "token_rejected", true);
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn strict_approval_refuses_approval_on_a_node_without_the_key() {
    let cluster = Cluster::builder()
        .nodes(2)
        .strict_approval(true)
        .start()
        .await
        .unwrap();
    let [a, b] = [
        cluster.node_urls()[0].clone(),
        cluster.node_urls()[1].clone(),
    ];
    let key = client()
        .register_consumer(
            &discover(&a).await.oauth_request_consumer_key_url,
            "rtc",
            &Secret::new("s"),
        )
        .await
        .unwrap()
        .value;

    let mut admin = browser();
    let d = discover(&b).await;
    // B's login loads `key`; `late_key` is registered on A afterwards, so B never holds it in memory.
    admin
        .login(&d.login_url, ADMIN_USER, &Secret::new(ADMIN_PASSWORD))
        .await
        .unwrap();
    let late_key = cluster.register_key_on(0, "late", "s").unwrap();
    for submit in [false, true] {
        let failure = admin
            .approve(&d.oauth_approval_module_url, &late_key, submit)
            .await
            .unwrap_err();
        assert_eq!(failure.reason(), "401 consumer_key_unknown");
        assert!(failure.invalid_expired_token);
        assert_eq!(failure.served_by.as_deref(), Some("lbcq_2"));
    }
    assert!(!cluster.repository().consumer(&late_key).unwrap().approved);
    // The key loaded by B's login can be approved on B.
    admin
        .approve(&d.oauth_approval_module_url, &key, true)
        .await
        .unwrap();
    assert!(cluster.repository().consumer(&key).unwrap().approved);
    cluster.shutdown().await;
}

#[tokio::test]
async fn lenient_approval_accepts_a_key_known_only_to_the_repository() {
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let key = cluster.register_key_on(0, "rtc", "s").unwrap();
    let d = discover(&cluster.node_urls()[1]).await;
    let mut admin = browser();
    // `late_key` is registered after B's login: a lenient node reads the repository at approval time.
    admin
        .login(&d.login_url, ADMIN_USER, &Secret::new(ADMIN_PASSWORD))
        .await
        .unwrap();
    let late_key = cluster.register_key_on(0, "late", "s").unwrap();
    admin
        .approve(&d.oauth_approval_module_url, &late_key, true)
        .await
        .unwrap();
    assert!(cluster.repository().consumer(&late_key).unwrap().approved);
    assert!(!cluster.repository().consumer(&key).unwrap().approved);
    cluster.shutdown().await;
}

#[tokio::test]
async fn approval_without_an_admin_session_requires_login() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let base = cluster.node_urls()[0].clone();
    let key = cluster.register_key_on(0, "rtc", "s").unwrap();
    let d = discover(&base).await;
    let failure = browser()
        .approve(&d.oauth_approval_module_url, &key, true)
        .await
        .unwrap_err();
    assert_eq!(failure.status, Some(401));
    assert_eq!(failure.oauth_problem, None);
    let mut user = browser();
    user.login(&d.login_url, USER, &Secret::new(USER_PASSWORD))
        .await
        .unwrap();
    let failure = user
        .approve(&d.oauth_approval_module_url, &key, true)
        .await
        .unwrap_err();
    assert_eq!(failure.status, Some(403));
    cluster.shutdown().await;
}

#[tokio::test]
async fn provisional_key_cannot_get_a_request_token() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let key = cluster.register_key_on(0, "rtc", "s").unwrap();
    let creds = ClientCredentials::consumer(key, Secret::new("s"));
    let d = discover(&cluster.node_urls()[0]).await;
    let failure = client()
        .request_token(
            &d.oauth_request_token_url,
            &creds,
            "oob",
            ParamLocation::Header,
        )
        .await
        .unwrap_err();
    assert_eq!(failure.reason(), "401 consumer_key_rejected");
    assert!(!failure.invalid_expired_token);
    cluster.shutdown().await;
}

#[tokio::test]
async fn replayed_nonce_is_refused() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let base = cluster.node_urls()[0].clone();
    let creds = access_token(&base).await;
    let signed = sign_now(
        &OAuthRequest::new("GET", resource_url(&base, "7")),
        &creds,
        ParamLocation::Header,
    )
    .unwrap();
    let http = client();
    assert_eq!(
        http.send_signed(&signed).await.unwrap().status,
        StatusCode::OK
    );
    let replay = http.send_signed(&signed).await.unwrap();
    assert_problem(&replay, StatusCode::UNAUTHORIZED, "nonce_used", false);
    cluster.shutdown().await;
}

#[tokio::test]
async fn tampered_signature_is_refused() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let base = cluster.node_urls()[0].clone();
    let creds = access_token(&base).await;
    let http = client();
    for location in [ParamLocation::Header, ParamLocation::Query] {
        let signed = sign_now(
            &OAuthRequest::new("GET", resource_url(&base, "7")),
            &creds,
            location,
        )
        .unwrap();
        let mut tampered = signed.clone();
        tampered.url = tampered.url.replace("/resource/7", "/resource/8");
        let reply = http.send_signed(&tampered).await.unwrap();
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "signature_invalid", false);
    }
    // A different token secret is a different key.
    let forged = creds.with_token(creds.token.clone().unwrap(), Secret::new("guess"));
    let signed = sign_now(
        &OAuthRequest::new("GET", resource_url(&base, "7")),
        &forged,
        ParamLocation::Body,
    )
    .unwrap();
    let reply = http.send_signed(&signed).await.unwrap();
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "signature_invalid", false);
    cluster.shutdown().await;
}

#[tokio::test]
async fn timestamp_outside_the_window_is_refused() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let base = cluster.node_urls()[0].clone();
    let creds = access_token(&base).await;
    let stale = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let signed = OAuthRequest::new("GET", resource_url(&base, "1"))
        .sign(&creds, ParamLocation::Header, "n1", stale)
        .unwrap();
    let reply = client().send_signed(&signed).await.unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.oauth_problem().as_deref(), Some("timestamp_refused"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn missing_callback_is_reported_as_an_absent_parameter() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let base = cluster.node_urls()[0].clone();
    let creds = approved_key(&base).await;
    let signed = sign_now(
        &OAuthRequest::new("POST", format!("{base}/cqweb/oauth-request-token")),
        &creds,
        ParamLocation::Header,
    )
    .unwrap();
    let reply = client().send_signed(&signed).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.oauth_problem().as_deref(), Some("parameter_absent"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn request_token_is_single_use() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let base = cluster.node_urls()[0].clone();
    let creds = approved_key(&base).await;
    let req = request_token(&base, &creds).await;
    let reply = authorize_oob(&base, req.token.as_deref().unwrap()).await;
    let verifier = reply
        .text()
        .trim()
        .strip_prefix("oauth_verifier=")
        .unwrap()
        .to_string();
    let d = discover(&base).await;
    let http = client();
    http.access_token(
        &d.oauth_access_token_url,
        &req,
        &verifier,
        ParamLocation::Header,
    )
    .await
    .unwrap();
    let again = http
        .access_token(
            &d.oauth_access_token_url,
            &req,
            &verifier,
            ParamLocation::Header,
        )
        .await
        .unwrap_err();
    assert_eq!(again.reason(), "401 token_rejected");
    cluster.shutdown().await;
}

#[tokio::test]
async fn unauthorized_request_token_cannot_be_exchanged() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let base = cluster.node_urls()[0].clone();
    let creds = approved_key(&base).await;
    let req = request_token(&base, &creds).await;
    let d = discover(&base).await;
    let failure = client()
        .access_token(
            &d.oauth_access_token_url,
            &req,
            "guess",
            ParamLocation::Query,
        )
        .await
        .unwrap_err();
    assert_eq!(failure.reason(), "403 token_not_authorized");
    cluster.shutdown().await;
}

#[tokio::test]
async fn expired_request_token_is_refused() {
    let cluster = Cluster::builder()
        .nodes(1)
        .request_token_ttl(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let base = cluster.node_urls()[0].clone();
    let creds = approved_key(&base).await;
    let req = request_token(&base, &creds).await;
    let reply = browser()
        .get(&format!(
            "{base}/cqweb/oauth-authorize?oauth_token={}",
            req.token.unwrap()
        ))
        .await
        .unwrap();
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "token_expired", true);
    cluster.shutdown().await;
}

#[tokio::test]
async fn restart_node_loses_tokens_but_reloads_keys() {
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let base = cluster.node_urls()[0].clone();
    let creds = access_token(&base).await;
    let http = client();
    http.read_resource(&resource_url(&base, "1"), &creds, ParamLocation::Header)
        .await
        .unwrap();

    cluster.restart_node(0).await.unwrap();
    assert_eq!(cluster.node_urls()[0], base);
    let failure = http
        .read_resource(&resource_url(&base, "1"), &creds, ParamLocation::Header)
        .await
        .unwrap_err();
    assert_eq!(failure.reason(), "401 token_rejected");
    assert!(failure.invalid_expired_token);
    // The approved key came back from the repository.
    let consumer = ClientCredentials::consumer(creds.consumer_key.clone(), creds.consumer_secret);
    assert!(request_token(&base, &consumer).await.token.is_some());
    cluster.shutdown().await;
}

#[tokio::test]
async fn stopped_node_refuses_connections_until_restarted() {
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let addr = cluster.node_addrs()[1];
    let health = format!("{}/cqweb/health", cluster.node_urls()[1]);
    let http = client();
    assert_eq!(
        http.send(Method::GET, &health, &[], None)
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    cluster.stop_node(1).await.unwrap();
    assert!(!cluster.is_running(1));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // A pooled keep-alive connection died with the node too.
    assert!(http.send(Method::GET, &health, &[], None).await.is_err());
    assert!(cluster.register_key_on(1, "x", "y").is_err());

    cluster.restart_node(1).await.unwrap();
    let reply = http.send(Method::GET, &health, &[], None).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "ok");
    assert_eq!(reply.served_by().as_deref(), Some("lbcq_2"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn discovery_urls_follow_host_and_forwarded_proto() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let url = format!("{}/cqweb/oslc/repo/{DB}/discovery", cluster.node_urls()[0]);
    let reply = client()
        .send(
            Method::GET,
            &url,
            &[
                (http::header::HOST, "lbcq.example:8443".into()),
                ("x-forwarded-proto".parse().unwrap(), "https".into()),
            ],
            None,
        )
        .await
        .unwrap();
    let d: Discovery = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        d.oauth_request_token_url,
        "https://lbcq.example:8443/cqweb/oauth-request-token"
    );
    assert_eq!(
        d.resource_url,
        format!("https://lbcq.example:8443/cqweb/oslc/repo/{DB}/resource/")
    );
    let own = discover(&cluster.node_urls()[0]).await;
    assert_eq!(
        own.login_url,
        format!("{}/cqweb/login", cluster.node_urls()[0])
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn login_sets_a_websphere_session_cookie_with_the_clone_id() {
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let d = discover(&cluster.node_urls()[1]).await;
    let mut b = browser();
    let reply = b
        .post_form(
            &d.login_url,
            &[
                ("username".into(), USER.into()),
                ("password".into(), USER_PASSWORD.into()),
            ],
        )
        .await
        .unwrap();
    let cookie = reply.headers[SET_COOKIE].to_str().unwrap();
    let clone_id = &cluster.clone_ids()[1];
    assert!(cookie.starts_with("JSESSIONID="), "{cookie}");
    assert!(
        cookie.contains(&format!(":{clone_id}; Path=/cqweb; HttpOnly")),
        "{cookie}"
    );
    assert_eq!(clone_id.len(), 8);

    let failure = browser()
        .login(&d.login_url, USER, &Secret::new("wrong"))
        .await
        .unwrap_err();
    assert_eq!(failure.status, Some(401));
    assert_eq!(failure.oauth_problem, None);
    cluster.shutdown().await;
}

#[tokio::test]
async fn report_attributes_each_step_to_the_node_that_served_it() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let report = run_flows(
        FlowOptions::new(&cluster.node_urls()[2])
            .flows(2)
            .concurrency(2),
    )
    .await
    .unwrap();
    assert_eq!(report.failed(), 0, "{}", report.render_table());
    for flow in &report.flows {
        assert_eq!(
            flow.outcome(Step::Read3),
            Some(&StepOutcome::Ok {
                served_by: Some("lbcq_3".into())
            })
        );
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn unreachable_target_fails_every_flow_at_discovery() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let target = cluster.node_urls()[0].clone();
    cluster.stop_node(0).await.unwrap();
    let report = run_flows(FlowOptions::new(&target).flows(3).concurrency(2))
        .await
        .unwrap();
    assert_eq!((report.passed(), report.failed()), (0, 3));
    let discovery = report.step(Step::Discovery);
    assert_eq!(discovery.failed, 3);
    assert_eq!(report.step(Step::Read3).skipped, 3);
    assert!(report.render_table().ends_with("0 passed, 3 failed"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn node_speaks_http2_with_prior_knowledge() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let uri = format!("{}/cqweb/health", cluster.node_urls()[0]);
    let resp = client.get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["x-served-by"], "lbcq_1");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    cluster.shutdown().await;
}

//! The OAuth 2 / OpenID Connect stand-in (issue 13): every grant against one node, the same flows failing
//! behind a plain round-robin balancer, and through tokenroute with `presets = ["oauth2"]` (client ids in
//! `Authorization: Basic`, revocation, introspection, device and user codes, PAR request URIs, RFC 7592 client
//! URIs, id_token hints).

use std::time::Duration;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use tokenroute::sim::consumer::{tls_client_config, HttpClient, Reply};
use tokenroute::sim::oauth2::wire::{self, error, grant};
use tokenroute::sim::oauth2::{
    basic, run_flows, AuthMethod, Cluster, FlowOptions, FlowReport, Grant, Step,
};

use crate::support::*;

const ALL_GRANTS: [Grant; 3] = [Grant::Code, Grant::ClientCredentials, Grant::Device];
const BOTH_AUTH: [AuthMethod; 2] = [AuthMethod::Basic, AuthMethod::Post];

/// Config fronting every node, health-checked on `/health`, with `routing` lines appended.
fn front(cluster: &Cluster, routing: &str) -> String {
    let nodes: Vec<(String, String)> = cluster
        .node_names()
        .into_iter()
        .zip(cluster.node_urls())
        .collect();
    let refs: Vec<(&str, String)> = nodes.iter().map(|(n, u)| (n.as_str(), u.clone())).collect();
    config_text(
        &refs,
        &format!("[health]\npath = \"/health\"\n\n[routing]\n{routing}"),
    )
}

const PLAIN: &str = "token_aware = false\npresets = [\"oauth2\"]\n";
const TOKENROUTE: &str = "presets = [\"oauth2\"]\n";

async fn flows(opts: FlowOptions) -> FlowReport {
    run_flows(opts).await.expect("flows start")
}

fn assert_all_passed(report: &FlowReport) {
    assert_eq!(report.failed(), 0, "\n{}", report.render_table());
}

fn http() -> HttpClient {
    HttpClient::new(tls_client_config(None).unwrap(), Duration::from_secs(10))
}

fn oauth_error(reply: &Reply) -> String {
    serde_json::from_slice::<wire::ErrorBody>(&reply.body)
        .map(|e| e.error)
        .unwrap_or_else(|_| format!("no RFC 6749 error in {:?}", reply.text()))
}

/// Registers a client for `grant_types` with `method` directly on the node at `url`.
async fn register(url: &str, method: AuthMethod, grant_types: &[&str]) -> wire::ClientInformation {
    let metadata = wire::ClientMetadata {
        redirect_uris: vec!["http://client.invalid/cb".into()],
        token_endpoint_auth_method: Some(method.as_str().into()),
        grant_types: grant_types.iter().map(|g| g.to_string()).collect(),
        ..wire::ClientMetadata::default()
    };
    let reply = http()
        .send(
            Method::POST,
            &format!("{url}{}", wire::REGISTER),
            &[],
            Some((
                "application/json",
                serde_json::to_string(&metadata).unwrap(),
            )),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    serde_json::from_slice(&reply.body).unwrap()
}

/// `POST {url}{path}` with a form body and optional extra headers.
async fn post_form(
    url: &str,
    path: &str,
    headers: &[(http::HeaderName, String)],
    form: &str,
) -> Reply {
    http()
        .send(
            Method::POST,
            &format!("{url}{path}"),
            headers,
            Some(("application/x-www-form-urlencoded", form.to_string())),
        )
        .await
        .unwrap()
}

fn basic_header(client: &wire::ClientInformation) -> [(http::HeaderName, String); 1] {
    [(
        AUTHORIZATION,
        basic::encode(&client.client_id, &client.client_secret),
    )]
}

fn encode(v: &str) -> String {
    tokenroute::oauth::percent::encode(v)
}

// ---------------------------------------------------------------------------------------------------------
// One node, directly.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grant_passes_against_one_node_with_both_client_auth_methods() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let url = &cluster.node_urls()[0];
    for par in [false, true] {
        let report = flows(
            FlowOptions::new(url.clone())
                .flows(12)
                .concurrency(4)
                .par(par),
        )
        .await;
        assert_all_passed(&report);
        for (step, n) in [
            (Step::CodeExchange, 4),
            (Step::ClientCredentials, 4),
            (Step::DeviceToken, 4),
            (Step::Introspect, 12),
            (Step::IntrospectRevoked, 12),
            (Step::ReadClient, 12),
            (Step::EndSession, 4),
            (Step::Par, if par { 4 } else { 0 }),
        ] {
            assert_eq!(report.step(step).ok, n, "{step:?} (par {par})");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_that_need_form_encoding_authenticate_with_basic() {
    let cluster = Cluster::builder()
        .nodes(1)
        .configure(|c| c.client_id_prefix = "urn:client:".into())
        .start()
        .await
        .unwrap();
    let report = flows(
        FlowOptions::new(cluster.node_urls()[0].clone())
            .flows(6)
            .auth(&[AuthMethod::Basic]),
    )
    .await;
    assert_all_passed(&report);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_issued_a_credential_answers_as_the_rfcs_say() {
    let cluster = Cluster::builder().nodes(2).start().await.unwrap();
    let (one, two) = (&cluster.node_urls()[0], &cluster.node_urls()[1]);
    let stranger = register(one, AuthMethod::Basic, &[grant::CLIENT_CREDENTIALS]).await;
    let local = register(two, AuthMethod::Post, &[grant::CLIENT_CREDENTIALS]).await;
    let token: wire::TokenResponse = {
        let r = post_form(
            one,
            wire::TOKEN,
            &basic_header(&stranger),
            "grant_type=client_credentials",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    };

    // RFC 6749 §5.2: an unknown client with Basic is 401 with a Basic challenge; in the body it is 400.
    let r = post_form(
        two,
        wire::TOKEN,
        &basic_header(&stranger),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(
        (r.status, oauth_error(&r).as_str()),
        (StatusCode::UNAUTHORIZED, error::INVALID_CLIENT)
    );
    assert!(r.headers[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    assert_eq!(r.served_by().as_deref(), Some("as_2"));
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        encode(&stranger.client_id),
        encode(&stranger.client_secret)
    );
    let r = post_form(two, wire::TOKEN, &[], &body).await;
    assert_eq!(
        (r.status, oauth_error(&r).as_str()),
        (StatusCode::BAD_REQUEST, error::INVALID_CLIENT)
    );

    // RFC 7009 and RFC 7662: a token this node never issued is not an error.
    let local_auth = format!(
        "client_id={}&client_secret={}",
        encode(&local.client_id),
        encode(&local.client_secret)
    );
    let token_param = format!("token={}&{local_auth}", encode(&token.access_token));
    let r = post_form(two, wire::REVOKE, &[], &token_param).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = post_form(two, wire::INTROSPECT, &[], &token_param).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, r#"{"active":false}"#)
    );

    // RFC 6750 §3.1: a bearer token unknown to the resource server.
    let bearer = [(AUTHORIZATION, format!("Bearer {}", token.access_token))];
    let r = http()
        .send(
            Method::GET,
            &format!("{two}{}", wire::USERINFO),
            &bearer,
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));

    // RFC 7592: the client's configuration URI on a node that never registered it.
    let management = [(
        AUTHORIZATION,
        format!("Bearer {}", stranger.registration_access_token),
    )];
    let elsewhere = stranger.registration_client_uri.replace(one, two);
    let r = http()
        .send(Method::GET, &elsewhere, &management, None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_clients_are_updated_and_deleted_with_their_registration_token() {
    let cluster = Cluster::builder().nodes(1).start().await.unwrap();
    let url = &cluster.node_urls()[0];
    let client = register(url, AuthMethod::Post, &[grant::CLIENT_CREDENTIALS]).await;
    let auth = [(
        AUTHORIZATION,
        format!("Bearer {}", client.registration_access_token),
    )];
    let mut update = serde_json::to_value(&client).unwrap();
    update["client_name"] = "renamed".into();
    let r = http()
        .send(
            Method::PUT,
            &client.registration_client_uri,
            &auth,
            Some(("application/json", update.to_string())),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let read: wire::ClientInformation = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(read.metadata.client_name.as_deref(), Some("renamed"));

    let wrong = [(AUTHORIZATION, "Bearer not-the-token".to_string())];
    let r = http()
        .send(
            Method::DELETE,
            &client.registration_client_uri,
            &wrong,
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = http()
        .send(Method::DELETE, &client.registration_client_uri, &auth, None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(cluster.node(0).unwrap().clients(), 0);
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        encode(&client.client_id),
        encode(&client.client_secret)
    );
    let r = post_form(url, wire::TOKEN, &[], &form).await;
    assert_eq!(oauth_error(&r), error::INVALID_CLIENT);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_polls_faster_than_the_interval_are_told_to_slow_down() {
    let cluster = Cluster::builder()
        .nodes(1)
        .configure(|c| c.device_poll_interval = Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let url = &cluster.node_urls()[0];
    let client = register(url, AuthMethod::Basic, &[grant::DEVICE_CODE]).await;
    let auth = basic_header(&client);
    let r = post_form(url, wire::DEVICE_AUTHORIZATION, &auth, "scope=openid").await;
    let device: wire::DeviceAuthorization = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(device.interval, 60);
    let poll = format!(
        "grant_type={}&device_code={}",
        encode(grant::DEVICE_CODE),
        device.device_code
    );
    let first = post_form(url, wire::TOKEN, &auth, &poll).await;
    assert_eq!(oauth_error(&first), error::AUTHORIZATION_PENDING);
    let second = post_form(url, wire::TOKEN, &auth, &poll).await;
    assert_eq!(oauth_error(&second), error::SLOW_DOWN);
    cluster.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------
// Three nodes behind a plain round-robin balancer.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grant_fails_behind_a_plain_round_robin_balancer() {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front(&cluster, PLAIN)).await;
    // Every failure is a node answering, as the RFCs say, about a credential it never issued.
    let expected = [
        "400 invalid_client",
        "401 invalid_client",
        "400 invalid_grant",
        "401 invalid_token",
        "400 unknown or expired user code",
    ];
    for core_only in [true, false] {
        let mut opts = FlowOptions::new(proxy.url()).flows(30).concurrency(6);
        if core_only {
            opts = opts.core_only();
        }
        let report = flows(opts).await;
        eprintln!("{}", report.render_table());
        for grant in ALL_GRANTS {
            let failed = report
                .flows
                .iter()
                .filter(|f| f.grant == grant && !f.passed())
                .count();
            assert!(
                failed > 0,
                "no {grant:?} flow failed:\n{}",
                report.render_table()
            );
        }
        for reason in report.reasons().keys() {
            assert!(
                expected.contains(&reason.as_str()),
                "unexpected reason {reason}:\n{}",
                report.render_table()
            );
        }
    }
    proxy.shutdown().await;
    cluster.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------
// Three nodes behind tokenroute with `presets = ["oauth2"]`.

async fn through_tokenroute(opts: impl FnOnce(String) -> FlowOptions) -> FlowReport {
    let cluster = Cluster::builder().nodes(3).start().await.unwrap();
    let proxy = spawn_proxy(&front(&cluster, TOKENROUTE)).await;
    let report = flows(opts(proxy.url())).await;
    eprintln!("{}", report.render_table());
    proxy.shutdown().await;
    cluster.shutdown().await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flows_pass_through_tokenroute_with_either_client_auth_method() {
    // The code, refresh token and bearer token route to their issuer whatever the client authentication.
    let report = through_tokenroute(|url| {
        FlowOptions::new(url)
            .core_only()
            .grants(&[Grant::Code])
            .flows(60)
            .concurrency(8)
    })
    .await;
    assert_all_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_with_client_secret_post_pass_through_tokenroute() {
    let report = through_tokenroute(|url| {
        FlowOptions::new(url)
            .core_only()
            .grants(&[Grant::ClientCredentials])
            .auth(&[AuthMethod::Post])
            .flows(30)
            .concurrency(6)
    })
    .await;
    assert_all_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_with_client_secret_basic_pass_through_tokenroute() {
    let report = through_tokenroute(|url| {
        FlowOptions::new(url)
            .core_only()
            .grants(&[Grant::ClientCredentials])
            .auth(&[AuthMethod::Basic])
            .flows(30)
            .concurrency(6)
    })
    .await;
    assert_all_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flows_pass_through_tokenroute() {
    let report = through_tokenroute(|url| {
        FlowOptions::new(url)
            .core_only()
            .grants(&[Grant::Device])
            .flows(30)
            .concurrency(6)
    })
    .await;
    assert_all_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flows_with_par_client_read_introspection_and_end_session_pass_through_tokenroute() {
    let report = through_tokenroute(|url| {
        FlowOptions::new(url)
            .grants(&[Grant::Code])
            .par(true)
            .flows(30)
            .concurrency(6)
    })
    .await;
    assert_all_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_flows_of_every_grant_pass_through_tokenroute_and_register_on_every_node() {
    // Issue 13's acceptance: every grant, both client authentications, with and without PAR, sequential
    // and concurrent, 0 failed flows in 240, and new clients registered on every node.
    for (par, concurrency) in [(false, 1), (true, 8)] {
        let report = through_tokenroute(|url| {
            FlowOptions::new(url)
                .grants(&ALL_GRANTS)
                .auth(&BOTH_AUTH)
                .par(par)
                .flows(120)
                .concurrency(concurrency)
        })
        .await;
        assert_all_passed(&report);
        assert_eq!(
            report.step(Step::Register).nodes.len(),
            3,
            "\n{}",
            report.render_table()
        );
    }
}

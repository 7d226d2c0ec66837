//! Response learning (`oauth::learn_from_response`): the work the proxy does on a backend answer before it
//! can record who issued a credential.
//!
//! Compared: a request-token answer (form body `oauth_token=..&oauth_token_secret=..`), a consumer
//! registration answer (JSON `{"key": ..}` among the other fields a provider returns), and the floor every
//! response pays — an ordinary answer of a path with no role, with and without a session `Set-Cookie`.
//!
//! Rejected alternative, measured beside it: parsing the registration JSON into a `serde_json::Value` tree
//! and then reading `key`, instead of deserialising straight into a one-field struct that skips the rest.
//! A registration answer is small, so the question is only whether the typed form is worth its code.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokenroute::oauth::{learn_from_response, EndpointRole, Preset, Rules};

const REQUEST_TOKEN_BODY: &[u8] = b"oauth_token=9c1d7e3b5a2f4c8e0d6b1a3f7e9c2d5b\
&oauth_token_secret=2b7f0c9e4a1d6b3f8e5c2a7d0b9f4e1c&oauth_callback_confirmed=true";

const REGISTRATION_BODY: &[u8] = br#"{"key":"3f6c1e0a9b7d4e2f8a1c5b9d0e7f3a2b","name":"rtc-ccm-friend","trusted":false,"provisional":true,"created":"2024-06-01T10:00:00Z","links":{"approve":"/cqweb/oauth-approve-consumer?key=3f6c1e0a9b7d4e2f8a1c5b9d0e7f3a2b"}}"#;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(
        "server",
        HeaderValue::from_static("WebSphere Application Server"),
    );
    map.insert("cache-control", HeaderValue::from_static("no-store"));
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn learning(c: &mut Criterion) {
    let rules = Rules::from_presets(&[Preset::Oslc]);
    let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
    let json = headers(&[("content-type", "application/json; charset=utf-8")]);
    let plain = headers(&[("content-type", "application/rdf+xml")]);
    let with_cookie = headers(&[
        ("content-type", "application/rdf+xml"),
        (
            "set-cookie",
            "JSESSIONID=0000Xk2b9QzT1mNwq7Lr3dEaF4c:lbcq_1; Path=/cqweb; HttpOnly; Secure",
        ),
    ]);
    let learn = |role, headers: &HeaderMap, body: Option<&[u8]>| {
        learn_from_response(
            role,
            &Method::POST,
            None,
            StatusCode::OK,
            headers,
            body,
            &rules,
        )
    };

    // Sanity: each case learns what it should.
    let rt = Some(EndpointRole::RequestToken);
    let reg = Some(EndpointRole::ConsumerRegistration);
    assert_eq!(
        learn(rt, &form, Some(REQUEST_TOKEN_BODY)).credentials.len(),
        1
    );
    assert!(learn(reg, &json, Some(REGISTRATION_BODY))
        .key_event
        .is_some());
    assert!(learn(None, &plain, None).is_empty());
    assert_eq!(learn(None, &with_cookie, None).credentials.len(), 1);

    let mut group = c.benchmark_group("learn_from_response");
    group.throughput(Throughput::Elements(1));
    group.bench_function("request_token_form", |b| {
        b.iter(|| learn(rt, black_box(&form), Some(black_box(REQUEST_TOKEN_BODY))))
    });
    group.bench_function("registration_json", |b| {
        b.iter(|| learn(reg, black_box(&json), Some(black_box(REGISTRATION_BODY))))
    });
    group.bench_function("no_role", |b| {
        b.iter(|| learn(None, black_box(&plain), None))
    });
    group.bench_function("no_role_session_cookie", |b| {
        b.iter(|| learn(None, black_box(&with_cookie), None))
    });
    group.bench_function("rejected/registration_json_value_tree", |b| {
        b.iter(|| {
            let value: serde_json::Value =
                serde_json::from_slice(black_box(REGISTRATION_BODY)).unwrap_or_default();
            value.get("key").and_then(|k| k.as_str()).map(str::to_owned)
        })
    });
    group.finish();
}

criterion_group!(benches, learning);
criterion_main!(benches);

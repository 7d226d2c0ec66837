//! Credential extraction from a request (`oauth::extract_request`), the per-request work token awareness
//! adds before any table lookup.
//!
//! Compared:
//! - a signed resource read carrying a full RFC 5849 `Authorization: OAuth realm=.., oauth_consumer_key=..,
//!   oauth_token=.., oauth_signature_method=.., oauth_timestamp=.., oauth_nonce=.., oauth_version=..,
//!   oauth_signature=..` header among ordinary browser-ish headers;
//! - the same parameters in a form body of the access-token endpoint (the proxy buffers such bodies);
//! - a request with no credentials at all: the floor every plain request pays once token awareness is on.
//!
//! Rejected alternative, measured beside it: decode every form parameter into a `HashMap<String, String>`
//! first and then look the interesting names up. It is the obvious way to write it; the extractor instead
//! keeps only the parameters it routes on, and the difference shows what that buys per request.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::request::Parts;
use http::Request;
use tokenroute::oauth::{extract_request, percent, Preset, Rules};

const AUTHORIZATION: &str = concat!(
    r#"OAuth realm="cqweb", oauth_consumer_key="3f6c1e0a9b7d4e2f8a1c5b9d0e7f3a2b", "#,
    r#"oauth_token="9c1d7e3b5a2f4c8e0d6b1a3f7e9c2d5b", oauth_signature_method="HMAC-SHA1", "#,
    r#"oauth_timestamp="1717171717", oauth_nonce="a83f9b1c7d2e4f60", oauth_version="1.0", "#,
    r#"oauth_signature="tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D""#
);

const FORM_BODY: &[u8] = b"oauth_consumer_key=3f6c1e0a9b7d4e2f8a1c5b9d0e7f3a2b\
&oauth_token=9c1d7e3b5a2f4c8e0d6b1a3f7e9c2d5b&oauth_signature_method=HMAC-SHA1\
&oauth_timestamp=1717171717&oauth_nonce=a83f9b1c7d2e4f60&oauth_version=1.0\
&oauth_verifier=5e8a1f3c&oauth_signature=tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D";

fn parts(method: &str, uri: &str, extra: &[(&str, &str)]) -> Parts {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "lbcq.example.com:9443")
        .header("user-agent", "Jazz/6.0.6 (RTC OSLC consumer)")
        .header("accept", "application/rdf+xml, application/xml;q=0.9")
        .header("accept-encoding", "gzip")
        .header("oslc-core-version", "2.0");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("valid request").into_parts().0
}

fn extraction(c: &mut Criterion) {
    let rules = Rules::from_presets(&[Preset::Oslc]);
    let resource = "/cqweb/oslc/repo/cqschema/db/SAMPL/record/?rcm.name=Defect&id=16777224";

    let header = parts("GET", resource, &[("authorization", AUTHORIZATION)]);
    let body = parts(
        "POST",
        "/cqweb/oauth-access-token",
        &[("content-type", "application/x-www-form-urlencoded")],
    );
    let plain = parts("GET", resource, &[]);

    // Sanity: each case finds what it should, so the numbers below are for real work.
    assert_eq!(extract_request(&header, None, &rules).candidates.len(), 2);
    assert_eq!(
        extract_request(&body, Some(FORM_BODY), &rules)
            .candidates
            .len(),
        3
    );
    assert!(extract_request(&plain, None, &rules).is_empty());

    let mut group = c.benchmark_group("extract_request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("authorization_header", |b| {
        b.iter(|| extract_request(black_box(&header), None, &rules))
    });
    group.bench_function("form_body", |b| {
        b.iter(|| extract_request(black_box(&body), Some(black_box(FORM_BODY)), &rules))
    });
    group.bench_function("no_credentials", |b| {
        b.iter(|| extract_request(black_box(&plain), None, &rules))
    });
    group.bench_function("rejected/form_body_into_hashmap", |b| {
        b.iter(|| {
            let all: HashMap<String, String> = percent::parse_form(black_box(FORM_BODY))
                .unwrap_or_default()
                .into_iter()
                .collect();
            let found = ["oauth_consumer_key", "oauth_token", "oauth_verifier"]
                .iter()
                .filter_map(|name| all.get(*name).cloned())
                .count();
            black_box(found)
        })
    });
    group.finish();
}

criterion_group!(benches, extraction);
criterion_main!(benches);

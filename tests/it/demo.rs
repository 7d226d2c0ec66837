//! `tokenroute demo`, run in-process: the plain balancer fails flows, tokenroute completes every one, for both
//! protocols.

use tokenroute::demo::{self, DemoArgs, Protocol};
use tokenroute::sim::consumer::ParamMode;

fn args(protocol: Protocol) -> DemoArgs {
    DemoArgs {
        protocol,
        flows: 12,
        concurrency: 4,
        params: ParamMode::Mixed,
        strict_approval: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth2_demo_shows_a_plain_balancer_failing_and_tokenroute_passing() {
    let outcome = demo::run(&args(Protocol::OAuth2)).await.unwrap();
    let text = demo::render(&outcome);
    assert!(outcome.demonstrated(), "{text}");
    assert_eq!(outcome.protocol, Protocol::OAuth2);
    assert_eq!(
        (outcome.tokenroute.passed, outcome.tokenroute.failed),
        (12, 0),
        "{text}"
    );
    // Every OAuth 2 step is in the table, and the failures are the RFCs' answers for unknown credentials.
    for step in [
        "register",
        "code exchange",
        "client credentials",
        "device token",
        "introspect revoked",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(step)),
            "no {step} row:\n{text}"
        );
    }
    assert!(
        outcome
            .plain
            .reasons
            .keys()
            .any(|r| ["invalid_client", "invalid_grant", "invalid_token"]
                .iter()
                .any(|e| r.contains(e))),
        "{text}"
    );
    assert!(text.contains("tokenroute completes every flow"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth1_demo_is_still_the_default_and_still_shows_the_technote() {
    let outcome = demo::run(&args(Protocol::OAuth1)).await.unwrap();
    let text = demo::render(&outcome);
    assert!(outcome.demonstrated(), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("request token")),
        "{text}"
    );
}

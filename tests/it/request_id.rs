//! The request id: the node receives, as `X-Request-Id`, the id the access log prints for the same request,
//! so one request can be followed across the proxy's and the node's logs.

use std::time::Duration;

use crate::support::process::spawn_binary_with_env;
use crate::support::recording::RecordingNode;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_receives_the_request_id_the_access_log_prints_and_never_a_client_id_that_is_not_plain(
) {
    let node = RecordingNode::start().await;
    let dir = std::env::temp_dir().join(format!("tokenroute-request-id-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    let text = config_text(&[("n1", node.url())], "[log]\nformat = \"json\"\n");
    std::fs::write(&path, text).unwrap();
    let running = spawn_binary_with_env(&path, &[("RUST_LOG", None)]);

    let too_long = "a".repeat(65);
    // (path, the client's X-Request-Id fields, the id the node must see when the client's is kept)
    let cases: [(&str, Vec<&str>, Option<&str>); 6] = [
        ("/plain", vec!["req-7.b:Z_9"], Some("req-7.b:Z_9")),
        ("/absent", vec![], None),
        ("/too-long", vec![&too_long], None),
        ("/control", vec!["abc\tdef"], None),
        ("/space", vec!["abc def"], None),
        // Two fields: the first is the id, and the node sees it once.
        ("/twice", vec!["first", "second"], Some("first")),
    ];
    for (target, ids, _) in &cases {
        let fields: String = ids
            .iter()
            .map(|id| format!("X-Request-Id: {id}\r\n"))
            .collect();
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: lbcq\r\n{fields}Connection: close\r\n\r\n");
        let answer = raw_exchange(running.addr.parse().unwrap(), request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{target}: {answer}");
    }

    let (recorded, _) = node.take();
    let mut logged = Vec::new();
    eventually(
        "every access line is written",
        Duration::from_secs(20),
        async || {
            logged = running
                .log_lines()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["target"] == "tokenroute::access")
                .collect();
            logged.len() >= cases.len()
        },
    )
    .await;
    for (target, ids, kept) in &cases {
        let request = recorded
            .iter()
            .find(|r| r.target == *target)
            .unwrap_or_else(|| panic!("the node received {target}"));
        let sent: Vec<&str> = request
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("x-request-id"))
            .map(|(_, value)| value.as_str())
            .collect();
        let [sent] = sent[..] else {
            panic!("{target}: the node sees exactly one X-Request-Id, got {sent:?}")
        };
        let line = logged
            .iter()
            .find(|v| v["path"] == *target)
            .unwrap_or_else(|| panic!("an access line for {target}"));
        assert_eq!(line["request_id"], sent, "{target}: {line}");
        match kept {
            Some(id) => assert_eq!(sent, *id, "{target}"),
            None => {
                assert!(!ids.contains(&sent), "{target}: {sent:?} was replaced");
                assert!(
                    sent.len() == 16 && sent.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{target}: a fresh id is 16 hex digits, got {sent:?}"
                );
            }
        }
    }
}

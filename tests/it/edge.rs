//! Hardened at the edge: a raw-socket corpus of framing and smuggling attempts, hop-by-hop fields in both
//! directions, forwarding-header spoofing and the `Host` rules, each checked against the exact bytes a
//! recording node received; then limits and a stalled request body.
//!
//! The invariant behind every case: the node parses exactly the requests the proxy meant to send (the list of
//! targets in `expect_node_requests`), never a second request hidden in a first.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::recording::{Recorded, RecordingNode};
use crate::support::*;

/// One raw exchange and what must come of it.
struct Case {
    name: &'static str,
    /// What the client writes, in one go.
    bytes: Vec<u8>,
    /// The status of every response the client gets, in order (100 Continue included).
    expect_status: &'static [u16],
    /// The target of every request the node parses, in order: its length is the request count.
    expect_node_requests: &'static [&'static str],
    /// Byte strings every request the node parsed contains (exact case).
    node_sees: &'static [&'static str],
    /// Strings no request the node parsed contains (case-insensitive).
    node_never: &'static [&'static str],
}

fn case(
    name: &'static str,
    bytes: impl Into<Vec<u8>>,
    expect_status: &'static [u16],
    expect_node_requests: &'static [&'static str],
) -> Case {
    Case {
        name,
        bytes: bytes.into(),
        expect_status,
        expect_node_requests,
        node_sees: &[],
        node_never: &[],
    }
}

impl Case {
    fn sees(mut self, what: &'static [&'static str]) -> Case {
        self.node_sees = what;
        self
    }
    fn never(mut self, what: &'static [&'static str]) -> Case {
        self.node_never = what;
        self
    }
}

/// The statuses of the responses in `raw` (every status line at the start of a line).
fn statuses(raw: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    // Bodies here never contain "HTTP/1.1 ": the node answers "ok", the proxy "NNN Reason: message".
    for i in 0..raw.len() {
        if raw[i..].starts_with(b"HTTP/1.1 ") {
            if let Some(code) = raw
                .get(i + 9..i + 12)
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse().ok())
            {
                out.push(code);
            }
        }
    }
    out
}

/// Writes `bytes` and reads until the proxy closes (bounded by a deadline).
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // A proxy that refuses early may close before reading everything: that write error is fine.
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    out
}

const CLOSE: &str = "Connection: close\r\n";

/// `POST /{name}` with `headers` (CRLF-terminated lines) and `body`, closing the connection.
fn post(path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: lbcq\r\n{headers}{CLOSE}\r\n{body}").into_bytes()
}

fn get(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\n{headers}{CLOSE}\r\n").into_bytes()
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: lbcq\r\n\r\n";

fn corpus() -> Vec<Case> {
    let at_cap: &'static str = Box::leak(format!("/{}", "a".repeat(8191)).into_boxed_str());
    let at_cap_list: &'static [&'static str] = Box::leak(vec![at_cap].into_boxed_slice());
    let smuggle_chunked = format!("0\r\n\r\n{SMUGGLED}");
    vec![
        // --- Content-Length / Transfer-Encoding conflicts (RFC 9112 §6.3) ---
        // hyper drops a Content-Length that comes with Transfer-Encoding and closes the connection after the
        // answer (RFC 9112 §6.3 allows forwarding it so): what follows the chunked body is discarded.
        case(
            "te_overrides_cl_and_what_follows_is_discarded",
            post(
                "/c",
                &format!(
                    "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                    smuggle_chunked.len()
                ),
                &smuggle_chunked,
            ),
            &[200],
            &["/c"],
        ),
        case(
            "te_then_cl_is_read_as_chunked_and_what_follows_is_discarded",
            post(
                "/c",
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                &smuggle_chunked,
            ),
            &[200],
            &["/c"],
        )
        .never(&["content-length: 3"]),
        case(
            "two_different_content_lengths_are_refused",
            post("/c", "Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            &[400],
            &[],
        ),
        case(
            "two_equal_content_lengths_reach_the_node_as_one",
            post("/c", "Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            &[200],
            &["/c"],
        )
        .sees(&["content-length: 5\r\n"]),
        case(
            "content_length_list_is_refused",
            post("/c", "Content-Length: 5, 6\r\n", "hello!"),
            &[400],
            &[],
        ),
        case(
            "negative_content_length_is_refused",
            post("/c", "Content-Length: -1\r\n", "x"),
            &[400],
            &[],
        ),
        case(
            "signed_content_length_is_refused",
            post("/c", "Content-Length: +5\r\n", "hello"),
            &[400],
            &[],
        ),
        case(
            "hex_content_length_is_refused",
            post("/c", "Content-Length: 0x5\r\n", "hello"),
            &[400],
            &[],
        ),
        case(
            "overflowing_content_length_is_refused",
            post("/c", "Content-Length: 99999999999999999999999\r\n", "x"),
            &[400],
            &[],
        ),
        case(
            "a_body_beyond_content_length_is_the_next_request_not_part_of_this_one",
            format!(
                "POST /c HTTP/1.1\r\nHost: lbcq\r\nContent-Length: 5\r\n\r\nhelloGET /second HTTP/1.1\r\nHost: lbcq\r\n{CLOSE}\r\n"
            ),
            &[200, 200],
            &["/c", "/second"],
        ),
        case(
            "a_request_inside_a_body_stays_in_the_body",
            post("/c", &format!("Content-Length: {}\r\n", SMUGGLED.len()), SMUGGLED),
            &[200],
            &["/c"],
        ),
        // --- Transfer codings (RFC 9112 §6.1, §7) ---
        case(
            "gzip_then_chunked_is_not_implemented",
            post("/c", "Transfer-Encoding: gzip, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            &[501],
            &[],
        ),
        case(
            "gzip_and_chunked_on_two_lines_is_not_implemented",
            post(
                "/c",
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            &[501],
            &[],
        ),
        case(
            "chunked_not_last_is_refused",
            post("/c", "Transfer-Encoding: chunked, gzip\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "identity_coding_is_refused",
            post("/c", "Transfer-Encoding: identity\r\n", "hello"),
            &[400],
            &[],
        ),
        case(
            "chunked_twice_is_refused",
            post("/c", "Transfer-Encoding: chunked, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "xchunked_is_refused",
            post("/c", "Transfer-Encoding: xchunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            &[400],
            &[],
        ),
        case(
            "space_before_colon_in_transfer_encoding_is_refused",
            post("/c", "Transfer-Encoding : chunked\r\n", &smuggle_chunked),
            &[400],
            &[],
        ),
        case(
            "transfer_encoding_in_http10_is_refused",
            "POST /c HTTP/1.0\r\nHost: lbcq\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &[400],
            &[],
        ),
        case(
            "tab_before_chunked_is_plain_chunked",
            post("/c", "Transfer-Encoding:\tchunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            &[200],
            &["/c"],
        )
        .sees(&["hello"]),
        case(
            "upper_case_chunked_is_chunked",
            post("/c", "Transfer-Encoding: CHUNKED\r\n", "5\r\nhello\r\n0\r\n\r\n"),
            &[200],
            &["/c"],
        )
        .sees(&["hello"]),
        // --- Chunk sizes and extensions ---
        case(
            "chunk_extensions_are_dropped_in_re_framing",
            post(
                "/c",
                "Transfer-Encoding: chunked\r\n",
                "5;ext=1\r\nhello\r\n6;a=\"b c\"\r\n world\r\n0\r\n\r\n",
            ),
            &[200],
            &["/c"],
        )
        .never(&["ext=1", "a=\""]),
        case(
            "leading_zeros_in_a_chunk_size_are_read_as_hex",
            post("/c", "Transfer-Encoding: chunked\r\n", "0005\r\nhello\r\n0\r\n\r\n"),
            &[200],
            &["/c"],
        )
        .sees(&["hello"]),
        case(
            "upper_case_hex_chunk_size",
            post(
                "/c",
                "Transfer-Encoding: chunked\r\n",
                "A\r\n0123456789\r\n0\r\n\r\n",
            ),
            &[200],
            &["/c"],
        )
        .sees(&["0123456789"]),
        case(
            "overflowing_chunk_size_is_refused",
            post(
                "/c",
                "Transfer-Encoding: chunked\r\n",
                &format!("FFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            &[400],
            &[],
        ),
        case(
            "negative_chunk_size_is_refused",
            post("/c", "Transfer-Encoding: chunked\r\n", &format!("-5\r\nhello\r\n0\r\n\r\n{SMUGGLED}")),
            &[400],
            &[],
        ),
        case(
            "chunk_data_longer_than_its_size_is_refused",
            post(
                "/c",
                "Transfer-Encoding: chunked\r\n",
                &format!("3\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            &[400],
            &[],
        ),
        case(
            "a_chunked_body_ends_at_the_last_chunk_and_what_follows_is_the_next_request",
            format!(
                "POST /c HTTP/1.1\r\nHost: lbcq\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: lbcq\r\n{CLOSE}\r\n"
            ),
            &[200, 200],
            &["/c", "/second"],
        ),
        case(
            "trailers_are_not_forwarded_as_headers",
            post(
                "/c",
                "Transfer-Encoding: chunked\r\n",
                "5\r\nhello\r\n0\r\nX-Trailer-Host: evil\r\n\r\n",
            ),
            &[200],
            &["/c"],
        )
        .never(&["x-trailer-host: evil\r\n\r\n"]),
        // --- Line endings, folding, control characters (RFC 9112 §2.2, §5) ---
        case(
            "bare_lf_line_endings_are_re_framed_with_crlf",
            "GET /c HTTP/1.1\nHost: lbcq\nConnection: close\n\n",
            &[200],
            &["/c"],
        )
        .sees(&["GET /c HTTP/1.1\r\n"]),
        case(
            "bare_cr_in_a_value_is_refused",
            get("/c", "Host: lbcq\r\nX-A: a\rb\r\n"),
            &[400],
            &[],
        ),
        case(
            "obs_fold_is_refused",
            get("/c", "Host: lbcq\r\nX-A: a\r\n b\r\n"),
            &[400],
            &[],
        ),
        case(
            "obs_fold_of_transfer_encoding_is_refused",
            post("/c", "Transfer-Encoding: gzip\r\n chunked\r\n", &smuggle_chunked),
            &[400],
            &[],
        ),
        case(
            "nul_in_a_value_is_refused",
            get("/c", "Host: lbcq\r\nX-A: a\0b\r\n"),
            &[400],
            &[],
        ),
        case(
            "nul_in_a_name_is_refused",
            get("/c", "Host: lbcq\r\nX-\0A: b\r\n"),
            &[400],
            &[],
        ),
        case(
            "control_character_in_a_value_is_refused",
            get("/c", "Host: lbcq\r\nX-A: a\x01b\r\n"),
            &[400],
            &[],
        ),
        case(
            "space_in_a_name_is_refused",
            get("/c", "Host: lbcq\r\nX A: b\r\n"),
            &[400],
            &[],
        ),
        case(
            "a_line_without_colon_is_refused",
            get("/c", "Host: lbcq\r\nnot-a-header\r\n"),
            &[400],
            &[],
        ),
        case(
            "space_in_the_target_is_refused",
            "GET /a b HTTP/1.1\r\nHost: lbcq\r\nConnection: close\r\n\r\n",
            &[400],
            &[],
        ),
        case(
            "lower_case_version_is_refused",
            "GET /c http/1.1\r\nHost: lbcq\r\nConnection: close\r\n\r\n",
            &[400],
            &[],
        ),
        case(
            "http09_request_line_is_refused",
            "GET /c\r\n\r\n",
            &[400],
            &[],
        ),
        case(
            "invalid_method_is_refused",
            "G(T /c HTTP/1.1\r\nHost: lbcq\r\nConnection: close\r\n\r\n",
            &[400],
            &[],
        ),
        // --- Expect, Upgrade, pipelining ---
        case(
            "expect_100_continue_gets_100_then_the_answer",
            post("/c", "Content-Length: 5\r\nExpect: 100-continue\r\n", "hello"),
            &[100, 200],
            &["/c"],
        )
        .sees(&["hello"]),
        // The node is offered the upgrade and declines it with its 200: nothing is tunnelled.
        case(
            "bytes_after_an_upgrade_request_answered_200_are_the_next_request_not_a_tunnel",
            format!(
                "GET /c HTTP/1.1\r\nHost: lbcq\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /after-upgrade HTTP/1.1\r\nHost: lbcq\r\n{CLOSE}\r\n"
            ),
            &[200, 200],
            &["/c", "/after-upgrade"],
        ),
        case(
            "a_websocket_upgrade_is_offered_to_the_node_with_the_proxy_s_own_connection_field",
            get(
                "/c",
                "Host: lbcq\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Hop\r\nX-Hop: 1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            ),
            &[200],
            &["/c"],
        )
        .sees(&["upgrade: websocket\r\n", "connection: upgrade\r\n", "sec-websocket-key: "])
        .never(&["x-hop"]),
        case(
            "h2c_upgrade_is_not_forwarded",
            get(
                "/c",
                "Host: lbcq\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n",
            ),
            &[200],
            &["/c"],
        )
        .never(&["upgrade", "http2-settings"]),
        case(
            "three_pipelined_requests_are_three_requests",
            format!(
                "GET /1 HTTP/1.1\r\nHost: lbcq\r\n\r\nPOST /2 HTTP/1.1\r\nHost: lbcq\r\nContent-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\nHost: lbcq\r\n{CLOSE}\r\n"
            ),
            &[200, 200, 200],
            &["/1", "/2", "/3"],
        ),
        case(
            "a_refused_request_ends_the_connection_before_the_next_one",
            format!(
                "POST /c HTTP/1.1\r\nHost: lbcq\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
            ),
            &[501],
            &[],
        ),
        // --- Hop-by-hop fields, request direction (RFC 9110 §7.6.1) ---
        case(
            "connection_nominated_fields_are_removed",
            get("/c", "Host: lbcq\r\nConnection: X-Secret-Hop\r\nX-Secret-Hop: 1\r\n"),
            &[200],
            &["/c"],
        )
        .never(&["x-secret-hop"]),
        case(
            "fields_nominated_on_several_connection_lines_are_removed",
            get(
                "/c",
                "Host: lbcq\r\nConnection: x-a\r\nConnection: x-b, keep-alive\r\nX-A: 1\r\nX-B: 2\r\nX-C: kept\r\n",
            ),
            &[200],
            &["/c"],
        )
        .sees(&["x-c: kept\r\n"])
        .never(&["x-a:", "x-b:"]),
        case(
            "proxy_connection_keep_alive_and_te_are_removed",
            get(
                "/c",
                "Host: lbcq\r\nProxy-Connection: keep-alive\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nProxy-Authorization: Basic eDp5\r\n",
            ),
            &[200],
            &["/c"],
        )
        .never(&["proxy-connection", "keep-alive", "te:", "proxy-authorization"]),
        case(
            "nominating_x_forwarded_for_cannot_remove_the_proxys_own",
            get("/c", "Host: lbcq\r\nConnection: close, X-Forwarded-For, Host\r\n"),
            &[200],
            &["/c"],
        )
        .sees(&["x-forwarded-for: 127.0.0.1\r\n", "host: lbcq\r\n"]),
        case(
            "nominating_content_length_keeps_the_body_framed",
            post(
                "/c",
                "Content-Length: 5\r\nConnection: Content-Length\r\n",
                "hello",
            ),
            &[200],
            &["/c"],
        )
        .sees(&["hello"]),
        // --- Forwarding-header spoofing from an untrusted peer ---
        case(
            "spoofed_x_forwarded_for_is_replaced",
            get("/c", "Host: lbcq\r\nX-Forwarded-For: 6.6.6.6\r\n"),
            &[200],
            &["/c"],
        )
        .sees(&["x-forwarded-for: 127.0.0.1\r\n"])
        .never(&["6.6.6.6"]),
        case(
            "two_spoofed_x_forwarded_for_lines_are_replaced_by_one",
            get(
                "/c",
                "Host: lbcq\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n",
            ),
            &[200],
            &["/c"],
        )
        .sees(&["x-forwarded-for: 127.0.0.1\r\n"])
        .never(&["6.6.6.6", "7.7.7.7"]),
        case(
            "spoofed_proto_and_host_are_replaced",
            get(
                "/c",
                "Host: lbcq\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n",
            ),
            &[200],
            &["/c"],
        )
        .sees(&["x-forwarded-proto: http\r\n", "x-forwarded-host: lbcq\r\n"])
        .never(&["evil", "https"]),
        case(
            "spoofed_forwarded_is_removed",
            get("/c", "Host: lbcq\r\nForwarded: for=6.6.6.6;proto=https;host=evil\r\n"),
            &[200],
            &["/c"],
        )
        .never(&["forwarded: ", "6.6.6.6", "evil"]),
        case(
            "spoofed_x_real_ip_is_removed",
            get("/c", "Host: lbcq\r\nX-Real-IP: 6.6.6.6\r\n"),
            &[200],
            &["/c"],
        )
        .never(&["x-real-ip", "6.6.6.6"]),
        case(
            "spoofed_true_client_ip_and_x_client_ip_are_removed",
            get("/c", "Host: lbcq\r\nTrue-Client-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\n"),
            &[200],
            &["/c"],
        )
        .never(&["6.6.6.6"]),
        case(
            "underscore_x_forwarded_for_is_removed",
            get("/c", "Host: lbcq\r\nX_Forwarded_For: 6.6.6.6\r\n"),
            &[200],
            &["/c"],
        )
        .sees(&["x-forwarded-for: 127.0.0.1\r\n"])
        .never(&["x_forwarded_for", "6.6.6.6"]),
        case(
            "mixed_underscore_x_forwarded_host_is_removed",
            get("/c", "Host: lbcq\r\nX-Forwarded_Host: evil\r\nX_Real_IP: 6.6.6.6\r\n"),
            &[200],
            &["/c"],
        )
        .never(&["evil", "6.6.6.6"]),
        case(
            "spoofed_websphere_private_headers_are_removed",
            get("/c", "Host: lbcq\r\n$WSIS: true\r\n$WSSC: https\r\n$WSRA: 6.6.6.6\r\n"),
            &[200],
            &["/c"],
        )
        .never(&["$ws", "6.6.6.6"]),
        case(
            "spoofed_x_forwarded_port_and_prefix_are_removed",
            get("/c", "Host: lbcq\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /admin\r\n"),
            &[200],
            &["/c"],
        )
        .never(&["x-forwarded-port", "x-forwarded-prefix"]),
        // --- Host (RFC 9112 §3.2, RFC 3986 §3.2) ---
        case(
            "host_is_forwarded_byte_for_byte",
            get("/c", "Host: LBCQ.Example:8080\r\n"),
            &[200],
            &["/c"],
        )
        .sees(&["host: LBCQ.Example:8080\r\n"]),
        case(
            "host_with_a_space_is_refused",
            get("/c", "Host: lb cq\r\n"),
            &[400],
            &[],
        ),
        case(
            "host_with_userinfo_is_refused",
            get("/c", "Host: user@lbcq\r\n"),
            &[400],
            &[],
        ),
        case(
            "host_with_a_path_is_refused",
            get("/c", "Host: lbcq/admin\r\n"),
            &[400],
            &[],
        ),
        case(
            "host_with_a_bad_port_is_refused",
            get("/c", "Host: lbcq:http\r\n"),
            &[400],
            &[],
        ),
        case("two_hosts_are_refused", get("/c", "Host: a\r\nHost: b\r\n"), &[400], &[]),
        case("missing_host_is_refused", get("/c", ""), &[400], &[]),
        case(
            "ipv6_host_is_forwarded",
            get("/c", "Host: [::1]:8080\r\n"),
            &[200],
            &["/c"],
        )
        .sees(&["host: [::1]:8080\r\n"]),
        case(
            "absolute_form_target_authority_becomes_the_host",
            get("http://Real.Example:8080/c?q=1", "Host: other\r\n"),
            &[200],
            &["/c?q=1"],
        )
        .sees(&["GET /c?q=1 HTTP/1.1\r\n", "host: Real.Example:8080\r\n"])
        .never(&["other"]),
        case(
            "absolute_form_with_userinfo_is_refused",
            get("http://user:pw@lbcq/c", "Host: lbcq\r\n"),
            &[400],
            &[],
        ),
        case(
            "absolute_form_with_another_scheme_is_refused",
            get("ftp://lbcq/c", "Host: lbcq\r\n"),
            &[400],
            &[],
        ),
        case(
            "absolute_form_without_host_is_refused",
            get("http://lbcq/c", ""),
            &[400],
            &[],
        ),
        case(
            "authority_form_outside_connect_is_refused",
            get("lbcq:80", "Host: lbcq\r\n"),
            &[400],
            &[],
        ),
        case(
            "asterisk_form_options_is_forwarded_as_is",
            "OPTIONS * HTTP/1.1\r\nHost: lbcq\r\nConnection: close\r\n\r\n",
            &[200],
            &["*"],
        )
        .sees(&["OPTIONS * HTTP/1.1\r\n"]),
        case(
            "connect_is_refused",
            "CONNECT lbcq:443 HTTP/1.1\r\nHost: lbcq:443\r\nConnection: close\r\n\r\n",
            &[400],
            &[],
        ),
        // --- Request-target length (RFC 9112 §3: 414) ---
        case(
            "a_target_at_the_cap_is_forwarded",
            get(at_cap, "Host: lbcq\r\n"),
            &[200],
            at_cap_list,
        ),
        case(
            "a_target_over_the_cap_gets_414",
            get(&format!("/{}", "a".repeat(8192)), "Host: lbcq\r\n"),
            &[414],
            &[],
        ),
    ]
}

fn check(case: &Case, response: &[u8], requests: &[Recorded]) -> Vec<String> {
    let mut failures = Vec::new();
    let name = case.name;
    let got = statuses(response);
    if got != case.expect_status {
        failures.push(format!(
            "{name}: statuses {got:?}, expected {:?}\n  response: {:?}",
            case.expect_status,
            String::from_utf8_lossy(&response[..response.len().min(300)])
        ));
    }
    let targets: Vec<&str> = requests.iter().map(|r| r.target.as_str()).collect();
    if targets != case.expect_node_requests {
        let short = |t: &[&str]| {
            t.iter()
                .map(|t| t.chars().take(40).collect::<String>())
                .collect::<Vec<_>>()
        };
        failures.push(format!(
            "{name}: node parsed {:?}, expected {:?}",
            short(&targets),
            short(case.expect_node_requests)
        ));
    }
    if targets.contains(&"/smuggled") {
        failures.push(format!(
            "{name}: DESYNC: the node parsed a smuggled request"
        ));
    }
    for r in requests {
        let text = r.text();
        let lower = text.to_ascii_lowercase();
        for want in case.node_sees {
            if !text.contains(want) {
                failures.push(format!("{name}: node did not see {want:?} in {text:?}"));
            }
        }
        for bad in case.node_never {
            if lower.contains(&bad.to_ascii_lowercase()) {
                failures.push(format!("{name}: node saw {bad:?} in {text:?}"));
            }
        }
    }
    // Response direction: the node's hop-by-hop fields never reach the client.
    let lower = String::from_utf8_lossy(response).to_ascii_lowercase();
    for hop in ["x-node-hop", "proxy-connection", "keep-alive: timeout"] {
        if lower.contains(hop) {
            failures.push(format!("{name}: client got the node's {hop:?}"));
        }
    }
    failures
}

#[tokio::test]
async fn smuggling_and_framing_corpus_never_desyncs_the_node() {
    let node = RecordingNode::start().await;
    let extra = "[limits]\nheader_read_timeout = \"2s\"\nbody_idle_timeout = \"2s\"\n";
    let proxy = spawn_proxy(&config_text(&[("n1", node.url())], extra)).await;
    let cases = corpus();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    let mut desyncs = 0;
    for case in &cases {
        let response = exchange(proxy.addr, &case.bytes).await;
        // Every response is in: anything the node parsed for this case is recorded.
        let (requests, _incomplete) = node.take();
        if requests.len() > case.expect_node_requests.len() {
            desyncs += 1;
        }
        failures.extend(check(case, &response, &requests));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(desyncs, 0);
    proxy.shutdown().await;
}

/// The fields of the request the node parsed.
fn field_count(r: &Recorded) -> usize {
    r.headers.len()
}

#[tokio::test]
async fn max_headers_counts_the_fields_the_node_receives() {
    let node = RecordingNode::start().await;
    let proxy = spawn_proxy(&config_text(
        &[("n1", node.url())],
        "[limits]\nmax_headers = 12\n",
    ))
    .await;
    // Host, Connection (removed) and `extra` fields from the client; the proxy adds X-Forwarded-For, -Proto,
    // -Host and X-Request-Id, and a body adds a framing field.
    let mut largest_accepted = None;
    for extra in 0..12 {
        let fields: String = (0..extra).map(|i| format!("X-F{i}: v\r\n")).collect();
        let response = exchange(
            proxy.addr,
            &post("/c", &format!("{fields}Content-Length: 2\r\n"), "ok"),
        )
        .await;
        let (requests, _) = node.take();
        match statuses(&response).as_slice() {
            [200] => {
                assert_eq!(requests.len(), 1);
                assert!(field_count(&requests[0]) <= 12, "{}", requests[0].text());
                largest_accepted = Some((extra, field_count(&requests[0])));
            }
            [431] => assert!(requests.is_empty(), "a refused request reached the node"),
            other => panic!("{extra} extra fields: {other:?}"),
        }
    }
    // Host + Content-Length + 3 forwarding fields + X-Request-Id + 6 of the client's own = 12: exactly at the
    // limit.
    assert_eq!(largest_accepted, Some((6, 12)));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_configured_request_target_cap_gives_414_over_it() {
    let node = RecordingNode::start().await;
    let proxy = spawn_proxy(&config_text(
        &[("n1", node.url())],
        "[limits]\nmax_request_target = \"1KiB\"\n",
    ))
    .await;
    let at = format!("/{}", "b".repeat(1023));
    assert_eq!(
        statuses(&exchange(proxy.addr, &get(&at, "Host: lbcq\r\n")).await),
        [200]
    );
    let over = format!("/x?{}", "b".repeat(1022));
    assert_eq!(
        statuses(&exchange(proxy.addr, &get(&over, "Host: lbcq\r\n")).await),
        [414]
    );
    let (requests, _) = node.take();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].target, at);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_stalled_streamed_body_gets_408_and_the_node_is_not_blamed() {
    let node = RecordingNode::start().await;
    let extra = "[limits]\nbody_idle_timeout = \"300ms\"\n[health]\npath = \"/health\"\ninterval = \"50ms\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\n";
    let proxy = spawn_proxy(&config_text(&[("n1", node.url())], extra)).await;
    let ready = proxy.proxy.clone();
    eventually(
        "the node is checked healthy",
        Duration::from_secs(5),
        async || ready.ready(),
    )
    .await;
    // A streamed (non-form) body: 10 of 100 announced bytes, then silence.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"PUT /upload HTTP/1.1\r\nHost: lbcq\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .expect("the proxy answers and closes within the idle timeout")
        .unwrap();
    assert_eq!(statuses(&out), [408], "{}", String::from_utf8_lossy(&out));
    // 408 is a client-side error (logged as a rejected request, at debug, without the node's name). The node
    // got an incomplete request (never a complete one), stays healthy and keeps serving.
    let (requests, _) = node.take();
    assert!(requests.is_empty());
    let pool = proxy.proxy.current().pool.clone();
    assert!(pool
        .checked_healthy()
        .contains(pool.by_name("n1").unwrap().id));
    assert_eq!(
        statuses(&exchange(proxy.addr, &get("/after", "Host: lbcq\r\n")).await),
        [200]
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_http2_body_that_disagrees_with_its_content_length_never_completes_on_the_node() {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let node = RecordingNode::start().await;
    let proxy = spawn_proxy(&config_text(&[("n1", node.url())], "")).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    // Declared length, body actually sent, whether the exchange is consistent.
    for (declared, body, consistent) in [
        (5, "hello", true),
        (10, "hello", false),
        (3, "hello", false),
    ] {
        let request = http::Request::post("http://lbcq/c")
            .header("content-type", "application/octet-stream")
            .header("content-length", declared)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let answer = sender.send_request(request).await;
        let status = answer.as_ref().map(|r| r.status().as_u16()).ok();
        let (requests, _) = node.take();
        if consistent {
            assert_eq!(status, Some(200));
            assert_eq!(requests.len(), 1);
            assert!(requests[0].text().contains("content-length: 5\r\n"));
            assert!(requests[0].text().ends_with("hello"));
        } else {
            // The stream is reset or refused; the node never parses a complete request from it.
            assert!(
                status.is_none_or(|s| (400..500).contains(&s)),
                "declared {declared}, sent {}: {status:?}",
                body.len()
            );
            assert!(
                requests.is_empty(),
                "declared {declared}, sent {}: the node parsed {:?}",
                body.len(),
                requests.iter().map(Recorded::text).collect::<Vec<_>>()
            );
        }
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_body_trickled_for_longer_than_the_response_header_timeout_is_answered_not_blamed_on_the_node(
) {
    let node = RecordingNode::start().await;
    // The node answers only once it has the whole body; the client takes about twice the response-header
    // timeout to send it, each pause well within the body's idle timeout.
    let extra = "[limits]\nresponse_header_timeout = \"1s\"\nbody_idle_timeout = \"5s\"\n";
    let proxy = spawn_proxy(&config_text(&[("n1", node.url())], extra)).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"PUT /upload HTTP/1.1\r\nHost: lbcq\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    for _ in 0..8 {
        stream.write_all(b"5\r\nhello\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(1));
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the proxy answers")
        .unwrap();
    assert_eq!(statuses(&out), [200], "{}", String::from_utf8_lossy(&out));
    let (requests, _) = node.take();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].text().matches("hello").count(), 8);
    proxy.shutdown().await;
}

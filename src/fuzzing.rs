//! The bodies of the coverage-guided fuzz targets, one function per parser that reads untrusted bytes.
//!
//! `fuzz/` (cargo-fuzz, libFuzzer, nightly) calls each function from a one-line target, and the corpora it
//! grows are committed under `fuzz/corpus/<target>/` and replayed through the same functions by
//! `tests/it/fuzz_corpora.rs` in every `cargo test`, so a crash once found stays fixed. Each function asserts
//! the parser's own promises (a round trip, a bound, an idempotent repair), not only that it returns:
//!
//! | target | reads | beyond "never panics" |
//! |---|---|---|
//! | [`config()`] | `config.toml` text | a rejection renders a report that names a key or line |
//! | [`authorization()`] | an `Authorization` value (OAuth, Bearer, Basic) | at most `MAX_PARAMS` parameters |
//! | [`request()`] | a request head and form body | extraction is a pure function of its input |
//! | [`response()`] | a response's status, headers (`Location`, `Set-Cookie`) and JSON or form body | a 4xx/5xx teaches nothing |
//! | [`percent()`] | percent-encoded text and forms | `decode(encode(s)) == s` |
//! | [`snapshot()`] | a snapshot file | no entry restored that is already expired |
//! | [`journal()`] | a journal segment, raw or re-framed with valid checksums | a second replay finds nothing left to repair |
//! | [`proxy_protocol()`] | the start of a connection (PROXY v1/v2) | a complete header fits in the bytes read and in `MAX_V2` |
//! | [`node_response()`] | a node's answer, read by the direct client (`upstream::wire`) | hyper's client reads the same answer, or refuses it too |

use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};

use crate::affinity::journal::{self, record};
use crate::affinity::{snapshot, FingerprintKey, NodeId, Table};
use crate::oauth::{authorization, percent, EndpointRole, Preset, Rules};
use crate::server::proxy_protocol::{self, Parsed};
use crate::upstream::wire::{self, Decoded, Decoder};

/// "Now" for the table readers: a fixed time, so that a corpus entry replays the same way every year.
const NOW: u64 = 1_800_000_000;

/// The key the table readers' inputs are checked against; the committed seeds were written under it.
pub fn fuzz_key() -> FingerprintKey {
    FingerprintKey::from_bytes([7; 32])
}

/// Node names the table readers map owners to.
fn node_names() -> Vec<(NodeId, String)> {
    (0..3)
        .map(|i| (NodeId::new(i).expect("small id"), format!("node{}", i + 1)))
        .collect()
}

/// Rules with every preset, so that every role's extraction and learning is reachable.
fn all_rules() -> Rules {
    let mut rules = Rules::from_presets(&[Preset::Oslc, Preset::OAuth2]);
    rules
        .add_cookie_name("JSESSIONID")
        .expect("a valid cookie name");
    rules
}

/// Config text: parse and validate (file layer, values, checks across keys). Paths in the text resolve
/// under a directory that does not exist, so no input reads the machine's files.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new("/nonexistent-tokenroute-fuzz");
    let path = base.join("config.toml");
    if let Err(e) = crate::config::parse_with_env(text, &path, base, &|_| None) {
        let report = e.report();
        assert!(!report.is_empty(), "a rejected config explains itself");
    }
}

/// An `Authorization` header value, through the OAuth/Bearer parser and the Basic client-id reader.
pub fn authorization(data: &[u8]) {
    if let Ok(crate::oauth::Authorization::OAuth(params)) = authorization::parse(data) {
        assert!(params.len() <= authorization::MAX_PARAMS);
    }
    let _ = authorization::basic_client_id(data);
}

/// Splits fuzz bytes into a request or response head and a body: the first line, then `name: value` lines up
/// to an empty line (lines that are no valid header are dropped, as hyper would refuse them), then the body.
fn head_and_body(data: &[u8]) -> (&[u8], HeaderMap, &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    (first, headers, body)
}

/// A request (`METHOD target` line, headers, body): the credentials it carries, as the proxy extracts them.
pub fn request(data: &[u8]) {
    let (first, headers, body) = head_and_body(data);
    let mut words = first.splitn(2, |b| *b == b' ');
    let method = Method::from_bytes(words.next().unwrap_or_default()).unwrap_or(Method::GET);
    let Ok(uri) = http::Uri::try_from(words.next().unwrap_or(b"/")) else {
        return;
    };
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(map) = builder.headers_mut() {
        *map = headers;
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let rules = all_rules();
    let once = crate::oauth::extract_request(&parts, Some(body), &rules);
    let again = crate::oauth::extract_request(&parts, Some(body), &rules);
    assert_eq!(format!("{once:?}"), format!("{again:?}"));
    let _ = crate::oauth::request::extract_session_cookies(&parts, &rules);
}

/// A response: byte 0 picks the request's role (or none), byte 1 the status (100-599), byte 2 the method and a
/// request query; then a head (the first line is ignored), headers and the body.
pub fn response(data: &[u8]) {
    let [role, status, flags, rest @ ..] = data else {
        return;
    };
    let roles = EndpointRole::ALL;
    let role = roles.get(usize::from(*role)).copied();
    let status = StatusCode::from_u16(100 + u16::from(*status) * 2).unwrap_or(StatusCode::OK);
    let method = if flags & 1 == 0 {
        Method::POST
    } else {
        Method::GET
    };
    let query = (flags & 2 != 0).then_some("key=abc&oauth_token=t1");
    let (_, headers, body) = head_and_body(rest);
    let rules = all_rules();
    let learned = crate::oauth::learn_from_response(
        role,
        &method,
        query,
        status,
        &headers,
        Some(body),
        &rules,
    );
    if !(status.is_success() || status.is_redirection()) {
        assert!(learned.is_empty(), "a {status} taught {learned:?}");
    }
}

/// Percent decoding: arbitrary text and forms, and the round trip of the encoder.
pub fn percent(data: &[u8]) {
    let _ = percent::decode_form_component(data);
    let _ = percent::parse_form(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = percent::decode(text);
        assert_eq!(percent::decode(&percent::encode(text)).as_deref(), Ok(text));
    }
}

/// A snapshot file read into an empty table.
pub fn snapshot(data: &[u8]) {
    let table = Table::new(1024);
    let _ = snapshot::read_from(
        data,
        Path::new("fuzz.snapshot"),
        &fuzz_key(),
        &table,
        &node_names(),
        NOW,
    );
    for (_, entry) in table.entries() {
        assert!(!entry.is_expired(NOW), "restored an expired entry");
    }
}

/// A journal segment replayed at start. Byte 0 chooses how the rest is used: even, the raw bytes after a
/// valid header; odd, re-framed as records `[tag, len, payload…]` with valid lengths and checksums, so that
/// the fuzzer reaches the record parser and the replayer behind the CRC. The replay truncates a damaged
/// tail; a second replay of the repaired file must find nothing to repair and restore the same table.
pub fn journal(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    let key = fuzz_key();
    let mut segment = Vec::with_capacity(record::HEADER_LEN + rest.len() * 2);
    record::encode_header(key.check_value(), &mut segment);
    if mode & 1 == 0 {
        segment.extend_from_slice(rest);
    } else {
        reframe(rest, &mut segment);
    }

    let dir = ScratchDir::new();
    let base = dir.0.join("table.snapshot");
    std::fs::write(journal::active_path(&base), &segment).expect("write the segment");
    let names = node_names();
    let first = Table::new(1024);
    let Ok(report) = journal::replay(&base, &key, &first, &names, NOW) else {
        return;
    };
    assert!(report.truncated_bytes <= segment.len() as u64);
    let second = Table::new(1024);
    let again =
        journal::replay(&base, &key, &second, &names, NOW).expect("a repaired journal replays");
    assert_eq!(again.damaged_segments, 0, "the first replay left damage");
    assert_eq!(first.len(), second.len());
}

/// A directory of its own for one journal replay, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> ScratchDir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tokenroute-fuzz-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `[tag, len, payload (len bytes)]…` → records with valid lengths and CRCs (the last one may be cut short,
/// as a torn write would be).
fn reframe(mut input: &[u8], out: &mut Vec<u8>) {
    while let [tag, len, rest @ ..] = input {
        let len = usize::from(*len).min(rest.len());
        let start = out.len();
        out.push(*tag);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&rest[..len]);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        input = &rest[len..];
    }
    if let Some(&cut) = input.first() {
        out.truncate(out.len().saturating_sub(usize::from(cut % 8)));
    }
}

/// The start of a connection, as the PROXY protocol reader sees it.
pub fn proxy_protocol(data: &[u8]) {
    let _ = proxy_protocol::looks_like_header(data);
    match proxy_protocol::parse(data) {
        Ok(Parsed::Complete { length, .. }) => {
            assert!(length <= data.len() && length <= proxy_protocol::MAX_V2);
        }
        Ok(Parsed::Incomplete { needed }) => assert!(needed >= 1),
        Err(_) => {}
    }
}

/// A node's answer to a request, read twice: by the directly driven connection's parser (`upstream::wire`),
/// and by hyper's HTTP/1 client over an in-memory socket. Both must refuse it, or both read the same status,
/// version, reason, headers, body and trailers. The first byte picks the request's method (`GET` or `HEAD`)
/// and the size of the pieces the answer reaches `wire` in (1 to 8 bytes), which must not change what it
/// reads: it is also read whole.
pub fn node_response(data: &[u8]) {
    let Some((&selector, answer)) = data.split_first() else {
        return;
    };
    let method = if selector & 1 == 0 {
        Method::GET
    } else {
        Method::HEAD
    };
    let piece = usize::from((selector >> 1) & 7) + 1;
    let whole = wire_read(answer, &method, usize::MAX);
    let pieces = wire_read(answer, &method, piece);
    assert_eq!(
        whole.as_ref().ok(),
        pieces.as_ref().ok(),
        "arriving in pieces of {piece} bytes changes what wire reads"
    );
    let reference = hyper_read(answer, &method);
    match (&whole, &reference) {
        (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "wire and hyper read different answers"),
        (Err(_), Err(_)) => {}
        _ => panic!("wire: {whole:?}\nhyper: {reference:?}"),
    }
}

/// What a client reads of an answer.
#[derive(Debug, PartialEq)]
struct NodeAnswer {
    status: StatusCode,
    version: http::Version,
    reason: Option<Vec<u8>>,
    headers: HeaderMap,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

impl NodeAnswer {
    fn new(parts: &http::response::Parts) -> NodeAnswer {
        NodeAnswer {
            status: parts.status,
            version: parts.version,
            reason: parts
                .extensions
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| r.as_bytes().to_vec()),
            headers: parts.headers.clone(),
            body: Vec::new(),
            trailers: None,
        }
    }
}

/// `answer` through `upstream::wire`, arriving `piece` bytes at a time, the end of the connection after it.
fn wire_read(answer: &[u8], method: &Method, piece: usize) -> Result<NodeAnswer, wire::WireError> {
    let mut buf = bytes::BytesMut::new();
    let mut rest = answer;
    let mut feed = |buf: &mut bytes::BytesMut| {
        let n = piece.min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        n
    };
    let head = loop {
        if let Some(head) = wire::parse_head(&mut buf, method)? {
            break head;
        }
        if feed(&mut buf) == 0 {
            return Err(wire::WireError::ClosedBeforeHead);
        }
    };
    let mut read = NodeAnswer::new(&head.parts);
    let mut decoder = Decoder::new(head.framing);
    loop {
        let eof = buf.is_empty() && feed(&mut buf) == 0;
        loop {
            match decoder.decode(&mut buf, eof)? {
                Decoded::Data(data) => read.body.extend_from_slice(&data),
                Decoded::Trailers(trailers) => read.trailers = Some(trailers),
                Decoded::End => return Ok(read),
                Decoded::NeedMore => break,
            }
        }
        if !eof {
            feed(&mut buf);
        }
    }
}

/// `answer` through hyper's HTTP/1 client, from an in-memory node that reads the request, writes `answer`
/// and closes its side.
fn hyper_read(answer: &[u8], method: &Method) -> Result<NodeAnswer, String> {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
    }
    let answer = answer.to_vec();
    let exchange = async move {
        let (client, mut node) = tokio::io::duplex(1 << 20);
        let node = tokio::spawn(async move {
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match node.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = node.write_all(&answer).await;
            let _ = node.shutdown().await;
            node
        });
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(client))
                .await
                .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection.with_upgrades());
        let request = Request::builder()
            .method(method.clone())
            .uri("/")
            .header(http::header::HOST, "node")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("a valid request");
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string());
        let read = async {
            let (parts, mut body) = response?.into_parts();
            let mut read = NodeAnswer::new(&parts);
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| e.to_string())?;
                match frame.into_data() {
                    Ok(data) => read.body.extend_from_slice(&data),
                    Err(frame) => read.trailers = frame.into_trailers().ok(),
                }
            }
            Ok(read)
        }
        .await;
        drop(sender);
        driver.abort();
        let _ = node.await;
        read
    };
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
                .await
                .expect("hyper reads a closed in-memory answer in time")
        })
    })
}

//! A recording node: a raw-socket HTTP/1.1 server that keeps the exact bytes of every request it parses, so a
//! test can assert what a node received (and count requests: a request hidden inside another is a desync).
//!
//! Its parser is deliberately plain (CRLF lines, `Content-Length` or `chunked`): it reads what hyper's client
//! writes. It answers `200` with hop-by-hop fields of its own (`Connection: x-node-hop`, `X-Node-Hop`,
//! `Keep-Alive`, `Proxy-Connection`) that must never reach a client. Health probes are answered, not recorded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the node parsed it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request target.
    pub target: String,
    /// The whole request as received: head and framed body.
    pub raw: Vec<u8>,
    /// Header fields (name as received, value).
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    /// The raw request as text (lossy), for messages and substring checks.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

#[derive(Debug, Default)]
struct Log {
    requests: Vec<Recorded>,
    /// Connections that ended in the middle of a request (bytes the node could not parse into one).
    incomplete: usize,
}

/// A running recording node on 127.0.0.1:0.
#[derive(Debug, Clone)]
pub struct RecordingNode {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
}

impl RecordingNode {
    pub async fn start() -> RecordingNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        RecordingNode { addr, log }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Takes the requests recorded so far (and the count of incomplete ones), leaving the log empty.
    pub fn take(&self) -> (Vec<Recorded>, usize) {
        let mut log = self.log.lock().unwrap();
        let incomplete = std::mem::take(&mut log.incomplete);
        (std::mem::take(&mut log.requests), incomplete)
    }
}

async fn serve(mut stream: TcpStream, log: Arc<Mutex<Log>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match parse(&buf) {
            Parsed::Complete(recorded, used) => {
                buf.drain(..used);
                let probe = recorded
                    .headers
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("user-agent") && v == "tokenroute-health");
                let n = {
                    let mut log = log.lock().unwrap();
                    if !probe {
                        log.requests.push(recorded);
                    }
                    log.requests.len()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-node-request: {n}\r\nconnection: x-node-hop\r\nx-node-hop: 1\r\nkeep-alive: timeout=5\r\nproxy-connection: keep-alive\r\n\r\nok"
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            Parsed::Invalid => {
                log.lock().unwrap().incomplete += 1;
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            }
            Parsed::Partial => {}
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                if !buf.is_empty() {
                    log.lock().unwrap().incomplete += 1;
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

enum Parsed {
    Complete(Recorded, usize),
    Partial,
    Invalid,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse(buf: &[u8]) -> Parsed {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Parsed::Partial;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let target = line.split(' ').nth(1).unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            return Parsed::Invalid;
        };
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let value = |name: &str| {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let mut at = end + 4;
    if value("transfer-encoding")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let Some(eol) = find(&buf[at..], b"\r\n") else {
                return Parsed::Partial;
            };
            let size_text = String::from_utf8_lossy(&buf[at..at + eol]).into_owned();
            let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            else {
                return Parsed::Invalid;
            };
            at += eol + 2;
            if size == 0 {
                // Trailers, then the empty line.
                let Some(trailer_end) = find(&buf[at..], b"\r\n") else {
                    return Parsed::Partial;
                };
                if trailer_end != 0 {
                    let Some(t) = find(&buf[at..], b"\r\n\r\n") else {
                        return Parsed::Partial;
                    };
                    at += t + 4;
                } else {
                    at += 2;
                }
                break;
            }
            if buf.len() < at + size + 2 {
                return Parsed::Partial;
            }
            at += size + 2;
        }
    } else if let Some(cl) = value("content-length").first() {
        let Ok(n) = cl.parse::<usize>() else {
            return Parsed::Invalid;
        };
        if buf.len() < at + n {
            return Parsed::Partial;
        }
        at += n;
    }
    Parsed::Complete(
        Recorded {
            target,
            raw: buf[..at].to_vec(),
            headers,
        },
        at,
    )
}

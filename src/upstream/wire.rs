//! An HTTP/1.1 exchange with a node, without I/O: the request head written out, the response head parsed, and
//! the response body's framing decoded. `exchange.rs` drives it over a socket.
//!
//! It answers every question the way hyper's HTTP/1 client does, because the two must agree on every byte a
//! node can send (`fuzzing::node_response` and the tests below compare them on the same input):
//!
//! - **Head.** `httparse` with its default (strict) settings and at most 100 header fields; a head still
//!   incomplete after `MAX_HEAD` bytes is refused. Informational answers (1xx but 101) are skipped.
//! - **Body framing** (RFC 9112 §6.3): none after a `HEAD` request or for 1xx, 204 and 304; chunked when the
//!   last transfer coding is `chunked`, up to the end of the connection for any other transfer coding; the
//!   length when every `Content-Length` value agrees; up to the end of the connection without either. An
//!   HTTP/1.0 answer with `Transfer-Encoding` and disagreeing or invalid lengths are refused.
//! - **Chunked bodies** byte for byte like hyper's decoder: hexadecimal sizes without overflow, extensions
//!   skipped up to 16 KiB, CRLF required after each chunk, trailers up to 16 KiB and 100 fields.
//!
//! Longer than 600 lines: half of it is the chunked decoder's state machine and its tests.

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

/// Header fields in one head (hyper's default bound).
pub(crate) const MAX_HEADERS: usize = 100;

/// A response head still incomplete after this many bytes is refused (hyper's default `max_buf_size`).
pub(crate) const MAX_HEAD: usize = 8192 + 4096 * 100;

/// Extensions after chunk sizes, in bytes over a body (hyper's bound).
const MAX_CHUNK_EXTENSIONS: u64 = 16 * 1024;

/// Trailer section bytes (hyper's bound).
const MAX_TRAILERS: usize = 16 * 1024;

/// What a node sent that cannot be relayed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The response head is not HTTP/1.x.
    #[error("malformed response head")]
    Head(#[source] httparse::Error),
    /// The status code is out of range.
    #[error("invalid status code")]
    Status,
    /// A header name or value `http` does not accept.
    #[error("invalid header field")]
    Header,
    /// The head is larger than `MAX_HEAD` (or a name longer than 64 KiB).
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// `Transfer-Encoding` in an HTTP/1.0 answer.
    #[error("transfer-encoding in an HTTP/1.0 response")]
    TransferEncodingInHttp10,
    /// `Content-Length` values that disagree or are no number.
    #[error("invalid content-length")]
    ContentLength,
    /// The chunked body breaks its framing.
    #[error("invalid chunked body: {0}")]
    Chunked(&'static str),
    /// The trailer section does not parse.
    #[error("invalid trailer section")]
    Trailers,
    /// The node closed the connection before the head was complete.
    #[error("connection closed before the response head was complete")]
    ClosedBeforeHead,
    /// The node closed the connection before the body was complete.
    #[error("connection closed before the response body was complete")]
    IncompleteBody,
    /// The socket failed.
    #[error("connection to the node failed")]
    Io(#[source] std::io::Error),
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (and the bytes after the head belong to the next answer).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything up to the end of the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    /// Status, version, headers, and the reason phrase when it is not the canonical one.
    pub parts: http::response::Parts,
    /// How its body is delimited.
    pub framing: Framing,
    /// The node leaves the connection open after it: HTTP/1.1 without `Connection: close`, not a 101, and a
    /// body whose end is not the connection's.
    pub keep_alive: bool,
}

/// Appends a bodiless HTTP/1.1 request head for `target` (origin form) to `dst`, fields as they are in
/// `headers` (hyper's encoding of a request without a body).
pub(crate) fn encode_request(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    dst: &mut Vec<u8>,
) {
    dst.reserve(32 + target.len() + headers.len() * 32);
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// Parses the response head at the start of `buf`, skipping informational answers; `Ok(None)` when more bytes
/// are needed. On success the head's bytes are taken from `buf` (header values share them) and the body's
/// first bytes, if any, are left in it. `method` is the request's.
pub(crate) fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, WireError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        // Where each field's name and value lie in the head: the parser borrows `buf`, which must be split
        // before header values can share it.
        let mut spans = [[0u32; 4]; MAX_HEADERS];
        let (len, code, reason, version, count) = {
            let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut response, buf, &mut fields)
                .map_err(WireError::Head)?;
            let httparse::Status::Complete(len) = parsed else {
                return if buf.len() >= MAX_HEAD {
                    Err(WireError::HeadTooLarge)
                } else {
                    Ok(None)
                };
            };
            let start = buf.as_ptr() as usize;
            for (field, span) in response.headers.iter().zip(spans.iter_mut()) {
                if field.name.len() >= 1 << 16 {
                    return Err(WireError::HeadTooLarge);
                }
                let name = field.name.as_ptr() as usize - start;
                let value = field.value.as_ptr() as usize - start;
                // The head is at most `MAX_HEAD` bytes: every offset fits.
                *span = [
                    name as u32,
                    (name + field.name.len()) as u32,
                    value as u32,
                    (value + field.value.len()) as u32,
                ];
            }
            let code = response.code.expect("a complete head has a code");
            let reason = response.reason.expect("a complete head has a reason");
            let canonical = StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason());
            let reason =
                (canonical != Some(reason)).then(|| Bytes::copy_from_slice(reason.as_bytes()));
            let version = match response.version {
                Some(1) => Version::HTTP_11,
                _ => Version::HTTP_10,
            };
            (len, code, reason, version, response.headers.len())
        };
        let status = StatusCode::from_u16(code).map_err(|_| WireError::Status)?;
        let bytes = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(count);
        let mut keep_alive = version == Version::HTTP_11;
        let mut saw_close = false;
        let mut lengths = Lengths::default();
        for &[name_start, name_end, value_start, value_end] in &spans[..count] {
            let name = HeaderName::from_bytes(&bytes[name_start as usize..name_end as usize])
                .map_err(|_| WireError::Header)?;
            let value = HeaderValue::from_maybe_shared(
                bytes.slice(value_start as usize..value_end as usize),
            )
            .map_err(|_| WireError::Header)?;
            if name == CONNECTION {
                // One `close` on any `Connection` line wins over a later `keep-alive`.
                if saw_close || list_has(&value, "close") {
                    saw_close = true;
                    keep_alive = false;
                } else if !keep_alive {
                    keep_alive = list_has(&value, "keep-alive");
                }
            } else if name == TRANSFER_ENCODING {
                lengths.transfer_encoding = true;
            } else if name == CONTENT_LENGTH {
                lengths.content_length = true;
            }
            headers.append(name, value);
        }
        let Some((framing, upgrade)) = framing(status, version, method, &headers, lengths)? else {
            // Informational: the real answer follows.
            continue;
        };
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        if let Some(reason) = reason {
            if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason) {
                response.extensions_mut().insert(reason);
            }
        }
        let (parts, ()) = response.into_parts();
        return Ok(Some(Head {
            parts,
            framing,
            keep_alive: keep_alive && !upgrade && framing != Framing::Close,
        }));
    }
}

/// Which length fields a head has (noted while its fields are read, so as not to look them up again).
#[derive(Debug, Clone, Copy, Default)]
struct Lengths {
    transfer_encoding: bool,
    content_length: bool,
}

/// The body's framing and whether the answer switches protocols; `None` for an informational answer.
fn framing(
    status: StatusCode,
    version: Version,
    method: &Method,
    headers: &HeaderMap,
    lengths: Lengths,
) -> Result<Option<(Framing, bool)>, WireError> {
    match status.as_u16() {
        101 => return Ok(Some((Framing::Empty, true))),
        100..=199 => return Ok(None),
        204 | 304 => return Ok(Some((Framing::Empty, false))),
        _ => {}
    }
    if *method == Method::HEAD {
        return Ok(Some((Framing::Empty, false)));
    }
    if *method == Method::CONNECT && status.is_success() {
        return Ok(Some((Framing::Empty, true)));
    }
    if lengths.transfer_encoding {
        if version == Version::HTTP_10 {
            return Err(WireError::TransferEncodingInHttp10);
        }
        let chunked = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        let framing = if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        };
        return Ok(Some((framing, false)));
    }
    if !lengths.content_length {
        return Ok(Some((Framing::Close, false)));
    }
    match content_length(headers) {
        Some(n) if n <= u64::MAX - 2 => Ok(Some((Framing::Length(n), false))),
        _ => Err(WireError::ContentLength),
    }
}

/// The one length every `Content-Length` value (comma lists included) agrees on.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        // The common case, one number, without splitting.
        if let Some(n) = decimal(value.as_bytes()) {
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
            continue;
        }
        for item in value.to_str().ok()?.split(',') {
            let n = decimal(item.trim().as_bytes())?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether a comma-separated header value lists `token` (any case).
fn list_has(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// One step of a body's decoding.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The trailer section of a chunked body (its last frame).
    Trailers(HeaderMap),
    /// The body is complete.
    End,
    /// More bytes are needed from the node.
    NeedMore,
}

/// Decodes a response body from the bytes read so far.
#[derive(Debug)]
pub(crate) struct Decoder {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Length(u64),
    Chunked(Chunked),
    Close,
    Done,
}

impl Decoder {
    /// A decoder for a body framed by `framing`.
    pub(crate) fn new(framing: Framing) -> Decoder {
        let kind = match framing {
            Framing::Empty | Framing::Length(0) => Kind::Done,
            Framing::Length(n) => Kind::Length(n),
            Framing::Chunked => Kind::Chunked(Chunked::default()),
            Framing::Close => Kind::Close,
        };
        Decoder { kind }
    }

    /// The whole body has been decoded.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    /// Body bytes still to come, when the framing fixes them (a length, or no body).
    pub(crate) fn exact_remaining(&self) -> Option<u64> {
        match &self.kind {
            Kind::Length(n) => Some(*n),
            Kind::Done => Some(0),
            _ => None,
        }
    }

    /// Body bytes still expected, when the framing says (for sizing reads).
    pub(crate) fn remaining(&self) -> Option<u64> {
        match &self.kind {
            Kind::Length(n) => Some(*n),
            Kind::Chunked(c) if c.state == State::Data => Some(c.size),
            Kind::Done => Some(0),
            _ => None,
        }
    }

    /// The next piece of the body from the front of `buf`. `eof`: the node has closed its side, nothing more
    /// will be added to `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Decoded, WireError> {
        match &mut self.kind {
            Kind::Done => Ok(Decoded::End),
            Kind::Length(remaining) => {
                let Some(data) = take_counted(buf, remaining, eof)? else {
                    return Ok(Decoded::NeedMore);
                };
                if *remaining == 0 {
                    self.kind = Kind::Done;
                }
                Ok(Decoded::Data(data))
            }
            Kind::Close => {
                if !buf.is_empty() {
                    Ok(Decoded::Data(buf.split().freeze()))
                } else if eof {
                    self.kind = Kind::Done;
                    Ok(Decoded::End)
                } else {
                    Ok(Decoded::NeedMore)
                }
            }
            Kind::Chunked(chunked) => {
                let decoded = chunked.decode(buf, eof)?;
                if chunked.state == State::End {
                    self.kind = Kind::Done;
                }
                Ok(decoded)
            }
        }
    }
}

/// Up to `remaining` bytes from the front of `buf`, counted off `remaining`; `None` when `buf` is empty and more
/// may come, an error when nothing more will.
fn take_counted(
    buf: &mut BytesMut,
    remaining: &mut u64,
    eof: bool,
) -> Result<Option<Bytes>, WireError> {
    if buf.is_empty() {
        return if eof {
            Err(WireError::IncompleteBody)
        } else {
            Ok(None)
        };
    }
    let n = buf
        .len()
        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
    *remaining -= n as u64;
    Ok(Some(buf.split_to(n).freeze()))
}

/// Where the chunked decoder is, byte by byte outside chunk data (hyper's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Start,
    Size,
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
    End,
}

#[derive(Debug, Default)]
struct Chunked {
    state: State,
    /// The size being read, then the chunk bytes still to come.
    size: u64,
    extension_bytes: u64,
    /// The trailer section so far, if the body has one.
    trailers: Option<BytesMut>,
    trailer_lines: usize,
}

impl Chunked {
    fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Decoded, WireError> {
        loop {
            match self.state {
                State::End => {
                    return match self.trailers.take() {
                        Some(section) => {
                            parse_trailers(&section, self.trailer_lines).map(Decoded::Trailers)
                        }
                        None => Ok(Decoded::End),
                    };
                }
                State::Data => {
                    let Some(data) = take_counted(buf, &mut self.size, eof)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Decoded::Data(data));
                }
                _ => {
                    if buf.is_empty() {
                        return if eof {
                            Err(WireError::Chunked("connection closed in a chunk's framing"))
                        } else {
                            Ok(Decoded::NeedMore)
                        };
                    }
                    let byte = buf[0];
                    let _ = bytes::Buf::get_u8(buf);
                    self.state = self.step(byte)?;
                }
            }
        }
    }

    /// The state after `byte`, outside chunk data.
    fn step(&mut self, byte: u8) -> Result<State, WireError> {
        use State::*;
        Ok(match (self.state, byte) {
            (Start | Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = u64::from((byte as char).to_digit(16).expect("a hex digit"));
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(WireError::Chunked("chunk size overflows"))?;
                Size
            }
            (Start, _) => return Err(WireError::Chunked("chunk size missing")),
            (Size | SizeSpace, b'\t' | b' ') => SizeSpace,
            (Size | SizeSpace, b';') => Extension,
            (Size | SizeSpace, b'\r') => SizeLf,
            (Size | SizeSpace, _) => return Err(WireError::Chunked("invalid chunk size")),
            (Extension, b'\r') => SizeLf,
            (Extension, b'\n') => return Err(WireError::Chunked("newline in a chunk extension")),
            (Extension, _) => {
                self.extension_bytes += 1;
                if self.extension_bytes >= MAX_CHUNK_EXTENSIONS {
                    return Err(WireError::Chunked("chunk extensions over 16 KiB"));
                }
                Extension
            }
            (SizeLf, b'\n') if self.size == 0 => EndCr,
            (SizeLf, b'\n') => Data,
            (SizeLf, _) => return Err(WireError::Chunked("chunk size line without LF")),
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(WireError::Chunked("chunk data without CR")),
            (DataLf, b'\n') => Start,
            (DataLf, _) => return Err(WireError::Chunked("chunk data without LF")),
            (Trailer, _) => {
                self.push_trailer(byte)?;
                if byte == b'\r' {
                    TrailerLf
                } else {
                    Trailer
                }
            }
            (TrailerLf, b'\n') => {
                if self.trailer_lines >= MAX_HEADERS {
                    return Err(WireError::Chunked("more than 100 trailer fields"));
                }
                self.trailer_lines += 1;
                self.push_trailer(byte)?;
                EndCr
            }
            (TrailerLf, _) => return Err(WireError::Chunked("trailer line without LF")),
            (EndCr, b'\r') => {
                if self.trailers.is_some() {
                    self.push_trailer(byte)?;
                }
                EndLf
            }
            (EndCr, _) => {
                match &mut self.trailers {
                    None => {
                        let mut section = BytesMut::with_capacity(64);
                        section.put_u8(byte);
                        self.trailers = Some(section);
                    }
                    Some(_) => self.push_trailer(byte)?,
                }
                Trailer
            }
            (EndLf, b'\n') => {
                if self.trailers.is_some() {
                    self.push_trailer(byte)?;
                }
                End
            }
            (EndLf, _) => return Err(WireError::Chunked("last chunk without final LF")),
            (Data | End, _) => unreachable!("handled by the caller"),
        })
    }

    fn push_trailer(&mut self, byte: u8) -> Result<(), WireError> {
        let section = self.trailers.as_mut().expect("a trailer section begun");
        section.put_u8(byte);
        if section.len() >= MAX_TRAILERS {
            return Err(WireError::Chunked("trailer section over 16 KiB"));
        }
        Ok(())
    }
}

fn parse_trailers(section: &[u8], lines: usize) -> Result<HeaderMap, WireError> {
    let mut fields = vec![httparse::EMPTY_HEADER; lines];
    match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((_, fields))) => {
            let mut trailers = HeaderMap::new();
            for field in fields.iter() {
                let name = HeaderName::try_from(field.name).map_err(|_| WireError::Trailers)?;
                let value =
                    HeaderValue::from_bytes(field.value).map_err(|_| WireError::Trailers)?;
                trailers.append(name, value);
            }
            Ok(trailers)
        }
        _ => Err(WireError::Trailers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Head and whole body of `input` read in one piece, then with `eof`.
    fn read_all(
        input: &[u8],
        method: &Method,
    ) -> Result<(Head, Vec<u8>, Option<HeaderMap>), WireError> {
        let mut buf = BytesMut::from(input);
        let head = parse_head(&mut buf, method)?.ok_or(WireError::ClosedBeforeHead)?;
        let mut decoder = Decoder::new(head.framing);
        let mut body = Vec::new();
        let mut trailers = None;
        loop {
            match decoder.decode(&mut buf, true)? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::Trailers(t) => trailers = Some(t),
                Decoded::End => return Ok((head, body, trailers)),
                Decoded::NeedMore => unreachable!("eof given"),
            }
        }
    }

    /// The same, fed one byte at a time without `eof` until the input is used up.
    fn read_bytewise(input: &[u8], method: &Method) -> Result<(Head, Vec<u8>), WireError> {
        let mut buf = BytesMut::new();
        let mut rest = input.iter();
        let head = loop {
            if let Some(head) = parse_head(&mut buf, method)? {
                break head;
            }
            buf.put_u8(*rest.next().ok_or(WireError::ClosedBeforeHead)?);
        };
        let mut decoder = Decoder::new(head.framing);
        let mut body = Vec::new();
        loop {
            let eof = rest.len() == 0;
            match decoder.decode(&mut buf, eof)? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::Trailers(_) => {}
                Decoded::End => return Ok((head, body)),
                Decoded::NeedMore => buf.put_u8(*rest.next().expect("not eof")),
            }
        }
    }

    #[test]
    fn a_length_delimited_answer_keeps_its_connection() {
        let (head, body, _) = read_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
            &Method::GET,
        )
        .unwrap();
        assert_eq!(head.parts.status, StatusCode::OK);
        assert_eq!(head.parts.headers["x-a"], "1");
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert_eq!(body, b"hello");
    }

    #[test]
    fn a_chunked_body_is_decoded_with_its_trailers() {
        let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;name=value\r\nhello\r\n1 \r\n!\r\n0\r\nX-Sum: 9\r\n\r\n";
        let (head, body, trailers) = read_all(input, &Method::GET).unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(body, b"hello!");
        assert_eq!(trailers.unwrap()["x-sum"], "9");
        let (_, bytewise) = read_bytewise(input, &Method::GET).unwrap();
        assert_eq!(bytewise, b"hello!");
    }

    #[test]
    fn informational_answers_are_skipped() {
        let (head, body, _) = read_all(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
              HTTP/1.1 201 Created\r\ncontent-length: 1\r\n\r\nx",
            &Method::GET,
        )
        .unwrap();
        assert_eq!(head.parts.status, StatusCode::CREATED);
        assert!(!head.parts.headers.contains_key("link"));
        assert_eq!(body, b"x");
    }

    #[test]
    fn an_answer_without_framing_runs_to_the_end_of_the_connection() {
        let (head, body, _) = read_all(b"HTTP/1.1 200 OK\r\n\r\nall of it", &Method::GET).unwrap();
        assert_eq!(head.framing, Framing::Close);
        assert!(!head.keep_alive);
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn bodiless_answers_ignore_their_length_fields() {
        for (input, method) in [
            (
                &b"HTTP/1.1 204 No Content\r\ncontent-length: 4\r\n\r\n"[..],
                Method::GET,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n",
                Method::GET,
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n",
                Method::HEAD,
            ),
        ] {
            let (head, body, _) = read_all(input, &method).unwrap();
            assert_eq!(head.framing, Framing::Empty);
            assert!(head.keep_alive);
            assert!(body.is_empty());
        }
    }

    #[test]
    fn connection_close_on_any_line_wins() {
        let (head, ..) = read_all(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            &Method::GET,
        )
        .unwrap();
        assert!(!head.keep_alive);
        let (head, ..) = read_all(
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            &Method::GET,
        )
        .unwrap();
        assert!(head.keep_alive, "an HTTP/1.0 keep-alive as hyper reads it");
    }

    #[test]
    fn malformed_framing_is_refused() {
        let cases: [&[u8]; 6] = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: +1\r\n\r\n",
            b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
        ];
        for input in cases {
            assert!(
                read_all(input, &Method::GET).is_err(),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_head_larger_than_the_bound_is_refused() {
        let mut input = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
        input.resize(MAX_HEAD + 1, b'a');
        let mut buf = BytesMut::from(&input[..]);
        assert!(matches!(
            parse_head(&mut buf, &Method::GET),
            Err(WireError::HeadTooLarge)
        ));
    }

    #[test]
    fn a_request_head_is_written_field_by_field() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("node"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        encode_request(&Method::GET, "/p?q=1", &headers, &mut out);
        assert_eq!(
            out,
            b"GET /p?q=1 HTTP/1.1\r\nhost: node\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
    }
}

//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2): the header an L4 balancer (or another
//! tokenroute) in front writes at the start of a connection, before any HTTP or TLS byte, to say who the client
//! really is.
//!
//! [`parse`] is pure and bounded: it looks at most at [`MAX_V1`] bytes of a text header or [`MAX_V2`] of a binary
//! one, never panics, and tells the reader how many more bytes are certainly part of the header, so
//! [`read_header`] never reads a byte past it (what follows belongs to hyper or to the TLS handshake). A
//! listener with `proxy_protocol = true` requires the header from peers in `forwarding.trusted_proxies` and
//! refuses a connection from anyone else that starts like one ([`looks_like_header`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest version 1 header, `\r\n` included (the specification's 107).
pub const MAX_V1: usize = 107;
/// Longest version 2 header accepted: the 16-byte preamble and up to 2 KiB of addresses and TLVs (balancers
/// send a few hundred bytes of TLVs at most; the format allows 64 KiB, which is not worth buffering).
pub const MAX_V2: usize = 16 + 2048;
/// The version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// Both versions are at least this long (`PROXY UNKNOWN\r\n`), so the first read can ask for this much.
const SHORTEST: usize = 15;

/// A PROXY header that cannot be accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HeaderError {
    /// The connection does not start with a PROXY header.
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    /// The header is longer than this proxy accepts.
    #[error("PROXY protocol header longer than {0} bytes")]
    TooLong(usize),
    /// A version 1 line that does not follow the grammar.
    #[error("malformed PROXY protocol v1 header")]
    MalformedV1,
    /// A version 2 header with an unknown version, command, family or protocol, or too short for its family.
    #[error("malformed PROXY protocol v2 header")]
    MalformedV2,
    /// A peer outside `forwarding.trusted_proxies` sent a header.
    #[error("PROXY protocol header from a peer that is not a trusted proxy")]
    Untrusted,
    /// The connection closed or failed before the header was complete.
    #[error("connection ended inside the PROXY protocol header")]
    Truncated,
}

/// What [`parse`] made of the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed; at least `needed` more are certainly part of the header.
    Incomplete {
        /// Bytes to read next (at least 1).
        needed: usize,
    },
    /// A whole header of `length` bytes. `source` is the client's address, or `None` when the header says to
    /// use the connection's own (v1 `UNKNOWN`, v2 `LOCAL`, an unspecified or UNIX family).
    Complete {
        /// The client's address, if the header gives one.
        source: Option<SocketAddr>,
        /// Bytes the header takes at the start of the connection.
        length: usize,
    },
}

/// Parses the start of a connection.
pub fn parse(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let v2_prefix = buf.len().min(V2_SIGNATURE.len());
    if buf[..v2_prefix] == V2_SIGNATURE[..v2_prefix] && !buf.is_empty() {
        return parse_v2(buf);
    }
    let v1_prefix = buf.len().min(V1_PREFIX.len());
    if buf[..v1_prefix] == V1_PREFIX[..v1_prefix] && !buf.is_empty() {
        return parse_v1(buf);
    }
    if buf.is_empty() {
        return Ok(Parsed::Incomplete { needed: SHORTEST });
    }
    Err(HeaderError::Missing)
}

/// Whether `start` (the first bytes a peer sent, possibly fewer than a header) begins like a PROXY header:
/// `PROXY ` or the first five bytes of the v2 signature (`\r\n\r\n\0`; no HTTP request or TLS record starts so).
pub fn looks_like_header(start: &[u8]) -> bool {
    (start.len() >= V1_PREFIX.len() && start.starts_with(V1_PREFIX))
        || (start.len() >= 5 && {
            let n = start.len().min(V2_SIGNATURE.len());
            start[..n] == V2_SIGNATURE[..n]
        })
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        // Only printable US-ASCII and the final CRLF belong in the line.
        let seen = &buf[..buf.len().min(MAX_V1)];
        if seen
            .iter()
            .any(|&b| b != b'\r' && !(0x20..0x7f).contains(&b))
        {
            return Err(HeaderError::MalformedV1);
        }
        if buf.len() >= MAX_V1 {
            return Err(HeaderError::TooLong(MAX_V1));
        }
        return Ok(Parsed::Incomplete {
            needed: SHORTEST.saturating_sub(buf.len()).max(1),
        });
    };
    let length = end + 2;
    if length > MAX_V1 {
        return Err(HeaderError::TooLong(MAX_V1));
    }
    let line =
        std::str::from_utf8(&buf[V1_PREFIX.len()..end]).map_err(|_| HeaderError::MalformedV1)?;
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(Parsed::Complete {
            source: None,
            length,
        });
    }
    let fields: Vec<&str> = line.split(' ').collect();
    let [family, source, destination, source_port, destination_port] = fields[..] else {
        return Err(HeaderError::MalformedV1);
    };
    let ip: IpAddr = match family {
        "TCP4" => source
            .parse::<Ipv4Addr>()
            .map_err(|_| HeaderError::MalformedV1)?
            .into(),
        "TCP6" => source
            .parse::<Ipv6Addr>()
            .map_err(|_| HeaderError::MalformedV1)?
            .into(),
        _ => return Err(HeaderError::MalformedV1),
    };
    let destination_ok = match family {
        "TCP4" => destination.parse::<Ipv4Addr>().is_ok(),
        _ => destination.parse::<Ipv6Addr>().is_ok(),
    };
    let port = |p: &str| -> Option<u16> {
        // Decimal, no sign, no leading zero (the specification's grammar).
        let plain = !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'));
        plain.then(|| p.parse().ok()).flatten()
    };
    match (destination_ok, port(source_port), port(destination_port)) {
        (true, Some(sport), Some(_)) => Ok(Parsed::Complete {
            source: Some(SocketAddr::new(ip, sport)),
            length,
        }),
        _ => Err(HeaderError::MalformedV1),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, HeaderError> {
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete {
            needed: 16 - buf.len(),
        });
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    let (family, protocol) = (buf[13] >> 4, buf[13] & 0x0f);
    let declared = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let length = 16 + declared;
    if version != 2 || command > 1 || family > 3 || protocol > 2 {
        return Err(HeaderError::MalformedV2);
    }
    if length > MAX_V2 {
        return Err(HeaderError::TooLong(MAX_V2));
    }
    if buf.len() < length {
        return Ok(Parsed::Incomplete {
            needed: length - buf.len(),
        });
    }
    let body = &buf[16..length];
    // LOCAL: the balancer's own connection (a health check); the addresses, if any, are to be ignored.
    if command == 0 {
        return Ok(Parsed::Complete {
            source: None,
            length,
        });
    }
    // Only a stream (TCP) connection can be behind an HTTP one; UNSPEC means "use the real endpoints".
    if protocol == 2 {
        return Err(HeaderError::MalformedV2);
    }
    let source = match family {
        1 if protocol == 1 => {
            let a = body.get(..12).ok_or(HeaderError::MalformedV2)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        2 if protocol == 1 => {
            let a = body.get(..36).ok_or(HeaderError::MalformedV2)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        // UNSPEC, UNIX, or an unspecified protocol: the connection's own endpoints.
        _ => None,
    };
    Ok(Parsed::Complete { source, length })
}

/// Reads exactly one PROXY header from the start of `io` (not a byte more) and returns the client address it
/// names, `None` for "the connection's own". The caller bounds it with a deadline.
pub async fn read_header<S: AsyncRead + Unpin>(
    io: &mut S,
) -> Result<Option<SocketAddr>, HeaderError> {
    let mut buf = Vec::with_capacity(64);
    loop {
        match parse(&buf)? {
            Parsed::Complete { source, .. } => return Ok(source),
            Parsed::Incomplete { needed } => {
                let at = buf.len();
                buf.resize(at + needed, 0);
                io.read_exact(&mut buf[at..])
                    .await
                    .map_err(|_| HeaderError::Truncated)?;
            }
        }
    }
}

/// The client of a connection accepted on a `proxy_protocol` listener: from a `trusted` peer, the address its
/// header names (the peer's own for `LOCAL`/`UNKNOWN`); from anyone else, the peer itself, unless it starts
/// with a PROXY header, which only a trusted proxy may send. The caller bounds it with a deadline.
pub async fn client_of(
    stream: &mut tokio::net::TcpStream,
    peer: SocketAddr,
    trusted: bool,
) -> Result<SocketAddr, HeaderError> {
    if trusted {
        return Ok(read_header(stream).await?.unwrap_or(peer));
    }
    let mut start = [0u8; 12];
    let seen = stream
        .peek(&mut start)
        .await
        .map_err(|_| HeaderError::Truncated)?;
    if looks_like_header(&start[..seen]) {
        return Err(HeaderError::Untrusted);
    }
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn v2(command: u8, family_protocol: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family_protocol);
        out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn tcp4_body() -> Vec<u8> {
        // 192.0.2.7:51000 -> 198.51.100.1:443, then a TLV the parser skips.
        let mut body = vec![192, 0, 2, 7, 198, 51, 100, 1];
        body.extend_from_slice(&51000u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0x00, 0x01, 0x00]);
        body
    }

    fn tcp6_body() -> Vec<u8> {
        let mut body = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(&40000u16.to_be_bytes());
        body.extend_from_slice(&8443u16.to_be_bytes());
        body
    }

    fn complete(source: Option<&str>, length: usize) -> Result<Parsed, HeaderError> {
        Ok(Parsed::Complete {
            source: source.map(|s| s.parse().unwrap()),
            length,
        })
    }

    #[test]
    fn whole_headers_give_the_client_address_and_their_length() {
        let long_unknown = format!("PROXY UNKNOWN {}\r\n", "x".repeat(MAX_V1 - 16));
        let cases: Vec<(&str, Vec<u8>, Result<Parsed, HeaderError>)> = vec![
            (
                "v1 tcp4",
                b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\nGET".to_vec(),
                complete(Some("192.0.2.7:51000"), 45),
            ),
            (
                "v1 tcp6",
                b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 8443\r\n".to_vec(),
                complete(Some("[2001:db8::7]:40000"), 47),
            ),
            (
                "v1 unknown",
                b"PROXY UNKNOWN\r\n".to_vec(),
                complete(None, 15),
            ),
            (
                "v1 unknown with addresses",
                b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".to_vec(),
                complete(None, 35),
            ),
            (
                "v1 unknown at the limit",
                long_unknown.clone().into_bytes(),
                complete(None, MAX_V1),
            ),
            (
                "v2 tcp4 with a tlv",
                v2(1, 0x11, &tcp4_body()),
                complete(Some("192.0.2.7:51000"), 16 + 16),
            ),
            (
                "v2 tcp6",
                v2(1, 0x21, &tcp6_body()),
                complete(Some("[2001:db8::7]:40000"), 16 + 36),
            ),
            ("v2 local", v2(0, 0x00, &[]), complete(None, 16)),
            (
                "v2 local with addresses",
                v2(0, 0x11, &tcp4_body()),
                complete(None, 32),
            ),
            ("v2 unspec", v2(1, 0x00, &[]), complete(None, 16)),
            ("v2 unix", v2(1, 0x31, &[0; 216]), complete(None, 16 + 216)),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(parse(&bytes), want, "{name}");
        }
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        let cases: Vec<(&str, Vec<u8>, HeaderError)> = vec![
            ("http", b"GET / HTTP/1.1\r\n".to_vec(), HeaderError::Missing),
            (
                "tls",
                vec![0x16, 0x03, 0x01, 0x00, 0xa5],
                HeaderError::Missing,
            ),
            (
                "lower case",
                b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n".to_vec(),
                HeaderError::Missing,
            ),
            (
                "v1 bad family",
                b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 v6 in tcp4",
                b"PROXY TCP4 ::1 ::1 1 2\r\n".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 leading zero ip",
                b"PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 port too big",
                b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 port leading zero",
                b"PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 signed port",
                b"PROXY TCP4 1.2.3.4 1.2.3.4 +80 2\r\n".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 double space",
                b"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 missing field",
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 extra field",
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 bare lf",
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\nGET".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 nul",
                b"PROXY TCP4 1.2.3.4\0".to_vec(),
                HeaderError::MalformedV1,
            ),
            (
                "v1 too long",
                format!("PROXY UNKNOWN {}", "x".repeat(MAX_V1)).into_bytes(),
                HeaderError::TooLong(MAX_V1),
            ),
            (
                "v1 line over the limit",
                format!("PROXY UNKNOWN {}\r\n", "x".repeat(MAX_V1 - 15)).into_bytes(),
                HeaderError::TooLong(MAX_V1),
            ),
            (
                "v2 version 1",
                {
                    let mut h = v2(1, 0x11, &tcp4_body());
                    h[12] = 0x11;
                    h
                },
                HeaderError::MalformedV2,
            ),
            (
                "v2 command 2",
                v2(2, 0x11, &tcp4_body()),
                HeaderError::MalformedV2,
            ),
            (
                "v2 family 4",
                v2(1, 0x41, &tcp4_body()),
                HeaderError::MalformedV2,
            ),
            (
                "v2 udp",
                v2(1, 0x12, &tcp4_body()),
                HeaderError::MalformedV2,
            ),
            (
                "v2 tcp4 too short",
                v2(1, 0x11, &[1, 2, 3, 4]),
                HeaderError::MalformedV2,
            ),
            (
                "v2 tcp6 too short",
                v2(1, 0x21, &tcp4_body()),
                HeaderError::MalformedV2,
            ),
            (
                "v2 too long",
                {
                    let mut h = V2_SIGNATURE.to_vec();
                    h.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
                    h
                },
                HeaderError::TooLong(MAX_V2),
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(parse(&bytes), Err(want), "{name}");
        }
    }

    #[test]
    fn a_prefix_of_a_header_asks_for_no_byte_beyond_it() {
        let v1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n".to_vec();
        for header in [
            v1,
            v2(1, 0x11, &tcp4_body()),
            v2(1, 0x21, &tcp6_body()),
            b"PROXY UNKNOWN\r\n".to_vec(),
        ] {
            for cut in 0..header.len() {
                match parse(&header[..cut]) {
                    Ok(Parsed::Incomplete { needed }) => {
                        assert!(
                            needed >= 1 && cut + needed <= header.len(),
                            "cut {cut} needs {needed}"
                        )
                    }
                    other => panic!("cut {cut} of {header:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_a_complete_header_fits_the_input() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let seeds: [&[u8]; 3] = [
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            V2_SIGNATURE,
            b"PROXY UNKNOWN\r\n",
        ];
        for i in 0..200_000 {
            let len = rng.gen_range(0..160);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            // Most inputs start like a header, so the parser gets past its first check.
            if i % 4 != 0 {
                let seed = seeds[i % 3];
                let keep = rng.gen_range(0..=seed.len());
                bytes.splice(0..0, seed[..keep].iter().copied());
                if let Some(b) = bytes.get_mut(rng.gen_range(0..=keep.max(1))) {
                    *b = rng.gen();
                }
            }
            match parse(&bytes) {
                Ok(Parsed::Complete { length, .. }) => assert!(length <= bytes.len()),
                Ok(Parsed::Incomplete { needed }) => assert!(needed >= 1),
                Err(_) => {}
            }
            let _ = looks_like_header(&bytes);
        }
    }

    #[test]
    fn what_starts_like_a_header() {
        assert!(looks_like_header(b"PROXY TCP4"));
        assert!(looks_like_header(b"\r\n\r\n\0"));
        assert!(looks_like_header(&v2(1, 0x11, &tcp4_body())));
        for not in [
            &b"GET / HTTP/1.1"[..],
            b"\r\nGET /",
            b"PROX",
            b"\x16\x03\x01",
            b"",
        ] {
            assert!(!looks_like_header(not), "{not:?}");
        }
    }

    #[tokio::test]
    async fn the_reader_takes_the_header_and_leaves_the_rest() {
        let mut bytes = b"PROXY TCP4 192.0.2.7 198.51.100.1 51000 443\r\n".to_vec();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut io = &bytes[..];
        let source = read_header(&mut io).await.unwrap();
        assert_eq!(source, Some("192.0.2.7:51000".parse().unwrap()));
        assert_eq!(io, b"GET / HTTP/1.1\r\n");

        let mut bytes = v2(1, 0x21, &tcp6_body());
        bytes.extend_from_slice(&[0x16, 0x03, 0x01]);
        let mut io = &bytes[..];
        assert_eq!(
            read_header(&mut io).await.unwrap(),
            Some("[2001:db8::7]:40000".parse().unwrap())
        );
        assert_eq!(io, &[0x16, 0x03, 0x01]);

        let mut io = &b"PROXY TCP4 1.2"[..];
        assert_eq!(read_header(&mut io).await, Err(HeaderError::Truncated));
    }
}

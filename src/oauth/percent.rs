//! Percent-encoding as RFC 5849 §3.6 defines it, and `application/x-www-form-urlencoded` parsing.
//!
//! OAuth 1.0a signs percent-encoded values, so encoding must be exactly the RFC's: every byte outside the
//! unreserved set (`ALPHA / DIGIT / "-" / "." / "_" / "~"`) becomes `%XX` with upper-case hex. Decoding is
//! done exactly once and is strict: a `%` not followed by two hex digits is an error, never guessed at.

use thiserror::Error;

/// A percent-encoded string that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PercentError {
    /// `%` not followed by two hexadecimal digits.
    #[error("malformed percent-escape")]
    BadEscape,
    /// The decoded bytes are not UTF-8.
    #[error("decoded value is not UTF-8")]
    NotUtf8,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Encodes `input` per RFC 5849 §3.6 (upper-case hex, `%20` for space).
pub fn encode(input: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for &b in input.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0x0f) as usize] as char);
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_inner(input: &[u8], plus_is_space: bool) -> Result<String, PercentError> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    // Runs between escapes are copied whole, not byte by byte.
    while let Some(at) = rest
        .iter()
        .position(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        out.extend_from_slice(&rest[..at]);
        if rest[at] == b'+' {
            out.push(b' ');
            rest = &rest[at + 1..];
            continue;
        }
        let hi = rest.get(at + 1).copied().and_then(hex_value);
        let lo = rest.get(at + 2).copied().and_then(hex_value);
        match (hi, lo) {
            (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
            _ => return Err(PercentError::BadEscape),
        }
        rest = &rest[at + 3..];
    }
    out.extend_from_slice(rest);
    String::from_utf8(out).map_err(|_| PercentError::NotUtf8)
}

/// Decodes a percent-encoded value exactly once (`+` stays `+`).
pub fn decode(input: &str) -> Result<String, PercentError> {
    decode_inner(input.as_bytes(), false)
}

/// Decodes like [`decode`], borrowing `input` when it holds no escape (most values: no allocation).
pub fn decode_borrowed(input: &str) -> Result<std::borrow::Cow<'_, str>, PercentError> {
    if input.as_bytes().contains(&b'%') {
        decode(input).map(std::borrow::Cow::Owned)
    } else {
        Ok(std::borrow::Cow::Borrowed(input))
    }
}

/// Decodes one `application/x-www-form-urlencoded` name or value (`+` is a space).
pub fn decode_form_component(input: &[u8]) -> Result<String, PercentError> {
    decode_inner(input, true)
}

/// Parses an `application/x-www-form-urlencoded` body or a query string into decoded pairs, in order.
///
/// Empty segments (`a=1&&b=2`) are skipped; a segment with no `=` is a name with an empty value.
pub fn parse_form(input: &[u8]) -> Result<Vec<(String, String)>, PercentError> {
    input
        .split(|&b| b == b'&')
        .filter(|seg| !seg.is_empty())
        .map(|seg| {
            let (name, value) = match seg.iter().position(|&b| b == b'=') {
                Some(eq) => (&seg[..eq], &seg[eq + 1..]),
                None => (seg, &b""[..]),
            };
            Ok((decode_form_component(name)?, decode_form_component(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_unreserved_and_uppercases_hex() {
        assert_eq!(encode("Ab9-._~"), "Ab9-._~");
        assert_eq!(encode("a b"), "a%20b");
        assert_eq!(encode("=%3D"), "%3D%253D");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode("*+/"), "%2A%2B%2F");
    }

    #[test]
    fn decode_is_exactly_once() {
        assert_eq!(decode("%253D").unwrap(), "%3D");
        assert_eq!(decode("a+b").unwrap(), "a+b");
        assert_eq!(decode("%c3%a9").unwrap(), "é");
    }

    #[test]
    fn decode_rejects_truncated_and_non_hex_escapes() {
        assert_eq!(decode("%"), Err(PercentError::BadEscape));
        assert_eq!(decode("%4"), Err(PercentError::BadEscape));
        assert_eq!(decode("%zz"), Err(PercentError::BadEscape));
        assert_eq!(decode("%FF"), Err(PercentError::NotUtf8));
    }

    #[test]
    fn form_parsing_treats_plus_as_space_and_keeps_order() {
        let pairs = parse_form(b"b=2+3&a=%3D&&flag").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("b".into(), "2 3".into()),
                ("a".into(), "=".into()),
                ("flag".into(), "".into())
            ]
        );
    }

    #[test]
    fn encode_then_decode_round_trips() {
        for s in ["", "plain", "with space", "ünïcødé", "%%%", "a&b=c"] {
            assert_eq!(decode(&encode(s)).unwrap(), s);
        }
    }
}

//! The `Authorization` request header: OAuth 1.0a (RFC 5849 §3.5.1), Bearer (RFC 6750 §2.1), and the client id
//! of OAuth 2 client authentication by `Basic` (RFC 6749 §2.3.1, [`basic_client_id`]).
//!
//! The parser works on raw header bytes (clients send anything) and never panics. For `OAuth` it follows the
//! RFC 7235 `auth-param` grammar: `name BWS "=" BWS ( token / quoted-string )`, comma-separated, with optional
//! whitespace around `,` and `=` and empty list elements tolerated. Names and values are percent-decoded exactly
//! once (RFC 5849 §3.6, `+` stays `+`). `realm` is ignored. A parameter given twice is [`OAuthError::Ambiguous`]:
//! the proxy must not guess which one the backend will use.
//!
//! Longer than 600 lines: its tests (the header cases of three schemes, and the reference parameter loop the
//! single-pass one is checked against) are more than half of it.

use std::borrow::Cow;

use crate::oauth::{percent, CredentialValue, OAuthError};

/// The most parameters an `OAuth` header may carry. A real one has about eight; the cap bounds the
/// duplicate check on hostile input.
pub const MAX_PARAMS: usize = 64;

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// `OAuth ...`: the decoded protocol parameters (without `realm`).
    OAuth(OAuthParams),
    /// `Bearer <b64token>`.
    Bearer(CredentialValue),
    /// Any other scheme (`Basic`, `Negotiate`, ...): carries nothing tokenroute routes on.
    Other,
}

/// Decoded `OAuth` header parameters, in header order, each name once. Values stay redacted in `Debug`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthParams {
    params: Vec<(String, CredentialValue)>,
}

impl OAuthParams {
    /// The value of parameter `name` (names are case-sensitive, RFC 5849 §3.4.1.3.1).
    pub fn get(&self, name: &str) -> Option<&CredentialValue> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The parameters in header order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &CredentialValue)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

/// Parses one `Authorization` header value.
///
/// An unknown scheme is `Ok(Authorization::Other)`, not an error: only `OAuth` and `Bearer` headers that break
/// their own grammar are errors.
pub fn parse(value: &[u8]) -> Result<Authorization, OAuthError> {
    Ok(match parse_borrowed(value)? {
        AuthorizationRef::OAuth(params) => Authorization::OAuth(OAuthParams {
            params: params
                .into_iter()
                .map(|(n, v)| (n.into_owned(), CredentialValue::new(v.into_owned())))
                .collect(),
        }),
        AuthorizationRef::Bearer(token) => Authorization::Bearer(CredentialValue::new(token)),
        AuthorizationRef::Other => Authorization::Other,
    })
}

/// A parsed `Authorization` header borrowing from its bytes: what [`parse`] returns, before any value is
/// copied. Names and values are decoded, and allocated only when they held a percent-escape; the request
/// path reads it and copies only the values it looks up (issue 12). Values are secrets: never log them.
pub(crate) enum AuthorizationRef<'a> {
    /// `OAuth ...`: decoded names and values in header order, each name once, without `realm`.
    OAuth(Vec<(Cow<'a, str>, Cow<'a, str>)>),
    /// `Bearer <b64token>`.
    Bearer(&'a str),
    /// Any other scheme.
    Other,
}

impl std::fmt::Debug for AuthorizationRef<'_> {
    /// Names only: values are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthorizationRef::OAuth(params) => f
                .debug_list()
                .entries(params.iter().map(|(name, _)| name))
                .finish(),
            AuthorizationRef::Bearer(_) => f.write_str("Bearer(..)"),
            AuthorizationRef::Other => f.write_str("Other"),
        }
    }
}

/// [`parse`] without copying: the same grammar, the same errors.
pub(crate) fn parse_borrowed(value: &[u8]) -> Result<AuthorizationRef<'_>, OAuthError> {
    let mut cur = Cursor { s: value, i: 0 };
    cur.skip_ws();
    let scheme = cur.take_while(is_tchar);
    if scheme.is_empty() {
        return Err(OAuthError::Malformed("missing scheme"));
    }
    if !cur.at_end() && !cur.skip_ws() {
        // `take_while(is_tchar)` stopped on something that is neither whitespace nor the end.
        return Err(OAuthError::Malformed("invalid character in scheme"));
    }
    if scheme.eq_ignore_ascii_case(b"OAuth") {
        // Every byte of an OAuth header is ASCII in its grammar (tchar names, visible-ASCII quoted values,
        // separators): checked once here, so that each name and value is then sliced out of one `&str`.
        let text = match std::str::from_utf8(value) {
            Ok(text) if text.is_ascii() => text,
            _ => return Err(OAuthError::Malformed("non-ASCII byte in an OAuth header")),
        };
        parse_oauth_params(text, &mut cur).map(AuthorizationRef::OAuth)
    } else if scheme.eq_ignore_ascii_case(b"Bearer") {
        parse_bearer(&mut cur)
    } else {
        Ok(AuthorizationRef::Other)
    }
}

/// The client id of an `Authorization: Basic` header sent as OAuth 2 client authentication (RFC 6749 §2.3.1):
/// `base64(urlencode(client_id) ":" urlencode(client_secret))`, each part form-urlencoded (`+` is a space).
///
/// `Ok(None)`: another scheme. An error: a `Basic` header that does not decode to a usable client id (bad
/// base64, no `:`, empty id, bad percent-encoding, not UTF-8); the request then simply carries no client id, and
/// the backend judges the header. The id ends at the first `:` (RFC 7617: a user-id cannot contain one; a
/// conforming client percent-encodes it). The secret is never decoded into text or kept: the decoded bytes
/// are zeroed before returning.
pub fn basic_client_id(value: &[u8]) -> Result<Option<CredentialValue>, OAuthError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    // Standard alphabet; some clients drop the padding, which loses nothing.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );

    let mut cur = Cursor { s: value, i: 0 };
    cur.skip_ws();
    let scheme = cur.take_while(is_tchar);
    if !scheme.eq_ignore_ascii_case(b"Basic") {
        return Ok(None);
    }
    if !cur.skip_ws() {
        return Err(OAuthError::Malformed("missing Basic credentials"));
    }
    // token68 (RFC 7235 §2.1), restricted to the standard base64 alphabet.
    let start = cur.i;
    let encoded = cur.take_while(|b| b.is_ascii_alphanumeric() || b"+/".contains(&b));
    let padding = cur.take_while(|b| b == b'=');
    let token68 = &value[start..cur.i];
    cur.skip_ws();
    if encoded.is_empty() || !cur.at_end() || padding.len() > 2 {
        return Err(OAuthError::Malformed("invalid Basic credentials"));
    }
    let mut decoded = LENIENT
        .decode(token68)
        .map_err(|_| OAuthError::Malformed("Basic credentials are not base64"))?;
    let id = match decoded.iter().position(|&b| b == b':') {
        None => Err(OAuthError::Malformed("Basic credentials lack ':'")),
        Some(0) => Err(OAuthError::Malformed("empty client id")),
        Some(colon) => {
            percent::decode_form_component(&decoded[..colon]).map_err(OAuthError::Encoding)
        }
    };
    decoded.fill(0);
    let id = id?;
    if id.is_empty() {
        return Err(OAuthError::Malformed("empty client id"));
    }
    Ok(Some(CredentialValue::new(id)))
}

type BorrowedParams<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// The parameters of an OAuth header; `text` is the whole header value (`cur` reads its bytes), all ASCII.
fn parse_oauth_params<'a>(
    text: &'a str,
    cur: &mut Cursor<'a>,
) -> Result<BorrowedParams<'a>, OAuthError> {
    // One pass over the bytes with the position in a local (issue 12: this loop runs on every token-aware
    // OAuth request). `tests::the_single_pass_parser_agrees_with_the_reference` holds it to the plain
    // cursor-based reading of the grammar, error for error.
    let bytes = cur.s;
    let mut i = cur.i;
    // A signed request carries 7 or 8 parameters: one allocation.
    let mut params: BorrowedParams<'a> = Vec::with_capacity(8);
    loop {
        i = skip_ws(bytes, i);
        let Some(&first) = bytes.get(i) else { break };
        if first == b',' {
            i += 1;
            continue; // empty list element (RFC 7230 §7)
        }
        let name_range = i..skip_tchars(bytes, i);
        if name_range.is_empty() {
            return Err(OAuthError::Malformed("expected a parameter name"));
        }
        i = skip_ws(bytes, name_range.end);
        if bytes.get(i) != Some(&b'=') {
            return Err(OAuthError::Malformed("expected '=' after a parameter name"));
        }
        i = skip_ws(bytes, i + 1);
        let value_range = if bytes.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut end = start;
            while bytes.get(end).is_some_and(|&b| QUOTED[usize::from(b)]) {
                end += 1;
            }
            if bytes.get(end) != Some(&b'"') {
                // Percent-encoded values are plain visible ASCII; a backslash would be a quoted-pair, which no
                // OAuth client produces, so it is refused rather than interpreted. A value with no closing
                // quote at all is unterminated, whatever it holds.
                return Err(if bytes[end..].contains(&b'"') {
                    OAuthError::Malformed("invalid character in a quoted value")
                } else {
                    OAuthError::Malformed("unterminated quoted value")
                });
            }
            i = end + 1;
            start..end
        } else {
            let range = i..skip_tchars(bytes, i);
            i = range.end;
            range
        };
        i = skip_ws(bytes, i);
        match bytes.get(i) {
            None => {}
            Some(b',') => i += 1,
            Some(_) => return Err(OAuthError::Malformed("expected ',' between parameters")),
        }

        let name = decode(&text[name_range])?;
        if name.eq_ignore_ascii_case("realm") {
            continue;
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(OAuthError::Ambiguous);
        }
        if params.len() == MAX_PARAMS {
            return Err(OAuthError::TooManyParameters { max: MAX_PARAMS });
        }
        params.push((name, decode(&text[value_range])?));
    }
    cur.i = i;
    Ok(params)
}

/// The index of the first byte at or after `i` that is not a space or a tab.
fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// The index of the first byte at or after `i` that is not a `tchar`.
fn skip_tchars(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|&b| is_tchar(b)) {
        i += 1;
    }
    i
}

/// The bytes a quoted OAuth value may hold: visible ASCII except `"` (its end) and `\\` (a quoted-pair).
const QUOTED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        table[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    table
};

fn parse_bearer<'a>(cur: &mut Cursor<'a>) -> Result<AuthorizationRef<'a>, OAuthError> {
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let start = cur.i;
    let body = cur.take_while(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if body.is_empty() {
        return Err(OAuthError::Malformed("missing bearer token"));
    }
    cur.take_while(|b| b == b'=');
    // The token and its padding, adjacent, only ASCII (checked by the predicates above).
    let token = &cur.s[start..cur.i];
    cur.skip_ws();
    if !cur.at_end() {
        return Err(OAuthError::Malformed("invalid character in bearer token"));
    }
    let token =
        std::str::from_utf8(token).map_err(|_| OAuthError::Malformed("non-ASCII bearer token"))?;
    Ok(AuthorizationRef::Bearer(token))
}

fn decode(raw: &str) -> Result<Cow<'_, str>, OAuthError> {
    percent::decode_borrowed(raw).map_err(OAuthError::Encoding)
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// `tchar` as a table: one load per byte instead of a scan of the punctuation list (the header is read byte by
/// byte on every token-aware request; issue 12).
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    /// Skips spaces and tabs; says whether it skipped any.
    fn skip_ws(&mut self) -> bool {
        !self.take_while(|b| b == b' ' || b == b'\t').is_empty()
    }

    /// Used by the reference parameter loop the tests keep.
    #[cfg(test)]
    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.s.get(self.i).is_some_and(|&b| pred(b)) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter loop as it was before the single-pass rewrite (issue 12): the plain reading of the grammar,
    /// kept as the reference the fast loop must agree with.
    #[allow(clippy::all)]
    fn reference_oauth_params<'a>(
        text: &'a str,
        cur: &mut Cursor<'a>,
    ) -> Result<BorrowedParams<'a>, OAuthError> {
        // A signed request carries 7 or 8 parameters: one allocation.
        let mut params: BorrowedParams<'a> = Vec::with_capacity(8);
        loop {
            cur.skip_ws();
            if cur.at_end() {
                break;
            }
            if cur.eat(b',') {
                continue; // empty list element (RFC 7230 §7)
            }
            let name_at = cur.i;
            let raw_name = cur.take_while(is_tchar);
            let name_range = name_at..cur.i;
            if raw_name.is_empty() {
                return Err(OAuthError::Malformed("expected a parameter name"));
            }
            cur.skip_ws();
            if !cur.eat(b'=') {
                return Err(OAuthError::Malformed("expected '=' after a parameter name"));
            }
            cur.skip_ws();
            let value_range = if cur.eat(b'"') {
                let start = cur.i;
                let rest = &cur.s[start..];
                let v = &rest[..rest.iter().position(|&b| b == b'"').unwrap_or(rest.len())];
                cur.i += v.len();
                if !cur.eat(b'"') {
                    return Err(OAuthError::Malformed("unterminated quoted value"));
                }
                // Percent-encoded values are plain visible ASCII; a backslash would be a quoted-pair, which no
                // OAuth client produces, so it is refused rather than interpreted.
                if v.iter().any(|&b| !(0x21..0x7f).contains(&b) || b == b'\\') {
                    return Err(OAuthError::Malformed("invalid character in a quoted value"));
                }
                start..start + v.len()
            } else {
                let start = cur.i;
                cur.take_while(is_tchar);
                start..cur.i
            };
            cur.skip_ws();
            if !cur.at_end() && !cur.eat(b',') {
                return Err(OAuthError::Malformed("expected ',' between parameters"));
            }

            let name = decode(&text[name_range])?;
            if name.eq_ignore_ascii_case("realm") {
                continue;
            }
            if params.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::Ambiguous);
            }
            if params.len() == MAX_PARAMS {
                return Err(OAuthError::TooManyParameters { max: MAX_PARAMS });
            }
            params.push((name, decode(&text[value_range])?));
        }
        Ok(params)
    }

    fn both(header: &str) -> (String, String) {
        let text = header;
        let mut fast = Cursor {
            s: text.as_bytes(),
            i: 0,
        };
        let mut slow = Cursor {
            s: text.as_bytes(),
            i: 0,
        };
        let f = parse_oauth_params(text, &mut fast);
        let r = reference_oauth_params(text, &mut slow);
        // Where the cursor stops matters only on success (an error ends the parse).
        let show = |result: &Result<BorrowedParams<'_>, OAuthError>, at: usize| match result {
            Ok(params) => format!("{params:?} at {at}"),
            Err(e) => format!("{e:?}"),
        };
        (show(&f, fast.i), show(&r, slow.i))
    }

    #[test]
    fn the_single_pass_parser_agrees_with_the_reference() {
        let mut inputs: Vec<String> = vec![
            String::new(),
            " ".into(),
            ",,".into(),
            r#"realm="x", oauth_consumer_key="k", oauth_token="t""#.into(),
            r#"oauth_signature="tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D""#.into(),
            r#"a="1" , b=2 ,c = "3""#.into(),
            r#"a="unterminated"#.into(),
            r#"a="bad\"quote""#.into(),
            r#"a="sp ace""#.into(),
            r#"a="bad\" b""#.into(),
            r#"a"#.into(),
            r#"a ="#.into(),
            r#"=1"#.into(),
            r#"a=1 b=2"#.into(),
            r#"a=1, a=2"#.into(),
            r#"a=%ZZ"#.into(),
            r#"a%41=1, A=2"#.into(),
            r#"a="%C3%A9", b="%FF""#.into(),
            "a=\"tab\tinside\"".into(),
            "a=\"\u{7f}\"".into(),
        ];
        let many: Vec<String> = (0..MAX_PARAMS + 2)
            .map(|i| format!("p{i}=\"{i}\""))
            .collect();
        inputs.push(many.join(", "));
        // Every prefix of a full header: each place the grammar can stop.
        let full = r#"realm="cqweb", oauth_consumer_key="3f6c", oauth_token="9c1d", oauth_nonce = a8 , oauth_signature="tR3%2B""#;
        inputs.extend((0..=full.len()).map(|n| full[..n].to_owned()));
        // The fuzzer's corpus for this parser, where it is checked out with the sources.
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/authorization");
        if let Ok(entries) = std::fs::read_dir(&corpus) {
            for entry in entries.flatten() {
                let bytes = std::fs::read(entry.path()).unwrap();
                if let Ok(text) = String::from_utf8(bytes) {
                    if text.is_ascii() {
                        inputs.push(text);
                    }
                }
            }
        }
        for input in &inputs {
            let (fast, reference) = both(input);
            assert_eq!(fast, reference, "on {input:?}");
        }
    }

    fn oauth(header: &str) -> OAuthParams {
        match parse(header.as_bytes()) {
            Ok(Authorization::OAuth(p)) => p,
            other => panic!("{header:?} parsed as {other:?}"),
        }
    }

    fn value<'a>(p: &'a OAuthParams, name: &str) -> Option<&'a str> {
        p.get(name).map(|v| v.expose())
    }

    #[test]
    fn rfc5849_example_header_parses_and_ignores_realm() {
        let p = oauth(
            r#"OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D""#,
        );
        assert_eq!(value(&p, "oauth_consumer_key"), Some("9djdj82h48djs9d2"));
        assert_eq!(value(&p, "oauth_token"), Some("kkk9d7dh3k39sjv7"));
        assert_eq!(
            value(&p, "oauth_signature"),
            Some("bYT5CMsGcbgUdFHObYMEfcx6bsw=")
        );
        assert_eq!(value(&p, "realm"), None);
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn scheme_is_case_insensitive_and_whitespace_is_tolerated() {
        for header in [
            r#"oauth oauth_token="t""#,
            r#"OAUTH   oauth_token = "t" ,oauth_nonce="n""#,
            "\tOAuth\toauth_token=\t\"t\"\t,\t,oauth_nonce=n  ",
            r#"OAuth oauth_token=t,"#,
        ] {
            assert_eq!(
                value(&oauth(header), "oauth_token"),
                Some("t"),
                "{header:?}"
            );
        }
    }

    #[test]
    fn names_and_values_are_percent_decoded_exactly_once() {
        let p = oauth(r#"OAuth oauth_token="a%2520b%2Bc+d", oauth%5Fnonce="x""#);
        assert_eq!(value(&p, "oauth_token"), Some("a%20b+c+d"));
        assert_eq!(value(&p, "oauth_nonce"), Some("x"));
    }

    #[test]
    fn bare_scheme_has_no_parameters() {
        assert!(oauth("OAuth").is_empty());
        assert!(oauth("OAuth   ").is_empty());
    }

    #[test]
    fn duplicated_parameter_is_ambiguous_even_with_equal_values() {
        for header in [
            r#"OAuth oauth_token="a", oauth_token="b""#,
            r#"OAuth oauth_token="a", oauth_token="a""#,
            r#"OAuth oauth_token="a", oauth%5Ftoken="b""#,
        ] {
            assert_eq!(
                parse(header.as_bytes()),
                Err(OAuthError::Ambiguous),
                "{header:?}"
            );
        }
    }

    #[test]
    fn malformed_oauth_headers_are_errors() {
        let cases: &[&[u8]] = &[
            b"",
            b"   ",
            b"OAuth oauth_token",
            b"OAuth oauth_token=\"abc",
            b"OAuth oauth_token=\"a\"b\"",
            b"OAuth oauth_token=\"a\" oauth_nonce=\"b\"",
            b"OAuth =\"a\"",
            b"OAuth oauth_token=\"a b\"",
            b"OAuth oauth_token=\"a\\\"b\"",
            b"OAuth oauth_token=\"\xff\"",
            b"OAuth \xc3\xa9=\"a\"",
            b"OAuth, oauth_token=\"a\"",
            b"OAuth\x00 oauth_token=\"a\"",
            b"\"OAuth\"",
        ];
        for &case in cases {
            assert!(
                matches!(parse(case), Err(OAuthError::Malformed(_))),
                "{:?} -> {:?}",
                String::from_utf8_lossy(case),
                parse(case)
            );
        }
    }

    #[test]
    fn bad_percent_escapes_are_encoding_errors() {
        for header in [
            r#"OAuth oauth_token="%zz""#,
            r#"OAuth oauth_token="%4""#,
            r#"OAuth oauth_token="%FF""#,
            r#"OAuth oauth_%="x""#,
        ] {
            assert!(
                matches!(parse(header.as_bytes()), Err(OAuthError::Encoding(_))),
                "{header:?}"
            );
        }
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let mut header = String::from("OAuth ");
        for i in 0..=MAX_PARAMS {
            header.push_str(&format!("p{i}=\"v\","));
        }
        assert_eq!(
            parse(header.as_bytes()),
            Err(OAuthError::TooManyParameters { max: MAX_PARAMS })
        );
    }

    #[test]
    fn huge_header_is_parsed_without_trouble() {
        let long = "a".repeat(1 << 20);
        let p = oauth(&format!("OAuth oauth_token=\"{long}\""));
        assert_eq!(value(&p, "oauth_token").map(str::len), Some(1 << 20));
        assert!(parse(format!("OAuth oauth_token=\"{long}").as_bytes()).is_err());
    }

    #[test]
    fn bearer_tokens_follow_rfc6750_syntax() {
        let ok: &[(&str, &str)] = &[
            ("Bearer mF_9.B5f-4.1JqM", "mF_9.B5f-4.1JqM"),
            ("bearer abc+/==", "abc+/=="),
            ("  BEARER  xyz~  ", "xyz~"),
        ];
        for &(header, token) in ok {
            match parse(header.as_bytes()) {
                Ok(Authorization::Bearer(v)) => assert_eq!(v.expose(), token),
                other => panic!("{header:?} -> {other:?}"),
            }
        }
        for header in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer =abc",
            "Bearer a=b",
            "Bearer é",
        ] {
            assert!(
                matches!(parse(header.as_bytes()), Err(OAuthError::Malformed(_))),
                "{header:?}"
            );
        }
    }

    #[test]
    fn other_schemes_carry_nothing() {
        assert_eq!(parse(b"Basic dXNlcjpwYXNz"), Ok(Authorization::Other));
        assert_eq!(parse(b"OAuthish x=\"y\""), Ok(Authorization::Other));
        assert_eq!(parse(b"Negotiate"), Ok(Authorization::Other));
    }

    fn basic(credentials: &[u8]) -> String {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }

    #[test]
    fn basic_client_id_follows_rfc6749_form_encoding() {
        let cases: &[(String, &str)] = &[
            (basic(b"s6BhdRkqt3:gX1fBat3bV"), "s6BhdRkqt3"),
            // RFC 6749 §2.3.1: each part is form-urlencoded before base64, so `:` in an id arrives as %3A.
            (basic(b"urn%3Aapp%3A1:secret"), "urn:app:1"),
            (basic(b"my+client:s"), "my client"),
            (basic(b"a%2Bb:s"), "a+b"),
            (basic(b"caf%C3%A9:s"), "caf\u{e9}"),
            (basic(b"id:"), "id"),
            (basic(b"id:se:cr:et"), "id"),
            // Non-conforming client that did not encode ':' in its id: the first ':' ends the id (RFC 7617).
            (basic(b"a:b:secret"), "a"),
            (format!("  bAsIc   {}  ", &basic(b"id:s")[6..]), "id"),
            (format!("BASIC\t{}", &basic(b"id:s")[6..]), "id"),
            // Padding dropped by the client.
            (basic(b"id1:s").trim_end_matches('=').to_owned(), "id1"),
        ];
        for (header, want) in cases {
            let got = basic_client_id(header.as_bytes());
            assert_eq!(
                got.as_ref()
                    .ok()
                    .and_then(|v| v.as_ref())
                    .map(|v| v.expose()),
                Some(*want),
                "{header:?} -> {got:?}"
            );
        }
    }

    #[test]
    fn malformed_basic_headers_yield_no_client_id() {
        let cases: &[Vec<u8>] = &[
            b"Basic".to_vec(),
            b"Basic ".to_vec(),
            b"Basic !!!!".to_vec(),
            b"Basic aWQ6cw== extra".to_vec(),
            b"Basic aWQ6cw===".to_vec(),
            b"Basic a".to_vec(),
            basic(b"no-colon").into_bytes(),
            basic(b":secret").into_bytes(),
            basic(b"\xff\xfe:s").into_bytes(),
            basic(b"%FF:s").into_bytes(),
            basic(b"%zz:s").into_bytes(),
            basic(b"+%:s").into_bytes(),
            b"Basic\x00aWQ6cw==".to_vec(),
        ];
        for header in cases {
            assert!(
                basic_client_id(header).is_err(),
                "{:?} -> {:?}",
                String::from_utf8_lossy(header),
                basic_client_id(header)
            );
        }
    }

    #[test]
    fn other_schemes_have_no_basic_client_id() {
        for header in [
            &b"Bearer abc"[..],
            b"OAuth oauth_token=\"t\"",
            b"Basicx aWQ6cw==",
            b"",
            b"\xff",
        ] {
            assert_eq!(basic_client_id(header), Ok(None), "{header:?}");
        }
    }

    #[test]
    fn basic_client_id_debug_never_shows_the_id_or_secret() {
        let id = basic_client_id(basic(b"canary-id:canary-secret").as_bytes()).unwrap();
        assert!(!format!("{id:?}").contains("canary"));
    }

    #[test]
    fn debug_output_never_contains_values() {
        let auth = parse(br#"OAuth oauth_token="canary-token-123""#).unwrap();
        assert!(!format!("{auth:?}").contains("canary"));
        let bearer = parse(b"Bearer canary-bearer").unwrap();
        assert!(!format!("{bearer:?}").contains("canary"));
    }
}

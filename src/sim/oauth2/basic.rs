//! `client_secret_basic` (RFC 6749 §2.3.1): `Authorization: Basic base64(enc(id) ":" enc(secret))`, where
//! `enc` is `application/x-www-form-urlencoded` encoding. The encoding step is what many clients and
//! servers forget; both sides of the stand-in do it, so an id or secret holding `:`, `+`, `/` or `=`
//! survives.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use thiserror::Error;

use crate::oauth::percent;

/// Why an `Authorization: Basic` value is not a client's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BasicError {
    /// The scheme is not `Basic`.
    #[error("not a Basic authorization")]
    NotBasic,
    /// The credentials are not base64.
    #[error("credentials are not base64")]
    NotBase64,
    /// No `:` between id and secret.
    #[error("no ':' between client id and secret")]
    MissingColon,
    /// A part is not valid form-urlencoding of UTF-8.
    #[error("a part is not form-urlencoded UTF-8")]
    BadEncoding(#[source] percent::PercentError),
}

/// The header value for `client_id` and `client_secret`.
pub fn encode(client_id: &str, client_secret: &str) -> String {
    let raw = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
    format!("Basic {}", STANDARD.encode(raw))
}

/// Decodes a header value into `(client_id, client_secret)`. The scheme is case-insensitive (RFC 9110
/// §11.1); the id ends at the first `:`, which encoding guarantees is not part of it.
pub fn decode(value: &str) -> Result<(String, String), BasicError> {
    let (scheme, rest) = value.trim().split_once(' ').ok_or(BasicError::NotBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BasicError::NotBasic);
    }
    let raw = STANDARD
        .decode(rest.trim())
        .map_err(|_| BasicError::NotBase64)?;
    let colon = raw
        .iter()
        .position(|&b| b == b':')
        .ok_or(BasicError::MissingColon)?;
    let part =
        |bytes: &[u8]| percent::decode_form_component(bytes).map_err(BasicError::BadEncoding);
    Ok((part(&raw[..colon])?, part(&raw[colon + 1..])?))
}

/// `application/x-www-form-urlencoded` encoding of one value: unreserved bytes stay, space is `+`,
/// everything else `%XX`.
pub fn form_encode(value: &str) -> String {
    percent::encode(value).replace("%20", "+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_ids_and_secrets_with_reserved_characters() {
        for (id, secret) in [
            ("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw"),
            ("urn:client:1", "a+b/c=="),
            ("id with space", "sécret:with:colons"),
            ("", ""),
        ] {
            assert_eq!(
                decode(&encode(id, secret)).unwrap(),
                (id.into(), secret.into())
            );
        }
    }

    #[test]
    fn a_colon_in_the_id_is_percent_encoded_before_base64() {
        let header = encode("urn:client:1", "s");
        let raw = STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(raw, b"urn%3Aclient%3A1:s");
    }

    #[test]
    fn scheme_is_case_insensitive_and_plus_decodes_to_space() {
        let value = format!("bAsIc {}", STANDARD.encode("my+id:p%2Bw"));
        assert_eq!(decode(&value).unwrap(), ("my id".into(), "p+w".into()));
    }

    #[test]
    fn malformed_values_are_refused_not_guessed() {
        assert_eq!(decode("Bearer abc"), Err(BasicError::NotBasic));
        assert_eq!(decode("Basic"), Err(BasicError::NotBasic));
        assert_eq!(decode("Basic !!!"), Err(BasicError::NotBase64));
        let no_colon = format!("Basic {}", STANDARD.encode("justanid"));
        assert_eq!(decode(&no_colon), Err(BasicError::MissingColon));
        let bad_escape = format!("Basic {}", STANDARD.encode("id%zz:s"));
        assert!(matches!(
            decode(&bad_escape),
            Err(BasicError::BadEncoding(_))
        ));
        let not_utf8 = format!("Basic {}", STANDARD.encode(b"\xff:s"));
        assert!(matches!(decode(&not_utf8), Err(BasicError::BadEncoding(_))));
    }
}

//! OpenID Connect id_tokens as compact JWTs signed `HS256` with the client secret (OpenID Connect Core
//! §10.1: the key is the octets of the secret). Only what the stand-in needs: sign, verify, read claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// The claims the stand-in puts in an id_token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    /// Issuer (the URL the client used, proxy or node).
    pub iss: String,
    /// Subject (the user name).
    pub sub: String,
    /// Audience: the client id.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// When the user logged in.
    pub auth_time: u64,
    /// The authorization request's `nonce`, carried through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The browser session at the node (for end-session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Left half of SHA-256 of the access token, base64url (Core §3.1.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
}

/// Why a JWT is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtError {
    /// Not three base64url parts holding JSON.
    #[error("malformed JWT")]
    Malformed,
    /// A header other than `{"alg":"HS256"}`.
    #[error("unsupported JWT algorithm")]
    Algorithm,
    /// The signature does not verify under the key.
    #[error("JWT signature does not verify")]
    Signature,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// Signs `claims` with `key`.
pub fn sign(claims: &IdClaims, key: &[u8]) -> String {
    let header = Header {
        alg: "HS256".into(),
        typ: Some("JWT".into()),
    };
    let part = |v: Vec<u8>| URL_SAFE_NO_PAD.encode(v);
    let signing_input = format!(
        "{}.{}",
        part(serde_json::to_vec(&header).unwrap_or_default()),
        part(serde_json::to_vec(claims).unwrap_or_default())
    );
    let signature = mac(key)
        .chain_update(signing_input.as_bytes())
        .finalize()
        .into_bytes();
    format!("{signing_input}.{}", part(signature.to_vec()))
}

/// The claims, unverified: what a server reads from an `id_token_hint` to find the key to verify it with.
pub fn claims_unverified(token: &str) -> Result<IdClaims, JwtError> {
    let payload = token.split('.').nth(1).ok_or(JwtError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

/// Verifies the `HS256` signature in constant time and returns the claims. Expiry is the caller's check.
pub fn verify(token: &str, key: &[u8]) -> Result<IdClaims, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(JwtError::Malformed)?;
    if header.alg != "HS256" {
        return Err(JwtError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let signing_input = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
    mac(key)
        .chain_update(signing_input.as_bytes())
        .verify_slice(&signature)
        .map_err(|_| JwtError::Signature)?;
    claims_unverified(token)
}

/// `at_hash` of an access token (Core §3.1.3.6 for `HS256`).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> IdClaims {
        IdClaims {
            iss: "http://127.0.0.1:1".into(),
            sub: "alice".into(),
            aud: "client".into(),
            exp: 2,
            iat: 1,
            auth_time: 1,
            nonce: Some("n-0S6_WzA2Mj".into()),
            sid: Some("sid".into()),
            at_hash: Some(at_hash("token")),
        }
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_and_carries_the_nonce() {
        let token = sign(&claims(), b"secret");
        assert_eq!(verify(&token, b"secret").unwrap(), claims());
        assert_eq!(
            claims_unverified(&token).unwrap().nonce.as_deref(),
            Some("n-0S6_WzA2Mj")
        );
    }

    #[test]
    fn another_key_a_changed_payload_or_another_algorithm_is_refused() {
        let token = sign(&claims(), b"secret");
        assert_eq!(verify(&token, b"other"), Err(JwtError::Signature));
        let mut forged = claims();
        forged.sub = "mallory".into();
        let forged_payload = sign(&forged, b"other");
        let parts: Vec<&str> = token.split('.').collect();
        let swapped = format!(
            "{}.{}.{}",
            parts[0],
            forged_payload.split('.').nth(1).unwrap(),
            parts[2]
        );
        assert_eq!(verify(&swapped, b"secret"), Err(JwtError::Signature));
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(verify(&unsigned, b"secret"), Err(JwtError::Algorithm));
        assert_eq!(verify("a.b", b"secret"), Err(JwtError::Malformed));
    }
}

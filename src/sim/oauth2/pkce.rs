//! PKCE (RFC 7636) with the `S256` method only: `challenge = BASE64URL(SHA256(verifier))`, no padding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The `S256` challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh verifier: 32 random bytes, base64url (43 characters, inside RFC 7636 §4.1's 43..=128).
pub fn new_verifier() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `verifier` is well-formed (RFC 7636 §4.1) and matches `challenge`.
pub fn verify(verifier: &str, challenge_value: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && challenge(verifier) == challenge_value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verify(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn refuses_a_wrong_or_malformed_verifier() {
        let v = new_verifier();
        assert!(verify(&v, &challenge(&v)));
        assert!(!verify(&new_verifier(), &challenge(&v)));
        assert!(!verify("short", &challenge("short")));
    }
}

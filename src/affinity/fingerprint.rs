//! Credential fingerprints: HMAC-SHA256 under a secret key, truncated to 16 bytes.
//!
//! The table stores fingerprints, never credentials, so a table dump, snapshot or admin page shows nothing a
//! client could replay; the key keeps an attacker who reads a snapshot from confirming a guessed token offline.
//! 128 bits keep accidental collisions out of reach for any table size a proxy holds.
//!
//! The key file holds 64 lower-case hex digits and a newline, mode 0600. It is created atomically and never
//! overwritten; a key file that group or others can access is refused (like `ssh` refuses a loose private
//! key), because whoever holds the key can test guesses against a snapshot.

use std::fmt;
use std::path::Path;

use hmac::digest::generic_array::GenericArray;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::affinity::files;
use crate::affinity::AffinityError;

type HmacSha256 = Hmac<Sha256>;

/// Length of a fingerprint key in bytes.
pub const KEY_LEN: usize = 32;

/// The secret key fingerprints are computed under. `Debug` never shows it.
#[derive(Clone)]
pub struct FingerprintKey {
    /// The keyed state (inner and outer pads already hashed), cloned per fingerprint.
    mac: HmacSha256,
}

impl FingerprintKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> FingerprintKey {
        let mut bytes = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        FingerprintKey::from_bytes(bytes)
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> FingerprintKey {
        // HMAC zero-pads a key shorter than the hash block (RFC 2104 §2), so padding it here gives the same
        // MAC and uses the infallible block-sized constructor.
        let mut block = [0u8; 64];
        block[..KEY_LEN].copy_from_slice(&bytes);
        FingerprintKey {
            mac: <HmacSha256 as KeyInit>::new(GenericArray::from_slice(&block)),
        }
    }

    /// The key written as 64 hex digits (how it is kept in a file or given in config).
    pub fn from_hex(hex: &str) -> Result<FingerprintKey, AffinityError> {
        let hex = hex.trim().as_bytes();
        if hex.len() != 2 * KEY_LEN {
            return Err(AffinityError::InvalidKey);
        }
        let mut bytes = [0u8; KEY_LEN];
        for (out, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            *out = hex_byte(pair[0], pair[1]).ok_or(AffinityError::InvalidKey)?;
        }
        Ok(FingerprintKey::from_bytes(bytes))
    }

    /// Loads the key at `path`, or creates it there (mode 0600, atomically, never overwriting a key another
    /// process created meanwhile). Refuses a key file that group or others can access.
    pub fn load_or_create(path: &Path) -> Result<FingerprintKey, AffinityError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                files::check_private(path)?;
                FingerprintKey::from_hex(&text).map_err(|_| AffinityError::KeyMalformed {
                    path: path.to_owned(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; KEY_LEN];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let mut text = String::with_capacity(2 * KEY_LEN + 1);
                for b in bytes {
                    text.push_str(&format!("{b:02x}"));
                }
                text.push('\n');
                let created = files::write_private(path, files::Replace::No, |f| {
                    f.write_all(text.as_bytes())
                })?;
                if created {
                    Ok(FingerprintKey::from_bytes(bytes))
                } else {
                    // Another process won the race: use its key.
                    FingerprintKey::load_or_create(path)
                }
            }
            Err(source) => Err(AffinityError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The fingerprint of a credential value.
    pub fn fingerprint(&self, value: &str) -> Fingerprint {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&digest[..16]);
        Fingerprint(fp)
    }

    /// A fingerprint that identifies the key without revealing it: written in snapshots so that loading one
    /// under another key is detected. The input starts with NUL, which no header or cookie value holds, so it
    /// is never the fingerprint of a real credential.
    pub fn check_value(&self) -> Fingerprint {
        self.fingerprint("\0tokenroute key check")
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey(***)")
    }
}

/// A credential's 16-byte fingerprint. Not a secret: it may be logged and shown.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    /// The fingerprint with these bytes (for persistence and tests).
    pub fn from_bytes(bytes: [u8; 16]) -> Fingerprint {
        Fingerprint(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the 32-hex-digit form that `Display` prints.
    pub fn from_hex(hex: &str) -> Option<Fingerprint> {
        let hex = hex.as_bytes();
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (out, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            *out = hex_byte(pair[0], pair[1])?;
        }
        Some(Fingerprint(bytes))
    }
}

/// 32 lower-case hex digits.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The first 8 hex digits: enough to tell entries apart in a log line.
impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint(")?;
        self.0[..4].iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "..)")
    }
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    Some(digit(hi)? << 4 | digit(lo)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::files::tests::temp_path;

    #[test]
    fn fingerprint_is_hmac_sha256_truncated_to_16_bytes() {
        // RFC 4231 test case 2 ("Jefe") uses a 4-byte key: check the padding construction against it.
        let mut key = [0u8; KEY_LEN];
        key[..4].copy_from_slice(b"Jefe");
        let fp = FingerprintKey::from_bytes(key).fingerprint("what do ya want for nothing?");
        assert_eq!(fp.to_string(), "5bdcc146bf60754e6a042426089575c7");
    }

    #[test]
    fn fingerprints_depend_on_key_and_value() {
        let a = FingerprintKey::generate();
        let b = FingerprintKey::generate();
        assert_eq!(a.fingerprint("t"), a.fingerprint("t"));
        assert_ne!(a.fingerprint("t"), a.fingerprint("u"));
        assert_ne!(a.fingerprint("t"), b.fingerprint("t"));
        assert_ne!(a.check_value(), b.check_value());
    }

    #[test]
    fn hex_forms_round_trip_and_reject_garbage() {
        let fp = FingerprintKey::generate().fingerprint("x");
        assert_eq!(Fingerprint::from_hex(&fp.to_string()), Some(fp));
        for bad in ["", "zz", &"0".repeat(31), &"g".repeat(32), &"é".repeat(16)] {
            assert_eq!(Fingerprint::from_hex(bad), None, "{bad}");
        }
        let key_hex = "00".repeat(32);
        assert!(FingerprintKey::from_hex(&key_hex).is_ok());
        assert!(FingerprintKey::from_hex(&"0".repeat(63)).is_err());
        assert!(FingerprintKey::from_hex(&"x".repeat(64)).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_key_and_shortens_fingerprints() {
        let key = FingerprintKey::from_bytes([0xab; KEY_LEN]);
        assert_eq!(format!("{key:?}"), "FingerprintKey(***)");
        let fp = Fingerprint::from_bytes([0x12; 16]);
        assert_eq!(format!("{fp:?}"), "Fingerprint(12121212..)");
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let path = temp_path("key");
        let created = FingerprintKey::load_or_create(&path).unwrap();
        let loaded = FingerprintKey::load_or_create(&path).unwrap();
        assert_eq!(created.fingerprint("v"), loaded.fingerprint("v"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_path("loosekey");
        std::fs::write(&path, format!("{}\n", "11".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = FingerprintKey::load_or_create(&path).unwrap_err();
        assert!(
            matches!(err, AffinityError::KeyPermissions { mode: 0o644, .. }),
            "{err:?}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn malformed_key_file_is_refused_not_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_path("badkey");
        std::fs::write(&path, "not a key\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = FingerprintKey::load_or_create(&path).unwrap_err();
        assert!(matches!(err, AffinityError::KeyMalformed { .. }), "{err:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key\n");
        std::fs::remove_file(&path).unwrap();
    }
}

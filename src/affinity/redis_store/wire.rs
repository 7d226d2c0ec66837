//! How entries look in Redis, as pure functions (no I/O), so the layout is tested without a server.
//!
//! - An entry is the string key `<prefix>e:<fingerprint hex>` holding 9 bytes: the kind (`b'a'` + its index in
//!   [`CredentialKind::ALL`]) then the owner set as a 64-bit bitmap in `SETBIT` order (node `n` is bit offset
//!   `8 + n`: byte `1 + n / 8`, most significant bit first). The key's Redis expiry is the entry's expiry, so
//!   Redis drops it when the kind's TTL runs out. `SETBIT` on one node's bit is atomic, so no script ever reads
//!   an owner set, changes it and writes it back.
//! - Every change is published on `<prefix>changes` as `<origin> <fingerprint hex> <expiry ms> <value>`, an
//!   empty value meaning "gone"; `origin` names the instance that made it, which skips its own messages.

use crate::affinity::{Entry, Fingerprint, NodeSet, MAX_NODES};
use crate::oauth::{CredentialKind, Specificity};

/// Length of an entry's value.
pub(crate) const VALUE_LEN: usize = 1 + MAX_NODES / 8;

/// The byte that stands for `kind`.
pub(crate) fn kind_byte(kind: CredentialKind) -> u8 {
    b'a' + kind.index() as u8
}

/// The kind a byte stands for.
pub(crate) fn kind_of(byte: u8) -> Option<CredentialKind> {
    CredentialKind::ALL
        .get(usize::from(byte.checked_sub(b'a')?))
        .copied()
}

/// The bytes of every kind whose owner set spreads (consumer keys, client ids): the scripts keep such an entry
/// when its last owner goes, and add owners to it on a re-learn instead of replacing it.
pub(crate) fn key_kind_bytes() -> String {
    CredentialKind::ALL
        .iter()
        .filter(|k| k.specificity() == Specificity::Key)
        .map(|&k| char::from(kind_byte(k)))
        .collect()
}

/// The value of an entry of `kind` owned by `owners`.
pub(crate) fn encode(kind: CredentialKind, owners: NodeSet) -> [u8; VALUE_LEN] {
    let mut value = [0u8; VALUE_LEN];
    value[0] = kind_byte(kind);
    for id in owners.iter() {
        let n = id.index();
        value[1 + n / 8] |= 0x80 >> (n % 8);
    }
    value
}

/// The entry a value and its Redis expiry (unix milliseconds) stand for; `None` for a value tokenroute did not
/// write. Bits past the value's end read as zero, as `SETBIT` pads.
pub(crate) fn decode(value: &[u8], expires_ms: i64) -> Option<Entry> {
    let (&kind, bitmap) = value.split_first()?;
    let kind = kind_of(kind)?;
    let mut owners = NodeSet::EMPTY;
    for (i, byte) in bitmap.iter().take(MAX_NODES / 8).enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                if let Some(id) = crate::affinity::NodeId::new(i * 8 + bit) {
                    owners = owners.with(id);
                }
            }
        }
    }
    // A key without an expiry (never written so by tokenroute) lives as long as an entry can.
    let expires_at = if expires_ms > 0 {
        (expires_ms as u64).div_ceil(1000)
    } else {
        u64::from(u32::MAX)
    };
    Some(Entry::new(kind, owners, expires_at))
}

/// One published change.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Change<'a> {
    /// The instance that made it.
    pub origin: &'a [u8],
    /// The credential.
    pub fp: Fingerprint,
    /// Its entry now; `None`: it is gone.
    pub entry: Option<Entry>,
}

/// Reads a message of the changes channel; `None` for anything malformed.
pub(crate) fn parse_change(payload: &[u8]) -> Option<Change<'_>> {
    let mut parts = payload.splitn(4, |&b| b == b' ');
    let origin = parts.next()?;
    let fp = Fingerprint::from_hex(std::str::from_utf8(parts.next()?).ok()?)?;
    let expires_ms: i64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let value = parts.next()?;
    let entry = if value.is_empty() {
        None
    } else {
        Some(decode(value, expires_ms)?)
    };
    Some(Change { origin, fp, entry })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affinity::NodeId;

    fn set(ids: &[usize]) -> NodeSet {
        ids.iter().map(|&i| NodeId::new(i).unwrap()).collect()
    }

    #[test]
    fn every_kind_and_owner_set_survives_encoding() {
        for kind in CredentialKind::ALL {
            for owners in [set(&[]), set(&[0]), set(&[1, 7, 8]), set(&[0, 31, 32, 63])] {
                let value = encode(kind, owners);
                let entry = decode(&value, 1_700_000_000_000).unwrap();
                assert_eq!((entry.kind(), entry.owners()), (kind, owners));
                assert_eq!(entry.expires_at(), 1_700_000_000);
            }
        }
    }

    #[test]
    fn node_bits_sit_where_setbit_puts_them() {
        // SETBIT key 8 1 sets the most significant bit of byte 1; SETBIT key 17 1 bit 1 of byte 2.
        let value = encode(CredentialKind::ConsumerKey, set(&[0, 9]));
        assert_eq!(value[1], 0x80);
        assert_eq!(value[2], 0x40);
        // A short value (SETBIT pads only as far as it writes) decodes with the missing bits clear.
        let short = [kind_byte(CredentialKind::ConsumerKey), 0x80];
        assert_eq!(decode(&short, 1000).unwrap().owners(), set(&[0]));
    }

    #[test]
    fn foreign_values_and_messages_are_refused() {
        assert!(decode(b"", 1).is_none());
        assert!(decode(b"Z\0\0\0\0\0\0\0\0", 1).is_none());
        assert!(parse_change(b"").is_none());
        assert!(parse_change(b"me nothex 1 a").is_none());
        assert!(parse_change(b"me 00112233445566778899aabbccddeeff x a").is_none());
    }

    #[test]
    fn changes_parse_with_and_without_a_value() {
        let fp = Fingerprint::from_bytes([0x11; 16]);
        let mut message = format!("inst-1 {fp} 5000 ").into_bytes();
        message.extend_from_slice(&encode(CredentialKind::AccessToken, set(&[2])));
        let change = parse_change(&message).unwrap();
        assert_eq!(change.origin, b"inst-1");
        assert_eq!(change.fp, fp);
        let entry = change.entry.unwrap();
        assert_eq!(
            (entry.kind(), entry.owners()),
            (CredentialKind::AccessToken, set(&[2]))
        );
        assert_eq!(entry.expires_at(), 5);
        // A value may hold a space byte (an owner bitmap of 0x20): only the first three spaces split.
        let mut spaced = format!("i {fp} 1000 ").into_bytes();
        spaced.extend_from_slice(&[kind_byte(CredentialKind::ConsumerKey), b' ']);
        assert_eq!(
            parse_change(&spaced).unwrap().entry.unwrap().owners(),
            set(&[2])
        );
        let gone = format!("i {fp} 0 ");
        assert_eq!(parse_change(gone.as_bytes()).unwrap().entry, None);
    }

    #[test]
    fn key_kinds_are_consumer_keys_and_client_ids() {
        let bytes = key_kind_bytes();
        assert!(bytes.contains(char::from(kind_byte(CredentialKind::ConsumerKey))));
        assert!(bytes.contains(char::from(kind_byte(CredentialKind::ClientId))));
        assert!(!bytes.contains(char::from(kind_byte(CredentialKind::AccessToken))));
    }
}

//! The journal's on-disk codec: pure functions over bytes, no I/O.
//!
//! # Segment layout (version 1, little-endian)
//!
//! ```text
//! header  : "TRJRNL" (6) | version u8 = 1 | reserved u8 = 0 | key check (16) | crc32 of the 24 bytes before (4)
//! record  : tag u8 | payload length u16 | payload | crc32 of tag, length and payload (4)
//! ```
//!
//! | tag | record | payload |
//! |---|---|---|
//! | 1 | [`Record::Put`]: an entry's whole new state | fingerprint (16), kind code u8, owner bits u64, expiry u32 |
//! | 2 | [`Record::Delete`]: an entry left the table | fingerprint (16) |
//! | 3 | [`Record::AddOwnerToKinds`]: a node refreshed | node id u8, kind-code bit mask u16 |
//! | 4 | [`Record::RemoveNode`]: a node left the pool | node id u8 |
//! | 5 | [`Record::Names`]: which node name each id means from here on | count u8, then per node: id u8, name length u16, name |
//!
//! A `Put` record is 36 bytes. Records carry a state, not a delta, wherever one entry changes, so replaying a
//! record whose effect a snapshot already holds is harmless; the two whole-table operations (3, 4) are
//! idempotent. Owner bits and node ids are this process's [`NodeId`]s; the `Names` record that opens every
//! segment (and follows every reload) maps them to names, which is what survives a restart.
//!
//! The checksum is CRC-32 (IEEE, via `crc32fast`): it guards against torn and damaged writes, not against an
//! attacker, who would need write access to a 0600 file beside the fingerprint key anyway. A truncated
//! SHA-256 would cost about 20 times more per record for no gain against that threat.

use crate::affinity::{Fingerprint, NodeId, NodeSet};
use crate::oauth::CredentialKind;

/// The first six bytes of every segment.
pub const MAGIC: &[u8; 6] = b"TRJRNL";
/// The segment format this code writes and reads.
pub const VERSION: u8 = 1;
/// Bytes in a segment header.
pub const HEADER_LEN: usize = 28;
/// Bytes around a record's payload: tag, length, checksum.
pub const FRAME_LEN: usize = 7;
/// Bytes of a whole `Put` record.
pub const PUT_LEN: usize = FRAME_LEN + 29;

const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_ADD_OWNER_TO_KINDS: u8 = 3;
const TAG_REMOVE_NODE: u8 = 4;
const TAG_NAMES: u8 = 5;

/// One journalled change of the learned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The entry of `fp` is now exactly this (learn, owner added or removed).
    Put {
        /// The credential's fingerprint.
        fp: Fingerprint,
        /// Its kind.
        kind: CredentialKind,
        /// Its owners, as ids of the process that wrote the record.
        owners: NodeSet,
        /// When it expires, unix seconds.
        expires_at: u32,
    },
    /// The entry of `fp` is gone (forgotten, or a token's last owner removed).
    Delete {
        /// The credential's fingerprint.
        fp: Fingerprint,
    },
    /// `node` was added to every entry of one of `kinds` (it was refreshed).
    AddOwnerToKinds {
        /// The refreshed node.
        node: NodeId,
        /// The kinds it now holds.
        kinds: Vec<CredentialKind>,
    },
    /// `node` was removed from every owner set (it left the pool).
    RemoveNode {
        /// The removed node.
        node: NodeId,
    },
    /// From here on, ids mean these node names.
    Names(Vec<(NodeId, String)>),
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid record and how many bytes it took.
    Record(Record, usize),
    /// The buffer ends inside a record: at the end of a file, a torn write.
    Incomplete,
    /// A whole frame whose checksum or content is wrong.
    Corrupt,
}

/// What [`decode_header`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A version-1 header and the key check value it names.
    Valid(Fingerprint),
    /// Shorter than a header: a segment torn while being created.
    Incomplete,
    /// A valid tokenroute journal header of another version.
    OtherVersion(u8),
    /// Not a tokenroute journal header, or a damaged one.
    Corrupt,
}

/// The stable on-disk code of a kind. Written out rather than derived from [`CredentialKind::index`] so that
/// reordering the enum can never change what an existing journal means.
pub fn kind_code(kind: CredentialKind) -> u8 {
    match kind {
        CredentialKind::ConsumerKey => 1,
        CredentialKind::RequestToken => 2,
        CredentialKind::Verifier => 3,
        CredentialKind::AccessToken => 4,
        CredentialKind::Code => 5,
        CredentialKind::BearerToken => 6,
        CredentialKind::RefreshToken => 7,
        CredentialKind::ClientId => 8,
        CredentialKind::SessionCookie => 9,
        CredentialKind::RegistrationAccessToken => 10,
        CredentialKind::DeviceCode => 11,
        CredentialKind::UserCode => 12,
        CredentialKind::RequestUri => 13,
        CredentialKind::IdToken => 14,
        CredentialKind::Sid => 15,
    }
}

/// The kind with on-disk code `code`.
pub fn kind_from_code(code: u8) -> Option<CredentialKind> {
    CredentialKind::ALL
        .into_iter()
        .find(|k| kind_code(*k) == code)
}

/// Appends a segment header for a key with check value `key_check` to `out`.
pub fn encode_header(key_check: Fingerprint, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(key_check.as_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Reads a segment header from the start of `buf`.
pub fn decode_header(buf: &[u8]) -> Header {
    if buf.len() < HEADER_LEN {
        // A prefix of a valid header is a torn creation; anything else is not ours.
        let n = buf.len().min(MAGIC.len());
        return if buf[..n] == MAGIC[..n] {
            Header::Incomplete
        } else {
            Header::Corrupt
        };
    }
    let (body, crc) = buf[..HEADER_LEN].split_at(HEADER_LEN - 4);
    if &body[..6] != MAGIC || crc32fast::hash(body).to_le_bytes() != crc {
        return Header::Corrupt;
    }
    if body[6] != VERSION {
        return Header::OtherVersion(body[6]);
    }
    let mut check = [0u8; 16];
    check.copy_from_slice(&body[8..24]);
    Header::Valid(Fingerprint::from_bytes(check))
}

/// Appends `record`, framed and checksummed, to `out`. A `Names` record whose names exceed the 64 KiB frame
/// keeps only the nodes that fit (the others' ownership then reads as unknown after a restart).
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0]);
    let tag = match record {
        Record::Put {
            fp,
            kind,
            owners,
            expires_at,
        } => {
            out.extend_from_slice(fp.as_bytes());
            out.push(kind_code(*kind));
            out.extend_from_slice(&owners.bits().to_le_bytes());
            out.extend_from_slice(&expires_at.to_le_bytes());
            TAG_PUT
        }
        Record::Delete { fp } => {
            out.extend_from_slice(fp.as_bytes());
            TAG_DELETE
        }
        Record::AddOwnerToKinds { node, kinds } => {
            out.push(node.index() as u8);
            let mask = kinds.iter().fold(0u16, |m, k| m | 1 << kind_code(*k));
            out.extend_from_slice(&mask.to_le_bytes());
            TAG_ADD_OWNER_TO_KINDS
        }
        Record::RemoveNode { node } => {
            out.push(node.index() as u8);
            TAG_REMOVE_NODE
        }
        Record::Names(names) => {
            let count_at = out.len();
            out.push(0);
            let mut count = 0u8;
            for (id, name) in names.iter().take(usize::from(u8::MAX)) {
                let Ok(len) = u16::try_from(name.len()) else {
                    continue;
                };
                let payload = out.len() - start - 3;
                if payload + 3 + name.len() > usize::from(u16::MAX) {
                    break;
                }
                out.push(id.index() as u8);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(name.as_bytes());
                count += 1;
            }
            out[count_at] = count;
            TAG_NAMES
        }
    };
    let len = (out.len() - start - 3) as u16;
    out[start] = tag;
    out[start + 1..start + 3].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Reads one record from the start of `buf`. Never panics, whatever the bytes.
pub fn decode(buf: &[u8]) -> Decoded {
    if buf.len() < 3 {
        return Decoded::Incomplete;
    }
    let len = usize::from(u16::from_le_bytes([buf[1], buf[2]]));
    let total = 3 + len + 4;
    if buf.len() < total {
        return Decoded::Incomplete;
    }
    let (framed, crc) = buf[..total].split_at(3 + len);
    if crc32fast::hash(framed).to_le_bytes() != crc {
        return Decoded::Corrupt;
    }
    match parse(buf[0], &framed[3..]) {
        Some(record) => Decoded::Record(record, total),
        None => Decoded::Corrupt,
    }
}

fn parse(tag: u8, payload: &[u8]) -> Option<Record> {
    let fp =
        |b: &[u8]| -> Option<Fingerprint> { Some(Fingerprint::from_bytes(b.try_into().ok()?)) };
    let node = |b: u8| NodeId::new(usize::from(b));
    match (tag, payload.len()) {
        (TAG_PUT, 29) => Some(Record::Put {
            fp: fp(&payload[..16])?,
            kind: kind_from_code(payload[16])?,
            owners: NodeSet::from_bits(u64::from_le_bytes(payload[17..25].try_into().ok()?)),
            expires_at: u32::from_le_bytes(payload[25..29].try_into().ok()?),
        }),
        (TAG_DELETE, 16) => Some(Record::Delete { fp: fp(payload)? }),
        (TAG_ADD_OWNER_TO_KINDS, 3) => {
            let mask = u16::from_le_bytes([payload[1], payload[2]]);
            Some(Record::AddOwnerToKinds {
                node: node(payload[0])?,
                kinds: CredentialKind::ALL
                    .into_iter()
                    .filter(|k| mask & 1 << kind_code(*k) != 0)
                    .collect(),
            })
        }
        (TAG_REMOVE_NODE, 1) => Some(Record::RemoveNode {
            node: node(payload[0])?,
        }),
        (TAG_NAMES, 1..) => {
            let count = payload[0];
            let mut rest = &payload[1..];
            let mut names = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let (&[id, l0, l1], tail) = rest.split_first_chunk::<3>()?;
                let len = usize::from(u16::from_le_bytes([l0, l1]));
                let name = std::str::from_utf8(tail.get(..len)?).ok()?;
                names.push((node(id)?, name.to_owned()));
                rest = &tail[len..];
            }
            rest.is_empty().then_some(Record::Names(names))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: usize) -> NodeId {
        NodeId::new(i).unwrap()
    }

    pub(crate) fn samples() -> Vec<Record> {
        vec![
            Record::Names(vec![
                (node(0), "lbcq_1".into()),
                (node(63), "ünïcode".into()),
            ]),
            Record::Put {
                fp: Fingerprint::from_bytes([7; 16]),
                kind: CredentialKind::AccessToken,
                owners: NodeSet::single(node(2)).with(node(63)),
                expires_at: u32::MAX,
            },
            Record::Delete {
                fp: Fingerprint::from_bytes([9; 16]),
            },
            Record::AddOwnerToKinds {
                node: node(5),
                kinds: vec![CredentialKind::ConsumerKey, CredentialKind::ClientId],
            },
            Record::RemoveNode { node: node(1) },
            Record::Names(vec![]),
        ]
    }

    #[test]
    fn every_record_round_trips_and_a_put_is_36_bytes() {
        for record in samples() {
            let mut buf = Vec::new();
            encode(&record, &mut buf);
            assert_eq!(
                decode(&buf),
                Decoded::Record(record.clone(), buf.len()),
                "{record:?}"
            );
            if matches!(record, Record::Put { .. }) {
                assert_eq!(buf.len(), PUT_LEN);
            }
        }
    }

    #[test]
    fn every_kind_has_a_distinct_code_that_fits_the_mask() {
        let mut codes: Vec<u8> = CredentialKind::ALL.into_iter().map(kind_code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), CredentialKind::ALL.len());
        assert!(codes.iter().all(|&c| c > 0 && c < 16));
        for kind in CredentialKind::ALL {
            assert_eq!(kind_from_code(kind_code(kind)), Some(kind));
        }
        assert_eq!(kind_from_code(0), None);
    }

    #[test]
    fn every_prefix_of_a_record_is_incomplete() {
        for record in samples() {
            let mut buf = Vec::new();
            encode(&record, &mut buf);
            for cut in 0..buf.len() {
                assert_eq!(
                    decode(&buf[..cut]),
                    Decoded::Incomplete,
                    "{record:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        for record in samples() {
            let mut buf = Vec::new();
            encode(&record, &mut buf);
            for byte in 0..buf.len() {
                for bit in 0..8 {
                    let mut bad = buf.clone();
                    bad[byte] ^= 1 << bit;
                    let decoded = decode(&bad);
                    // A flip in the length field may make the frame look longer than the buffer.
                    assert!(
                        matches!(decoded, Decoded::Corrupt | Decoded::Incomplete),
                        "{record:?} byte {byte} bit {bit}: {decoded:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn well_framed_nonsense_is_corrupt() {
        // Valid checksums around payloads no record has: unknown tag, wrong length, unknown kind, id 64,
        // names overrunning their payload.
        for (tag, payload) in [
            (0u8, vec![]),
            (99, vec![1, 2, 3]),
            (TAG_PUT, vec![0; 28]),
            (TAG_PUT, [vec![0; 16], vec![200], vec![0; 12]].concat()),
            (TAG_REMOVE_NODE, vec![64]),
            (TAG_NAMES, vec![1, 0, 9, 0, b'a']),
            (TAG_NAMES, vec![0, 0]),
        ] {
            let mut buf = vec![tag];
            buf.extend_from_slice(&(payload.len() as u16).to_le_bytes());
            buf.extend_from_slice(&payload);
            let crc = crc32fast::hash(&buf);
            buf.extend_from_slice(&crc.to_le_bytes());
            assert_eq!(decode(&buf), Decoded::Corrupt, "{tag} {payload:?}");
        }
    }

    #[test]
    fn header_round_trips_and_damage_is_classified() {
        let check = Fingerprint::from_bytes([3; 16]);
        let mut buf = Vec::new();
        encode_header(check, &mut buf);
        assert_eq!(buf.len(), HEADER_LEN);
        assert_eq!(decode_header(&buf), Header::Valid(check));
        for cut in 0..HEADER_LEN {
            assert_eq!(decode_header(&buf[..cut]), Header::Incomplete, "cut {cut}");
        }
        let mut other = buf.clone();
        other[6] = 2;
        let crc = crc32fast::hash(&other[..24]);
        other[24..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_header(&other), Header::OtherVersion(2));
        let mut damaged = buf.clone();
        damaged[10] ^= 1;
        assert_eq!(decode_header(&damaged), Header::Corrupt);
        assert_eq!(decode_header(b"{\"format\""), Header::Corrupt);
    }

    /// The reader meets arbitrary bytes after a crash or a disk error: random buffers, random splices of
    /// valid records and random mutations of them must decode to something (or nothing) without panicking,
    /// and a reported record length never exceeds the buffer. Fixed seed, so a failure reproduces.
    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e57_1011);
        let mut valid = Vec::new();
        for record in samples() {
            encode(&record, &mut valid);
        }
        for round in 0..20_000 {
            let mut buf: Vec<u8> = match round % 3 {
                0 => (0..rng.gen_range(0..96)).map(|_| rng.gen()).collect(),
                1 => {
                    let from = rng.gen_range(0..valid.len());
                    let to = rng.gen_range(from..=valid.len());
                    valid[from..to].to_vec()
                }
                _ => valid.clone(),
            };
            for _ in 0..rng.gen_range(0..4) {
                if !buf.is_empty() {
                    let i = rng.gen_range(0..buf.len());
                    buf[i] = rng.gen();
                }
            }
            let mut rest = &buf[..];
            let _ = decode_header(rest);
            while let Decoded::Record(_, used) = decode(rest) {
                assert!(used >= FRAME_LEN && used <= rest.len());
                rest = &rest[used..];
            }
        }
    }
}

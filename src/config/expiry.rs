//! When a certificate stops being valid: `notAfter` read from its DER, and calendar dates for messages.
//!
//! Only the validity field is needed, so this walks the few DER headers before it instead of pulling in an
//! X.509 library (x509-parser brings nom and asn1-rs for one timestamp). Input is the administrator's own
//! certificate file; anything unexpected yields `None` (no claim), never a panic.

use std::collections::BTreeMap;

use super::validate::CertificateExpiry;

/// The `server_name` of the first (default) certificate's row: it answers every client whose SNI names no
/// other entry, and clients that send none. No SNI name can be `*`, so no configured name collides with it.
pub const DEFAULT_SERVER_NAME: &str = "*";

/// One row per server name a TLS listener answers, with the `notAfter` of the certificate the SNI resolver
/// picks for it (names compared in lower case; a name listed twice goes to the later entry, as in the
/// resolver), plus [`DEFAULT_SERVER_NAME`] for the first entry. `entries` are (server names, `notAfter`) in
/// configuration order; an entry whose expiry could not be read makes no claim. Sorted by name.
pub(crate) fn by_server_name(entries: &[(&[String], Option<i64>)]) -> Vec<CertificateExpiry> {
    let mut rows = BTreeMap::new();
    for (names, not_after) in entries {
        for name in names.iter() {
            match not_after {
                Some(t) => rows.insert(name.to_ascii_lowercase(), *t),
                None => rows.remove(&name.to_ascii_lowercase()),
            };
        }
    }
    rows.remove(DEFAULT_SERVER_NAME);
    if let Some((_, Some(t))) = entries.first() {
        rows.insert(DEFAULT_SERVER_NAME.to_owned(), *t);
    }
    rows.into_iter()
        .map(|(server_name, not_after)| CertificateExpiry {
            server_name,
            not_after,
        })
        .collect()
}

/// `notAfter` of a DER X.509 certificate, as seconds since the Unix epoch.
pub(crate) fn not_after(der: &[u8]) -> Option<i64> {
    let (cert, _) = tlv(der, 0x30)?;
    let (tbs, _) = tlv(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0)?.1; // [0] version
    }
    rest = tlv(rest, 0x02)?.1; // serialNumber
    rest = tlv(rest, 0x30)?.1; // signature algorithm
    rest = tlv(rest, 0x30)?.1; // issuer
    let (validity, _) = tlv(rest, 0x30)?;
    let after_not_before = skip_time(validity)?;
    time(after_not_before)
}

/// Splits one TLV with tag `tag` off the front: (contents, rest).
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

fn skip_time(input: &[u8]) -> Option<&[u8]> {
    tlv(input, 0x17)
        .or_else(|| tlv(input, 0x18))
        .map(|(_, rest)| rest)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) → Unix seconds.
fn time(input: &[u8]) -> Option<i64> {
    let (text, year) = if let Some((t, _)) = tlv(input, 0x17) {
        let yy = digits(t.get(..2)?)?;
        (t.get(2..)?, if yy >= 50 { 1900 + yy } else { 2000 + yy })
    } else {
        let (t, _) = tlv(input, 0x18)?;
        (t.get(4..)?, digits(t.get(..4)?)?)
    };
    if text.len() != 11 || text[10] != b'Z' {
        return None;
    }
    let field = |i: usize| digits(&text[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of Unix seconds (UTC).
pub(crate) fn date(unix: i64) -> String {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_until(year: i32, month: u8, day: u8) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["lbcq".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn not_after_reads_utc_and_generalized_times() {
        // rcgen writes UTCTime before 2050 and GeneralizedTime from 2050 on.
        assert_eq!(not_after(&cert_until(2030, 1, 2)), Some(1_893_542_400));
        assert_eq!(not_after(&cert_until(2051, 3, 1)), Some(2_561_241_600));
    }

    #[test]
    fn not_after_refuses_garbage_without_panicking() {
        let good = cert_until(2030, 1, 2);
        for cut in 0..good.len() {
            let _ = not_after(&good[..cut]);
        }
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    /// A certificate entry: its server names and readable `notAfter`.
    type Entry<'a> = (&'a [&'a str], Option<i64>);

    /// Expected rows: (server name, `notAfter`).
    type Rows = Vec<(String, i64)>;

    fn rows(entries: &[Entry<'_>]) -> Rows {
        let owned: Vec<(Vec<String>, Option<i64>)> = entries
            .iter()
            .map(|(names, t)| (names.iter().map(|n| n.to_string()).collect(), *t))
            .collect();
        let borrowed: Vec<(&[String], Option<i64>)> =
            owned.iter().map(|(n, t)| (n.as_slice(), *t)).collect();
        by_server_name(&borrowed)
            .into_iter()
            .map(|r| (r.server_name, r.not_after))
            .collect()
    }

    #[test]
    fn expiry_rows_follow_the_sni_resolver() {
        let row = |name: &str, t: i64| (name.to_owned(), t);
        let cases: [(&[Entry<'_>], Rows); 6] = [
            // One certificate without names: the default row only.
            (&[(&[], Some(10))], vec![row("*", 10)]),
            // The default also answers its own names; names are lower-cased.
            (
                &[(&["LBCQ"], Some(10)), (&["other"], Some(20))],
                vec![row("*", 10), row("lbcq", 10), row("other", 20)],
            ),
            // A name listed twice goes to the later entry, as the resolver's map does.
            (
                &[(&["a"], Some(10)), (&["a"], Some(20))],
                vec![row("*", 10), row("a", 20)],
            ),
            // An unreadable expiry makes no claim, even over an earlier entry's name.
            (
                &[(&["a"], Some(10)), (&["a", "b"], None)],
                vec![row("*", 10)],
            ),
            (&[(&["a"], None)], vec![]),
            // A configured "*" (which no SNI can carry) never duplicates the default row.
            (
                &[(&["x"], Some(10)), (&["*"], Some(20))],
                vec![row("*", 10), row("x", 10)],
            ),
        ];
        for (entries, want) in cases {
            assert_eq!(rows(entries), want, "{entries:?}");
        }
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_893_542_400), "2030-01-02");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(days_from_civil(2000, 3, 1) * 86_400, 951_868_800);
    }
}

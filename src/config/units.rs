//! Human-friendly units in config values: durations like `"5s"` and sizes like `"64KiB"`.

use std::time::Duration;

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"`; a composite like `"1m30s"` too.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; use e.g. \"5s\", \"250ms\", \"2m\"".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "expected a number at {rest:?}; use e.g. \"5s\", \"250ms\""
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| "number too large".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            "" => return Err(format!("missing unit after {number}; use ms, s, m, h or d")),
            other => return Err(format!("unknown unit {other:?}; use ms, s, m, h or d")),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Parses `"512"`, `"64KiB"`, `"1MiB"`, `"2GiB"`, `"10KB"`, `"5MB"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("expected a size such as \"64KiB\" or \"1MiB\"".into());
    }
    let number: u64 = text[..digits]
        .parse()
        .map_err(|_| "number too large".to_string())?;
    let multiplier: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| "size too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_every_unit_and_composites() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86_400)),
            ("1m30s", Duration::from_secs(90)),
            (" 0s ", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn durations_without_a_known_unit_are_rejected() {
        for text in ["", "5", "s", "5 s", "5sec", "-1s", "1.5s"] {
            assert!(parse_duration(text).is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert!(parse_size("64kib").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }
}

//! Small helpers: clock, RFC 3339 (UTC, `+00:00`), UUIDs, PHP-lenient base64.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-11-28T11:44:27+00:00`
pub fn rfc3339(ts: i64) -> String {
    let days = ts.div_euclid(86400);
    let secs = ts.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        y,
        m,
        d,
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Parses RFC 3339 / ISO 8601 (`Y-m-d\TH:i:sP`, `Y-m-d\TH:i:sO`, `Z`), optional fractions.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &r[n..];
    }
    let offset = if rest == "Z" || rest == "z" {
        0
    } else {
        let sign = match rest.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let r = &rest[1..];
        let (oh, om) = if r.len() == 5 && r.as_bytes()[2] == b':' {
            (r[0..2].parse::<i64>().ok()?, r[3..5].parse::<i64>().ok()?)
        } else if r.len() == 4 && r.bytes().all(|c| c.is_ascii_digit()) {
            (r[0..2].parse::<i64>().ok()?, r[2..4].parse::<i64>().ok()?)
        } else {
            return None;
        };
        sign * (oh * 3600 + om * 60)
    };
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset)
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Drupal's `Uuid::isValid()`: 8-4-4-4-12 hex digits, any case.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// PHP's non-strict `base64_decode`: characters outside the alphabet are skipped.
pub fn php_base64_decode(s: &str) -> Vec<u8> {
    let mut vals = Vec::with_capacity(s.len());
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        vals.push(v);
    }
    let mut out = Vec::with_capacity(vals.len() * 3 / 4 + 1);
    for chunk in vals.chunks(4) {
        let n = chunk.len();
        let mut acc: u32 = 0;
        for (i, v) in chunk.iter().enumerate() {
            acc |= (*v as u32) << (18 - 6 * i);
        }
        if n >= 2 {
            out.push((acc >> 16) as u8);
        }
        if n >= 3 {
            out.push((acc >> 8) as u8);
        }
        if n == 4 {
            out.push(acc as u8);
        }
    }
    out
}

pub fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// A random hex token (sessions, CSRF tokens).
pub fn token() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_roundtrip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(1795866267), "2026-11-28T11:44:27+00:00");
        assert_eq!(parse_rfc3339("2026-11-28T11:44:27+00:00"), Some(1795866267));
        assert_eq!(parse_rfc3339("2026-11-28T12:44:27+01:00"), Some(1795866267));
        assert_eq!(parse_rfc3339("2026-11-28T11:44:27Z"), Some(1795866267));
        assert_eq!(parse_rfc3339("2001-01-01T00:00:00+00:00"), Some(978307200));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn lenient_base64() {
        assert_eq!(php_base64_decode("YWRtaW46YWRtaW4="), b"admin:admin");
        assert_eq!(php_base64_decode("YWRtaW46YWRtaW4"), b"admin:admin");
        assert!(!php_base64_decode("!!!notbase64").contains(&b':'));
    }

    #[test]
    fn uuid_check() {
        assert!(is_uuid("5f0c8d1e-3b7a-4c2e-9a61-1d2b3c4d5e6f"));
        assert!(is_uuid("00000000-0000-0000-0000-000000003039"));
        assert!(!is_uuid("not-a-uuid"));
    }
}

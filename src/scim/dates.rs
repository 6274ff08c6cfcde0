//! RFC 3339 timestamps as Drupal and SCIM write them, to compare `meta.created` and
//! `meta.lastModified` in filters (Drupal stores them as Unix seconds).

/// Seconds since the Unix epoch for `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; fractions are
/// dropped (Drupal keeps whole seconds).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from.checked_add(len)?)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse::<i64>().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19usize;
    if b.get(i) == Some(&b'.') {
        i = i.checked_add(1)?;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i = i.checked_add(1)?;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if b.len() == i.checked_add(1)? => 0,
        sign @ (b'+' | b'-') if b.len() == i.checked_add(6)? => {
            let oh = num(i.checked_add(1)?, 2)?;
            let om = num(i.checked_add(4)?, 2)?;
            if b.get(i.checked_add(3)?) != Some(&b':') || oh > 23 || om > 59 {
                return None;
            }
            let o = oh.checked_mul(3600)?.checked_add(om.checked_mul(60)?)?;
            if *sign == b'-' {
                o.checked_neg()?
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day)?;
    days.checked_mul(86_400)?
        .checked_add(hour.checked_mul(3600)?)?
        .checked_add(minute.checked_mul(60)?)?
        .checked_add(second)?
        .checked_sub(offset)
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y.div_euclid(400);
    let yoe = y.checked_sub(era.checked_mul(400)?)?;
    let mp = if m > 2 {
        m.checked_sub(3)?
    } else {
        m.checked_add(9)?
    };
    let doy = mp
        .checked_mul(153)?
        .checked_add(2)?
        .checked_div(5)?
        .checked_add(d)?
        .checked_sub(1)?;
    let doe = yoe
        .checked_mul(365)?
        .checked_add(yoe.checked_div(4)?)?
        .checked_sub(yoe.checked_div(100)?)?
        .checked_add(doy)?;
    era.checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_drupal_and_scim_forms() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00+00:00"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-28T11:44:27+00:00"),
            Some(1_795_866_267)
        );
        assert_eq!(
            parse_rfc3339("2026-11-28T12:44:27.123+01:00"),
            Some(1_795_866_267)
        );
        assert_eq!(parse_rfc3339("2011-05-13T04:42:34Z"), Some(1_305_261_754));
        for bad in [
            "",
            "2011-05-13",
            "2011-13-13T04:42:34Z",
            "2011-05-13T04:42:34",
            "2011-05-13T04:42:34+0100",
            "x011-05-13T04:42:34Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}

//! RFC 3339 timestamps in UTC, as runc prints them (no time-zone database needed).

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 to a civil (year, month, day); Howard Hinnant's algorithm.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn parts(t: SystemTime) -> (String, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, mo, da) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    (
        format!(
            "{y:04}-{mo:02}-{da:02}T{:02}:{:02}:{:02}",
            s / 3600,
            s / 60 % 60,
            s % 60
        ),
        d.subsec_nanos(),
    )
}

/// `2026-11-22T06:37:57Z` (logrus' time field).
pub fn rfc3339_secs(t: SystemTime) -> String {
    format!("{}Z", parts(t).0)
}

/// `2026-11-22T06:37:51.520810805Z` (the `created` field of runc's state).
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let (base, nanos) = parts(t);
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let t = UNIX_EPOCH + Duration::new(1_795_329_471, 520_810_805);
        assert_eq!(rfc3339_nanos(t), "2026-11-22T06:37:51.520810805Z");
        assert_eq!(rfc3339_secs(t), "2026-11-22T06:37:51Z");
        assert_eq!(rfc3339_secs(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::new(951_782_400, 500_000_000);
        assert_eq!(rfc3339_nanos(leap), "2000-02-29T00:00:00.5Z");
    }
}

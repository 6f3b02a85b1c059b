//! Wall-clock time as berth writes it in every log line: RFC 3339 in UTC with
//! milliseconds. Shared by the console (berth's own lines) and the app logs.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as RFC 3339 in UTC with milliseconds, such as `2025-11-22T04:40:01.123Z`.
/// Times before 1970 are counted back properly.
pub fn format_time(t: SystemTime) -> String {
    let mut s = String::with_capacity(24);
    push_time(&mut s, t);
    s
}

pub(crate) fn push_time(out: &mut String, t: SystemTime) {
    let ms = unix_millis(t);
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    let in_day = ms.rem_euclid(86_400_000);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z"
    );
}

/// Milliseconds since the Unix epoch, rounded down (also before 1970).
fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let up = u128::from(d.subsec_nanos() % 1_000_000 != 0);
            i64::try_from(d.as_millis() + up).map_or(i64::MIN, |ms| -ms)
        }
    }
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
/// Howard Hinnant's `civil_from_days`: the year is shifted to start in March, so the
/// leap day is the last of its year, and counted in 400-year eras of 146097 days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at_ms(ms: i64) -> SystemTime {
        if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms as u64)
        } else {
            UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
        }
    }

    #[test]
    fn formats_known_times() {
        for (ms, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_763_786_401_123, "2025-11-22T04:40:01.123Z"),
            (68_169_600_000, "1972-02-29T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
            (1_709_251_200_000, "2024-03-01T00:00:00.000Z"),
            (1_735_689_599_999, "2024-12-31T23:59:59.999Z"),
            (4_107_456_000_000, "2100-02-28T00:00:00.000Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (-86_400_000, "1969-12-31T00:00:00.000Z"),
        ] {
            assert_eq!(format_time(at_ms(ms)), want, "{ms} ms");
        }
        // Below a millisecond is dropped; before 1970 that is a step back.
        assert_eq!(
            format_time(UNIX_EPOCH + Duration::from_micros(1_999)),
            "1970-01-01T00:00:00.001Z"
        );
        assert_eq!(
            format_time(UNIX_EPOCH - Duration::from_micros(1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn civil_from_days_agrees_with_counting_day_by_day() {
        fn leap(y: i64) -> bool {
            y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
        }
        fn month_days(y: i64, m: u32) -> u32 {
            match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            }
        }
        // Forward from 1970 past 2100 and 2400, backward past 1900 and 1600.
        let mut date = (1970, 1, 1);
        for days in 0..160_000 {
            assert_eq!(civil_from_days(days), date, "day {days}");
            let (y, m, d) = date;
            date = if d < month_days(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
        let mut date = (1970, 1, 1);
        for days in (-160_000..=0).rev() {
            assert_eq!(civil_from_days(days), date, "day {days}");
            let (y, m, d) = date;
            date = if d > 1 {
                (y, m, d - 1)
            } else if m > 1 {
                (y, m - 1, month_days(y, m - 1))
            } else {
                (y - 1, 12, 31)
            };
        }
    }
}

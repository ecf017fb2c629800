//! Time, passed in. Everything that reads the wall clock goes through a `Clock`, so tests
//! can expire iterators, trim retention and settle stream states by moving time forward.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970");
        since.as_millis() as i64
    }
}

/// A clock that starts at the real time and moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ms: AtomicI64::new(SystemClock.now_ms()),
        })
    }

    pub fn advance_ms(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// Formats epoch milliseconds the way Kinesis error messages print dates, as Java's
/// `Date.toString()` does in UTC: `Thu Jan 22 01:22:02 UTC 2015`.
pub fn java_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

/// ISO-8601 in UTC with milliseconds, as CloudWatch prints times: `2015-01-22T01:22:02.000+0000`.
pub fn iso8601(ms: i64) -> String {
    let (date, rem) = split_day(ms);
    format!("{date}T{}.{:03}+0000", hms(rem), ms.rem_euclid(1000))
}

/// ISO-8601 in UTC as Java's `Instant.toString()` prints it: `2015-01-22T01:22:02.123Z`
/// (fraction omitted when zero).
pub fn instant(ms: i64) -> String {
    let (date, rem) = split_day(ms);
    match ms.rem_euclid(1000) {
        0 => format!("{date}T{}Z", hms(rem)),
        f => format!("{date}T{}.{f:03}Z", hms(rem)),
    }
}

fn split_day(ms: i64) -> (String, i64) {
    let secs = ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    (
        format!("{year:04}-{month:02}-{day:02}"),
        secs.rem_euclid(86_400),
    )
}

fn hms(rem: i64) -> String {
    format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parses an ISO-8601 UTC time (`2015-01-22T01:22:02Z`, optional fraction, `Z` or `+00:00`)
/// or epoch seconds, to epoch milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1000.0).round() as i64);
    }
    let s = s.trim();
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00Z"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))
        .or_else(|| time.strip_suffix("+0000"))
        .unwrap_or(time);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (
        t.next()??,
        t.next().unwrap_or(Some(0))?,
        t.next().unwrap_or(Some(0))?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let ms_frac = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(3).collect();
        digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32)
    };
    let days = days_from_civil(y, m as u32, dd as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + ms_frac)
}

/// (year, month, day) to days since 1970-01-01, the inverse of `civil_from_days`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_date_matches_the_kinesis_message_format() {
        // The example from the Kinesis ExpiredIteratorException message.
        assert_eq!(java_date(1_421_889_722_000), "Thu Jan 22 01:22:02 UTC 2015");
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn iso_times_round_trip() {
        assert_eq!(iso8601(1_421_889_722_000), "2015-01-22T01:22:02.000+0000");
        assert_eq!(instant(1_421_889_722_120), "2015-01-22T01:22:02.120Z");
        assert_eq!(instant(1_421_889_722_000), "2015-01-22T01:22:02Z");
        for ms in [0, 951_782_400_000, 1_421_889_722_123, 4_102_444_799_999] {
            assert_eq!(parse_time(&instant(ms)), Some(ms));
        }
        assert_eq!(
            parse_time("2015-01-22T01:22:02+00:00"),
            Some(1_421_889_722_000)
        );
        assert_eq!(parse_time("1421889722.5"), Some(1_421_889_722_500));
        assert_eq!(parse_time("2015-13-01T00:00:00Z"), None);
    }
}

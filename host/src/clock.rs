//! Time as obshell shows it: RFC 3339 in the server's local offset.

use std::sync::OnceLock;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

static LOCAL: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local offset. Call once at start-up, before any thread exists:
/// the offset can only be read soundly then.
pub fn init_local_offset() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL.set(offset);
}

fn local() -> UtcOffset {
    *LOCAL.get().unwrap_or(&UtcOffset::UTC)
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

/// Whole seconds, as obshell's stored times (`2026-05-08T17:06:47+08:00`).
/// A time the calendar cannot hold in the local offset (past the year
/// 9999) is written in UTC, or as the last second it can hold: formatting
/// never panics on a time a client chose.
pub fn format_us(us: i64) -> String {
    format_in(us, local())
}

fn format_in(us: i64, offset: UtcOffset) -> String {
    let utc = OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000)).unwrap_or(if us < 0 {
        OffsetDateTime::UNIX_EPOCH
    } else {
        LAST_SECOND
    });
    utc.checked_to_offset(offset)
        .unwrap_or(utc)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The last second RFC 3339 can write: 9999-12-31T23:59:59Z.
const LAST_SECOND: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// Nanoseconds, as obshell's envelope `timestamp`.
pub fn format_now_precise() -> String {
    let now = OffsetDateTime::now_utc();
    now.checked_to_offset(local())
        .unwrap_or(now)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds() {
        assert_eq!(format_us(1_700_000_000_999_999), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn a_time_past_the_calendar_is_written_not_panicked_on() {
        let east = UtcOffset::from_hms(8, 0, 0).unwrap();
        // 9999-12-31T20:00Z is in the year 10000 at +08:00.
        assert_eq!(
            format_in(253_402_286_400_000_000, east),
            "9999-12-31T20:00:00Z"
        );
        assert_eq!(format_in(i64::MAX, east), "9999-12-31T23:59:59Z");
        assert_eq!(
            format_in(1_700_000_000_000_000, east),
            "2023-11-15T06:13:20+08:00"
        );
    }
}

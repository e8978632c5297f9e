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
pub fn format_us(us: i64) -> String {
    OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(local())
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Nanoseconds, as obshell's envelope `timestamp`.
pub fn format_now_precise() -> String {
    OffsetDateTime::now_utc()
        .to_offset(local())
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
}

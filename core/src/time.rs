//! Timestamps: UTC, second precision in storage, Laravel's `2025-06-17T09:03:00.000000Z` on the wire.

use chrono::{DateTime, Datelike, NaiveDateTime, SubsecRound, Timelike, Utc};

/// The current UTC time truncated to the second, as the database stores it.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(0)
}

/// Formats a timestamp the way upstream serialises cast columns.
pub fn laravel(timestamp: &NaiveDateTime) -> String {
    fixed(timestamp, *b"0000-00-00T00:00:00.000000Z")
        .unwrap_or_else(|| timestamp.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// Formats a timestamp as upstream returns an uncast column: `2025-06-17 09:03:00`.
pub fn plain(timestamp: &NaiveDateTime) -> String {
    fixed(timestamp, *b"0000-00-00 00:00:00")
        .unwrap_or_else(|| timestamp.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Writes `timestamp` over the digits of `template` (`YYYY-MM-DD?HH:MM:SS`, then optionally `.ffffffZ`):
/// every reply row has a few timestamps, and chrono parses its format string on each call. None for a year
/// outside 0–9999 or a leap second, which chrono's formatter writes.
pub fn digits<const N: usize>(timestamp: &NaiveDateTime, mut template: [u8; N]) -> Option<[u8; N]> {
    let nanos = timestamp.nanosecond();
    if !(0..=9999).contains(&timestamp.year()) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut put = |start: usize, width: usize, mut value: u32| {
        for i in (start..start + width).rev() {
            template[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, timestamp.year() as u32);
    put(5, 2, timestamp.month());
    put(8, 2, timestamp.day());
    put(11, 2, timestamp.hour());
    put(14, 2, timestamp.minute());
    put(17, 2, timestamp.second());
    if N > 19 {
        put(20, 6, nanos / 1_000);
    }
    Some(template)
}

/// [`digits`] as a string.
fn fixed<const N: usize>(timestamp: &NaiveDateTime, template: [u8; N]) -> Option<String> {
    digits(timestamp, template).and_then(|text| String::from_utf8(text.to_vec()).ok())
}

/// Formats an optional timestamp as a JSON value (`null` when absent).
pub fn laravel_json(timestamp: Option<&NaiveDateTime>) -> serde_json::Value {
    timestamp.map_or(serde_json::Value::Null, |t| laravel(t).into())
}

/// Converts a zoned instant to the stored form (UTC, seconds).
pub fn to_storage(instant: DateTime<Utc>) -> NaiveDateTime {
    instant.naive_utc().trunc_subsecs(0)
}

/// Serde adapter: `#[serde(with = "flexiapi_core::time::serde_laravel")]`.
pub mod serde_laravel {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    /// Serialises as `YYYY-MM-DDTHH:MM:SS.000000Z`.
    pub fn serialize<S: Serializer>(value: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::laravel(value))
    }
}

/// Serde adapter for optional timestamps.
pub mod serde_laravel_option {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    /// Serialises as `YYYY-MM-DDTHH:MM:SS.000000Z` or `null`.
    pub fn serialize<S: Serializer>(
        value: &Option<NaiveDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&super::laravel(v)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laravel_format() {
        let t = NaiveDateTime::parse_from_str("2025-06-17 09:03:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(laravel(&t), "2025-06-17T09:03:00.000000Z");
        assert_eq!(now().and_utc().timestamp_subsec_nanos(), 0);
    }

    #[test]
    fn laravel_writes_what_chrono_writes() {
        let chrono_text = |t: &NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let instants = [
            day(2025, 6, 17).and_hms_nano_opt(9, 3, 0, 0),
            day(2025, 12, 31).and_hms_nano_opt(23, 59, 59, 999_999_999),
            day(2000, 2, 29).and_hms_nano_opt(0, 0, 0, 1_500),
            day(1, 1, 1).and_hms_nano_opt(7, 8, 9, 123_456_000),
            day(0, 1, 1).and_hms_nano_opt(0, 0, 0, 0),
            day(9999, 12, 31).and_hms_nano_opt(23, 59, 59, 0),
            // The fallbacks: a leap second, and years without four digits.
            day(2016, 12, 31).and_hms_nano_opt(23, 59, 59, 1_250_000_000),
            day(10000, 1, 1).and_hms_nano_opt(0, 0, 0, 0),
            day(-44, 3, 15).and_hms_nano_opt(12, 0, 0, 0),
        ];
        let plain_text = |t: &NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
        for t in instants.into_iter().map(Option::unwrap) {
            assert_eq!(laravel(&t), chrono_text(&t), "{t:?}");
            assert_eq!(plain(&t), plain_text(&t), "{t:?}");
        }
        // A run of whole-second and fractional instants across years.
        let mut t = day(1970, 1, 1).and_hms_opt(0, 0, 0).unwrap();
        for step in 0..2_000 {
            assert_eq!(laravel(&t), chrono_text(&t));
            assert_eq!(plain(&t), plain_text(&t));
            t += chrono::Duration::seconds(7_919 * 3_613)
                + chrono::Duration::microseconds(step * 997);
        }
    }
}

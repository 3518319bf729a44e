//! Timestamps: UTC, second precision in storage, Laravel's `2025-06-17T09:03:00.000000Z` on the wire.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

/// The current UTC time truncated to the second, as the database stores it.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(0)
}

/// Formats a timestamp the way upstream serialises cast columns.
pub fn laravel(timestamp: &NaiveDateTime) -> String {
    timestamp.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
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
}

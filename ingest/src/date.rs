//! Upstream's `iso_date` rule: a permissive ISO 8601 grammar, converted to UTC unix seconds.
//!
//! Grammar (stats.md §A2.2): optional sign + 4-digit year; then optionally a month (`-MM`/`MM`) with an
//! optional day using the same separator, or a week `Www[-d]`, or an ordinal day `DDD`; only after one of
//! those, optionally a time introduced by `T` or a space: `hh`, `hh:mm`/`hhmm` or `24:00`, optional fraction,
//! optional seconds (same separator as the minutes) with optional fraction, optional zone `Z`/`±hh[[:]mm]`.
//! Unlike upstream, the zone offset is applied (UTC stored) and impossible calendar dates are refused.

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Weekday};

use crate::event::Timestamp;

/// Parses an `iso_date` value into UTC unix seconds (fraction dropped); None when it does not match.
pub fn parse(text: &str) -> Option<Timestamp> {
    let mut s = Scanner {
        bytes: text.as_bytes(),
        at: 0,
    };
    let negative = match s.peek() {
        Some(b'+') => {
            s.at += 1;
            false
        }
        Some(b'-') => {
            s.at += 1;
            true
        }
        _ => false,
    };
    let year = s.digits(4)? as i32;
    let year = if negative { -year } else { year };
    // Upstream's `(?!\d{2}\b)`: `YYYYMM` alone is refused (it reads as a truncated date).
    if s.remaining() >= 2
        && s.bytes[s.at..s.at + 2].iter().all(u8::is_ascii_digit)
        && s.bytes.get(s.at + 2).is_none_or(|b| !is_word(*b))
    {
        return None;
    }
    if s.done() {
        return at_midnight(NaiveDate::from_ymd_opt(year, 1, 1)?, 0);
    }
    let dash = s.eat(b'-');
    let date = if s.eat(b'W') {
        let week = s.digits(2)?;
        if !(0..=52).contains(&week) {
            return None;
        }
        let weekday = if (dash && s.peek() == Some(b'-')) || (!dash && s.peek_digit()) {
            if dash {
                s.at += 1;
            }
            let d = s.digits(1)?;
            if !(1..=7).contains(&d) {
                return None;
            }
            d
        } else if !dash && s.peek() == Some(b'-') {
            // `-?` before the weekday is independent of the date separator upstream.
            s.at += 1;
            let d = s.digits(1)?;
            if !(1..=7).contains(&d) {
                return None;
            }
            d
        } else {
            1
        };
        let weekday = Weekday::try_from(weekday as u8 - 1).ok()?;
        NaiveDate::from_isoywd_opt(year, week.max(1), weekday)?
    } else if s.remaining_digits() == 3 || (s.remaining_digits() > 3 && !month_like(&s, dash)) {
        let ordinal = s.digits(3)?;
        if !(1..=366).contains(&ordinal) {
            return None;
        }
        NaiveDate::from_yo_opt(year, ordinal)?
    } else {
        let month = s.digits(2)?;
        if !(1..=12).contains(&month) {
            return None;
        }
        let has_day = if dash {
            s.peek() == Some(b'-')
        } else {
            s.peek_digit()
        };
        let day = if has_day {
            if dash {
                s.at += 1;
            }
            let d = s.digits(2)?;
            if !(1..=31).contains(&d) {
                return None;
            }
            d
        } else {
            1
        };
        NaiveDate::from_ymd_opt(year, month, day)?
    };
    if s.done() {
        return at_midnight(date, 0);
    }
    if !(s.eat(b'T') || s.eat(b' ') || s.eat(b'\t')) {
        return None;
    }
    if s.done() {
        // `[T\s]` may be followed by nothing at all upstream.
        return at_midnight(date, 0);
    }
    let hour = s.digits(2)?;
    let mut minute = 0;
    let mut second = 0;
    let mut minute_sep: Option<bool> = None;
    if hour == 24 {
        let colon = s.eat(b':');
        if s.digits(2)? != 0 {
            return None;
        }
        minute_sep = Some(colon);
    } else {
        if hour > 23 {
            return None;
        }
        let colon = s.eat(b':');
        if s.peek_digit() {
            minute = s.digits(2)?;
            if minute > 59 {
                return None;
            }
            minute_sep = Some(colon);
        } else if colon {
            return None;
        }
    }
    // A fraction right after hh or hh:mm (not followed by `:`).
    if matches!(s.peek(), Some(b'.') | Some(b',')) {
        s.at += 1;
        if !s.peek_digit() {
            return None;
        }
        while s.peek_digit() {
            s.at += 1;
        }
        if s.peek() == Some(b':') {
            return None;
        }
    }
    if let Some(colon) = minute_sep {
        let has_seconds = if colon {
            s.peek() == Some(b':')
        } else {
            s.peek_digit()
        };
        if has_seconds {
            if colon {
                s.at += 1;
            }
            second = s.digits(2)?;
            if second > 59 {
                return None;
            }
            if matches!(s.peek(), Some(b'.') | Some(b',')) {
                s.at += 1;
                if !s.peek_digit() {
                    return None;
                }
                while s.peek_digit() {
                    s.at += 1;
                }
            }
        }
    }
    let mut offset_seconds: i64 = 0;
    match s.peek() {
        None => {}
        Some(b'Z') | Some(b'z') => s.at += 1,
        Some(sign @ (b'+' | b'-')) => {
            s.at += 1;
            let h = s.digits(2)? as i64;
            if h > 23 {
                return None;
            }
            s.eat(b':');
            let m = if s.peek_digit() {
                s.digits(2)? as i64
            } else {
                0
            };
            if m > 59 {
                return None;
            }
            offset_seconds = (h * 3600 + m * 60) * if sign == b'+' { 1 } else { -1 };
        }
        Some(_) => return None,
    }
    if !s.done() {
        return None;
    }
    let seconds_of_day = hour as i64 * 3600 + minute as i64 * 60 + second as i64;
    at_midnight(date, seconds_of_day - offset_seconds)
}

fn at_midnight(date: NaiveDate, seconds: i64) -> Option<Timestamp> {
    let midnight = NaiveDateTime::new(date, NaiveTime::MIN);
    let instant = midnight.checked_add_signed(Duration::seconds(seconds))?;
    Some(instant.and_utc().timestamp())
}

/// Decides between `MMDD`/`MM` and an ordinal `DDD` when digits follow the year without a week marker.
fn month_like(s: &Scanner<'_>, dash: bool) -> bool {
    let digits = s.remaining_digits();
    if dash {
        // `-MM-DD` or `-MM` (two digits then non-digit) vs `-DDD`.
        digits == 2
    } else {
        // `MMDD` (4 digits) vs `DDD` (3).
        digits == 4 || digits == 2
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn peek_digit(&self) -> bool {
        self.peek().is_some_and(|b| b.is_ascii_digit())
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn remaining_digits(&self) -> usize {
        self.bytes[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self, count: usize) -> Option<u32> {
        let slice = self.bytes.get(self.at..self.at + count)?;
        if !slice.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.at += count;
        Some(slice.iter().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
    }
}

/// Formats unix seconds as Laravel serialises a cast date column.
pub fn laravel(timestamp: Timestamp) -> String {
    flexiapi_core::time::laravel(&naive(timestamp))
}

/// Unix seconds → the stored form (UTC, seconds); out-of-range values clamp to the epoch (never reached:
/// every stored value came through [`parse`]).
pub fn naive(timestamp: Timestamp) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .naive_utc()
}

/// The stored form → unix seconds.
pub fn unix(value: &NaiveDateTime) -> Timestamp {
    value.and_utc().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp()
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(
            parse("2017-07-21T17:32:28Z"),
            Some(utc("2017-07-21 17:32:28"))
        );
        assert_eq!(
            parse("2024-03-14T09:41:23+0000"),
            Some(utc("2024-03-14 09:41:23"))
        );
        assert_eq!(
            parse("2017-07-21 17:32:28"),
            Some(utc("2017-07-21 17:32:28"))
        );
        assert_eq!(parse("2017-07-21"), Some(utc("2017-07-21 00:00:00")));
        assert_eq!(parse("2017"), Some(utc("2017-01-01 00:00:00")));
        // The offset is applied: 17:32:28+02:00 is 15:32:28 UTC; the fraction is dropped.
        assert_eq!(
            parse("2017-07-21T17:32:28.511+02:00"),
            Some(utc("2017-07-21 15:32:28"))
        );
        assert_eq!(parse("20170721T173228Z"), Some(utc("2017-07-21 17:32:28")));
        assert_eq!(parse("2017-07-21T17:32"), Some(utc("2017-07-21 17:32:00")));
        assert_eq!(parse("2017-07-21T17"), Some(utc("2017-07-21 17:00:00")));
        assert_eq!(parse("2017-07-21T24:00"), Some(utc("2017-07-22 00:00:00")));
        assert_eq!(parse("2017-07"), Some(utc("2017-07-01 00:00:00")));
        assert_eq!(parse("2017-W29-5"), Some(utc("2017-07-21 00:00:00")));
        assert_eq!(parse("2017-202"), Some(utc("2017-07-21 00:00:00")));
        assert_eq!(
            parse("2017-07-21T17:32:28,5-01:30"),
            Some(utc("2017-07-21 19:02:28"))
        );
        assert_eq!(
            parse("2017-07-21T17:32:28z"),
            Some(utc("2017-07-21 17:32:28"))
        );
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "bad_date",
            "21/07/2017",
            "null",
            "",
            "201707",
            "2017-13-01",
            "2017-07-32",
            "2017-02-30",
            "2017-07-21T25:00",
            "2017-07-21T17:60",
            "2017-07-21T17:32:28Zjunk",
            "2017-07-21X17:32",
            "2017T10",
            "17-07-21",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn laravel_output() {
        assert_eq!(
            laravel(utc("2026-08-20 10:00:00")),
            "2026-08-20T10:00:00.000000Z"
        );
    }
}

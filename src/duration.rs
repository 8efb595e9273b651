//! Parses the human durations used in config and flags ("250ms", "10s", "5m", "1h"),
//! and writes UTC timestamps (log lines, PSU's grant bodies, the simulator).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time, UTC; an error past the year 9999.
pub fn date_time(w: &mut impl fmt::Write, secs: u64) -> fmt::Result {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .ok_or(fmt::Error)?;
    write!(
        w,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` (the epoch for an earlier time).
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut text = String::with_capacity(20);
    let _ = date_time(&mut text, secs);
    text.push('Z');
    text
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a duration such as \"250ms\", \"10s\", \"5m\" or \"1h\", got {0:?}")]
    Malformed(String),
    #[error("duration {0:?} is too large (at most 30 days)")]
    TooLarge(String),
}

/// No setting needs longer; the cap keeps deadline arithmetic far from overflow.
const MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses `<digits><unit>` with unit `ms`, `s`, `m` or `h`. No fractions, no
/// sign, no spaces: an operator typo should fail loudly rather than be guessed.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_owned());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(malformed)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(malformed());
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| DurationError::TooLarge(text.to_owned()))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(malformed()),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX)
        .ok_or_else(|| DurationError::TooLarge(text.to_owned()))
}

/// Writes a duration the way config takes it: the largest unit that is
/// exact ("3s", "250ms", "5m").
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        0 => "0s".to_owned(),
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1_000 == 0 => format!("{}s", m / 1_000),
        m => format!("{m}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_the_inverse_of_parse() {
        for text in ["250ms", "1500ms", "3s", "90s", "5m", "2h", "0s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn accepts_each_unit() {
        let cases = [
            ("250ms", 250),
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("0s", 0),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_malformed_and_huge() {
        for text in [
            "", "10", "s", "1.5s", "-1s", " 1s", "1s ", "1 s", "1d", "1S", "1sec",
        ] {
            assert!(
                matches!(parse_duration(text), Err(DurationError::Malformed(_))),
                "{text:?} should be malformed"
            );
        }
        assert!(matches!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::TooLarge(_))
        ));
        assert!(matches!(
            parse_duration("31d"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("721h"),
            Err(DurationError::TooLarge(_))
        ));
        assert_eq!(parse_duration("720h"), Ok(MAX));
        assert!(matches!(
            parse_duration("18446744073709551615ms"),
            Err(DurationError::TooLarge(_))
        ));
        assert!(matches!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::TooLarge(_))
        ));
    }
}

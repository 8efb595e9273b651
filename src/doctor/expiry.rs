//! When the app token expires, read from its JWT `exp` claim without
//! verifying the signature (the gateway does not hold PSU's key; PSU judges
//! validity, this only warns ahead of time).

use crate::doctor::{Finding, Level};

/// Below this much remaining life the doctor warns.
pub const WARN_BEFORE_SECS: i64 = 7 * 24 * 3600;

/// The `exp` claim (Unix seconds) of a JWT, or `None` for anything that is
/// not three dot-separated segments with a JSON object payload holding a
/// numeric `exp`.
pub fn token_expiry(token: &str) -> Option<i64> {
    crate::config::token::jwt_exp(token)
}

pub fn diagnose_expiry(expiry: Option<i64>, now: i64) -> Finding {
    let Some(exp) = expiry else {
        return Finding::new(
            Level::Skip,
            "app token expiry unknown (not a JWT with an exp claim)",
            "Note when this token expires and replace it before then: once PSU refuses \
             it, every inject route answers 401.",
        );
    };
    let when = utc(exp);
    let remaining = exp.saturating_sub(now);
    if remaining <= 0 {
        return Finding::new(
            Level::Fail,
            format!(
                "app token expired {} ago ({when})",
                in_words(now.saturating_sub(exp))
            ),
            "PSU refuses an expired app token, so every inject route answers 401.\n\
             Fix: create a new app token in PSU (Security -> App Tokens, or \
             New-PSUAppToken -Expiration ...), write it to credential.token_file (a running \
             gateway picks the new file up by itself; credential.token_env needs a restart).",
        );
    }
    if remaining < WARN_BEFORE_SECS {
        return Finding::new(
            Level::Warn,
            format!("app token expires in {} ({when})", in_words(remaining)),
            "After that PSU refuses it and every inject route answers 401.\n\
             Fix: create a new app token in PSU now, write it to \
             credential.token_file (a running gateway picks it up by itself; \
             credential.token_env needs a restart).",
        );
    }
    Finding::ok(format!(
        "app token valid until {when} (in {})",
        in_words(remaining)
    ))
}

/// A span rounded to the unit a person would use for it.
pub fn in_words(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (value, unit) = match seconds {
        s if s >= 36 * 3600 => (s.saturating_add(43_200) / 86_400, "day"),
        s if s >= 90 * 60 => ((s + 1_800) / 3_600, "hour"),
        s if s >= 90 => ((s + 30) / 60, "minute"),
        s => (s, "second"),
    };
    let plural = if value == 1 { "" } else { "s" };
    format!("{value} {unit}{plural}")
}

/// `YYYY-MM-DD HH:MM UTC`; out-of-range values print as Unix seconds.
pub fn utc(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => format!("{unix} (Unix seconds)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn exp_is_read_from_the_payload_only() {
        let padded = format!(
            "e30.{}.sig",
            base64::engine::general_purpose::URL_SAFE.encode(r#"{"exp":1700000000}"#)
        );
        let cases: &[(String, Option<i64>)] = &[
            (jwt(r#"{"exp":1700000000,"nbf":1}"#), Some(1_700_000_000)),
            (jwt(r#"{"exp":1700000000.75}"#), Some(1_700_000_000)),
            (format!("  {}\n", jwt(r#"{"exp":5}"#)), Some(5)),
            (padded, Some(1_700_000_000)),
            (jwt(r#"{"exp":"1700000000"}"#), None),
            (jwt(r#"{"nbf":1}"#), None),
            (jwt(r#"[1,2]"#), None),
            (jwt("not json"), None),
            (jwt(r#"{"exp":1e400}"#), None),
            ("opaque-token-value".to_owned(), None),
            ("a.b".to_owned(), None),
            ("a.b.c.d".to_owned(), None),
            ("e30.!!!.sig".to_owned(), None),
            ("..".to_owned(), None),
            (String::new(), None),
        ];
        for (token, want) in cases {
            assert_eq!(token_expiry(token), *want, "{token:?}");
        }
    }

    #[test]
    fn expiry_levels_follow_the_seven_day_window() {
        let now = 1_700_000_000;
        let day = 86_400;
        let cases: &[(Option<i64>, Level, &str)] = &[
            (None, Level::Skip, "app token expiry unknown"),
            (
                Some(now - 3 * day),
                Level::Fail,
                "app token expired 3 days ago (2023-11-11 22:13 UTC)",
            ),
            (Some(now), Level::Fail, "expired 0 seconds ago"),
            (
                Some(now + 2 * day - 5),
                Level::Warn,
                "app token expires in 2 days (2023-11-16 22:13 UTC)",
            ),
            (Some(now + 7 * day - 1), Level::Warn, "expires in 7 days"),
            (
                Some(now + 7 * day),
                Level::Ok,
                "app token valid until 2023-11-21 22:13 UTC (in 7 days)",
            ),
            (Some(i64::MAX), Level::Ok, "(Unix seconds)"),
            (Some(i64::MIN), Level::Fail, "expired"),
        ];
        for (expiry, level, summary) in cases {
            let finding = diagnose_expiry(*expiry, now);
            assert_eq!(finding.level, *level, "{expiry:?}");
            assert!(
                finding.summary.contains(summary),
                "{expiry:?}: {}",
                finding.summary
            );
            assert_eq!(finding.explanation.is_empty(), *level == Level::Ok);
        }
    }

    #[test]
    fn spans_read_as_a_person_would_say_them() {
        let cases = [
            (0, "0 seconds"),
            (1, "1 second"),
            (89, "89 seconds"),
            (90, "2 minutes"),
            (3_599, "60 minutes"),
            (5_400, "2 hours"),
            (86_400, "24 hours"),
            (129_600, "2 days"),
            (172_795, "2 days"),
            (-5, "0 seconds"),
            (i64::MAX, "106751991167300 days"),
        ];
        for (seconds, want) in cases {
            assert_eq!(in_words(seconds), want, "{seconds}");
        }
    }
}

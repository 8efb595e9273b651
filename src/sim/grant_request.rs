//! The body of a delegated `POST /api/v1/apptoken/grant`
//! (`{"Identity":{"Name":..},"Role":..,"Expiration":..}`), checked strictly.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use time::{Date, Month, PrimitiveDateTime, Time};

use crate::sim::grants::split_roles;

/// What an administrator asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegatedGrant {
    pub identity: String,
    pub roles: Vec<String>,
    /// Unix seconds: the token's `exp`.
    pub expires: u64,
}

/// Why a body was refused; the text is the 400's body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantBodyError {
    #[error("expected JSON {{\"Identity\":{{\"Name\":...}},\"Role\":...,\"Expiration\":...}}")]
    Shape,
    #[error("Identity.Name is empty")]
    EmptyName,
    #[error("Expiration must be an RFC 3339 UTC time such as 2026-12-02T18:00:00Z")]
    Timestamp,
    #[error("Expiration is in the past")]
    Past,
}

// ASP.NET binds JSON property names case-insensitively; PascalCase (PSU's
// cmdlets) and camelCase (JavaScript) cover what clients send.
#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Identity", alias = "identity")]
    identity: IdentityRef,
    #[serde(rename = "Role", alias = "role")]
    role: String,
    #[serde(rename = "Expiration", alias = "expiration")]
    expiration: String,
}

#[derive(Deserialize)]
struct IdentityRef {
    #[serde(rename = "Name", alias = "name")]
    name: String,
}

/// Parses and checks a delegated grant at `now`: an expiry at or before
/// `now` would mint a token that is dead on arrival.
pub fn parse_delegated(body: &[u8], now: SystemTime) -> Result<DelegatedGrant, GrantBodyError> {
    let body: Body = serde_json::from_slice(body).map_err(|_| GrantBodyError::Shape)?;
    let identity = body.identity.name.trim();
    if identity.is_empty() {
        return Err(GrantBodyError::EmptyName);
    }
    let expires = parse_utc(&body.expiration).ok_or(GrantBodyError::Timestamp)?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let expires = u64::try_from(expires)
        .ok()
        .filter(|exp| *exp > now.as_secs())
        .ok_or(GrantBodyError::Past)?;
    Ok(DelegatedGrant {
        identity: identity.to_owned(),
        roles: split_roles(&body.role),
        expires,
    })
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SS[.fraction]` ending `Z` or `+00:00`.
/// A fraction is dropped, as a JWT's `exp` is whole seconds. Other offsets
/// are refused rather than converted: the simulator speaks UTC only.
pub fn parse_utc(text: &str) -> Option<i64> {
    let body = text
        .strip_suffix(['Z', 'z'])
        .or_else(|| text.strip_suffix("+00:00"))?;
    let main = match body.split_once('.') {
        Some((main, fraction)) => {
            let digits = !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit());
            digits.then_some(main)?
        }
        None => body,
    };
    let bytes = main.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if bytes.len() != 19
        || !matches!(bytes[10], b'T' | b't')
        || separators.iter().any(|(at, sep)| bytes[*at] != *sep)
    {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u16> {
        let part = main.get(from..to)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let month = Month::try_from(u8::try_from(number(5, 7)?).ok()?).ok()?;
    let date = Date::from_calendar_date(
        i32::from(number(0, 4)?),
        month,
        u8::try_from(number(8, 10)?).ok()?,
    )
    .ok()?;
    let clock = Time::from_hms(
        u8::try_from(number(11, 13)?).ok()?,
        u8::try_from(number(14, 16)?).ok()?,
        u8::try_from(number(17, 19)?).ok()?,
    )
    .ok()?;
    Some(
        PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-01T00:00:00Z.
    const NOW: u64 = 1_735_689_600;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn parse(body: &str) -> Result<DelegatedGrant, GrantBodyError> {
        parse_delegated(body.as_bytes(), at(NOW))
    }

    #[test]
    fn utc_timestamps_parse_to_unix_seconds() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_utc("2023-11-14t22:13:20.999z"), Some(1_700_000_000));
        assert_eq!(parse_utc("2023-11-14T22:13:20+00:00"), Some(1_700_000_000));
        assert_eq!(parse_utc("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20+02:00",
            "2023-11-14T22:13Z",
            "2023-11-14T22:13:20.Z",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:60Z",
            "+023-11-14T22:13:20Z",
            "2023-1a-14T22:13:20Z",
            "2023-11-14T22:13:20ZZ",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_delegated_grant_names_identity_roles_and_expiry() {
        let grant = parse(
            r#"{"Identity":{"Name":" bob "},"Role":"Reader, Operator","Expiration":"2026-12-02T18:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            grant,
            DelegatedGrant {
                identity: "bob".into(),
                roles: vec!["Reader".into(), "Operator".into()],
                expires: 1_796_234_400,
            }
        );
        let camel = parse(
            r#"{"identity":{"name":"x","id":7},"role":"","expiration":"2026-12-02T18:00:00Z","extra":1}"#,
        )
        .unwrap();
        assert!(camel.roles.is_empty(), "no roles is a valid request");
    }

    #[test]
    fn bodies_that_are_not_a_grant_are_refused() {
        let expiration = |value: &str| {
            parse(&format!(
                r#"{{"Identity":{{"Name":"bob"}},"Role":"Reader","Expiration":"{value}"}}"#
            ))
        };
        for shape in [
            "",
            "{",
            "[]",
            r#"{"Identity":"bob","Role":"Reader","Expiration":"2026-12-02T18:00:00Z"}"#,
            r#"{"Identity":{"Name":"bob"},"Expiration":"2026-12-02T18:00:00Z"}"#,
            r#"{"Identity":{"Name":"bob"},"Role":"Reader"}"#,
            r#"{"Identity":{"Name":"bob"},"Role":["Reader"],"Expiration":"2026-12-02T18:00:00Z"}"#,
        ] {
            assert_eq!(parse(shape), Err(GrantBodyError::Shape), "{shape}");
        }
        assert_eq!(
            parse(r#"{"Identity":{"Name":" "},"Role":"","Expiration":"2026-12-02T18:00:00Z"}"#),
            Err(GrantBodyError::EmptyName)
        );
        assert_eq!(expiration("tomorrow"), Err(GrantBodyError::Timestamp));
        assert_eq!(
            expiration("2026-12-02T18:00:00-05:00"),
            Err(GrantBodyError::Timestamp)
        );
        assert_eq!(
            expiration("2025-01-01T00:00:00Z"),
            Err(GrantBodyError::Past),
            "now is already too late"
        );
        assert_eq!(
            expiration("1969-12-31T23:59:59Z"),
            Err(GrantBodyError::Past)
        );
        assert!(expiration("2025-01-01T00:00:01Z").is_ok());
    }
}

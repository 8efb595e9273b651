//! Each grant answer maps to its level and its fix.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::*;

fn per_user(grant: Grant) -> PerUser {
    PerUser {
        grant,
        grant_path: http::uri::PathAndQuery::from_static("/api/v1/apptoken/grant"),
        token_pointer: "/token".to_owned(),
        token_ttl: Duration::from_secs(900),
        grant_roles: None,
    }
}

fn token(claims: serde_json::Value) -> String {
    format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

const NOW: u64 = 1_800_000_000;

#[test]
fn grant_answers_and_their_fixes() {
    let year = token(serde_json::json!({"exp": NOW + 365 * 86400, ROLE_CLAIM: "Administrator"}));
    let short = token(serde_json::json!({"exp": NOW + 900, ROLE_CLAIM: ["Reader", "Operator"]}));
    let session = per_user(Grant::Session);
    let delegated = per_user(Grant::Delegated);
    let cases: &[(&PerUser, GrantAnswer, Level, &str, &str)] = &[
        (
            &session,
            GrantAnswer::Granted(Some(year.clone())),
            Level::Warn,
            "roles: Administrator",
            "grant = \"delegated\"",
        ),
        (
            &delegated,
            GrantAnswer::Granted(Some(short.clone())),
            Level::Ok,
            "roles: Reader, Operator",
            "",
        ),
        (
            &session,
            GrantAnswer::Granted(Some(short)),
            Level::Ok,
            "valid for",
            "",
        ),
        (
            &session,
            GrantAnswer::Granted(Some("opaque".to_owned())),
            Level::Warn,
            "no readable expiry",
            "cannot be told",
        ),
        (
            &session,
            GrantAnswer::Granted(None),
            Level::Fail,
            "no token string",
            "token_pointer",
        ),
        (
            &session,
            GrantAnswer::Status(StatusCode::FORBIDDEN),
            Level::Fail,
            "refused",
            "allow self-granted",
        ),
        (
            &delegated,
            GrantAnswer::Status(StatusCode::UNAUTHORIZED),
            Level::Fail,
            "refused",
            "Administrator's app token",
        ),
        (
            &session,
            GrantAnswer::Status(StatusCode::NOT_FOUND),
            Level::Fail,
            "no grant endpoint",
            "grant_path",
        ),
        (
            &session,
            GrantAnswer::Status(StatusCode::BAD_GATEWAY),
            Level::Fail,
            "answered 502",
            "503",
        ),
        (
            &session,
            GrantAnswer::Failed("connection refused".to_owned()),
            Level::Fail,
            "connection refused",
            "",
        ),
    ];
    for (per_user, answer, level, summary, fix) in cases {
        let finding = diagnose(per_user, "alice", answer, NOW);
        assert_eq!(finding.level, *level, "{answer:?}: {finding:?}");
        assert!(
            finding.summary.contains(summary),
            "{answer:?}: {}",
            finding.summary
        );
        assert!(
            finding.explanation.contains(fix),
            "{answer:?}: {}",
            finding.explanation
        );
    }
}

//! Table tests: each PSU answer maps to its level and its explanation.

use super::*;
use crate::doctor::X_PSU_AUTHORIZATION;

fn status(code: u16) -> Answer {
    Answer::Status {
        status: StatusCode::from_u16(code).unwrap(),
        windows_challenge: false,
    }
}

fn challenge() -> Answer {
    Answer::Status {
        status: StatusCode::UNAUTHORIZED,
        windows_challenge: true,
    }
}

#[test]
fn windows_challenges_are_told_from_psu_answers() {
    let cases: &[(&[&str], bool)] = &[
        (&["Negotiate"], true),
        (&["NTLM"], true),
        (&["Bearer", "negotiate"], true),
        (&["Negotiate YIIabc"], true),
        (&["ntlm, Basic realm=\"x\""], true),
        (&["Bearer"], false),
        (&["Bearer error=\"invalid_token\", Negotiate-ish"], false),
        (&["NegotiateX"], false),
        (&["Basic realm=\"Negotiate\""], false),
        (&[""], false),
        (&[], false),
    ];
    for (values, want) in cases {
        let values: Vec<HeaderValue> = values
            .iter()
            .map(|v| HeaderValue::from_str(v).unwrap())
            .collect();
        assert_eq!(is_windows_challenge(&values), *want, "{values:?}");
    }
}

#[test]
fn introspection_must_refuse_an_anonymous_request() {
    let path = "/api/v1/accessible";
    let timeout = Duration::from_secs(2);
    let cases: &[(Answer, Level, &str, &str)] = &[
        (
            status(401),
            Level::Ok,
            "answers 401 without a session cookie",
            "",
        ),
        (status(403), Level::Ok, "answers 403", ""),
        (
            challenge(),
            Level::Fail,
            "IIS Windows authentication",
            "enable Anonymous Authentication",
        ),
        (
            status(200),
            Level::Fail,
            "answers 200 without any session cookie",
            "any cookie value would pass",
        ),
        (
            status(204),
            Level::Fail,
            "answers 204",
            "requires the session",
        ),
        (
            status(404),
            Level::Fail,
            "404: wrong session.introspect_path",
            "set session.introspect_path to /api/v1/accessible",
        ),
        (
            status(302),
            Level::Fail,
            "302 (a redirect)",
            "does not follow redirects",
        ),
        (status(500), Level::Fail, "answers 500", "503"),
        (
            Answer::TimedOut,
            Level::Fail,
            "no answer within session.introspect_timeout (2s)",
            "PSU's health",
        ),
        (
            Answer::Failed("connection reset".into()),
            Level::Fail,
            "failed: connection reset",
            "upstream.protocol",
        ),
    ];
    for (answer, level, summary, explanation) in cases {
        let finding = diagnose_introspection(path, timeout, answer);
        assert_eq!(finding.level, *level, "{answer:?}");
        assert!(finding.summary.contains(path), "{}", finding.summary);
        assert!(
            finding.summary.contains(summary),
            "{answer:?}: {}",
            finding.summary
        );
        assert!(
            finding.explanation.contains(explanation),
            "{answer:?}: {}",
            finding.explanation
        );
        assert_eq!(finding.explanation.is_empty(), *level == Level::Ok);
    }
}

/// Context, configured answer, other answer, level, summary words, explanation words.
type TokenCase<'a> = (
    &'a TokenContext,
    Answer,
    Option<Answer>,
    Level,
    &'a str,
    &'a str,
);

fn context(header: HeaderName, scheme: &str) -> TokenContext {
    TokenContext {
        other_header: crate::doctor::other_header(&header),
        header,
        scheme: scheme.to_owned(),
        fingerprint: "e072647f".to_owned(),
        timeout: Duration::from_secs(30),
    }
}

#[test]
fn token_answers_name_the_cause_and_the_fix() {
    let psu = context(X_PSU_AUTHORIZATION, "Bearer");
    let auth = context(AUTHORIZATION, "Bearer");
    let custom = context(HeaderName::from_static("x-app-token"), "Bearer");
    let bare = context(X_PSU_AUTHORIZATION, "");
    let cases: &[TokenCase] = &[
        (&psu, status(200), None, Level::Ok, "accepted in X-PSU-Authorization (GET /api/v1/usersession -> 200, token e072647f)", ""),
        (&auth, status(200), None, Level::Ok, "accepted in Authorization", ""),
        (&psu, challenge(), None, Level::Fail, "refused by IIS Windows authentication", "enable Anonymous Authentication alongside Windows Authentication"),
        (&auth, status(401), Some(status(200)), Level::Fail, "Authorization is stripped in front of PSU: the app token works in X-PSU-Authorization but not in Authorization", "credential.header = \"X-PSU-Authorization\""),
        (&auth, status(401), Some(status(403)), Level::Fail, "Authorization is stripped", "credential.header = \"X-PSU-Authorization\""),
        (&custom, status(401), Some(status(200)), Level::Fail, "works in X-PSU-Authorization but not in x-app-token", "credential.header = \"X-PSU-Authorization\""),
        (&psu, status(401), Some(status(200)), Level::Fail, "works in Authorization but not in X-PSU-Authorization", "credential.header = \"Authorization\""),
        (&psu, status(401), Some(status(401)), Level::Fail, "rejected: GET /api/v1/usersession -> 401 in X-PSU-Authorization and in Authorization", "create a new app token"),
        (&auth, status(401), Some(Answer::TimedOut), Level::Fail, "rejected", "revoked"),
        (&bare, status(401), Some(status(401)), Level::Fail, "rejected", "credential.scheme = \"Bearer\""),
        (&psu, status(403), None, Level::Warn, "not allowed GET /api/v1/usersession (403", "least-privilege"),
        (&psu, status(404), None, Level::Warn, "answers 404", "PowerShell Universal"),
        (&psu, status(502), None, Level::Warn, "answers 502", "PSU's log"),
        (&psu, Answer::TimedOut, None, Level::Fail, "no answer within limits.upstream_timeout (30s)", "504"),
        (&psu, Answer::Failed("reset".into()), None, Level::Fail, "failed: reset", "upstream.url"),
    ];
    for (ctx, configured, other, level, summary, explanation) in cases {
        let finding = diagnose_token(ctx, configured, other.as_ref());
        let case = format!("{:?} {configured:?} {other:?}", ctx.header);
        assert_eq!(finding.level, *level, "{case}");
        assert!(
            finding.summary.contains(summary),
            "{case}: {}",
            finding.summary
        );
        assert!(
            finding.explanation.contains(explanation),
            "{case}: {}",
            finding.explanation
        );
    }
    let rejected = diagnose_token(&psu, &status(401), Some(&status(401)));
    assert!(
        !rejected.explanation.contains("credential.scheme"),
        "Bearer needs no hint"
    );
}

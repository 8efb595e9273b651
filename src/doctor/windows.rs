//! Whether PSU authenticates connections (NTLM, Negotiate) and what
//! `upstream.windows_auth` will do about it.

use crate::config::WindowsAuth;
use crate::doctor::answers::Answer;
use crate::doctor::{Finding, Level};

/// Where the probe asks without credentials: PSU's root, which Kestrel
/// Negotiate and IIS Windows authentication both guard.
pub const PROBE_PATH: &str = "/";

/// What the config says about Windows authentication.
pub struct Setting<'a> {
    pub windows_auth: WindowsAuth,
    pub max_pinned: usize,
    /// Routes that forward client credentials (public, or
    /// `client_credentials = "forward"`), by name.
    pub forwarding_routes: &'a [&'a str],
}

/// The diagnosis of GET [`PROBE_PATH`] without credentials.
pub fn diagnose(answer: &Answer, setting: &Setting<'_>) -> Finding {
    let challenged = match answer {
        Answer::Status {
            windows_challenge, ..
        } => *windows_challenge,
        Answer::TimedOut | Answer::Failed(_) => {
            return Finding::new(
                Level::Skip,
                format!("Windows authentication (GET {PROBE_PATH} got no answer)"),
                "",
            )
        }
    };
    if !challenged {
        return Finding::ok(format!(
            "PSU does not challenge with NTLM or Negotiate on GET {PROBE_PATH}: nothing to pin"
        ));
    }
    let routes = setting.forwarding_routes;
    match setting.windows_auth {
        WindowsAuth::Off => Finding::new(
            Level::Warn,
            format!("PSU challenges with NTLM/Negotiate on GET {PROBE_PATH}, but upstream.windows_auth = \"off\""),
            "The gateway strips NTLM and Negotiate credentials, so a browser answering PSU's \
             challenge is challenged again and never signs in with Windows authentication.\n\
             Fix: set upstream.windows_auth = \"pin\" (the default), or turn Windows \
             authentication off in PSU.",
        ),
        WindowsAuth::Pin if routes.is_empty() => Finding::new(
            Level::Warn,
            format!("PSU challenges with NTLM/Negotiate on GET {PROBE_PATH}, but no route forwards client credentials"),
            "Every route strips Authorization, so Windows authentication cannot reach PSU and \
             nothing is pinned.\nFix: give the routes users sign in on access = \"public\" or \
             client_credentials = \"forward\".",
        ),
        WindowsAuth::Pin => Finding::ok(format!(
            "PSU challenges with NTLM/Negotiate on GET {PROBE_PATH}; upstream.windows_auth = \"pin\" gives each client connection that authenticates on {} its own upstream connection (at most {} at once)",
            route_list(routes),
            setting.max_pinned
        )),
    }
}

fn route_list(routes: &[&str]) -> String {
    let shown: Vec<String> = routes.iter().take(3).map(|r| format!("\"{r}\"")).collect();
    let more = routes.len().saturating_sub(3);
    let noun = if routes.len() == 1 { "route" } else { "routes" };
    match more {
        0 => format!("{noun} {}", shown.join(", ")),
        n => format!("{noun} {} and {n} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn challenge(windows_challenge: bool) -> Answer {
        Answer::Status {
            status: StatusCode::UNAUTHORIZED,
            windows_challenge,
        }
    }

    fn setting<'a>(windows_auth: WindowsAuth, routes: &'a [&'a str]) -> Setting<'a> {
        Setting {
            windows_auth,
            max_pinned: 1000,
            forwarding_routes: routes,
        }
    }

    #[test]
    fn a_challenge_with_pin_and_forwarding_routes_says_what_is_pinned() {
        let f = diagnose(
            &challenge(true),
            &setting(WindowsAuth::Pin, &["console", "api"]),
        );
        assert_eq!(f.level, Level::Ok);
        assert!(
            f.summary.contains("routes \"console\", \"api\""),
            "{}",
            f.summary
        );
        assert!(f.summary.contains("at most 1000"));
    }

    #[test]
    fn a_challenge_that_cannot_be_answered_warns_with_the_fix() {
        let off = diagnose(&challenge(true), &setting(WindowsAuth::Off, &["console"]));
        assert_eq!(off.level, Level::Warn);
        assert!(off.explanation.contains("windows_auth = \"pin\""));
        let none = diagnose(&challenge(true), &setting(WindowsAuth::Pin, &[]));
        assert_eq!(none.level, Level::Warn);
        assert!(none
            .explanation
            .contains("client_credentials = \"forward\""));
    }

    #[test]
    fn no_challenge_or_no_answer() {
        let f = diagnose(&challenge(false), &setting(WindowsAuth::Pin, &["a"]));
        assert_eq!(f.level, Level::Ok);
        assert!(f.summary.contains("nothing to pin"));
        let f = diagnose(&Answer::TimedOut, &setting(WindowsAuth::Pin, &["a"]));
        assert_eq!(f.level, Level::Skip);
    }

    #[test]
    fn long_route_lists_are_cut() {
        assert_eq!(route_list(&["a"]), "route \"a\"");
        assert_eq!(
            route_list(&["a", "b", "c", "d", "e"]),
            "routes \"a\", \"b\", \"c\" and 2 more"
        );
    }
}

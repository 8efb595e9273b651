//! `psu-gateway doctor` as a child process against the simulator: one test
//! per deployment pitfall, each asserting the exit status, the explanation
//! and that the token never appears in the output.

use std::time::{Duration, SystemTime};

use psu_gateway::sim::{mint_token_at, Sim, SimOptions, DEV_SIGNING_KEY};
use tokio::net::TcpListener;
use tokio::process::Command;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_psu-gateway");
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A config directory (gateway certificate, token file) and a simulator.
struct Bench {
    dir: tempfile::TempDir,
    sim: Sim,
    token: String,
}

/// What one `doctor` run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The line starting with `level` whose text contains `words`, plus its
    /// indented explanation joined into one paragraph.
    fn finding(&self, level: &str, words: &str) -> String {
        let mut lines = self.stdout.lines();
        while let Some(line) = lines.next() {
            if line.starts_with(&format!("{level:<5}")) && line.contains(words) {
                let mut text = line.to_owned();
                for more in lines.by_ref().take_while(|l| l.starts_with("     ")) {
                    text.push(' ');
                    text.push_str(more.trim());
                }
                return text;
            }
        }
        panic!("no {level:?} line with {words:?} in:\n{}", self.stdout);
    }
}

impl Bench {
    /// A simulator with `sim` options and a token issued `issued_ago`
    /// ago, living `ttl` from its issue.
    async fn start(sim: SimOptions, issued_ago: Duration, ttl: Duration) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        psu_gateway::cli::devcert::write(dir.path(), &["localhost".to_owned()]).unwrap();
        let sim = Sim::spawn(sim, TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await
            .unwrap();
        let issued = SystemTime::now() - issued_ago;
        let roles = ["Administrator".to_owned()];
        let minted = mint_token_at(DEV_SIGNING_KEY.as_bytes(), "gateway", &roles, issued, ttl);
        let token = minted.token.expose().to_owned();
        std::fs::write(dir.path().join("app-token"), format!("{token}\n")).unwrap();
        Bench { dir, sim, token }
    }

    async fn healthy(sim: SimOptions) -> Bench {
        Bench::start(sim, Duration::ZERO, 30 * DAY).await
    }

    /// The tests' base config towards `url`, with `edits` applied in turn.
    fn config(&self, url: &str, edits: &[(&str, &str)]) -> String {
        let mut text = format!("{BASE_CONFIG}{DEFAULT_ROUTES}").replace("{upstream}", url);
        for (from, to) in edits {
            assert!(text.contains(from), "config has no {from:?}");
            text = text.replacen(from, to, 1);
        }
        text
    }

    fn sim_url(&self) -> String {
        format!("http://{}", self.sim.addr())
    }

    async fn doctor(&self, config: &str) -> Run {
        self.doctor_with(config, &[], &[]).await
    }

    /// `doctor` with more arguments and environment variables.
    async fn doctor_with(&self, config: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        std::fs::write(self.dir.path().join("gateway.toml"), config).unwrap();
        let output = Command::new(BIN)
            .args(["doctor", "--config", "gateway.toml"])
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("doctor finished within 60s")
            .unwrap();
        let run = Run {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        };
        let secret = &self.token[self.token.len() - 20..];
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "the token leaked:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        run
    }
}

#[tokio::test]
async fn a_healthy_setup_is_all_ok_and_exits_0() {
    let bench = Bench::healthy(SimOptions::default()).await;
    let run = bench.doctor(&bench.config(&bench.sim_url(), &[])).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{}", run.stdout);
    assert!(
        lines[..6].iter().all(|l| l.starts_with("ok   ")),
        "{}",
        run.stdout
    );
    assert_eq!(lines[6], "6 ok, 0 warn, 0 FAIL, 0 skipped");
    run.finding("ok", &format!("upstream reachable ({}, ", bench.sim_url()));
    run.finding(
        "ok",
        "session check GET /api/v1/accessible answers 401 without a session cookie",
    );
    let fingerprint = psu_gateway::secret::Secret::new(bench.token.clone()).fingerprint();
    run.finding("ok", &format!("app token accepted in X-PSU-Authorization (GET /api/v1/usersession -> 200, token {fingerprint})"));
    run.finding("ok", "app token valid until");
    // What PSU saw: the introspection without any cookie, the token in the
    // configured header only.
    let seen = bench.sim.recorder().requests();
    let introspection: Vec<_> = seen
        .iter()
        .filter(|r| r.path == "/api/v1/accessible")
        .collect();
    assert_eq!(introspection.len(), 1);
    assert!(header(introspection[0], "cookie").is_empty());
    assert!(header(introspection[0], "x-psu-authorization").is_empty());
    let usersession: Vec<_> = seen
        .iter()
        .filter(|r| r.path == "/api/v1/usersession")
        .collect();
    assert_eq!(
        usersession.len(),
        1,
        "the other header is not tried when the first works"
    );
    assert_eq!(
        header(usersession[0], "x-psu-authorization"),
        [bearer(&bench.token)]
    );
    assert!(header(usersession[0], "authorization").is_empty());
}

#[tokio::test]
async fn a_bad_config_exits_2_with_the_same_errors_as_check() {
    let bench = Bench::healthy(SimOptions::default()).await;
    let config = bench.config(&bench.sim_url(), &[("[upstream]", "[upstream]\nbogus = 1")]);
    let run = bench.doctor(&config).await;
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("gateway.toml:") && run.stderr.contains("upstream.bogus"),
        "{}",
        run.stderr
    );
    let check = std::process::Command::new(BIN)
        .args(["check", "--config", "gateway.toml"])
        .current_dir(bench.dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(check.stderr).unwrap(), run.stderr);
    assert!(bench.sim.recorder().requests().is_empty(), "nothing probed");
}

#[tokio::test]
async fn an_unreachable_upstream_fails_and_skips_what_depends_on_it() {
    let bench = Bench::healthy(SimOptions::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = bench.doctor(&bench.config(&url, &[])).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let finding = run.finding(
        "FAIL",
        &format!("upstream unreachable: connection refused ({url})"),
    );
    assert!(
        finding.contains("Fix: start PSU, or set upstream.url"),
        "{finding}"
    );
    run.finding("skip", "session check (upstream unreachable)");
    run.finding("skip", "app token (upstream unreachable)");
    run.finding("ok", "app token valid until");
}

#[tokio::test]
async fn iis_without_anonymous_authentication_is_named_with_its_fix() {
    let bench = Bench::healthy(SimOptions {
        iis_anonymous: false,
        ..SimOptions::default()
    })
    .await;
    let run = bench.doctor(&bench.config(&bench.sim_url(), &[])).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let token = run.finding("FAIL", "app token refused by IIS Windows authentication");
    assert!(token.contains("WWW-Authenticate: Negotiate"), "{token}");
    assert!(
        token.contains("enable Anonymous Authentication alongside Windows Authentication"),
        "{token}"
    );
    let session = run.finding(
        "FAIL",
        "session check GET /api/v1/accessible is challenged by IIS",
    );
    assert!(session.contains("every user looks signed out"), "{session}");
}

#[tokio::test]
async fn stripped_authorization_is_told_from_a_bad_token() {
    let bench = Bench::healthy(SimOptions {
        strip_authorization: true,
        ..SimOptions::default()
    })
    .await;
    let config = bench.config(
        &bench.sim_url(),
        &[(
            r#"header = "X-PSU-Authorization""#,
            r#"header = "Authorization""#,
        )],
    );
    let run = bench.doctor(&config).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let finding = run.finding(
        "FAIL",
        "Authorization is stripped in front of PSU: the app token works in X-PSU-Authorization but not in Authorization",
    );
    assert!(
        finding.contains(r#"Fix: set credential.header = "X-PSU-Authorization""#),
        "{finding}"
    );
    assert!(
        run.stderr
            .contains(r#"warning: credential.header = "Authorization""#),
        "{}",
        run.stderr
    );
    let tried: Vec<_> = bench
        .sim
        .recorder()
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/usersession")
        .collect();
    assert_eq!(tried.len(), 2);
    assert_eq!(header(&tried[0], "authorization"), [bearer(&bench.token)]);
    assert_eq!(
        header(&tried[1], "x-psu-authorization"),
        [bearer(&bench.token)]
    );
    assert!(header(&tried[1], "authorization").is_empty());
}

#[tokio::test]
async fn a_wrong_introspect_path_fails() {
    let bench = Bench::healthy(SimOptions::default()).await;
    let config = bench.config(
        &bench.sim_url(),
        &[(
            r#"introspect_path = "/api/v1/accessible""#,
            r#"introspect_path = "/api/v1/accesible""#,
        )],
    );
    let run = bench.doctor(&config).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let finding = run.finding(
        "FAIL",
        "session check GET /api/v1/accesible answers 404: wrong session.introspect_path",
    );
    assert!(
        finding.contains("set session.introspect_path to /api/v1/accessible"),
        "{finding}"
    );
    run.finding("ok", "app token accepted");
}

#[tokio::test]
async fn a_token_expiring_in_2_days_warns_and_exits_0() {
    let bench = Bench::start(SimOptions::default(), Duration::ZERO, 2 * DAY).await;
    let run = bench.doctor(&bench.config(&bench.sim_url(), &[])).await;
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    let finding = run.finding("warn", "app token expires in 2 days");
    assert!(
        finding.contains("create a new app token in PSU now"),
        "{finding}"
    );
    run.finding("ok", "app token accepted");
    assert!(
        run.stdout.ends_with("5 ok, 1 warn, 0 FAIL, 0 skipped\n"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn an_expired_token_fails_twice_over() {
    let bench = Bench::start(SimOptions::default(), 3 * DAY, DAY).await;
    let run = bench.doctor(&bench.config(&bench.sim_url(), &[])).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let expiry = run.finding("FAIL", "app token expired 2 days ago");
    assert!(expiry.contains("create a new app token in PSU"), "{expiry}");
    let rejected = run.finding("FAIL", "app token rejected: GET /api/v1/usersession -> 401 in X-PSU-Authorization and in Authorization");
    assert!(
        rejected.contains("expired (see the expiry line)"),
        "{rejected}"
    );
}

/// The simulator over TLS with a certificate for `psu.internal` only, and
/// that certificate in `psu-ca.pem` beside the config.
async fn tls_bench() -> (Bench, String) {
    let (pem, tls) = server_tls(&["psu.internal"]);
    let bench = Bench::healthy(SimOptions {
        tls: Some(tls),
        ..SimOptions::default()
    })
    .await;
    std::fs::write(bench.dir.path().join("psu-ca.pem"), pem).unwrap();
    let url = format!("https://{}", bench.sim.addr());
    (bench, url)
}

#[tokio::test]
async fn a_tls_name_mismatch_points_at_server_name() {
    let (bench, url) = tls_bench().await;
    let run = bench
        .doctor(&bench.config(&url, &[("[session]", "ca = \"psu-ca.pem\"\n\n[session]")]))
        .await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let finding = run.finding(
        "FAIL",
        "upstream TLS name mismatch: the certificate is not valid for 127.0.0.1",
    );
    assert!(
        finding.contains("PSU presents a certificate for psu.internal"),
        "{finding}"
    );
    assert!(finding.contains(r#"set upstream.server_name to a name the certificate holds (e.g. server_name = "psu.internal")"#), "{finding}");
    run.finding("skip", "session check (upstream TLS failed)");
    run.finding("skip", "app token (upstream TLS failed)");
    assert!(
        bench.sim.recorder().requests().is_empty(),
        "no HTTP request went out"
    );
}

#[tokio::test]
async fn an_unknown_upstream_ca_points_at_upstream_ca() {
    let (bench, url) = tls_bench().await;
    let run = bench
        .doctor(&bench.config(
            &url,
            &[("[session]", "server_name = \"psu.internal\"\n\n[session]")],
        ))
        .await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let finding = run.finding(
        "FAIL",
        "upstream TLS certificate is signed by an unknown CA",
    );
    assert!(
        finding.contains("Fix: set upstream.ca to a PEM file"),
        "{finding}"
    );
}

#[tokio::test]
async fn a_verified_tls_upstream_is_all_ok() {
    let (bench, url) = tls_bench().await;
    let edit = "ca = \"psu-ca.pem\"\nserver_name = \"psu.internal\"\n\n[session]";
    let run = bench
        .doctor(&bench.config(&url, &[("[session]", edit)]))
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    run.finding("ok", "upstream TLS certificate valid for psu.internal");
    assert!(
        run.stdout.ends_with("7 ok, 0 warn, 0 FAIL, 0 skipped\n"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn plain_http_behind_an_https_url_is_named() {
    let bench = Bench::healthy(SimOptions::default()).await;
    let url = format!("https://{}", bench.sim.addr());
    let run = bench.doctor(&bench.config(&url, &[])).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    run.finding("FAIL", "upstream does not speak TLS on that port");
}

#[tokio::test]
async fn per_user_doctor_signs_a_user_in_and_reads_the_granted_token() {
    let per_user = [(
        "token_file = \"app-token\"",
        "mode = \"per-user\"\ngrant = \"session\"",
    )];
    let as_admin = ["--user", "admin", "--password-env", "PSU_DOCTOR_PASSWORD"];
    let password = [("PSU_DOCTOR_PASSWORD", "admin")];
    let bench = Bench::healthy(SimOptions::default()).await;
    let config = bench.config(&bench.sim_url(), &per_user);
    bench
        .doctor(&config)
        .await
        .finding("skip", "per-user token grant not probed");
    let run = bench.doctor_with(&config, &as_admin, &password).await;
    // The simulator grants a year, as PSU's docs show: worth a warning.
    let granted = run.finding("warn", "PSU granted admin a token (roles: Administrator)");
    assert!(granted.contains("grant = \"delegated\""), "{granted}");
    assert!(
        !run.stdout.contains("\"admin\"}"),
        "a password in the output"
    );

    let strict = Bench::healthy(SimOptions {
        self_grant_roles: vec!["Operator".to_owned()],
        ..SimOptions::default()
    })
    .await;
    let config = strict.config(&strict.sim_url(), &per_user);
    let run = strict.doctor_with(&config, &as_admin, &password).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let refused = run.finding("FAIL", "PSU refused the grant (403 Forbidden) for admin");
    assert!(
        refused.contains("allow self-granted app tokens"),
        "{refused}"
    );
    let wrong = strict
        .doctor_with(&config, &as_admin, &[("PSU_DOCTOR_PASSWORD", "guess")])
        .await;
    wrong.finding("FAIL", "cannot sign in admin");
}

#[tokio::test]
async fn an_ntlm_challenge_says_whether_windows_auth_pins() {
    let sim = SimOptions {
        windows_auth: true,
        ..SimOptions::default()
    };
    let bench = Bench::healthy(sim).await;
    let run = bench.doctor(&bench.config(&bench.sim_url(), &[])).await;
    let finding = run.finding("ok", "PSU challenges with NTLM/Negotiate on GET /");
    assert!(finding.contains("windows_auth = \"pin\""), "{finding}");
    let off = ("[session]", "windows_auth = \"off\"\n\n[session]");
    let run = bench.doctor(&bench.config(&bench.sim_url(), &[off])).await;
    let finding = run.finding("warn", "but upstream.windows_auth = \"off\"");
    assert!(
        finding.contains("Fix: set upstream.windows_auth"),
        "{finding}"
    );
    let plain = Bench::healthy(SimOptions::default()).await;
    let run = plain.doctor(&plain.config(&plain.sim_url(), &[])).await;
    run.finding("ok", "does not challenge with NTLM or Negotiate");
}

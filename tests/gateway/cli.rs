//! The binary: config errors exit 2 with `file:line:col: key: problem`,
//! `check` prints the route table, `dev-cert` and `sim mint-token` work.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{BASE_CONFIG, DEFAULT_ROUTES};

const BIN: &str = env!("CARGO_BIN_EXE_psu-gateway");
const SECRET_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.super-secret-token-value";

/// A dev certificate and a token file: what the base config names.
pub(crate) fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    psu_gateway::cli::devcert::write(dir.path(), &["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("app-token"), format!("{SECRET_TOKEN}\n")).unwrap();
    dir
}

pub(crate) fn valid_config() -> String {
    format!("{BASE_CONFIG}{DEFAULT_ROUTES}").replace("{upstream}", "http://127.0.0.1:5000")
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("run psu-gateway")
}

/// `psu-gateway check` on `text`, written as `dir/gateway.toml`.
pub(crate) fn check(dir: &Path, text: &str) -> Output {
    std::fs::write(dir.join("gateway.toml"), text).unwrap();
    run(dir, &["check", "--config", "gateway.toml"])
}

/// Line (1-based) of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in config"));
    text[..at].matches('\n').count() + 1
}

#[test]
fn each_config_error_class_exits_2_with_its_place() {
    let dir = workdir();
    let base = valid_config();
    // (what to replace, replacement, the marker whose line is reported, key, words in the message)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("addr = \"127.0.0.1:0\"", "addr = \"127.0.0.1:0\"\nbogus = 1", "bogus", "listen.bogus", "unknown field"),
        ("addr = \"127.0.0.1:0\"", "addr = \"127.0.0.1:0\"\nproxy_protocol = true", "proxy_protocol", "listen.proxy_protocol", "needs forwarding.trusted_proxies"),
        ("methods = [\"GET\"]", "methods = []", "[[route]]\nname = \"usersession\"", "route[0].methods", "empty methods"),
        ("addr = \"127.0.0.1:0\"", "addr = \"127.0.0.1:0\"\nhostnames = [\"psu.example.com:443\"]", "hostnames", "listen.hostnames", "without scheme, port"),
        ("addr = \"127.0.0.1:0\"", "addr = 8443", "addr = 8443", "listen.addr", "invalid type"),
        ("addr = \"127.0.0.1:0\"", "addr = \"localhost\"", "addr = \"localhost\"", "listen.addr", "IP address and port"),
        ("[upstream]", "[limits]\nheader_timeout = \"10 seconds\"\n\n[upstream]", "header_timeout", "limits.header_timeout", "expected a duration"),
        ("[upstream]", "[limits]\nmax_headers = -1\n\n[upstream]", "max_headers", "limits.max_headers", "must be an integer"),
        ("cert = \"gateway.crt\"", "cert = \"missing.crt\"", "cert = \"missing.crt\"", "tls.cert", "cannot read"),
        ("token_file = \"app-token\"", "token_file = \"no-such-token\"", "token_file", "credential.token_file", "cannot read"),
        ("token_file = \"app-token\"", "token_file = \"app-token\"\ntoken_env = \"X\"", "[credential]", "credential", "exactly one of token_file or token_env"),
        ("url = \"http://127.0.0.1:5000\"", "url = \"http://127.0.0.1:5000/psu\"", "url = ", "upstream.url", "no path"),
        ("url = \"http://127.0.0.1:5000\"", "url = \"ftp://127.0.0.1:5000\"", "url = ", "upstream.url", "http or https"),
        ("path = \"/api/v1/usersession\"", "path = \"/api/v1/../usersession\"", "path = \"/api/v1/../", "route[0].path", "normalized"),
        ("path = \"/api/v1/usersession\"", "path = \"/api/v1/%75sersession\"", "path = \"/api/v1/%75", "route[0].path", "write \"/api/v1/usersession\""),
        ("path = \"/api/v1/usersession\"", "path = \"api/v1/usersession\"", "path = \"api/", "route[0].path", "start with '/'"),
        ("name = \"signin\"", "name = \"usersession\"", "name = \"usersession\"\npath = \"/api/v1/signin\"", "route[1].name", "duplicate route name"),
        ("name = \"signin\"", "name = \"Sign In\"", "name = \"Sign In\"", "route[1].name", "[a-z0-9_-]+"),
        ("access = \"deny\"", "access = \"deny\"\nroles = [\"Administrator\"]", "roles = [\"Administrator\"]\n\n[[route]]\nname = \"pages\"", "route[5].roles", "do not apply"),
        ("access = \"inject\"", "access = \"inject\"\nclient_credentials = \"forward\"", "client_credentials", "route[0].client_credentials", "always strips"),
        ("access = \"inject\"", "access = \"magic\"", "access = \"magic\"", "route[0].access", "must be \"public\", \"session\", \"inject\" or \"deny\""),
        ("access = \"inject\"", "access = \"inject\"\nclient_credentials = \"keep\"", "client_credentials", "route[0].client_credentials", "must be \"strip\" or \"forward\""),
        ("cert = \"gateway.crt\"", "cert = \"gateway.crt\"\nmin_version = \"1.1\"", "min_version", "tls.min_version", "must be \"1.2\" or \"1.3\""),
        ("cert = \"gateway.crt\"", "cert = \"gateway.crt\"\npfx = \"gateway.pfx\"", "pfx = ", "tls.pfx", "either cert + key or pfx, not both"),
        ("key = \"gateway.key\"\n", "", "cert = ", "tls.cert", "needs tls.key beside it"),
        ("cert = \"gateway.crt\"", "cert = \"gateway.crt\"\npfx_password_env = \"X\"", "pfx_password_env", "tls.pfx_password_env", "only applies to tls.pfx"),
        ("url = \"http://127.0.0.1:5000\"", "url = \"http://127.0.0.1:5000\"\nprotocol = \"h3\"", "protocol = ", "upstream.protocol", "must be \"http1\" or \"h2\""),
        ("methods = [\"GET\"]", "methods = [\"get\"]", "methods = [\"get\"]", "route[0].methods", "upper-case"),
        ("roles_pointer = \"/roles\"\n", "", "roles = [\"Administrator\"]", "route[0].roles", "roles_pointer"),
        ("[upstream]", "[forwarding]\ntrusted_proxies = [\"10.0.0.0/33\"]\n\n[upstream]", "trusted_proxies", "forwarding.trusted_proxies", "CIDR"),
        ("[upstream]", "[csrf]\nallowed_origins = [\"https://psu.example.com/path\"]\n\n[upstream]", "allowed_origins", "csrf.allowed_origins", "origin"),
        ("[upstream]", "[admin]\naddr = \"0.0.0.0:9901\"\n\n[upstream]", "addr = \"0.0.0.0:9901\"", "admin.addr", "allow_remote"),
        ("token_file = \"app-token\"", "token_file = \"app-token\"\ngrant = \"session\"", "grant = ", "credential.grant", "only applies with credential.mode = \"per-user\""),
        ("token_file = \"app-token\"", "token_file = \"app-token\"\nmode = \"per-user\"", "[credential]", "credential", "uses no token of the gateway's own"),
        ("token_file = \"app-token\"", "mode = \"per-user\"\ngrant = \"delegated\"", "[credential]", "credential", "needs the granting token"),
        ("token_file = \"app-token\"", "mode = \"per-user\"\ngrant_roles = [\"Reader\"]", "grant_roles", "credential.grant_roles", "only applies with grant = \"delegated\""),
        ("token_file = \"app-token\"", "mode = \"per-user\"\ngrant = \"stolen\"", "grant = ", "credential.grant", "must be \"session\" or \"delegated\""),
        ("token_file = \"app-token\"", "mode = \"each\"", "mode = ", "credential.mode", "must be \"shared\" or \"per-user\""),
        ("roles_pointer = \"/roles\"\n\n[credential]\n", "\n[credential]\nmode = \"per-user\"\ngrant = \"delegated\"\n", "[credential]", "credential.grant_roles", "set session.roles_pointer"),
        ("[upstream]", "[limits]\nmax_connections_per_client = 0\n\n[upstream]", "max_connections_per_client", "limits.max_connections_per_client", "must be an integer"),
        ("url = \"http://127.0.0.1:5000\"", "url = \"http://127.0.0.1:5000\"\nmax_inflight = 0", "max_inflight", "upstream.max_inflight", "must be an integer"),
        ("url = \"http://127.0.0.1:5000\"", "url = \"http://127.0.0.1:5000\"\nqueue_timeout = \"soon\"", "queue_timeout", "upstream.queue_timeout", "expected a duration"),
        ("url = \"http://127.0.0.1:5000\"", "url = \"http://127.0.0.1:5000\"\nwindows_auth = \"kerberos\"", "windows_auth", "upstream.windows_auth", "must be \"pin\" or \"off\""),
        ("url = \"http://127.0.0.1:5000\"", "url = \"http://127.0.0.1:5000\"\nmax_pinned = 0", "max_pinned", "upstream.max_pinned", "must be an integer"),
        ("roles_pointer = \"/roles\"\n", "roles_pointer = \"/roles\"\ncookie_shape = \"strict\"\n", "cookie_shape", "session.cookie_shape", "must be \"aspnet\" or \"any\""),
        ("roles_pointer = \"/roles\"\n", "roles_pointer = \"/roles\"\nmiss_rate = \"20/d\"\n", "miss_rate", "session.miss_rate", "N/s, N/m or N/h"),
        ("roles_pointer = \"/roles\"\n", "roles_pointer = \"/roles\"\nmax_inflight_introspections = 0\n", "max_inflight_introspections", "session.max_inflight_introspections", "must be an integer"),
        ("name = \"signin\"", "name = \"signin\"\nrate_limit = \"ten a minute\"", "rate_limit", "route[1].rate_limit", "N/s, N/m or N/h"),
        ("prefix = \"/sim/status\"\naccess = \"public\"", "prefix = \"/sim/status\"\naccess = \"public\"\n\n[[route]]\nname = \"status2\"\nprefix = \"/SIM/status/\"\naccess = \"deny\"", "prefix = \"/SIM/status/\"", "route[5].prefix", "ties with route[4].prefix"),
    ];
    let mut checked = 0;
    for (from, to, marker, key, words) in cases {
        assert!(base.contains(from), "{from:?}");
        let text = base.replacen(from, to, 1);
        let out = check(dir.path(), &text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        let expected = format!("gateway.toml:{}:", line_of(&text, marker));
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!(": {key}: ")))
            .unwrap_or_else(|| panic!("no line for {key} in:\n{stderr}"));
        assert!(
            line.starts_with(&expected),
            "{key}: expected {expected}…, got {line}"
        );
        assert!(
            line.contains(words),
            "{key}: {line:?} should mention {words:?}"
        );
        assert!(
            !stderr.contains(SECRET_TOKEN) && !stderr.contains("super-secret"),
            "the token leaked: {stderr}"
        );
        checked += 1;
    }
    assert!(checked >= 41);
}

#[test]
fn sections_a_route_needs_are_required() {
    let dir = workdir();
    let base = valid_config();
    let without_session = base.replace(
        "[session]\ncookies = [\".AspNetCore.Identity.Application\"]\nintrospect_path = \"/api/v1/accessible\"\nidentity_pointer = \"/identity\"\nroles_pointer = \"/roles\"\n",
        "",
    );
    assert_ne!(without_session, base);
    let out = check(dir.path(), &without_session);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("route[0].access: \"inject\" needs a [session] section"),
        "{stderr}"
    );
    assert!(
        stderr.contains("route[3].access: \"session\" needs a [session] section"),
        "{stderr}"
    );

    let without_credential = base.replace("[credential]\nheader = \"X-PSU-Authorization\"\nscheme = \"Bearer\"\ntoken_file = \"app-token\"\n", "");
    assert_ne!(without_credential, base);
    let out = check(dir.path(), &without_credential);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("route[0].access: \"inject\" needs a [credential] section"),
        "{stderr}"
    );
}

#[test]
fn an_inline_or_empty_token_is_refused_without_echoing_it() {
    let dir = workdir();
    let inline = valid_config().replace(
        "token_file = \"app-token\"",
        &format!("token = \"{SECRET_TOKEN}\""),
    );
    let out = check(dir.path(), &inline);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("credential.token: unknown field"),
        "{stderr}"
    );
    assert!(!stderr.contains("super-secret"), "{stderr}");

    let pasted = valid_config().replace(
        "token_file = \"app-token\"",
        &format!("token_env = \"{SECRET_TOKEN}\""),
    );
    let out = check(dir.path(), &pasted);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("credential.token_env: the environment variable named here is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("super-secret"), "{stderr}");
    let pasted = valid_config().replace(
        "token_file = \"app-token\"",
        &format!("token_file = \"{SECRET_TOKEN}\""),
    );
    let out = check(dir.path(), &pasted);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("credential.token_file: cannot read the file named here"),
        "{stderr}"
    );
    assert!(!stderr.contains("super-secret"), "{stderr}");

    std::fs::write(dir.path().join("app-token"), "  \n").unwrap();
    let out = check(dir.path(), &valid_config());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("credential.token_file: the token is empty"),
        "{stderr}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let dir = workdir();
    let text = valid_config()
        .replacen("addr = \"127.0.0.1:0\"", "addr = \"nowhere\"", 1)
        .replacen("name = \"signin\"", "name = \"BAD\"", 1)
        .replacen(
            "[upstream]",
            "[limits]\nidle_timeout = \"1d\"\n\n[upstream]",
            1,
        );
    let out = check(dir.path(), &text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for key in ["listen.addr", "limits.idle_timeout", "route[1].name"] {
        assert!(
            stderr.contains(&format!(": {key}: ")),
            "{key} missing from:\n{stderr}"
        );
    }
}

#[test]
fn run_with_a_bad_config_exits_2_before_binding() {
    let dir = workdir();
    // Hold the port the config names: a run that tried to bind would fail with 1.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let text = valid_config()
        .replacen("addr = \"127.0.0.1:0\"", &format!("addr = \"{addr}\""), 1)
        .replacen("access = \"inject\"", "access = \"nope\"", 1);
    std::fs::write(dir.path().join("gateway.toml"), text).unwrap();
    let out = run(dir.path(), &["run", "--config", "gateway.toml"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = run(dir.path(), &["run", "--config", "absent.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("absent.toml: (file): cannot read config"));
}

#[test]
fn check_prints_routes_and_warnings() {
    let dir = workdir();
    let text = valid_config()
        .replace(
            "addr = \"127.0.0.1:0\"",
            "addr = \"127.0.0.1:0\"\nhostnames = [\"[::1]\", \"PSU.example.com\"]",
        )
        .replace(
            "header = \"X-PSU-Authorization\"",
            "header = \"Authorization\"",
        )
        .replace(
            "url = \"http://127.0.0.1:5000\"",
            "url = \"http://psu.internal:5000\"",
        )
        .replace("path = \"/api/v1/usersession\"", "prefix = \"/api\"")
        .replace(
            "prefix = \"/api/v1/apptoken\"",
            "prefix = \"/api/v1/apptoken/x\"",
        );
    let out = check(dir.path(), &text);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("gateway.toml: OK"));
    assert!(stdout.contains("([::1], psu.example.com)"), "{stdout}");
    for row in [
        "usersession",
        "prefix /api ",
        "inject",
        "administrator",
        "pages",
        "deny",
    ] {
        assert!(stdout.contains(row), "{row} missing from:\n{stdout}");
    }
    assert!(
        stderr.contains("warning: credential.header = \"Authorization\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: route \"usersession\": inject on prefix \"/api\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: upstream.url is http to non-loopback host psu.internal"),
        "{stderr}"
    );
    assert!(!stdout.contains(SECRET_TOKEN) && !stderr.contains(SECRET_TOKEN));
}

#[test]
fn shipped_configs_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = workdir();
    // The example names production paths; check it with them pointed here.
    let example = std::fs::read_to_string(root.join("conf/gateway.example.toml"))
        .unwrap()
        .replace("/etc/psu-gateway/gateway.crt", "gateway.crt")
        .replace("/etc/psu-gateway/gateway.key", "gateway.key")
        .replace("/etc/psu-gateway/app-token", "app-token");
    let out = check(dir.path(), &example);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let demo = std::fs::read_to_string(root.join("conf/demo.toml"))
        .unwrap()
        .replace("../certs/", "")
        .replace("../target/demo/app-token", "app-token");
    let out = check(dir.path(), &demo);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dev_cert_and_mint_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "dev-cert",
            "--out",
            "certs",
            "--name",
            "psu.test",
            "--name",
            "127.0.0.1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs =
        psu_gateway::config::tls::read_certs(&dir.path().join("certs/gateway.crt")).unwrap();
    assert_eq!(certs.len(), 1);
    assert!(psu_gateway::config::tls::read_key(&dir.path().join("certs/gateway.key")).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("certs/gateway.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::write(
        dir.path().join("key"),
        "test-signing-key-0123456789abcdef\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "sim",
            "mint-token",
            "--identity",
            "ops",
            "--role",
            "Administrator",
            "--ttl",
            "1h",
            "--signing-key-file",
            "key",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let claims = psu_gateway::sim::verify_token(
        b"test-signing-key-0123456789abcdef",
        &token,
        std::time::SystemTime::now(),
    )
    .expect("a valid PSU-format token");
    assert_eq!(claims.identity, "ops");
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["dev-cert", "--help"],
        &["demo", "--help"],
        &["sim", "--help"],
        &["sim", "mint-token", "--help"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            out.stdout.len() > 100,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(
        run(dir.path(), &["frobnicate"]).status.code(),
        Some(2),
        "usage errors exit 2"
    );
}

#[cfg(unix)]
#[test]
fn check_warns_about_a_token_file_every_user_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = workdir();
    let token = dir.path().join("app-token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let quiet = check(dir.path(), &valid_config());
    assert_eq!(quiet.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("readable by"));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warned = check(dir.path(), &valid_config());
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert_eq!(warned.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: credential.token_file ")
            && stderr.contains("is readable by every user"),
        "{stderr}"
    );
}

#[test]
fn check_warns_that_an_http_proxy_in_front_would_share_pinned_identities() {
    let dir = workdir();
    let text = valid_config().replace(
        "[upstream]",
        "[forwarding]\ntrusted_proxies = [\"10.0.0.0/8\"]\n\n[upstream]",
    );
    let out = check(dir.path(), &text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("would share that connection's Windows (NTLM/Negotiate) identity"),
        "{stderr}"
    );
    let off = text.replace(
        "url = \"http://127.0.0.1:5000\"",
        "url = \"http://127.0.0.1:5000\"\nwindows_auth = \"off\"",
    );
    let out = check(dir.path(), &off);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("NTLM/Negotiate) identity"));
}

//! The `sim` flags: defaults, overrides, value checks and `mint-token`.

use super::*;
use clap::Parser;

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    Sim(SimArgs),
}

fn parse(args: &[&str]) -> Result<SimArgs, clap::Error> {
    let argv = ["psu-gateway", "sim"].iter().chain(args);
    Cli::try_parse_from(argv).map(|cli| match cli.command {
        Top::Sim(args) => args,
    })
}

#[test]
fn serve_flags_have_psu_defaults() {
    let args = parse(&[]).unwrap();
    let opts = options(&args).unwrap();
    assert_eq!(args.listen, "127.0.0.1:5000".parse().unwrap());
    assert_eq!(opts.users.len(), 2);
    assert_eq!(opts.session_ttl, Duration::from_secs(25 * 60));
    assert_eq!(opts.cookie_name, DEFAULT_COOKIE_NAME);
    assert_eq!(opts.allowed_roles, ["Administrator"]);
    assert!(opts.iis_anonymous && !opts.strip_authorization);
    assert!(!opts.static_upstream);
    assert!(!opts.windows_auth);
    assert_eq!(opts.signing_key.expose(), DEV_SIGNING_KEY);
    assert_eq!(opts.grant_ttl, Duration::from_secs(365 * 24 * 3600));
    assert_eq!(opts.grant_ttl, crate::sim::DEFAULT_GRANT_TTL);
    assert!(opts.self_grant_roles.is_empty());
}

#[test]
fn serve_flags_override_everything() {
    let args = parse(&[
        "--listen=127.0.0.1:0",
        "--user",
        "ops:pw:Operator",
        "--allowed-role",
        "Operator",
        "--revoked",
        "h1",
        "--session-ttl",
        "30s",
        "--cookie-name",
        "psu",
        "--cookie-chunk-size",
        "16",
        "--iis-anonymous=false",
        "--strip-authorization",
        "--static",
        "--grant-ttl",
        "12h",
        "--self-grant-role",
        "Operator",
        "--self-grant-role=administrator",
    ])
    .unwrap();
    let opts = options(&args).unwrap();
    assert!(opts.static_upstream);
    assert_eq!(opts.users.len(), 1, "explicit users replace the defaults");
    assert_eq!(opts.users[0].roles, ["Operator"]);
    assert_eq!(opts.allowed_roles, ["Operator"]);
    assert_eq!(opts.revoked, ["h1"]);
    assert_eq!(opts.session_ttl, Duration::from_secs(30));
    assert_eq!(
        (opts.cookie_name.as_str(), opts.cookie_chunk_size),
        ("psu", Some(16))
    );
    assert!(!opts.iis_anonymous && opts.strip_authorization);
    assert_eq!(opts.grant_ttl, Duration::from_secs(12 * 3600));
    assert_eq!(opts.self_grant_roles, ["Operator", "administrator"]);
}

#[test]
fn grant_ttl_takes_days_and_refuses_nonsense() {
    let ttl = |text: &str| parse(&["--grant-ttl", text]).map(|a| a.grant_ttl);
    assert_eq!(ttl("365d").unwrap(), Duration::from_secs(31_536_000));
    assert_eq!(ttl("8760h").unwrap(), Duration::from_secs(31_536_000));
    assert_eq!(ttl("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(ttl("30m").unwrap(), Duration::from_secs(1800));
    assert_eq!(
        ttl("36500d").unwrap(),
        Duration::from_secs(MAX_GRANT_TTL_SECS)
    );
    for bad in [
        "",
        "365",
        "d",
        "0d",
        "0s",
        "1y",
        "10ms",
        "1.5d",
        "-1d",
        "36501d",
        "99999999999999999999d",
    ] {
        assert!(parse_grant_ttl(bad).is_err(), "{bad:?}");
    }
    assert!(ttl("1w").is_err());
}

#[test]
fn iis_anonymous_takes_an_optional_bool() {
    assert!(parse(&["--iis-anonymous"]).unwrap().iis_anonymous);
    assert!(parse(&["--iis-anonymous=true"]).unwrap().iis_anonymous);
    assert!(!parse(&["--iis-anonymous=false"]).unwrap().iis_anonymous);
    assert!(parse(&["--iis-anonymous=maybe"]).is_err());
    assert!(parse(&["--session-ttl", "25"]).is_err());
    assert!(parse(&["--cookie-chunk-size", "0"]).is_err());
    assert!(parse(&["--user", "nobody"]).is_err());
}

#[test]
fn mint_token_subcommand_parses_and_mints_with_the_key_file() {
    let args = parse(&[
        "mint-token",
        "--identity",
        "ops",
        "--role",
        "A",
        "--role",
        "B",
        "--ttl",
        "2h",
    ])
    .unwrap();
    let Some(SimCommand::MintToken(mint)) = args.command else {
        panic!("expected mint-token")
    };
    assert_eq!(
        (mint.identity.as_str(), mint.roles.len(), mint.ttl),
        ("ops", 2, Duration::from_secs(7200))
    );
    assert!(
        parse(&["--strip-authorization", "mint-token", "--identity", "x"]).is_err(),
        "serve flags do not mix with mint-token"
    );

    let path = std::env::temp_dir().join(format!("psu-sim-key-{}", uuid::Uuid::new_v4()));
    std::fs::write(&path, "  key-from-file\n").unwrap();
    assert_eq!(
        load_signing_key(Some(&path)).unwrap().expose(),
        "key-from-file"
    );
    std::fs::write(&path, " \n").unwrap();
    assert!(matches!(
        load_signing_key(Some(&path)),
        Err(SimCliError::EmptyKey { .. })
    ));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        load_signing_key(Some(&path)),
        Err(SimCliError::ReadKey { .. })
    ));
}

#[test]
fn windows_auth_takes_ntlm_only() {
    let opts = options(&parse(&["--windows-auth", "ntlm"]).unwrap()).unwrap();
    assert!(opts.windows_auth);
    assert!(parse(&["--windows-auth", "kerberos"]).is_err());
    assert!(parse(&["--windows-auth"]).is_err());
}

//! `psu-gateway sim`: serve the simulator until Ctrl-C, or mint an app token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand, ValueEnum};

use crate::duration::parse_duration;
use crate::secret::Secret;
use crate::sim::users::{load_users_file, parse_user_spec, UsersFileError};
use crate::sim::{
    default_users, mint_token, Sim, SimOptions, SimUser, DEFAULT_COOKIE_NAME, DEV_SIGNING_KEY,
};

/// Run a PowerShell Universal simulator: sign-in with session cookies, app
/// tokens, /api/v1/accessible, /api/v1/usersession and
/// /api/v1/apptoken/grant, plus front-door modes that reproduce IIS and
/// proxy pitfalls.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: Option<SimCommand>,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,

    /// A user as NAME:PASSWORD:ROLE1,ROLE2 (repeatable). Without --user or
    /// --users-file: admin/admin (Administrator) and reader/reader (Reader).
    #[arg(long = "user", value_name = "NAME:PASSWORD:ROLES", value_parser = parse_user_spec)]
    pub users: Vec<SimUser>,

    // `help` instead of a doc comment: rustdoc would read `[[user]]` as a link.
    #[arg(
        long,
        value_name = "FILE",
        help = "TOML file of [[user]] tables with name, password and roles."
    )]
    pub users_file: Option<PathBuf>,

    /// File holding the HS256 app-token signing key (surrounding whitespace
    /// is trimmed). Without it a built-in development key is used.
    #[arg(long, value_name = "FILE")]
    pub signing_key_file: Option<PathBuf>,

    /// Role allowed to call /api/v1/usersession (repeatable; default Administrator).
    #[arg(long = "allowed-role", value_name = "ROLE")]
    pub allowed_roles: Vec<String>,

    /// Hash claim of a revoked app token (repeatable).
    #[arg(long = "revoked", value_name = "HASH")]
    pub revoked: Vec<String>,

    /// How long a sign-in session lives, e.g. 25m, 30s.
    #[arg(long, value_name = "DURATION", default_value = "25m", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// How long /api/v1/accessible takes to answer, e.g. 200ms (a loaded PSU).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub introspect_delay: Duration,

    /// Lifetime of a token from GET /api/v1/apptoken/grant, e.g. 365d, 12h
    /// (units s, m, h, d).
    #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = parse_grant_ttl)]
    pub grant_ttl: Duration,

    /// Role that may self-grant an app token (repeatable, case-insensitive;
    /// default: every signed-in user may). Others get 403.
    #[arg(long = "self-grant-role", value_name = "ROLE")]
    pub self_grant_roles: Vec<String>,

    /// Name of the session cookie.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_COOKIE_NAME)]
    pub cookie_name: String,

    /// Split session cookies longer than N characters into ASP.NET chunks
    /// (NAME=chunks-K, NAMEC1..NAMECK).
    #[arg(long, value_name = "N", value_parser = parse_chunk_size)]
    pub cookie_chunk_size: Option<usize>,

    /// Whether IIS allows anonymous access. --iis-anonymous=false answers
    /// every request without `Authorization: Negotiate` with a 401
    /// Negotiate/NTLM challenge, as IIS with Windows auth only does.
    #[arg(
        long,
        value_name = "BOOL",
        action = ArgAction::Set,
        default_value_t = true,
        default_missing_value = "true",
        num_args = 0..=1,
        require_equals = true,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub iis_anonymous: bool,

    /// Drop the Authorization header before PSU sees it, as some proxies and
    /// IIS modules do (X-PSU-Authorization still works).
    #[arg(long)]
    pub strip_authorization: bool,

    /// A minimal upstream for load tests: every answer from memory, nothing
    /// recorded, ANY non-empty session cookie accepted by
    /// /api/v1/accessible, /api/v1/usersession wanting only some bearer
    /// token in X-PSU-Authorization; /sim/stats counts requests and
    /// introspections. Never in front of anything real.
    #[arg(long = "static")]
    pub static_upstream: bool,

    /// Windows authentication in front of every request, bound to the TCP
    /// connection as in IIS/Kestrel: NTLM, or Negotiate carrying raw NTLM
    /// (not SPNEGO/Kerberos). GET /sim/whoami names the connection's user.
    #[arg(long, value_name = "SCHEME")]
    pub windows_auth: Option<WindowsAuth>,
}

/// The Windows-auth protocols `sim --windows-auth` speaks.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowsAuth {
    /// NTLM (also offered as Negotiate with raw NTLMSSP tokens).
    Ntlm,
}

/// What `sim` does instead of serving.
#[derive(Subcommand, Debug, Clone)]
pub enum SimCommand {
    /// Print a PSU-format app token (HS256 JWT) on stdout and its hash claim
    /// (for --revoked) on stderr.
    MintToken(MintTokenArgs),
}

/// Claims and key for `sim mint-token`.
#[derive(Args, Debug, Clone)]
pub struct MintTokenArgs {
    /// Identity (name claim) of the token.
    #[arg(long)]
    pub identity: String,

    /// Role claim (repeatable).
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,

    /// Lifetime, e.g. 1h, 30m.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,

    /// File holding the HS256 signing key (trimmed). Without it the
    /// built-in development key is used.
    #[arg(long, value_name = "FILE")]
    pub signing_key_file: Option<PathBuf>,
}

/// Why `sim` could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimCliError {
    #[error("cannot read signing key file {}: {source}", path.display())]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing key file {} is empty", path.display())]
    EmptyKey { path: PathBuf },
    #[error(transparent)]
    Users(#[from] UsersFileError),
    #[error("cannot start the simulator on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(#[source] std::io::Error),
}

/// Runs `sim`: serves until Ctrl-C, or mints a token.
pub async fn run_cli(args: SimArgs) -> Result<(), SimCliError> {
    match args.command.clone() {
        Some(SimCommand::MintToken(mint)) => run_mint(&mint),
        None => serve(args).await,
    }
}

fn run_mint(args: &MintTokenArgs) -> Result<(), SimCliError> {
    let key = load_signing_key(args.signing_key_file.as_deref())?;
    let minted = mint_token(
        key.expose().as_bytes(),
        &args.identity,
        &args.roles,
        args.ttl,
    );
    println!("{}", minted.token.expose());
    eprintln!("hash: {}", minted.hash);
    Ok(())
}

async fn serve(args: SimArgs) -> Result<(), SimCliError> {
    let opts = options(&args)?;
    let listen = |source| SimCliError::Listen {
        addr: args.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(listen)?;
    let sim = Sim::spawn(opts, listener).await.map_err(listen)?;
    println!("psu-sim listening on http://{}", sim.addr());
    let waited = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    waited.map_err(SimCliError::Signal)
}

/// Simulator options from the serve flags.
fn options(args: &SimArgs) -> Result<SimOptions, SimCliError> {
    let mut users = args.users.clone();
    if let Some(path) = &args.users_file {
        users.extend(load_users_file(path)?);
    }
    if users.is_empty() {
        users = default_users();
    }
    let defaults = SimOptions::default();
    Ok(SimOptions {
        users,
        signing_key: load_signing_key(args.signing_key_file.as_deref())?,
        allowed_roles: if args.allowed_roles.is_empty() {
            defaults.allowed_roles
        } else {
            args.allowed_roles.clone()
        },
        revoked: args.revoked.clone(),
        session_ttl: args.session_ttl,
        cookie_name: args.cookie_name.clone(),
        cookie_chunk_size: args.cookie_chunk_size,
        iis_anonymous: args.iis_anonymous,
        strip_authorization: args.strip_authorization,
        tls: None,
        static_upstream: args.static_upstream,
        introspect_delay: args.introspect_delay,
        grant_ttl: args.grant_ttl,
        self_grant_roles: args.self_grant_roles.clone(),
        failing_grants: 0,
        windows_auth: args.windows_auth == Some(WindowsAuth::Ntlm),
    })
}

/// The longest grant lifetime taken: a century keeps expiry arithmetic
/// far from overflow.
const MAX_GRANT_TTL_SECS: u64 = 36_500 * 24 * 3600;

/// `<digits><s|m|h|d>`. Not [`parse_duration`]: that caps at 30 days and has
/// no day unit, while PSU grants tokens for a year. Zero is refused, as a
/// token that expires when issued is never usable.
fn parse_grant_ttl(text: &str) -> Result<Duration, String> {
    let usage = || format!("expected a lifetime such as 365d, 12h, 30m or 90s, got {text:?}");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let (digits, unit) = text.split_at(split);
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return Err(usage()),
    };
    let value: u64 = digits.parse().map_err(|_| usage())?;
    value
        .checked_mul(unit_secs)
        .filter(|secs| (1..=MAX_GRANT_TTL_SECS).contains(secs))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("a grant lifetime is from 1s to 36500d, got {text:?}"))
}

/// A chunk size of 0 would make every chunk empty.
fn parse_chunk_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(size) if size > 0 => Ok(size),
        _ => Err(format!(
            "expected a whole number of characters above 0, got {text:?}"
        )),
    }
}

/// The key file's trimmed content, or the dev key with a warning.
fn load_signing_key(path: Option<&Path>) -> Result<Secret, SimCliError> {
    let Some(path) = path else {
        eprintln!("warning: no --signing-key-file given; using the built-in development key, so anyone can mint valid tokens");
        return Ok(Secret::new(DEV_SIGNING_KEY));
    };
    let text = std::fs::read_to_string(path).map_err(|source| SimCliError::ReadKey {
        path: path.to_owned(),
        source,
    })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(SimCliError::EmptyKey {
            path: path.to_owned(),
        });
    }
    Ok(Secret::new(key))
}

#[cfg(test)]
mod tests;

//! `psu-gateway demo`: the simulator, a dev certificate and the gateway on
//! loopback, with the commands to try printed on stdout; `--per-user`
//! shows two users each getting their own PSU token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::cli::devcert::{self, DevCertError, DevCertPaths};
use crate::config::{self, ConfigErrors};
use crate::control::run::{self, StartError};
use crate::sim::{Sim, SimOptions, SimUser};

mod tries;

/// The demo configs, used when `conf/` is not in the working directory.
const EMBEDDED_CONFIG: &str = include_str!("../../conf/demo.toml");
const EMBEDDED_PER_USER: &str = include_str!("../../conf/demo-per-user.toml");

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Where the PSU simulator listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub sim_listen: SocketAddr,
    /// Each signed-in user's own PSU token instead of one shared token
    /// (conf/demo-per-user.toml).
    #[arg(long)]
    pub per_user: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Config(ConfigErrors),
    #[error(transparent)]
    Cert(#[from] DevCertError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the demo token: {0}")]
    Token(std::io::Error),
    #[error(transparent)]
    Start(#[from] StartError),
}

pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let root = std::env::current_dir().map_err(DemoError::Token)?;
    let (file, embedded) = match args.per_user {
        false => ("demo.toml", EMBEDDED_CONFIG),
        true => ("demo-per-user.toml", EMBEDDED_PER_USER),
    };
    let config_path = root.join("conf").join(file);
    let config_text = std::fs::read_to_string(&config_path).unwrap_or_else(|_| embedded.to_owned());
    let certs = ensure_cert(&root.join("certs"))?;

    let sim_listener = bind(args.sim_listen).await?;
    let mut options = SimOptions::default();
    if args.per_user {
        options
            .users
            .push(SimUser::new("alice", "alice", &["Administrator"]));
    }
    let sim = Sim::spawn(options, sim_listener)
        .await
        .map_err(|source| DemoError::Bind {
            addr: args.sim_listen,
            source,
        })?;
    // Per-user with a session grant: the gateway holds no token at all.
    let token_path = (!args.per_user).then(|| root.join("target").join("demo").join("app-token"));
    if let Some(path) = &token_path {
        let minted = sim.mint_token(
            "psu-gateway",
            &["Administrator"],
            Duration::from_secs(12 * 3600),
        );
        write_token(path, minted.token.expose())?;
    }

    let mut loaded = config::load_str(&config_path, &config_text).map_err(DemoError::Config)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    loaded.config.upstream.authority = http::uri::Authority::try_from(sim.addr().to_string())
        .map_err(|_| DemoError::Token(std::io::ErrorKind::InvalidInput.into()))?;
    let stop = crate::control::signals::shutdown();
    let listener = bind(args.listen).await?;
    let gateway = run::spawn(loaded.config, listener)?;
    match &token_path {
        Some(path) => print_instructions(gateway.addr(), sim.addr(), &certs, path),
        None => print_per_user(gateway.addr(), sim.addr(), &certs),
    }

    stop.await;
    println!("stopping");
    gateway.shutdown().await;
    sim.shutdown().await;
    if let Some(path) = &token_path {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, DemoError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr, source })
}

/// Reuses `certs/gateway.{crt,key}` when both exist, else makes new ones.
fn ensure_cert(dir: &Path) -> Result<DevCertPaths, DemoError> {
    let paths = DevCertPaths::in_dir(dir);
    if paths.cert.exists() && paths.key.exists() {
        return Ok(paths);
    }
    let names = ["localhost", "127.0.0.1", "::1"].map(str::to_owned);
    Ok(devcert::write(dir, &names)?)
}

fn write_token(path: &Path, token: &str) -> Result<(), DemoError> {
    let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    std::fs::create_dir_all(&dir).map_err(DemoError::Token)?;
    #[cfg(unix)]
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(DemoError::Token)?;
    devcert::write_private(path, token.as_bytes())?;
    Ok(())
}

fn print_instructions(gateway: SocketAddr, sim: SocketAddr, certs: &DevCertPaths, token: &Path) {
    let url = format!("https://{gateway}");
    let ca = certs.cert.display();
    println!("psu-gateway demo");
    println!("  gateway     {url}  (config conf/demo.toml)");
    println!("  simulator   http://{sim}  (users admin/admin with role Administrator, reader/reader with role Reader)");
    println!(
        "  app token   {} (mode 0600, removed on exit)",
        token.display()
    );
    println!();
    println!("Try, in another terminal:");
    for line in tries::shared_token(tries::Shell::native(), &url, &ca.to_string()) {
        println!("  {line}");
    }
    println!();
    println!("Ctrl-C stops everything.");
}

fn print_per_user(gateway: SocketAddr, sim: SocketAddr, certs: &DevCertPaths) {
    let url = format!("https://{gateway}");
    let ca = certs.cert.display();
    println!("psu-gateway demo (per-user tokens)");
    println!("  gateway     {url}  (config conf/demo-per-user.toml)");
    println!("  simulator   http://{sim}  (users admin/admin and alice/alice with role Administrator, reader/reader with role Reader)");
    println!("  app token   none: PSU grants each signed-in user their own");
    println!();
    println!("Try, in another terminal:");
    println!("  # 1. sign in as two users, each with a cookie jar of their own");
    for user in ["admin", "alice"] {
        println!("  curl --cacert {ca} -c /tmp/psu-jar-{user} -H 'Content-Type: application/json' -d '{{\"username\":\"{user}\",\"password\":\"{user}\"}}' {url}/api/v1/signin");
    }
    println!("  # 2. whose token reached PSU? each user's own: {{\"identity\":\"admin\",...}}, then {{\"identity\":\"alice\",...}}");
    for user in ["admin", "alice"] {
        println!("  curl --cacert {ca} -b /tmp/psu-jar-{user} {url}/api/v1/accessible");
    }
    println!("  # 3. the Management API runs as the user, with the user's roles -> 200");
    println!("  curl --cacert {ca} -b /tmp/psu-jar-alice {url}/api/v1/usersession");
    println!();
    println!("Ctrl-C stops everything.");
}

//! `psu-gateway`: command-line entry point. Errors print their chain; bad
//! config or usage exits 2, runtime failures exit 1.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use psu_gateway::cli::{check, demo, devcert};
use psu_gateway::control::logline::Lines;
use psu_gateway::control::{admin, run, service, signals};
use psu_gateway::{config, doctor, sim};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: each request allocates a few dozen
/// small buffers, and its log lines are freed by the writer thread. Built
/// without transparent huge pages (`no_thp`), which doubled idle RSS.
/// `benches/README.md` has the measurements.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The most log output written to stderr in one `write`.
const LOG_BATCH_BYTES: usize = 64 * 1024;
/// Lines queued for the writer before a logging thread waits: about 2 MiB
/// of access lines, so a stalled stderr (a full journald pipe) slows
/// requests down instead of growing memory.
const LOG_QUEUE_LINES: usize = 8 * 1024;

/// TLS reverse proxy for PowerShell Universal: checks the dashboard user's
/// session with PSU and injects a server-side app token on allowlisted routes.
#[derive(Parser)]
#[command(name = "psu-gateway", version)]
struct Cli {
    /// Log line format (RUST_LOG filters, e.g. RUST_LOG=info,access=info).
    #[arg(long, value_enum, default_value = "pretty", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a config file until SIGINT/SIGTERM.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a config file, print the effective route table and warnings; exit 0 or 2.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Ask the running gateway to reload its config, through the admin
    /// listener the config names; prints whether the new config was taken.
    Reload {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a config like `check`, then probe the upstream and explain each
    /// deployment pitfall found; exit 0, 1 when a check fails, 2 for a bad config.
    Doctor {
        #[arg(long)]
        config: PathBuf,
        /// Per-user mode: sign this PSU user in and probe credential.grant_path.
        #[arg(long, requires = "password_env")]
        user: Option<String>,
        /// The environment variable holding --user's password (never a flag).
        #[arg(long, requires = "user")]
        password_env: Option<String>,
    },
    /// Write a self-signed certificate (gateway.crt) and key (gateway.key) for the given names.
    DevCert {
        /// Directory to write into (created when missing).
        #[arg(long)]
        out: PathBuf,
        /// DNS names or IP addresses the certificate is valid for.
        #[arg(long = "name", required = true, num_args = 1..)]
        names: Vec<String>,
    },
    /// Start the PSU simulator, a dev certificate and the gateway on loopback, and print commands to try.
    Demo(demo::DemoArgs),
    /// Run the PSU simulator alone, or mint a PSU-format app token.
    Sim(Box<sim::SimArgs>),
    /// Install or remove psu-gateway as a Windows service.
    #[command(subcommand)]
    Service(ServiceCommand),
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Validate the config, then register a service that runs it at boot (as Administrator).
    Install {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
    /// Stop the service if it runs (draining like a stop), then remove it.
    Uninstall {
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
    /// The entry point the service manager starts; not for interactive use.
    #[command(hide = true)]
    Run {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = service::DEFAULT_NAME)]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => serve(cli.log_format, &config, None),
        Command::Service(ServiceCommand::Run { config, name }) => {
            serve(cli.log_format, &config, Some(&name))
        }
        command => {
            let _logs = match init_logging(cli.log_format, None) {
                Ok(guard) => guard,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            };
            on_runtime(dispatch(command))
        }
    }
}

/// `run` and `service run`: the config is read before logging starts, as
/// `[log] file` says where the lines go.
fn serve(format: LogFormat, config: &std::path::Path, service: Option<&str>) -> ExitCode {
    let loaded = match load(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let _logs = match init_logging(format, loaded.config.log.as_ref()) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("{}: log.file: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    match service {
        Some(name) => service_result(service::run(loaded.config, name)),
        None => on_runtime(run(loaded)),
    }
}

fn on_runtime(job: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(job),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run { .. } | Command::Service(ServiceCommand::Run { .. }) => {
            unreachable!("main serves run and service run before any runtime starts")
        }
        Command::Check { config } => check(&config),
        Command::Reload { config } => reload(&config).await,
        Command::Doctor {
            config,
            user,
            password_env,
        } => run_doctor(&config, user.zip(password_env)).await,
        Command::DevCert { out, names } => report(devcert::write(&out, &names).map(|p| {
            println!("wrote {} and {}", p.cert.display(), p.key.display());
        })),
        Command::Demo(args) => match demo::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(demo::DemoError::Config(errors)) => config_failed(&errors),
            Err(e) => report(Err::<(), _>(e)),
        },
        Command::Sim(args) => report(sim::run_cli(*args).await),
        Command::Service(ServiceCommand::Install { config, name }) => match load(&config) {
            Ok(loaded) => {
                if loaded.config.log.is_none() {
                    eprintln!("warning: {}: no [log] file: a service has no console, so its log lines would go nowhere", config.display());
                }
                let installed = service::install(&config, &name);
                if installed.is_ok() {
                    println!("installed service {name}: starts at boot; start it now with: sc.exe start {name}");
                }
                service_result(installed)
            }
            Err(code) => code,
        },
        Command::Service(ServiceCommand::Uninstall { name }) => {
            let removed = service::uninstall(&name);
            if removed.is_ok() {
                println!("removed service {name}");
            }
            service_result(removed)
        }
    }
}

fn service_result(result: Result<(), service::ServiceError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn load(path: &std::path::Path) -> Result<config::Loaded, ExitCode> {
    let loaded = config::load(path).map_err(|errors| config_failed(&errors))?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(loaded)
}

fn config_failed(errors: &config::ConfigErrors) -> ExitCode {
    eprintln!("{errors}");
    ExitCode::from(2)
}

fn check(path: &std::path::Path) -> ExitCode {
    match load(path) {
        Ok(loaded) => {
            println!("{}: OK", path.display());
            print!("{}", check::summary(&loaded.config));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Exit 0 when the running instance took the config, 2 when it refused it
/// (the errors are printed as `check` prints them), 1 when it is unreachable.
async fn reload(path: &std::path::Path) -> ExitCode {
    let loaded = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let Some(admin) = loaded.config.admin else {
        eprintln!(
            "{}: admin: no [admin] listener is configured; send SIGHUP to the process instead (systemctl reload psu-gateway)",
            path.display()
        );
        return ExitCode::from(2);
    };
    match admin::request_reload(admin.addr).await {
        Ok((status, answer)) if status.is_success() => {
            print!("{answer}");
            ExitCode::SUCCESS
        }
        Ok((status, answer)) if status == http::StatusCode::UNPROCESSABLE_ENTITY => {
            eprint!("{answer}");
            ExitCode::from(2)
        }
        Ok((status, answer)) => {
            eprintln!("error: the admin listener answered {status}: {answer}");
            ExitCode::from(1)
        }
        Err(e) => report(Err::<(), _>(e)),
    }
}

async fn run_doctor(path: &std::path::Path, user: Option<(String, String)>) -> ExitCode {
    let loaded = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let user = match user {
        None => None,
        Some((name, var)) => match std::env::var(&var) {
            Ok(password) => Some(doctor::grant::TestUser {
                name,
                password: psu_gateway::secret::Secret::new(password),
            }),
            Err(_) => {
                eprintln!(
                    "error: --password-env {var}: the variable is not set or not valid UTF-8"
                );
                return ExitCode::from(2);
            }
        },
    };
    let findings = doctor::examine(&loaded.config, user.as_ref()).await;
    print!("{}", doctor::render(&findings));
    ExitCode::from(doctor::exit_status(&findings))
}

async fn run(loaded: config::Loaded) -> ExitCode {
    report(run::run(loaded.config, signals::shutdown()).await)
}

fn report<T>(result: Result<(), T>) -> ExitCode
where
    T: Into<anyhow::Error>,
{
    match result.map_err(Into::into) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Lines are formatted on the thread that logs and written to stderr by one
/// writer thread, in batches while lines keep coming (one `write` per batch,
/// not two per request) and at once when they stop. Nothing is dropped: a
/// full queue makes the logging thread wait. The returned guard writes out
/// what is queued when `main` returns. With `[log] file` the lines go to
/// that file, a new one each day (UTC), keeping `keep` rotated files.
fn init_logging(format: LogFormat, file: Option<&config::LogFile>) -> Result<WorkerGuard, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (sink, terminal): (Box<dyn std::io::Write + Send>, bool) = match file {
        None => (
            Box::new(std::io::stderr()),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
        Some(file) => (Box::new(rolling_file(file)?), false),
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("psu-log")
        .finish(BufWriter::with_capacity(LOG_BATCH_BYTES, sink));
    // Colours only on a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(writer);
    // Access and audit lines take a faster path that prints the same bytes.
    match format {
        LogFormat::Pretty => builder.event_format(Lines::pretty()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .event_format(Lines::json())
            .init(),
    }
    Ok(guard)
}

/// `dir/prefix.YYYY-MM-DD.suffix`, rotated daily; old files beyond `keep`
/// are removed at start and at each rotation.
fn rolling_file(file: &config::LogFile) -> Result<RollingFileAppender, String> {
    let mut builder = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(&file.prefix)
        .max_log_files(file.keep.saturating_add(1));
    if let Some(suffix) = &file.suffix {
        builder = builder.filename_suffix(suffix);
    }
    builder.build(&file.directory).map_err(|e| {
        format!(
            "cannot open a log file in {}: {e}",
            file.directory.display()
        )
    })
}

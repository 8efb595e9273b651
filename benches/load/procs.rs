//! The child processes under test (static upstream, release gateway), the
//! config a gateway runs (the default, and what a scenario sets away from
//! it and why), and what /proc says about them: CPU time and resident
//! memory.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The release binary cargo built for this bench (benches use the bench
/// profile, which inherits `release`).
pub const BINARY: &str = env!("CARGO_BIN_EXE_psu-gateway");

/// A child killed when dropped.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    /// The gateway's admin listener (`/metrics`); none for the upstream.
    pub admin: Option<SocketAddr>,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `psu-gateway sim --static` on a free loopback port.
pub fn start_upstream() -> Result<Process, String> {
    let mut child = Command::new(BINARY)
        .args(["sim", "--static", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {BINARY}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("unexpected simulator output {line:?}"))?;
    Ok(Process {
        child,
        addr,
        admin: None,
    })
}

/// Everything a gateway process is started from.
pub struct GatewaySetup {
    pub dir: PathBuf,
    pub upstream: SocketAddr,
    /// Where the gateway's stderr (its logs) goes.
    pub log: PathBuf,
}

/// One key a scenario sets away from the default config, and why; written
/// into the config, the reason as a comment above it.
pub struct Tuning {
    /// The table, e.g. `session`.
    pub section: &'static str,
    /// `key = value`, TOML.
    pub line: String,
    pub why: &'static str,
}

/// A fresh `psu-gateway run` (a new process per scenario, so its peak RSS
/// is that scenario's) on `benches/compare/gateway.toml` plus `tuning`,
/// ready once its port accepts connections. The config it ran is left in
/// `<dir>/gateway.toml` until the next scenario's replaces it.
pub fn start_gateway(setup: &GatewaySetup, tuning: &[Tuning]) -> Result<Process, String> {
    let port = free_port()?;
    let admin_port = free_port()?;
    let config = config(port, admin_port, setup.upstream, tuning);
    let path = config_path(setup);
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&setup.log)
        .map_err(|e| format!("{}: {e}", setup.log.display()))?;
    let child = Command::new(BINARY)
        .args(["--log-format", "pretty", "run", "--config"])
        .arg(&path)
        .env(
            "RUST_LOG",
            std::env::var("LOAD_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {BINARY}: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let process = Process {
        child,
        addr,
        admin: Some(([127, 0, 0, 1], admin_port).into()),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "the gateway did not listen within 20 s; see {}",
                setup.log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(process)
}

/// Where [`start_gateway`] writes the config it starts the gateway with.
pub fn config_path(setup: &GatewaySetup) -> PathBuf {
    setup.dir.join("gateway.toml")
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// The config the nginx comparison uses too, with its ports filled in and
/// each tuning line placed at the top of its table (appended as a new
/// table when the file has none).
fn config(port: u16, admin_port: u16, upstream: SocketAddr, tuning: &[Tuning]) -> String {
    let mut config = include_str!("../compare/gateway.toml")
        .replace("@PORT@", &port.to_string())
        .replace("@ADMIN_PORT@", &admin_port.to_string())
        .replace("@UPSTREAM@", &upstream.to_string());
    // In reverse, so that the lines keep their order under the header.
    for t in tuning.iter().rev() {
        let header = format!("[{}]\n", t.section);
        let lines = format!("# Not the default here: {}\n{}\n", t.why, t.line);
        match config.find(&header) {
            Some(at) => config.insert_str(at + header.len(), &lines),
            None => config.push_str(&format!("\n{header}{lines}")),
        }
    }
    config
}

/// User plus system CPU time of a process so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok()?;
    Some(Duration::from_micros(ticks * 1_000_000 / per_second.max(1)))
}

/// A `/proc/<pid>/status` memory line (`VmRSS`, `VmHWM`) in bytes.
pub fn memory(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Raises the open-file limit to its hard maximum: 1,000 idle connections
/// need 1,000 descriptors here and in the gateway, which inherits it.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to and read from a valid rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A scratch directory beside the build (`target/load`): the certificate,
/// token and configs stay with the binaries they were made for.
pub fn work_dir() -> Result<PathBuf, String> {
    let target = Path::new(BINARY)
        .parent()
        .and_then(Path::parent)
        .ok_or("the binary has no target directory")?;
    let dir = target.join("load");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

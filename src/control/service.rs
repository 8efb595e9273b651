//! The gateway as a Windows service: `service install`, `service
//! uninstall` and the entry point the service manager starts (`service
//! run`). The service manager's stop drains like SIGTERM, within
//! `limits.shutdown_grace`; reload goes through `psu-gateway reload` (the
//! admin listener) and the file watchers, as a service gets no SIGHUP.
//! Elsewhere these commands say what to use instead.

use std::path::Path;

use crate::config::Config;

#[cfg(windows)]
mod windows;

/// The name a service is installed under unless `--name` says otherwise.
pub const DEFAULT_NAME: &str = "psu-gateway";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "Windows services exist on Windows only; on Linux use conf/psu-gateway.service (systemd)"
    )]
    Unsupported,
    #[error("service name {0:?}: use letters, digits, '-' and '_' (at most 80)")]
    BadName(String),
    #[error("cannot find this program's own path: {0}")]
    OwnPath(#[source] std::io::Error),
    #[error("{action}: {detail}")]
    Manager {
        action: &'static str,
        detail: String,
    },
    #[error("the service stopped with an error: {0}")]
    Failed(String),
}

impl ServiceError {
    /// Exit status: 2 for what the operator must change, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServiceError::Unsupported | ServiceError::BadName(_) => 2,
            ServiceError::OwnPath(_) | ServiceError::Manager { .. } | ServiceError::Failed(_) => 1,
        }
    }
}

/// A name the service manager and a command line both take as it is.
pub fn check_name(name: &str) -> Result<(), ServiceError> {
    let fine = !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match fine {
        true => Ok(()),
        false => Err(ServiceError::BadName(name.to_owned())),
    }
}

/// The arguments the service manager starts the program with.
pub fn launch_arguments(config: &Path, name: &str) -> Vec<std::ffi::OsString> {
    vec![
        "service".into(),
        "run".into(),
        "--config".into(),
        config.as_os_str().to_owned(),
        "--name".into(),
        name.into(),
    ]
}

/// Registers the service to start at boot, running `run --config` on an
/// absolute `config` path (the service starts in another directory).
pub fn install(config: &Path, name: &str) -> Result<(), ServiceError> {
    check_name(name)?;
    #[cfg(windows)]
    return windows::install(config, name);
    #[cfg(not(windows))]
    {
        let _ = config;
        Err(ServiceError::Unsupported)
    }
}

/// Stops the service if it runs, then removes it.
pub fn uninstall(name: &str) -> Result<(), ServiceError> {
    check_name(name)?;
    #[cfg(windows)]
    return windows::uninstall(name);
    #[cfg(not(windows))]
    Err(ServiceError::Unsupported)
}

/// Runs `config` as the service `name` until the service manager stops it.
pub fn run(config: Config, name: &str) -> Result<(), ServiceError> {
    check_name(name)?;
    #[cfg(windows)]
    return windows::run(config, name);
    #[cfg(not(windows))]
    {
        let _ = config;
        Err(ServiceError::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_words() {
        for good in ["psu-gateway", "psu_gateway2", "A"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(81);
        for bad in ["", "psu gateway", "a\"b", "a/b", "a\\b", "é", long.as_str()] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_service_runs_this_config_under_this_name() {
        let args = launch_arguments(Path::new("C:\\psu\\gateway.toml"), "psu-gw");
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "service",
                "run",
                "--config",
                "C:\\psu\\gateway.toml",
                "--name",
                "psu-gw"
            ]
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_the_commands_point_to_systemd() {
        let error = uninstall(DEFAULT_NAME).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("systemd"));
    }
}

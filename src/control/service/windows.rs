//! The Windows service manager side of `service.rs` (windows-service crate).

use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::{launch_arguments, ServiceError};
use crate::config::Config;
use crate::report::error_chain;

/// What `run` hands the service's main function, which the service
/// manager calls on its own thread with no way to pass it along.
static PENDING: Mutex<Option<(Config, String)>> = Mutex::new(None);
/// How the service's main function ended.
static OUTCOME: Mutex<Option<Result<(), String>>> = Mutex::new(None);

fn manager_error(action: &'static str) -> impl FnOnce(windows_service::Error) -> ServiceError {
    move |e| ServiceError::Manager {
        action,
        detail: error_chain(&e),
    }
}

pub(super) fn install(config: &Path, name: &str) -> Result<(), ServiceError> {
    let config = std::path::absolute(config).map_err(ServiceError::OwnPath)?;
    let executable_path = std::env::current_exe().map_err(ServiceError::OwnPath)?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(manager_error(
        "open the service manager (run as Administrator)",
    ))?;
    let info = ServiceInfo {
        name: OsString::from(name),
        display_name: OsString::from(format!("psu-gateway ({name})")),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path,
        launch_arguments: launch_arguments(&config, name),
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG)
        .map_err(manager_error("create the service"))?;
    service
        .set_description("TLS front door for PowerShell Universal")
        .map_err(manager_error("describe the service"))?;
    Ok(())
}

pub(super) fn uninstall(name: &str) -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(manager_error(
            "open the service manager (run as Administrator)",
        ))?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = manager
        .open_service(name, access)
        .map_err(manager_error("open the service"))?;
    let status = service
        .query_status()
        .map_err(manager_error("query the service"))?;
    if status.current_state != ServiceState::Stopped {
        service.stop().map_err(manager_error("stop the service"))?;
    }
    // Removed once the last handle closes, after the stop completes.
    service
        .delete()
        .map_err(manager_error("delete the service"))
}

windows_service::define_windows_service!(ffi_service_main, service_main);

pub(super) fn run(config: Config, name: &str) -> Result<(), ServiceError> {
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = Some((config, name.to_owned()));
    service_dispatcher::start(name, ffi_service_main).map_err(manager_error(
        "connect to the service manager (service run is started by it, not by hand)",
    ))?;
    match OUTCOME.lock().unwrap_or_else(|e| e.into_inner()).take() {
        Some(Err(e)) => Err(ServiceError::Failed(e)),
        Some(Ok(())) | None => Ok(()),
    }
}

fn status(state: ServiceState, exit: u32, wait_hint: Duration) -> ServiceStatus {
    let controls_accepted = match state {
        ServiceState::Running => ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        _ => ServiceControlAccept::empty(),
    };
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted,
        exit_code: match exit {
            0 => ServiceExitCode::Win32(0),
            code => ServiceExitCode::ServiceSpecific(code),
        },
        checkpoint: 0,
        wait_hint,
        process_id: None,
    }
}

/// Runs on the service manager's thread: serve until Stop or Shutdown,
/// then drain as SIGTERM does.
fn service_main(_arguments: Vec<OsString>) {
    let Some((config, name)) = PENDING.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_tx = Mutex::new(Some(stop_tx));
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(tx) = stop_tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(());
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = match service_control_handler::register(&name, handler) {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "cannot register with the service manager");
            return;
        }
    };
    let grace = config.limits.shutdown_grace;
    let _ = handle.set_service_status(status(ServiceState::Running, 0, Duration::ZERO));
    let shutdown = async move {
        let _ = stop_rx.await;
        tracing::info!("service stop requested: draining");
        let hint = grace + Duration::from_secs(5);
        let _ = handle.set_service_status(status(ServiceState::StopPending, 0, hint));
    };
    let outcome = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime
            .block_on(crate::control::run::run(config, shutdown))
            .map_err(|e| error_chain(&e)),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "the service stopped with an error");
    }
    let exit = u32::from(outcome.is_err());
    *OUTCOME.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    let _ = handle.set_service_status(status(ServiceState::Stopped, exit, Duration::ZERO));
}

//! The operations listener: plain HTTP, loopback by default. `/healthz`
//! (the process answers), `/readyz` (it can do its job), `/metrics`
//! (Prometheus), `POST /reload` (same as SIGHUP, but the answer says
//! whether the new config was taken).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Admin;
use crate::control::live::Live;
use crate::control::run::StartError;
use crate::rules::routes::Access;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `admin.addr` and serves it until the task is aborted; probes the
/// upstream every `admin.probe_interval` for `/readyz`.
pub async fn spawn(admin: &Admin, live: Arc<Live>) -> Result<JoinHandle<()>, StartError> {
    let listener = TcpListener::bind(admin.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: admin.addr,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(admin.addr);
    tracing::info!(addr = %bound, "admin listener ready");
    let probe = Arc::new(Probe::default());
    let interval = admin.probe_interval;
    Ok(tokio::spawn(async move {
        let prober = tokio::spawn(probe_upstream(live.clone(), probe.clone(), interval));
        serve(listener, live, probe, interval).await;
        prober.abort();
    }))
}

async fn serve(listener: TcpListener, live: Arc<Live>, probe: Arc<Probe>, interval: Duration) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let live = live.clone();
        let probe = probe.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let live = live.clone();
            let probe = probe.clone();
            async move {
                Ok::<_, std::convert::Infallible>(answer(&request, &live, &probe, interval).await)
            }
        });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // A scraper that hangs must not hold a task forever.
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

async fn answer(
    request: &Request<Incoming>,
    live: &Live,
    probe: &Probe,
    interval: Duration,
) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".to_owned()),
        (&Method::GET, "/readyz") => match not_ready(live, probe, interval) {
            None => text(StatusCode::OK, "ready\n".to_owned()),
            Some(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        },
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, live.metrics().encode());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(OPENMETRICS),
            );
            response
        }
        // A browser page cannot trigger a reload: every cross-origin POST
        // from a browser carries Origin; curl and the CLI send none.
        (&Method::POST, "/reload") if request.headers().contains_key(header::ORIGIN) => text(
            StatusCode::FORBIDDEN,
            "reload is refused for browser requests\n".to_owned(),
        ),
        (&Method::POST, "/reload") => match live.reload().await {
            Ok(()) => text(StatusCode::OK, "reloaded\n".to_owned()),
            Err(e) => text(StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")),
        },
        (_, "/healthz" | "/readyz" | "/metrics" | "/reload") => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".to_owned(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The latest upstream probe: when it finished and what it found.
#[derive(Default)]
struct Probe {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

/// Why the gateway cannot do its job right now, or `None`.
fn not_ready(live: &Live, probe: &Probe, interval: Duration) -> Option<String> {
    let generation = live.current();
    let injects = generation
        .config()
        .routes
        .routes()
        .iter()
        .any(|r| r.access == Access::Inject);
    // A session grant needs no token of the gateway's own.
    let session_grant = generation
        .config()
        .credential
        .as_ref()
        .is_some_and(|c| c.token.is_none());
    if injects && generation.gateway.token().is_none() && !session_grant {
        return Some("no app token loaded".to_owned());
    }
    let last = probe.last.lock().map(|l| l.clone()).unwrap_or(None);
    // A probe older than two intervals means the prober itself is stuck.
    match last {
        None => Some("PSU has not been probed yet".to_owned()),
        Some((at, _)) if at.elapsed() > interval * 2 + probe_timeout(interval) => {
            Some("no recent answer from PSU".to_owned())
        }
        Some((_, Err(reason))) => Some(format!("PSU is unreachable: {reason}")),
        Some((_, Ok(()))) => None,
    }
}

fn probe_timeout(interval: Duration) -> Duration {
    interval.max(Duration::from_secs(1))
}

/// Any HTTP answer from PSU counts: the probe asks whether it is there,
/// not whether an anonymous request is allowed.
async fn probe_upstream(live: Arc<Live>, probe: Arc<Probe>, interval: Duration) {
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let generation = live.current();
        let config = generation.config();
        let path = config
            .session
            .as_ref()
            .map_or("/", |s| s.introspect_path.path());
        let upstream = generation.gateway.upstream();
        let found = match upstream.uri(path, None) {
            None => Err("the probe path is not a valid URI".to_owned()),
            Some(uri) => {
                let mut request =
                    Request::new(Empty::<Bytes>::new().map_err(|n| match n {}).boxed());
                *request.uri_mut() = uri;
                if let Ok(host) = header::HeaderValue::from_str(upstream.authority().as_str()) {
                    request.headers_mut().insert(header::HOST, host);
                }
                upstream
                    .send(request, probe_timeout(interval))
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(reason) = &found {
            tracing::warn!(%reason, "upstream probe failed");
        }
        if let Ok(mut last) = probe.last.lock() {
            *last = Some((Instant::now(), found));
        }
    }
}

/// `psu-gateway reload`: asks the running instance's admin listener to
/// reload, and returns its status and answer.
pub async fn request_reload(addr: SocketAddr) -> Result<(StatusCode, String), ReloadRequestError> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = Request::builder()
        .method(Method::POST)
        .uri("/reload")
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadRequestError {
    #[error("cannot reach the admin listener: {0}")]
    Connect(#[from] std::io::Error),
    #[error("the admin listener did not answer: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
}

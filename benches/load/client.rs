//! The load generator: closed-loop HTTP/1.1 and h2 clients (hyper over
//! rustls, or plain TCP for the upstream), a new-connection-per-request
//! mode, and a way to hold many idle keep-alive connections open.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION, COOKIE, HOST};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cookie::Cookie;
use crate::histogram::Histogram;

type Body = BoxBody<Bytes, Infallible>;
type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

/// Where requests go: the gateway over TLS, or the upstream in plain text.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: Option<Tls>,
}

/// One rustls client config per ALPN; no session resumption, so every new
/// connection is a full handshake.
#[derive(Clone)]
pub struct Tls {
    h1: TlsConnector,
    h2: TlsConnector,
}

impl Tls {
    pub fn trusting(cert: CertificateDer<'static>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).map_err(|e| e.to_string())?;
        let connector = |alpn: &[u8]| {
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            config.resumption = rustls::client::Resumption::disabled();
            Ok::<_, String>(TlsConnector::from(Arc::new(config)))
        };
        Ok(Self {
            h1: connector(b"http/1.1")?,
            h2: connector(b"h2")?,
        })
    }
}

/// What every request of a run looks like.
pub struct RequestSpec {
    pub method: Method,
    /// Origin-form path and query.
    pub path: &'static str,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub cookie: Cookie,
    /// Bytes streamed as the request body, 64 KiB at a time (0: none).
    pub upload: u64,
}

/// How a run drives its target.
#[derive(Clone, Copy)]
pub struct Plan {
    pub proto: Proto,
    pub connections: usize,
    /// Concurrent requests per connection (h2 streams; 1 for HTTP/1.1).
    pub streams: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// A new TCP (and TLS) connection per request, closed after it.
    pub new_connection_per_request: bool,
}

/// What a run measured between the end of warm-up and the end.
#[derive(Default)]
pub struct Outcome {
    /// Answers with a 2xx status.
    pub latencies: Histogram,
    /// Answers with another status, by status code.
    pub non_2xx: BTreeMap<u16, u64>,
    /// Those answers plus connections or exchanges that failed.
    pub errors: u64,
    pub bytes: u64,
    pub window: Duration,
}

impl Outcome {
    fn add(&mut self, part: Outcome) {
        self.latencies.merge(&part.latencies);
        for (status, n) in part.non_2xx {
            *self.non_2xx.entry(status).or_default() += n;
        }
        self.errors += part.errors;
        self.bytes += part.bytes;
    }

    pub fn rate(&self) -> f64 {
        self.latencies.count() as f64 / self.window.as_secs_f64()
    }

    /// Answers of `status`.
    pub fn answered(&self, status: StatusCode) -> u64 {
        self.non_2xx.get(&status.as_u16()).copied().unwrap_or(0)
    }

    fn record(&mut self, status: StatusCode, latency: Duration) {
        if status.is_success() {
            self.latencies.record(latency);
        } else {
            *self.non_2xx.entry(status.as_u16()).or_default() += 1;
            self.errors += 1;
        }
    }
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn counts(&self, sent: Instant, done: Instant) -> bool {
        sent >= self.start && done <= self.end
    }
}

/// Drives `target` with `spec` as `plan` says: closed loop, each worker
/// sends its next request as soon as the previous answer has been read.
pub async fn run(target: &Target, spec: Arc<RequestSpec>, plan: Plan) -> Outcome {
    let start = Instant::now() + plan.warmup;
    let window = Window {
        start,
        end: start + plan.duration,
    };
    let mut workers = Vec::new();
    for _ in 0..plan.connections {
        let (target, spec) = (target.clone(), spec.clone());
        workers.push(tokio::spawn(async move {
            if plan.new_connection_per_request {
                one_per_connection(&target, &spec, window).await
            } else {
                keep_alive(&target, &spec, plan, window).await
            }
        }));
    }
    let mut outcome = Outcome {
        window: plan.duration,
        ..Outcome::default()
    };
    for worker in workers {
        if let Ok(part) = worker.await {
            outcome.add(part);
        }
    }
    outcome
}

/// One connection, reconnecting after a failure, with `plan.streams`
/// requests in flight on it (h2; HTTP/1.1 has one).
async fn keep_alive(
    target: &Target,
    spec: &Arc<RequestSpec>,
    plan: Plan,
    window: Window,
) -> Outcome {
    let mut outcome = Outcome::default();
    while Instant::now() < window.end {
        let mut sender = match open(target, plan.proto).await {
            Ok(sender) => sender,
            Err(_) => {
                outcome.errors += u64::from(Instant::now() >= window.start);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Sender::H2(h2) = &sender {
            let mut streams = Vec::new();
            for _ in 1..plan.streams {
                let (mut sender, spec) = (Sender::H2(h2.clone()), spec.clone());
                streams.push(tokio::spawn(async move {
                    drive(&mut sender, &spec, plan.proto, window).await
                }));
            }
            outcome.add(drive(&mut sender, spec, plan.proto, window).await);
            for stream in streams {
                if let Ok(part) = stream.await {
                    outcome.add(part);
                }
            }
        } else {
            outcome.add(drive(&mut sender, spec, plan.proto, window).await);
        }
    }
    outcome
}

/// Requests one after another on `sender` until the window ends or the
/// connection fails.
async fn drive(sender: &mut Sender, spec: &RequestSpec, proto: Proto, window: Window) -> Outcome {
    let mut part = Outcome::default();
    while Instant::now() < window.end {
        let sent = Instant::now();
        let result = exchange(sender, request(spec, proto, false)).await;
        let done = Instant::now();
        let counted = window.counts(sent, done);
        match result {
            Ok((status, bytes)) if counted => {
                part.bytes += bytes;
                part.record(status, done - sent);
            }
            Ok(_) => {}
            Err(_) => {
                part.errors += u64::from(counted);
                break;
            }
        }
    }
    part
}

/// Connect, handshake, one request with `Connection: close`, hang up.
async fn one_per_connection(target: &Target, spec: &RequestSpec, window: Window) -> Outcome {
    let mut outcome = Outcome::default();
    while Instant::now() < window.end {
        let sent = Instant::now();
        let result = async {
            let mut sender = open(target, Proto::H1).await?;
            exchange(&mut sender, request(spec, Proto::H1, true)).await
        }
        .await;
        let done = Instant::now();
        if !window.counts(sent, done) {
            continue;
        }
        match result {
            Ok((status, bytes)) => {
                outcome.record(status, done - sent);
                outcome.bytes += bytes;
            }
            Err(_) => outcome.errors += 1,
        }
    }
    outcome
}

/// Opens `n` keep-alive connections (each proven with one request) and
/// returns them; they stay open until the returned value is dropped.
pub async fn hold_idle(
    target: &Target,
    spec: &RequestSpec,
    n: usize,
) -> Result<Vec<Sender>, Error> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut sender = open(target, Proto::H1).await?;
        let (status, _) = exchange(&mut sender, request(spec, Proto::H1, false)).await?;
        if !status.is_success() {
            return Err(format!("an idle connection's first request was answered {status}").into());
        }
        held.push(sender);
    }
    Ok(held)
}

/// One request on an open connection: (status, body bytes).
pub async fn once(sender: &mut Sender, spec: &RequestSpec) -> Result<(StatusCode, u64), Error> {
    let proto = match sender {
        Sender::H1(_) => Proto::H1,
        Sender::H2(_) => Proto::H2,
    };
    exchange(sender, request(spec, proto, false)).await
}

/// A plain-HTTP GET answered with JSON (the upstream's counters).
pub async fn get_json(addr: SocketAddr, path: &'static str) -> Result<serde_json::Value, Error> {
    Ok(serde_json::from_slice(&get(addr, path).await?)?)
}

/// The body of a plain-HTTP GET (the upstream's counters, the gateway's
/// metrics).
pub async fn get(addr: SocketAddr, path: &'static str) -> Result<Bytes, Error> {
    let target = Target { addr, tls: None };
    let mut sender = open(&target, Proto::H1).await?;
    let request = Request::get(path)
        .header(HOST, "localhost")
        .body(Empty::new().boxed())?;
    let response = match &mut sender {
        Sender::H1(sender) => sender.send_request(request).await?,
        Sender::H2(sender) => sender.send_request(request).await?,
    };
    if !response.status().is_success() {
        return Err(format!("GET {path} answered {}", response.status()).into());
    }
    Ok(response.into_body().collect().await?.to_bytes())
}

pub enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

async fn open(target: &Target, proto: Proto) -> Result<Sender, Error> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    let io: Box<dyn Io> = match &target.tls {
        None => Box::new(tcp),
        Some(tls) => {
            let connector = match proto {
                Proto::H1 => &tls.h1,
                Proto::H2 => &tls.h2,
            };
            Box::new(
                connector
                    .connect(ServerName::try_from("localhost")?, tcp)
                    .await?,
            )
        }
    };
    let io = TokioIo::new(io);
    Ok(match proto {
        Proto::H1 => {
            let (sender, conn) = http1::handshake(io).await?;
            tokio::spawn(conn);
            Sender::H1(sender)
        }
        Proto::H2 => {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Sender::H2(sender)
        }
    })
}

/// Sends one request and reads the whole answer: (status, body bytes).
async fn exchange(sender: &mut Sender, request: Request<Body>) -> Result<(StatusCode, u64), Error> {
    let response = match sender {
        Sender::H1(sender) => {
            sender.ready().await?;
            sender.send_request(request).await?
        }
        Sender::H2(sender) => {
            sender.ready().await?;
            sender.send_request(request).await?
        }
    };
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        bytes += frame?.data_ref().map_or(0, |d| d.len() as u64);
    }
    Ok((status, bytes))
}

fn request(spec: &RequestSpec, proto: Proto, close: bool) -> Request<Body> {
    let uri: Uri = match proto {
        Proto::H1 => Uri::from_static(spec.path),
        // h2 carries the scheme and authority as pseudo-headers.
        Proto::H2 => format!("https://localhost{}", spec.path)
            .parse()
            .expect("a valid URI"),
    };
    let mut builder = Request::builder().method(spec.method.clone()).uri(uri);
    if proto == Proto::H1 {
        builder = builder.header(HOST, "localhost");
    }
    if close {
        builder = builder.header(CONNECTION, "close");
    }
    for (name, value) in &spec.headers {
        builder = builder.header(name, value);
    }
    if let Some(cookie) = spec.cookie.header() {
        builder = builder.header(COOKIE, cookie);
    }
    let body = if spec.upload == 0 {
        Empty::new().boxed()
    } else {
        upload(spec.upload)
    };
    builder.body(body).expect("a valid request")
}

/// `total` bytes of `x`, 64 KiB at a time, never all in memory.
fn upload(total: u64) -> Body {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let frames = futures_util::stream::unfold(total, move |left| {
        let chunk = chunk.clone();
        async move {
            (left > 0).then(|| {
                let take = left.min(chunk.len() as u64);
                (
                    Ok(http_body::Frame::data(chunk.slice(..take as usize))),
                    left - take,
                )
            })
        }
    });
    StreamBody::new(frames).boxed()
}

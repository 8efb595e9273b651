//! The network side of `doctor`: a TCP connect, a TLS handshake with the
//! gateway's own trust settings, and single GETs through the gateway's
//! upstream client, each reduced to a plain outcome for the diagnosis.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, ACCEPT, WWW_AUTHENTICATE};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Empty};
use rustls::{CertificateError, Error as TlsError};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::config::{Upstream, UpstreamProtocol};
use crate::doctor::answers::{is_windows_challenge, Answer};
use crate::doctor::connection::{host_of, presented_name, Handshake, Reach};
use crate::report::error_chain;
use crate::transport::upstream::{UpstreamClient, UpstreamError};

fn port_of(upstream: &Upstream) -> u16 {
    upstream
        .authority
        .port_u16()
        .unwrap_or(if upstream.scheme == Scheme::HTTPS {
            443
        } else {
            80
        })
}

/// Resolves and connects within `upstream.connect_timeout`, as the
/// gateway's connector would.
pub async fn reach(upstream: &Upstream) -> Reach {
    let host = host_of(upstream);
    let port = port_of(upstream);
    let started = Instant::now();
    let attempt = async {
        let addrs: Vec<_> = match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => {
                return Reach::Unresolvable {
                    host: host.clone(),
                    error: e.to_string(),
                }
            }
        };
        let mut last = Reach::Unresolvable {
            host: host.clone(),
            error: "no address".to_owned(),
        };
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(_) => return Reach::Connected(started.elapsed()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => last = Reach::Refused,
                Err(e) => last = Reach::Failed(e.to_string()),
            }
        }
        last
    };
    tokio::time::timeout(upstream.connect_timeout, attempt)
        .await
        .unwrap_or(Reach::TimedOut)
}

/// A TLS handshake verifying `name` with the same roots as the gateway
/// (system store plus `upstream.ca`).
pub async fn handshake(upstream: &Upstream, name: &str) -> Handshake {
    let mut config = match crate::transport::upstream::client_tls(upstream) {
        Ok(config) => config,
        Err(e) => return Handshake::Failed(e.to_string()),
    };
    config.alpn_protocols = match upstream.protocol {
        UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
        UpstreamProtocol::H2 => vec![b"h2".to_vec()],
    };
    let Ok(server_name) = ServerName::try_from(name.to_owned()) else {
        return Handshake::Failed(format!("{name:?} is not a valid TLS server name"));
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let exchange = async {
        let tcp = TcpStream::connect((host_of(upstream).as_str(), port_of(upstream))).await?;
        connector.connect(server_name, tcp).await
    };
    // Bounded so a peer that accepts and never answers cannot hang the doctor.
    match tokio::time::timeout(upstream.connect_timeout * 2, exchange).await {
        Err(_) => {
            Handshake::Failed("no TLS handshake within twice upstream.connect_timeout".into())
        }
        Ok(Ok(_)) => Handshake::Verified,
        Ok(Err(e)) => classify_tls_error(&e),
    }
}

/// tokio-rustls wraps the rustls error in an `io::Error`; its `source()`
/// skips the wrapped error, so it is reached through `get_ref`.
fn classify_tls_error(error: &io::Error) -> Handshake {
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<TlsError>()) else {
        return Handshake::Failed(error.to_string());
    };
    match tls {
        TlsError::InvalidCertificate(CertificateError::NotValidForName) => {
            Handshake::NameMismatch {
                presented: Vec::new(),
            }
        }
        TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => Handshake::NameMismatch {
            presented: presented.iter().map(|n| presented_name(n)).collect(),
        },
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => Handshake::UnknownIssuer,
        TlsError::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => Handshake::Expired,
        TlsError::InvalidMessage(_) => Handshake::NotTls,
        other => Handshake::Failed(other.to_string()),
    }
}

/// One GET with an optional credential header; the body is not read.
pub async fn get(
    client: &UpstreamClient,
    path: &PathAndQuery,
    credential: Option<(HeaderName, HeaderValue)>,
    timeout: Duration,
) -> Answer {
    let Some(uri) = client.uri(path.path(), path.query()) else {
        return Answer::Failed(format!("{path} does not make a valid URI"));
    };
    let body = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed();
    let mut request = match Request::builder().method(Method::GET).uri(uri).body(body) {
        Ok(request) => request,
        Err(e) => return Answer::Failed(e.to_string()),
    };
    let headers = request.headers_mut();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some((name, value)) = credential {
        headers.insert(name, value);
    }
    match client.send(request, timeout).await {
        Ok(response) => Answer::Status {
            status: response.status(),
            windows_challenge: is_windows_challenge(response.headers().get_all(WWW_AUTHENTICATE)),
        },
        Err(UpstreamError::Timeout(_)) => Answer::TimedOut,
        Err(e) => Answer::Failed(error_chain(&e)),
    }
}

//! TLS for tests: clients that trust only the test CA (hyper over rustls,
//! raw bytes, a connection to the stack), reading raw responses, and a
//! second TLS server for other origins.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Proto, Stack};

pub type TestClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A root store holding only the PEM certificates in `ca_pem`.
pub fn root_store(ca_pem: &[u8]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// A rustls client config trusting only the PEM certificates in `ca_pem`.
pub fn client_tls(ca_pem: &[u8]) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(root_store(ca_pem))
        .with_no_client_auth()
}

/// An HTTPS client for the gateway speaking only `proto`.
pub fn tls_client(ca_pem: &[u8], proto: Proto) -> TestClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(ca_pem))
        .https_only();
    let mut client = Client::builder(TokioExecutor::new());
    let connector = match proto {
        Proto::H1 => builder.enable_http1().build(),
        Proto::H2 => {
            client.http2_only(true);
            builder.enable_http2().build()
        }
    };
    client.build(connector)
}

pub async fn raw_tls(addr: SocketAddr, ca_pem: &[u8], bytes: &[u8]) -> String {
    let mut tls = client_tls(ca_pem);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .expect("gateway closed within 20s");
    // A TLS peer closing without close_notify is still a complete answer here.
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in raw HTTP/1.1 output.
pub fn raw_status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

impl Stack {
    /// A TLS connection to the gateway speaking HTTP/1.1 (ALPN).
    pub async fn connect(&self) -> TlsStream {
        self.connect_owned().await
    }

    /// The same, as a future that does not borrow the stack.
    pub fn connect_owned(&self) -> impl std::future::Future<Output = TlsStream> + Send + 'static {
        let mut tls = client_tls(&self.ca);
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let addr = self.addr;
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap()
        }
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body (or none).
pub async fn read_response(stream: &mut TlsStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !buf.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        buf.extend_from_slice(&body);
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("a response within 20s");
    String::from_utf8_lossy(&buf).into_owned()
}

/// Waits until the gateway closes the connection; panics after `limit`.
pub async fn wait_closed(stream: &mut TlsStream, limit: Duration) -> Vec<u8> {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut rest)).await;
    match read {
        Ok(Ok(_)) => rest,
        Ok(Err(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            rest
        }
        Ok(Err(e)) => panic!("read failed: {e}"),
        Err(_) => panic!("the gateway did not close the connection within {limit:?}"),
    }
}

/// A rustls server config for a new rcgen certificate valid for `names`,
/// and that certificate's PEM for clients to trust (simulators with TLS).
pub fn server_tls(names: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
    let cert = psu_gateway::cli::devcert::generate(
        &names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    )
    .unwrap();
    let certs = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()];
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    (cert.cert_pem, Arc::new(config))
}

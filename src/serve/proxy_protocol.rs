//! The PROXY protocol (v1 text, v2 binary) a trusted L4 balancer puts in front of the TLS bytes.
//!
//! [`parse`] is pure: given the bytes read so far it says how many more the
//! header certainly still has, or where it ended and which client it names.
//! [`read_header`] reads exactly that many, so not one byte of the client's
//! TLS ClientHello is consumed. The format is HAProxy's
//! `doc/proxy-protocol.txt`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::config::{Config, Forwarding};

/// The v2 signature; no v1 line (nor TLS record) starts with `\r`.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line the spec allows, CRLF included.
pub const V1_MAX_LEN: usize = 107;
/// `PROXY UNKNOWN\r\n`: no header of either version is shorter.
const MIN_LEN: usize = 15;
/// Signature, version/command, family/transport, 16-bit length.
const V2_FIXED_LEN: usize = 16;
/// Addresses plus TLVs. Balancers send 12 or 36 bytes of addresses and a few
/// short TLVs; anything longer is refused instead of buffered.
pub const V2_MAX_PAYLOAD: usize = 1024;

/// Why a PROXY header is refused. The connection is closed on any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the connection does not start with a PROXY protocol header")]
    NotProxy,
    #[error("PROXY v1 line without CRLF within {V1_MAX_LEN} bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 line: {0}")]
    V1Malformed(&'static str),
    #[error("PROXY v2 version {0} is not 2")]
    V2Version(u8),
    #[error("PROXY v2 command {0:#x} is neither LOCAL nor PROXY")]
    V2Command(u8),
    #[error("PROXY v2 family/transport {0:#04x} is not TCP over IPv4 or IPv6")]
    V2Family(u8),
    #[error("PROXY v2 block of {0} bytes is longer than {V2_MAX_PAYLOAD}")]
    V2TooLong(usize),
    #[error("PROXY v2 block of {0} bytes is too short for its addresses")]
    V2TooShort(usize),
    #[error("PROXY source {0} cannot be a TCP client")]
    BogusSource(SocketAddr),
}

/// Why a connection is closed before its TLS handshake.
#[derive(Debug, thiserror::Error)]
pub enum ProxyProtocolError {
    #[error(
        "the TCP peer is not in forwarding.trusted_proxies, so it may not send a PROXY header"
    )]
    Untrusted,
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("the connection ended inside the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("no complete PROXY header within limits.handshake_timeout")]
    Timeout,
}

/// Where parsing stands after the bytes seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The header goes on for at least this many more bytes.
    Need(usize),
    /// The header is the first `len` bytes. `source: None` (v1 `UNKNOWN`,
    /// v2 `LOCAL` or `AF_UNSPEC`) means the TCP peer speaks for itself.
    Done {
        len: usize,
        source: Option<SocketAddr>,
    },
}

/// Parses the start of a connection. Bytes after the header are ignored.
pub fn parse(buf: &[u8]) -> Result<Progress, HeaderError> {
    match buf.first() {
        None => Ok(Progress::Need(MIN_LEN)),
        Some(b'\r') if starts_like(buf, &V2_SIGNATURE) => parse_v2(buf),
        Some(b'P') if starts_like(buf, V1_PREFIX) => parse_v1(buf),
        Some(_) => Err(HeaderError::NotProxy),
    }
}

/// `buf` and `prefix` agree on the bytes both have.
fn starts_like(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Progress, HeaderError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(cr) = window.iter().position(|&b| !(b' '..=b'~').contains(&b)) else {
        // No CR within the longest line the spec allows: never a header.
        if buf.len() >= V1_MAX_LEN - 1 {
            return Err(HeaderError::V1TooLong);
        }
        return Ok(Progress::Need(MIN_LEN.saturating_sub(buf.len()).max(2)));
    };
    if buf[cr] != b'\r' {
        return Err(HeaderError::V1Malformed(
            "a byte that is not printable ASCII",
        ));
    }
    if cr + 2 > V1_MAX_LEN {
        return Err(HeaderError::V1TooLong);
    }
    match buf.get(cr + 1) {
        None => Ok(Progress::Need(1)),
        Some(b'\n') => {
            // Only printable ASCII before `cr`, so this cannot fail.
            let line = std::str::from_utf8(&buf[..cr])
                .map_err(|_| HeaderError::V1Malformed("not ASCII"))?;
            Ok(Progress::Done {
                len: cr + 2,
                source: v1_source(line)?,
            })
        }
        Some(_) => Err(HeaderError::V1Malformed("CR not followed by LF")),
    }
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>`, one space apart, or
/// `PROXY UNKNOWN` followed by anything (the spec says to ignore it).
fn v1_source(line: &str) -> Result<Option<SocketAddr>, HeaderError> {
    let fields: Vec<&str> = line.split(' ').collect();
    let ip = |text: &str, v6: bool| -> Result<IpAddr, HeaderError> {
        let parsed = if v6 {
            text.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            text.parse::<Ipv4Addr>().map(IpAddr::V4)
        };
        parsed.map_err(|_| HeaderError::V1Malformed("an address that does not match its protocol"))
    };
    let v6 = match fields.get(1) {
        Some(&"UNKNOWN") => return Ok(None),
        Some(&"TCP4") => false,
        Some(&"TCP6") => true,
        _ => {
            return Err(HeaderError::V1Malformed(
                "protocol must be TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let [_, _, src, dst, sport, dport] = fields[..] else {
        return Err(HeaderError::V1Malformed(
            "expected source, destination, source port, destination port",
        ));
    };
    ip(dst, v6)?;
    v1_port(dport)?;
    check_source(SocketAddr::new(ip(src, v6)?, v1_port(sport)?)).map(Some)
}

/// Decimal 0..=65535 without sign or leading zeros.
fn v1_port(text: &str) -> Result<u16, HeaderError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    text.parse::<u16>()
        .ok()
        .filter(|_| canonical)
        .ok_or(HeaderError::V1Malformed(
            "a port that is not 0 to 65535 in decimal",
        ))
}

fn parse_v2(buf: &[u8]) -> Result<Progress, HeaderError> {
    if buf.len() < V2_FIXED_LEN {
        return Ok(Progress::Need(V2_FIXED_LEN - buf.len()));
    }
    let version = buf[12] >> 4;
    let command = buf[12] & 0x0f;
    let family = buf[13];
    let payload = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if version != 2 {
        return Err(HeaderError::V2Version(version));
    }
    if command > 1 {
        return Err(HeaderError::V2Command(command));
    }
    if payload > V2_MAX_PAYLOAD {
        return Err(HeaderError::V2TooLong(payload));
    }
    let local = command == 0;
    // Checked on the fixed part, before waiting for a payload it would refuse.
    let addresses = match family {
        _ if local => 0,
        0x00 => 0,
        0x11 => 12,
        0x21 => 36,
        other => return Err(HeaderError::V2Family(other)),
    };
    if payload < addresses {
        return Err(HeaderError::V2TooShort(payload));
    }
    let len = V2_FIXED_LEN + payload;
    if buf.len() < len {
        return Ok(Progress::Need(len - buf.len()));
    }
    let block = &buf[V2_FIXED_LEN..len];
    let source = match addresses {
        12 => {
            let ip: [u8; 4] = block[0..4].try_into().unwrap_or_default();
            Some((IpAddr::from(ip), u16::from_be_bytes([block[8], block[9]])))
        }
        36 => {
            let ip: [u8; 16] = block[0..16].try_into().unwrap_or_default();
            Some((IpAddr::from(ip), u16::from_be_bytes([block[32], block[33]])))
        }
        // TLVs after the addresses carry nothing the gateway uses.
        _ => None,
    };
    let source = source
        .map(|(ip, port)| check_source(SocketAddr::new(ip, port)))
        .transpose()?;
    Ok(Progress::Done { len, source })
}

/// No TCP connection comes from port 0, an unspecified, multicast or
/// broadcast address; a header naming one is broken or forged.
fn check_source(addr: SocketAddr) -> Result<SocketAddr, HeaderError> {
    let bogus = match addr.ip().to_canonical() {
        IpAddr::V4(ip) => ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast(),
        IpAddr::V6(ip) => ip.is_unspecified() || ip.is_multicast(),
    };
    if bogus || addr.port() == 0 {
        return Err(HeaderError::BogusSource(addr));
    }
    Ok(addr)
}

/// Reads one PROXY header and nothing after it.
pub async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Option<SocketAddr>, ProxyProtocolError> {
    let mut buf = Vec::with_capacity(V1_MAX_LEN);
    loop {
        match parse(&buf)? {
            Progress::Need(more) => {
                let start = buf.len();
                buf.resize(start + more, 0);
                stream.read_exact(&mut buf[start..]).await?;
            }
            Progress::Done { source, .. } => return Ok(source),
        }
    }
}

/// The client's address: the TCP peer, or with `listen.proxy_protocol` the
/// source in the PROXY header, which only `forwarding.trusted_proxies` may
/// send. The header must be complete by `deadline`.
pub(crate) async fn client_addr<R: AsyncRead + Unpin>(
    stream: &mut R,
    peer: SocketAddr,
    config: &Config,
    deadline: Instant,
) -> Result<SocketAddr, ProxyProtocolError> {
    let expected = config.listen.proxy_protocol;
    expect_header(stream, peer, expected, &config.forwarding, deadline).await
}

async fn expect_header<R: AsyncRead + Unpin>(
    stream: &mut R,
    peer: SocketAddr,
    expected: bool,
    forwarding: &Forwarding,
    deadline: Instant,
) -> Result<SocketAddr, ProxyProtocolError> {
    if !expected {
        return Ok(peer);
    }
    if !forwarding.trusts(peer.ip()) {
        return Err(ProxyProtocolError::Untrusted);
    }
    match tokio::time::timeout_at(deadline, read_header(stream)).await {
        Ok(source) => Ok(source?.unwrap_or(peer)),
        Err(_) => Err(ProxyProtocolError::Timeout),
    }
}

impl ProxyProtocolError {
    /// An untrusted peer on a PROXY listener is most often a balancer
    /// missing from `trusted_proxies`, so the operator hears of it; broken
    /// headers and timeouts are as noisy as failed TLS handshakes.
    pub(crate) fn log(&self, peer: SocketAddr) {
        match self {
            Self::Untrusted => tracing::warn!(%peer, error = %self, "connection refused"),
            _ => tracing::debug!(%peer, error = %self, "PROXY header refused"),
        }
    }
}

#[cfg(test)]
mod tests;

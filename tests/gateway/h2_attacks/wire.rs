//! A raw HTTP/2 client for the attack tests: frame and HPACK writers, a
//! frame reader on its own task, and the outcome of one stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

use crate::support::{client_tls, Stack};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113 section 6).
pub(super) const DATA: u8 = 0x0;
pub(super) const HEADERS: u8 = 0x1;
pub(super) const RST_STREAM: u8 = 0x3;
pub(super) const SETTINGS: u8 = 0x4;
pub(super) const PING: u8 = 0x6;
pub(super) const GOAWAY: u8 = 0x7;
pub(super) const CONTINUATION: u8 = 0x9;

// Flags.
pub(super) const END_STREAM: u8 = 0x1;
pub(super) const ACK: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

// Error codes (RFC 9113 section 7).
pub(super) const PROTOCOL_ERROR: u32 = 0x1;
pub(super) const REFUSED_STREAM: u32 = 0x7;
pub(super) const CANCEL: u32 = 0x8;
pub(super) const COMPRESSION_ERROR: u32 = 0x9;
pub(super) const ENHANCE_YOUR_CALM: u32 = 0xb;

// SETTINGS identifiers.
pub(super) const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub(super) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;

/// How long any single expected answer may take before the test fails.
pub(super) const ANSWER: Duration = Duration::from_secs(10);

type Tls = TlsStream<TcpStream>;

pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    assert!(len < 1 << 24, "frame payload too long");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK integer with a 7-bit prefix and the H (Huffman) bit clear.
fn hpack_len(n: usize, out: &mut Vec<u8>) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    let mut rest = n - 127;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// "Literal header field without indexing, new name" for every field: no
/// table state, no Huffman, and nothing the encoder refuses.
pub(super) fn hpack(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_len(name.len(), &mut out);
        out.extend_from_slice(name);
        hpack_len(value.len(), &mut out);
        out.extend_from_slice(value);
    }
    out
}

pub(super) fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// A HEADERS frame (END_HEADERS and END_STREAM) carrying `fields`.
pub(super) fn get(stream: u32, fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &hpack(fields))
}

#[derive(Debug)]
pub(super) struct Frame {
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
    pub(super) payload: Vec<u8>,
}

impl Frame {
    pub(super) fn error_code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }

    fn last_stream(&self) -> u32 {
        u32::from_be_bytes(self.payload[..4].try_into().unwrap()) & 0x7fff_ffff
    }
}

#[derive(Debug)]
pub(super) enum Event {
    Frame(Frame),
    Closed(String),
}

/// How the gateway answered one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Response HEADERS with this status (0: encoded in a way this tiny
    /// decoder does not follow, e.g. a dynamic-table reference).
    Response(u16),
    Reset(u32),
    GoAway(u32),
    Closed(String),
    /// Still open, and nothing arrived for [`ANSWER`].
    Silent,
}

impl Outcome {
    /// Refused by the h2 layer (stream or connection error) or by the
    /// gateway's own request checks (400).
    pub(super) fn is_rejection(&self) -> bool {
        matches!(
            self,
            Outcome::Reset(PROTOCOL_ERROR)
                | Outcome::GoAway(PROTOCOL_ERROR | COMPRESSION_ERROR)
                | Outcome::Response(400)
        )
    }

    pub(super) fn connection_survives(&self) -> bool {
        matches!(self, Outcome::Response(_) | Outcome::Reset(_))
    }
}

/// The `:status` of a response HEADERS frame, from the first field of its
/// block: a static-table index (200, 204, 206, 304, 400, 404, 500) or a
/// literal naming index 8, raw or Huffman-coded (digits only).
pub(super) fn status_of(frame: &Frame) -> u16 {
    let block = header_block(frame);
    let first = block[0];
    if first & 0x80 != 0 {
        const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
        let index = usize::from(first & 0x7f);
        return STATIC.get(index.wrapping_sub(8)).copied().unwrap_or(0);
    }
    let name_index = if first & 0xc0 == 0x40 {
        first & 0x3f
    } else {
        first & 0x0f
    };
    if name_index != 8 || block.len() < 2 || block[1] & 0x7f == 0x7f {
        return 0;
    }
    let len = usize::from(block[1] & 0x7f);
    let Some(value) = block.get(2..2 + len) else {
        return 0;
    };
    let digits = if block[1] & 0x80 != 0 {
        huffman_digits(value)
    } else {
        String::from_utf8(value.to_vec()).ok()
    };
    digits.and_then(|d| d.parse().ok()).unwrap_or(0)
}

/// The HPACK block of a HEADERS frame, without padding and priority.
pub(super) fn header_block(frame: &Frame) -> &[u8] {
    let mut block = &frame.payload[..];
    if frame.flags & PADDED != 0 {
        let pad = usize::from(block[0]);
        block = &block[1..block.len() - pad];
    }
    if frame.flags & PRIORITY != 0 {
        block = &block[5..];
    }
    block
}

/// Decodes a Huffman string made of ASCII digits only (RFC 7541 appendix B:
/// `0`-`2` are 5-bit codes 0-2, `3`-`9` are 6-bit codes 0x19-0x1f).
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let take = |at: usize, n: usize| {
        bits.get(at..at + n)
            .map(|s| s.iter().fold(0u8, |acc, b| acc << 1 | b))
    };
    let mut out = String::new();
    let mut at = 0;
    while at < bits.len() {
        if bits[at..].iter().all(|b| *b == 1) && bits.len() - at < 8 {
            break; // EOS padding
        }
        match take(at, 5)? {
            code @ 0..=2 => {
                out.push(char::from(b'0' + code));
                at += 5;
            }
            _ => match take(at, 6)? {
                code @ 0x19..=0x1f => {
                    out.push(char::from(b'3' + code - 0x19));
                    at += 6;
                }
                _ => return None,
            },
        }
    }
    Some(out)
}

/// One raw h2 connection: frames are written by hand, a background task
/// parses what the gateway sends and queues it.
pub(super) struct H2 {
    pub(super) writer: WriteHalf<Tls>,
    events: mpsc::UnboundedReceiver<Event>,
    /// The SETTINGS the gateway announced first: (identifier, value).
    pub(super) server_settings: Vec<(u16, u32)>,
    pub(super) authority: String,
}

impl H2 {
    /// TLS with ALPN `h2`, the client preface and an empty SETTINGS, then
    /// waits for the gateway's SETTINGS and acknowledges it.
    pub(super) async fn open(stack: &Stack) -> Self {
        let mut config = client_tls(stack.ca());
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(stack.addr).await.unwrap();
        let tls = tokio::time::timeout(
            ANSWER,
            connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
        )
        .await
        .expect("TLS handshake within 10s")
        .expect("TLS handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (reader, writer) = tokio::io::split(tls);
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(read_frames(reader, tx));
        let mut conn = Self {
            writer,
            events,
            server_settings: Vec::new(),
            authority: authority(stack),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        conn.send(&hello).await.expect("send preface");
        loop {
            match conn.next().await {
                Event::Frame(f) if f.kind == SETTINGS && f.flags & ACK == 0 => {
                    conn.server_settings = f
                        .payload
                        .chunks_exact(6)
                        .map(|c| {
                            (
                                u16::from_be_bytes([c[0], c[1]]),
                                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                            )
                        })
                        .collect();
                    break;
                }
                Event::Frame(_) => {}
                Event::Closed(why) => panic!("closed before SETTINGS: {why}"),
            }
        }
        conn.send(&frame(SETTINGS, ACK, 0, &[]))
            .await
            .expect("send SETTINGS ACK");
        conn
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes).await?;
        self.writer.flush().await
    }

    /// The next event, or `None` when the gateway sent nothing for [`ANSWER`].
    async fn next_within(&mut self) -> Option<Event> {
        match tokio::time::timeout(ANSWER, self.events.recv()).await {
            Ok(Some(event)) => Some(event),
            Ok(None) => Some(Event::Closed("reader ended".into())),
            Err(_) => None,
        }
    }

    /// The next event; panics when none comes within [`ANSWER`].
    pub(super) async fn next(&mut self) -> Event {
        self.next_within()
            .await
            .unwrap_or_else(|| panic!("the gateway sent nothing for {ANSWER:?}"))
    }

    pub(super) fn request(&self, path: &str, extra: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
        request(&self.authority, path, extra)
    }

    /// Waits until `stream` is answered, reset, or the connection ends.
    pub(super) async fn outcome(&mut self, stream: u32) -> Outcome {
        loop {
            match self.next().await {
                Event::Frame(f) if f.kind == HEADERS && f.stream == stream => {
                    return Outcome::Response(status_of(&f))
                }
                Event::Frame(f) if f.kind == RST_STREAM && f.stream == stream => {
                    return Outcome::Reset(f.error_code())
                }
                Event::Frame(f) if f.kind == GOAWAY => return Outcome::GoAway(f.error_code()),
                Event::Frame(_) => {}
                Event::Closed(why) => return Outcome::Closed(why),
            }
        }
    }

    /// Waits for GOAWAY or close and returns which, ignoring everything
    /// else (PING ACKs, SETTINGS ACKs, resets of individual streams);
    /// [`Outcome::Silent`] when the connection stays open and quiet.
    pub(super) async fn until_gone(&mut self) -> Outcome {
        loop {
            match self.next_within().await {
                Some(Event::Frame(f)) if f.kind == GOAWAY => {
                    eprintln!("GOAWAY last-stream-id {}", f.last_stream());
                    return Outcome::GoAway(f.error_code());
                }
                Some(Event::Frame(_)) => {}
                Some(Event::Closed(why)) => return Outcome::Closed(why),
                None => return Outcome::Silent,
            }
        }
    }
}

/// A GET for `path` with the usual pseudo-headers plus `extra` fields.
pub(super) fn request(
    authority: &str,
    path: &str,
    extra: &[(&[u8], &[u8])],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b":method".to_vec(), b"GET".to_vec()),
        (b":scheme".to_vec(), b"https".to_vec()),
        (b":authority".to_vec(), authority.as_bytes().to_vec()),
        (b":path".to_vec(), path.as_bytes().to_vec()),
    ];
    fields.extend(extra.iter().map(|(n, v)| (n.to_vec(), v.to_vec())));
    fields
}

pub(super) fn authority(stack: &Stack) -> String {
    format!("localhost:{}", stack.addr.port())
}

pub(super) fn as_refs(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
    fields
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect()
}

async fn read_frames(mut reader: ReadHalf<Tls>, tx: mpsc::UnboundedSender<Event>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let head = buf.split_to(9);
            let payload = buf.split_to(len).to_vec();
            let frame = Frame {
                kind: head[3],
                flags: head[4],
                stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
                payload,
            };
            if tx.send(Event::Frame(frame)).is_err() {
                return;
            }
        }
        let closed = match reader.read_buf(&mut buf).await {
            Ok(0) => "eof".to_owned(),
            Ok(_) => continue,
            Err(e) => e.to_string(),
        };
        let _ = tx.send(Event::Closed(closed));
        return;
    }
}

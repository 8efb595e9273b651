//! WebSocket pass-through: the connection becomes a byte tunnel only after
//! PSU answered `101 Switching Protocols`.
//!
//! Until then the upgrade request went through every pipeline check like
//! any other request (route, Origin, session). Any other answer from PSU is
//! returned as a normal response and the client connection stays HTTP, so a
//! refused upgrade can never turn into an unauthenticated tunnel.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use http::{Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::rules::headers::{self, X_REQUEST_ID};
use crate::transport::slot::ConnectionSlot;
use crate::transport::upstream::Body;
use crate::transport::watchdog::{Activity, Watched};

/// An HTTP/1.1 `Upgrade: websocket` request (h2's extended CONNECT is
/// refused earlier as CONNECT).
pub fn wants_websocket(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && headers::has_token(headers, UPGRADE, "websocket")
        && headers::has_token(headers, CONNECTION, "upgrade")
}

/// The client side of an upgrade: its pending connection, its
/// `Sec-WebSocket-Key`, and the connection slot the tunnel keeps.
pub struct Client {
    pub upgrade: OnUpgrade,
    pub key: Option<HeaderValue>,
    pub slot: Option<ConnectionSlot>,
}

/// Whether PSU's 101 is the WebSocket handshake for this client's key.
pub fn is_websocket_accept(upstream: &HeaderMap, client_key: Option<&HeaderValue>) -> bool {
    let upgraded_to_websocket = headers::has_token(upstream, UPGRADE, "websocket");
    let expected = client_key.map(|key| derive_accept_key(key.as_bytes()));
    let accept = upstream
        .get(SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok());
    upgraded_to_websocket && expected.is_some() && accept == expected.as_deref()
}

/// Restores the two hop-by-hop headers the rewrite stripped; everything
/// else (`Sec-WebSocket-*`) is end-to-end and already there.
pub fn set_upgrade_headers(headers: &mut HeaderMap) {
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
}

/// Answers the client with PSU's 101 and splices the two upgraded
/// connections once both sides switched; closed after `idle` without a byte.
pub fn open(
    mut upstream: Response<Incoming>,
    client: Client,
    idle: Duration,
    request_id: &HeaderValue,
) -> Response<Body> {
    let upstream_upgrade = hyper::upgrade::on(&mut upstream);
    tokio::spawn(async move {
        let _slot = client.slot;
        let both = async { tokio::join!(client.upgrade, upstream_upgrade) };
        // Both sides switch right after the 101; a side that never does
        // must not hold the slot.
        let Ok(both) = tokio::time::timeout(Duration::from_secs(10), both).await else {
            tracing::debug!("a WebSocket upgrade did not complete in time");
            return;
        };
        let (client, upstream) = match both {
            (Ok(client), Ok(upstream)) => (client, upstream),
            _ => {
                tracing::debug!("a WebSocket upgrade did not complete on both sides");
                return;
            }
        };
        let activity = Activity::new(true);
        let mut client = Watched::new(TokioIo::new(client), activity.clone());
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                tracing::debug!(?copied, "WebSocket tunnel closed");
            }
            () = activity.idle(idle) => tracing::debug!(?idle, "WebSocket tunnel idle, closed"),
        }
    });
    let (mut parts, _) = upstream.into_parts();
    headers::strip_response_hop_by_hop(&mut parts.headers);
    set_upgrade_headers(&mut parts.headers);
    parts.headers.insert(X_REQUEST_ID, request_id.clone());
    Response::from_parts(
        parts,
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    http::header::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn only_the_handshake_for_this_key_opens_a_tunnel() {
        // RFC 6455's example key and accept.
        let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
        let good = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert!(is_websocket_accept(&good, Some(&key)));
        let cases = [
            headers(&[
                ("upgrade", "h2c"),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ]),
            headers(&[("upgrade", "websocket")]),
            headers(&[("upgrade", "websocket"), ("sec-websocket-accept", "wrong")]),
            headers(&[]),
        ];
        for upstream in &cases {
            assert!(!is_websocket_accept(upstream, Some(&key)), "{upstream:?}");
        }
        assert!(!is_websocket_accept(&good, None));
    }
}

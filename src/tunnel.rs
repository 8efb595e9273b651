//! WebSocket pass-through: the connection becomes a byte tunnel only after
//! PSU answered `101 Switching Protocols`.
//!
//! Until then the upgrade request went through every pipeline check like
//! any other request (route, Origin, session). Any other answer from PSU is
//! returned as a normal response and the client connection stays HTTP, so a
//! refused upgrade can never turn into an unauthenticated tunnel.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use http::{Response, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::headers::{self, X_REQUEST_ID};
use crate::upstream::Body;
use crate::watchdog::{Activity, Watched};

/// An HTTP/1.1 `Upgrade: websocket` request (h2's extended CONNECT is
/// refused earlier as CONNECT).
pub fn wants_websocket(version: Version, headers: &HeaderMap) -> bool {
    let has = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    version == Version::HTTP_11 && has(UPGRADE, "websocket") && has(CONNECTION, "upgrade")
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
    client: OnUpgrade,
    idle: Duration,
    request_id: &HeaderValue,
) -> Response<Body> {
    let upstream_upgrade = hyper::upgrade::on(&mut upstream);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client, upstream_upgrade) {
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

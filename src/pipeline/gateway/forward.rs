//! Step 10 in the gateway: the request PSU receives (strip, then set; the
//! pure rewrite is `pipeline/rewrite.rs`) and step 12, the response the
//! client receives.

use std::sync::Arc;

use http::header::HeaderValue;
use http::{Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::config::UpstreamProtocol;
use crate::pipeline::credential::ActiveToken;
use crate::pipeline::problem::Rejection;
use crate::pipeline::rewrite::{rewrite_head, HeadRewrite};
use crate::pipeline::session::SessionAuth;
use crate::rules::headers::{self, X_REQUEST_ID};
use crate::rules::routes::{Access, Route};
use crate::transport::body::{FaultFlag, GuardedBody};
use crate::transport::upstream::Body;

use super::{Exchange, Gateway};

impl Gateway {
    /// The Host PSU sees: the client's (PSU builds links from it) unless
    /// `upstream.preserve_host = false`.
    pub(super) fn upstream_host<'a>(&'a self, host: &'a str) -> &'a str {
        if self.config.upstream.preserve_host {
            host
        } else {
            self.upstream.authority().as_str()
        }
    }

    /// The request for PSU, and the app token it carries (inject routes).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rewrite(
        &self,
        request: Request<Incoming>,
        route: &Route,
        ex: &Exchange<'_>,
        path: &str,
        host: &str,
        cookie: Option<String>,
        own_token: Option<Arc<ActiveToken>>,
        fault: &FaultFlag,
    ) -> Result<(Request<Body>, Option<Arc<ActiveToken>>), Rejection> {
        let (mut parts, body) = request.into_parts();
        let uri = self
            .upstream
            .uri(path, parts.uri.query())
            .ok_or(Rejection::Unforwardable)?;
        let upstream_host = HeaderValue::from_str(self.upstream_host(host))
            .map_err(|_| Rejection::Unforwardable)?;
        let credential_header = self.config.credential.as_ref().map(|c| &c.header);
        // One load: the token logged is the token sent, even when the file
        // rotates mid-request. In per-user mode the operator's token (a
        // granting token) is never injected.
        let token = match (route.access, own_token, &self.token) {
            (Access::Inject, Some(own), _) => Some(own),
            (Access::Inject, None, Some(store)) if self.user_tokens.is_none() => {
                Some(store.current())
            }
            _ => None,
        };
        rewrite_head(
            &mut parts.headers,
            cookie,
            HeadRewrite {
                route,
                keep_te_trailers: parts.version >= Version::HTTP_2,
                trusted_peer: ex.trusted,
                session_cookies: self
                    .sessions
                    .as_ref()
                    .map_or(&[][..], SessionAuth::cookie_names),
                credential_header,
                peer: ex.peer.ip().to_canonical(),
                host,
                upstream_host,
                request_id: ex.request_id,
                token: token.as_ref().map(|t| &t.header_value),
            },
        );
        parts.uri = uri;
        // The connection's slot and pin stay with the client connection:
        // the upstream connection must never hold them (a pinned driver
        // holding its own pin would never end).
        parts.extensions.clear();
        parts.version = match self.config.upstream.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2 => Version::HTTP_2,
        };
        let body = GuardedBody::new(
            body,
            self.config.limits.max_body_bytes,
            self.config.limits.body_timeout,
            fault.clone(),
        );
        let request = Request::from_parts(parts, body.map_err(Into::into).boxed());
        Ok((request, token))
    }
}

pub(super) fn rewrite_response(
    response: Response<Incoming>,
    route: &Route,
    request_id: &HeaderValue,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    headers::strip_response_hop_by_hop(&mut parts.headers);
    if route.access.needs_session() {
        headers::mark_private(&mut parts.headers);
    }
    parts.headers.insert(X_REQUEST_ID, request_id.clone());
    Response::from_parts(parts, body.map_err(Into::into).boxed())
}

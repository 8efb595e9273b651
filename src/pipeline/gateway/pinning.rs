//! Windows authentication (behaviour.md, "Windows authentication"): which
//! connection a request goes over when PSU authenticates connections
//! rather than requests (NTLM, Negotiate).
//!
//! Only routes that forward client credentials take part; elsewhere the
//! credentials are stripped by the rewrite and the pool serves as always.

use std::sync::Arc;

use http::{Request, Response, Version};
use hyper::body::Incoming;

use crate::config::WindowsAuth;
use crate::pipeline::problem::Rejection;
use crate::rules::routes::Route;
use crate::rules::windows_auth::{
    carries_connection_auth, challenges_connection_auth, strip_connection_auth,
};
use crate::transport::pinned::ClientPin;

use super::Gateway;

/// Where the request goes.
pub(super) enum Carrier {
    /// A pooled connection, shared with other clients.
    Pool,
    /// This client connection's own upstream connection.
    Pin(Arc<ClientPin>),
}

impl Gateway {
    /// Before the rewrite: "off" strips the credentials; "pin" sends an
    /// HTTP/2 client that offers them back to HTTP/1.1 and chooses the
    /// pinned connection for a client connection that is (or now becomes)
    /// pinned.
    pub(super) fn carrier(
        &self,
        request: &mut Request<Incoming>,
        route: &Route,
    ) -> Result<Carrier, Rejection> {
        match self.config.upstream.windows_auth {
            WindowsAuth::Off => {
                strip_connection_auth(request.headers_mut());
                return Ok(Carrier::Pool);
            }
            WindowsAuth::Pin if !route.forwards_client_credentials() => return Ok(Carrier::Pool),
            WindowsAuth::Pin => {}
        }
        let offered = carries_connection_auth(request.headers());
        if request.version() >= Version::HTTP_2 {
            return match offered {
                true => Err(Rejection::Http11Required),
                false => Ok(Carrier::Pool),
            };
        }
        match request.extensions().get::<Arc<ClientPin>>() {
            Some(pin) if offered || pin.is_pinned() => Ok(Carrier::Pin(pin.clone())),
            _ => Ok(Carrier::Pool),
        }
    }

    /// After a pooled answer: a 401 offering NTLM or Negotiate pins an
    /// HTTP/1.1 client connection, so the client's answer to it goes over
    /// its own upstream connection, and sends an HTTP/2 client to HTTP/1.1.
    pub(super) fn after_pooled_answer(
        &self,
        route: &Route,
        version: Version,
        pin: Option<&Arc<ClientPin>>,
        response: &Response<Incoming>,
    ) -> Result<(), Rejection> {
        let watched = self.config.upstream.windows_auth == WindowsAuth::Pin
            && route.forwards_client_credentials();
        if !watched || !challenges_connection_auth(response.status(), response.headers()) {
            return Ok(());
        }
        if version >= Version::HTTP_2 {
            return Err(Rejection::Http11Required);
        }
        if let Some(pin) = pin {
            pin.pin();
        }
        Ok(())
    }
}

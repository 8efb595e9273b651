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

/// Where the request goes, and what a challenge in its answer does.
pub(super) enum Carrier {
    /// A pooled connection; Windows authentication plays no part.
    Pool,
    /// A pooled connection; a challenge in the answer pins this HTTP/1.1
    /// client connection, so the client's reply goes over its own.
    PoolUntilChallenged(Arc<ClientPin>),
    /// A pooled connection; a challenge in the answer sends this HTTP/2
    /// client to HTTP/1.1.
    PoolUntilChallengedOnH2,
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
                false => Ok(Carrier::PoolUntilChallengedOnH2),
            };
        }
        Ok(match request.extensions().get::<Arc<ClientPin>>() {
            Some(pin) if offered || pin.is_pinned() => Carrier::Pin(pin.clone()),
            Some(pin) => Carrier::PoolUntilChallenged(pin.clone()),
            None => Carrier::Pool,
        })
    }
}

impl Carrier {
    /// After a pooled answer: a 401 offering NTLM or Negotiate pins the
    /// connection (HTTP/1.1) or sends the client to HTTP/1.1 (HTTP/2).
    pub(super) fn after_answer(&self, response: &Response<Incoming>) -> Result<(), Rejection> {
        let challenged = || challenges_connection_auth(response.status(), response.headers());
        match self {
            Carrier::PoolUntilChallenged(pin) if challenged() => pin.pin(),
            Carrier::PoolUntilChallengedOnH2 if challenged() => {
                return Err(Rejection::Http11Required)
            }
            Carrier::Pool
            | Carrier::PoolUntilChallenged(_)
            | Carrier::PoolUntilChallengedOnH2
            | Carrier::Pin(_) => {}
        }
        Ok(())
    }
}

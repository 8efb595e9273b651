//! Serving clients: the TLS listener and its accept loop, the PROXY
//! protocol header a trusted balancer sends first, and the
//! [`generation::Generation`] (pipeline, TLS acceptor, HTTP settings) each
//! connection and request is served with.
//!
//! May use: [`crate::pipeline`], [`crate::transport`], [`crate::config`],
//! [`crate::rules`], the shared types.

pub mod generation;
pub mod listener;
pub mod proxy_protocol;

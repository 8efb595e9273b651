//! The request pipeline: [`gateway::Gateway`] runs behaviour.md's steps in
//! order (target and Host, path, header sanity, route, CSRF, session,
//! rewrite with the credential, forward, response) and answers every refusal as problem+json.
//!
//! The stateful steps live here (the session cache and its introspection,
//! the app token in use, each user's own granted token), with the metrics
//! every layer counts into, so a request's whole decision is made in one
//! layer.
//!
//! May use: [`crate::transport`], [`crate::config`], [`crate::rules`], the
//! shared types.

pub mod credential;
pub mod gateway;
pub mod grants;
pub mod metrics;
pub mod problem;
pub mod record;
pub mod rewrite;
pub mod session;

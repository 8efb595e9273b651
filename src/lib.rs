//! psu-gateway: a TLS reverse proxy that stands where IIS would in front of
//! PowerShell Universal, checks the dashboard user's session with PSU, and
//! injects a server-side app token only on allowlisted routes.
//!
//! The request path is [`proxy::Gateway::handle`]; the pure pieces it is
//! built from ([`path`], [`routes`], [`headers`], [`cookies`], [`csrf`],
//! [`target`], [`rewrite`]) are public so tests and benches can drive them
//! directly.

pub mod admin;
pub mod body;
pub mod check;
pub mod config;
pub mod cookies;
pub mod csrf;
pub mod demo;
pub mod devcert;
pub mod doctor;
pub mod duration;
pub mod headers;
pub mod live;
pub mod logline;
pub mod metrics;
pub mod path;
pub mod problem;
pub mod proxy;
pub mod proxy_protocol;
pub mod rewrite;
pub mod rotation;
pub mod routes;
pub mod secret;
pub mod server;
pub mod session;
pub mod signals;
pub mod sim;
pub mod target;
pub mod tls;
pub mod token;
pub mod tunnel;
pub mod upstream;
pub mod watchdog;
pub mod workers;

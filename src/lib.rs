//! psu-gateway: a TLS reverse proxy that stands where IIS would in front of
//! PowerShell Universal, checks the dashboard user's session with PSU, and
//! injects a server-side app token only on allowlisted routes.
//!
//! The modules are layers, bottom to top; each uses only those below it:
//!
//! | layer | what lives there |
//! |---|---|
//! | [`secret`], [`duration`], [`rate`], [`report`] | shared types: redacted secrets, human durations, rates and per-client limiters, error chains |
//! | [`rules`] | pure request rules: path, routes, headers, cookies, CSRF, target |
//! | [`config`] | raw TOML to a validated [`config::Config`]; certificates and the token read as values |
//! | [`transport`] | the upstream client, bodies, tunnel, timers, workers, connection slots |
//! | [`pipeline`] | the request steps and [`pipeline::gateway::Gateway`], which runs them |
//! | [`serve`] | the TLS listener, the PROXY protocol, the generation each connection uses |
//! | [`control`] | the process: start, reload, rotation, signals, admin, log lines |
//! | [`cli`], [`doctor`], [`sim`] | the commands, the deployment doctor, the PSU simulator |
//!
//! The request path is [`pipeline::gateway::Gateway::handle`]; the pure
//! pieces it is built from are public so tests and benches can drive them
//! directly.

pub mod duration;
pub mod rate;
pub mod report;
pub mod secret;

pub mod rules;

pub mod config;

pub mod transport;

pub mod pipeline;

pub mod serve;

pub mod control;

pub mod cli;
pub mod doctor;
pub mod sim;

//! The running process: starting and stopping it, reloading the config,
//! re-reading rotated token and certificate files, the process signals,
//! the admin listener (health, metrics, reload) and the log line format.
//!
//! Platform-specific code sits behind one module per concern
//! ([`signals`]), with the `#[cfg]` inside it.
//!
//! May use: [`crate::serve`], [`crate::pipeline`], [`crate::transport`],
//! [`crate::config`], [`crate::rules`], the shared types.

pub mod admin;
pub mod live;
pub mod logline;
pub mod rotation;
pub mod run;
pub mod service;
pub mod signals;

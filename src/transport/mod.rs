//! The I/O the pipeline drives: the pooled client towards PSU and the
//! connections pinned to one client connection (NTLM / Negotiate), the request
//! body as it streams there, the WebSocket tunnel after a `101`, the
//! per-connection timers, the per-core worker runtimes and the connection
//! slot each served connection holds.
//!
//! Nothing here knows a route or a session: these pieces move bytes under
//! the limits `[limits]` and `[upstream]` set.
//!
//! May use: [`crate::config`], [`crate::rules`], the shared types.

pub mod body;
pub mod pinned;
pub mod slot;
pub mod tunnel;
pub mod upstream;
pub mod watchdog;
pub mod workers;

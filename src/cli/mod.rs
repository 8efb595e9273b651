//! What the commands print and set up beyond running the gateway: the
//! effective route table (`check`), the demo on loopback (`demo`) and
//! self-signed development certificates (`devcert`). `main.rs` parses the
//! command line and calls these, [`crate::doctor`] and [`crate::sim`].
//!
//! May use: every layer below.

pub mod check;
pub mod demo;
pub mod devcert;

//! Integration tests: real TLS to a gateway on 127.0.0.1:0, the PSU
//! simulator as upstream, assertions on what the simulator received.

mod child;
mod support;

mod admin;
mod admission;
mod browser;
mod cli;
mod cookies;
mod credentials;
mod curl;
mod demo;
mod doctor;
mod failures;
mod h2_attacks;
mod haproxy;
mod inject;
mod keys;
mod logfile;
mod per_user;
mod pfx;
mod pitfalls;
mod proxy_protocol;
mod rejections;
mod reload;
mod rotation;
mod session_cache;
mod shutdown;
mod simulator;
mod slow_peers;
mod smuggling;
mod streaming;
mod systemd;
mod tls_policy;
mod upstream;
mod websocket;
mod windows_auth;
mod wine;
mod workers;

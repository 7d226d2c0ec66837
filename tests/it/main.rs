//! Every integration test in one binary: one link instead of a dozen on two cores. Each module starts real
//! servers on `127.0.0.1:0`; `support` holds the builders they share.
// Test helpers are `pub` so every module can use them; nothing outside this binary can.
#![allow(unreachable_pub)]

mod support;

mod admin_api;
mod admin_metrics;
mod admin_wiring;
mod cli;
mod crash;
mod loadtest;
mod no_leaks;
mod proxy_core;
mod refresh_repair;
mod reload;
mod sim_flow;
mod sim_tls;
mod token_routing;

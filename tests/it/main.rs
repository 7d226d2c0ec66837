//! Every integration test in one binary: one link instead of a dozen on two cores. Each module starts real
//! servers on `127.0.0.1:0`; `support` holds the builders they share.
// Modules that drive the stand-in (`tokenroute::sim`) need the `sim` feature.
// Test helpers are `pub` so every module can use them; nothing outside this binary can.
#![allow(unreachable_pub)]

mod support;

mod admin_api;
mod admin_metrics;
#[cfg(feature = "sim")]
mod admin_wiring;
mod certs;
mod cli;
#[cfg(feature = "sim")]
mod crash;
#[cfg(feature = "sim")]
mod demo;
mod edge;
mod fuzz_corpora;
mod layers;
mod listener_certificates;
#[cfg(feature = "sim")]
mod loadtest;
#[cfg(feature = "sim")]
mod loadtest_oauth2;
#[cfg(feature = "sim")]
mod no_leaks;
#[cfg(feature = "sim")]
mod oauth2_repair;
#[cfg(feature = "sim")]
mod oauth2_sim;
mod operations;
mod packaging;
mod proxy_core;
mod proxy_protocol;
#[cfg(feature = "sim")]
mod redis_shared;
#[cfg(feature = "sim")]
mod refresh_repair;
mod reload;
mod request_id;
#[cfg(feature = "sim")]
mod resolve_insecure;
#[cfg(feature = "sim")]
mod sim_flow;
#[cfg(feature = "sim")]
mod sim_tls;
#[cfg(feature = "sim")]
mod status_page;
#[cfg(feature = "sim")]
mod token_routing;
mod tunnel;
mod workers;

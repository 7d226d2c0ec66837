//! The OAuth 2 / OpenID Connect sibling of the ClearQuest-Web stand-in: authorization-server nodes that keep
//! clients, codes, tokens, device codes, pushed requests and sessions in their own memory, and a client
//! that plays every grant through whatever sits in front of them (issue 13).
//!
//! - [`wire`]: endpoint paths, parameter and error names, JSON documents (shared by node and client).
//! - [`node`]: one authorization server on `127.0.0.1`, answering unknown credentials as a real one does.
//! - [`memory`]: what a node keeps in memory, and the token bookkeeping on it.
//! - [`cluster`]: several nodes sharing one user directory and nothing else.
//! - [`client`]: the scripted client and [`run_flows`]; [`report`]: per-step outcomes and the table.
//! - [`basic`], [`pkce`], [`jwt`]: `client_secret_basic` (RFC 6749 §2.3.1), PKCE `S256`, `HS256` id_tokens.
//!
//! Unlike the OAuth 1 stand-in there is no shared repository of clients: a client registered on one node is
//! unknown to the others for good, as with an in-memory client store. Only users are shared.

pub mod basic;
pub mod client;
pub mod cluster;
pub mod jwt;
mod memory;
pub mod node;
pub mod pkce;
pub mod report;
pub mod wire;

pub use client::{run_flows, AuthMethod, FlowOptions, Grant, StepEvent, StepObserver};
pub use cluster::{Cluster, ClusterBuilder};
pub use node::{Node, NodeConfig, NodeStats};
pub use report::{Failure, FlowReport, FlowResult, Step, StepOutcome};

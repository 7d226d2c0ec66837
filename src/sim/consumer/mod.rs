//! The scripted OSLC consumer (what Rational Team Concert does when it befriends a ClearQuest database).
//!
//! One flow: discovery → register a consumer key (server to server) → an administrator's browser logs in,
//! opens and submits the approval page → request token (server to server) → the user's browser opens and
//! submits the authorize page and follows the redirect to a callback this consumer serves itself → access
//! token (server to server) → three protected reads (server to server).
//!
//! Server-to-server calls carry no cookies and share **one** keep-alive connection pool across all flows, so
//! a balancer that picks a node per connection rather than per request is caught. Each browser has its own
//! client and its own cookies.
//!
//! By role:
//! - `flow`: [`run_flows`] and the steps of one flow, in order.
//! - `options`: what a run does ([`FlowOptions`], [`ParamMode`]) and the per-step [`StepObserver`].
//! - `client`: the server-to-server [`HttpClient`] (signed exchanges, whole replies).
//! - `browser`: a [`Browser`] with its own cookie jar (approval and authorize pages).
//! - `callback`: the consumer's own callback endpoint ([`CallbackServer`]).
//! - `tls`: the client TLS configuration and CA files (or `--insecure`).
//! - `resolve`: `--resolve HOST:PORT:ADDR`, a TCP connector dialling another address for a host and port.
//! - `report`: per-flow outcomes, per-step totals and the text table ([`FlowReport`]).

mod browser;
mod callback;
mod client;
mod flow;
mod options;
mod report;
mod resolve;
mod tls;

pub use browser::Browser;
pub use callback::CallbackServer;
pub use client::{sign_now, HttpClient, Reply, Served, TokenPair};
pub use flow::run_flows;
pub use options::{FlowOptions, ParamMode, StepEvent, StepObserver};
pub use report::{Failure, FlowReport, FlowResult, Step, StepOutcome, StepSummary};
pub use resolve::{Resolve, ResolvingConnector};
pub use tls::{insecure_tls_client_config, read_ca_file, tls_client_config};

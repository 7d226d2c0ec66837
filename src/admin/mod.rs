//! Operating tokenroute: the admin HTTP API and the metrics registry.
//!
//! - [`names`]: every exported metric and label name, in one place.
//! - [`metrics`]: [`Metrics`], lock-free counters the proxy bumps per request, rendered in the Prometheus text
//!   format against a [`MetricsView`] of the current nodes and table.

pub mod metrics;
pub mod names;

pub use metrics::{Metrics, MetricsView, NodeView, RefreshTrigger, ReplayOutcome};

//! Below both the proxy and the upstream side: the body type relayed in both directions (idle timeouts, buffering
//! under a cap, a request body reclaimable for a retry) and TLS configuration for either leg.

pub mod body;
pub mod tls;

//! Below both the proxy and the upstream side: the body type relayed in both directions (idle timeouts, buffering
//! under a cap, a request body reclaimable for a retry) and TLS configuration for either leg.

pub(crate) mod body;
pub(crate) mod tls;
pub(crate) mod worker;

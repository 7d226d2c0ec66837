//! The learned table: credential fingerprints → owner sets.

pub mod owners;

pub use owners::{NodeId, NodeSet, MAX_NODES};

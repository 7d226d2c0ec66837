//! Pure extraction of OAuth credentials from requests and responses.

pub mod kind;
pub mod percent;

pub use kind::{CredentialKind, Specificity};

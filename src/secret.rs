//! Secrets as a newtype: a redacting `Debug`, no `Display`, no `Serialize`.
//!
//! Anything that would let a credential leak (a token, a password, a key) is held in a [`Secret`] so that
//! a stray `{:?}` in a log line prints `Secret(***)` instead of the value.

use std::fmt;

/// A secret string (password, token, key). Read it with [`Secret::expose`], deliberately and visibly.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Call sites are where a secret leaves its box: keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let s = Secret::new("hunter2-canary");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2-canary");
    }
}

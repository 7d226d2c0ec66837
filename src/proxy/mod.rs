//! proxy (under construction).

//! server (under construction).

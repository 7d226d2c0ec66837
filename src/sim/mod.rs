//! sim (under construction).

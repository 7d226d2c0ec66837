//! Timers shared by the background tasks. Everything reads tokio's clock, so tests can pause it.

use std::time::Duration;

/// A ticker whose first tick is one `period` from now; ticks missed under load are skipped, not bunched.
pub(crate) fn periodic(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick
}

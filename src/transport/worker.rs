//! Which connection worker runs the calling thread (`server::Workers` sets it when a worker starts), so that a
//! structure shared by every worker can keep a slice per worker (the upstream idle connections).

use std::cell::Cell;

thread_local! {
    /// 1-based index of the worker running on this thread; 0 on any other thread.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// `1..=n` on a worker thread, 0 elsewhere (the control runtime, tests).
pub(crate) fn current() -> usize {
    WORKER.with(Cell::get)
}

/// Marks the calling thread as worker `index` (1-based) for the rest of its life.
pub(crate) fn set_current(index: usize) {
    WORKER.with(|w| w.set(index));
}

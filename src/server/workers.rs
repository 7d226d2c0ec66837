//! Connection workers: one thread per worker, each running its own single-threaded (`current_thread`) tokio
//! runtime, in the thread-per-core shape of the fastest proxies.
//!
//! An accepted connection is handed to one worker and lives there to its end: its HTTP exchange, the task
//! driving each upstream connection it opens, and the work a request spawns (a fan-out, a learn) all run on
//! that worker's thread. Nothing on the request path wakes another thread, and the scheduler needs no
//! cross-thread queues. The only hand-over is at accept: the socket is moved from the accepting runtime to
//! the chosen worker's (two `epoll_ctl` calls per connection, none per request). One exception: with
//! `store = "redis"`, a command goes through the store's multiplexed connection, whose driver runs on the
//! control runtime (a local hit, the common case, sends none).
//!
//! A worker is chosen by the fewest open connections (ties to the lowest index), so long keep-alive
//! connections do not pile up on one thread the way a plain rotation can leave them.
//!
//! The accept loops, the admin API, health checks and the other background loops stay on the runtime that
//! called [`Workers::start`] (the control runtime); shared state (the learned table, the generation in force,
//! health) is read from every worker without locks held across requests.
//!
//! Upstream connection pools are kept per worker (`transport::worker` names the thread's worker), so a pooled
//! connection is reused on the thread whose task drives it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::transport::worker;

/// The running workers. Dropping this stops them: each runtime shuts down and drops the tasks left on it (by
/// then the listeners have drained).
#[derive(Debug)]
pub struct Workers {
    workers: Vec<Worker>,
    /// Open connections per worker (the metrics' `tokenroute_worker_connections_open`), decremented when a
    /// connection's task ends.
    open: Arc<[AtomicU64]>,
}

#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Taken (dropped) to stop the worker; dropping `Workers` drops it too.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Workers {
    /// Starts one worker thread per counter of `open` (`Metrics::worker_connections`), named
    /// `tokenroute-worker-<i>`; each counter then holds its worker's open connections.
    pub fn start(open: Arc<[AtomicU64]>) -> std::io::Result<Workers> {
        let count = open.len();
        if count == 0 {
            return Err(std::io::Error::other("no connection worker to start"));
        }
        let mut workers = Vec::with_capacity(count);
        for index in 1..=count {
            let (stop, stopped) = oneshot::channel::<()>();
            let (ready, handle) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("tokenroute-worker-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    worker::set_current(index);
                    let _ = ready.send(Ok(runtime.handle().clone()));
                    // A current-thread runtime runs its tasks only inside `block_on`: this is the worker's life.
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    runtime.shutdown_background();
                })?;
            let handle = handle
                .recv()
                .map_err(|_| std::io::Error::other("a worker thread ended while starting"))??;
            workers.push(Worker {
                handle,
                stop: Mutex::new(Some(stop)),
                thread: Mutex::new(Some(thread)),
            });
        }
        Ok(Workers { workers, open })
    }

    /// Open connections per worker, in worker order.
    pub fn open_connections(&self) -> Vec<u64> {
        self.open
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    /// Moves `stream` to the worker with the fewest open connections and runs `serve` on it there.
    pub fn spawn_connection<F, Fut>(&self, stream: TcpStream, serve: F) -> std::io::Result<()>
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let index = self.least_loaded();
        // Out of this runtime's reactor; the worker registers it with its own.
        let stream = stream.into_std()?;
        let open = self.open.clone();
        open[index].fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard { open, index };
        self.workers[index].handle.spawn(async move {
            let _guard = guard;
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register a connection with its worker")
                }
            }
        });
        Ok(())
    }

    fn least_loaded(&self) -> usize {
        self.open
            .iter()
            .enumerate()
            .min_by_key(|(_, n)| n.load(Ordering::Relaxed))
            .map_or(0, |(i, _)| i)
    }

    /// Stops every worker and waits for its thread to end (tasks still on a worker are dropped). Later
    /// connections handed over are dropped at once.
    pub fn stop(&self) {
        for worker in &self.workers {
            drop(worker.stop.lock().take());
        }
        for worker in &self.workers {
            if let Some(thread) = worker.thread.lock().take() {
                let _ = thread.join();
            }
        }
    }
}

/// Counts a connection as open on its worker until its task ends (or is dropped with the runtime).
struct OpenGuard {
    open: Arc<[AtomicU64]>,
    index: usize,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.open[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::worker::current;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn counters(n: usize) -> Arc<[AtomicU64]> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    /// Accepts `n` connections from a local listener.
    async fn connections(n: usize) -> (Vec<TcpStream>, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut accepted = Vec::new();
        for _ in 0..n {
            clients.push(TcpStream::connect(addr).await.unwrap());
            accepted.push(listener.accept().await.unwrap().0);
        }
        (clients, accepted)
    }

    #[tokio::test]
    async fn connections_go_to_the_worker_with_the_fewest_open_and_run_on_its_thread() {
        let workers = Workers::start(counters(2)).unwrap();
        let (mut clients, accepted) = connections(4).await;
        for stream in accepted {
            workers
                .spawn_connection(stream, |mut stream| async move {
                    // Echo the worker index, then hold the connection until the client closes.
                    let index = u8::try_from(current()).unwrap();
                    stream.write_all(&[index]).await.unwrap();
                    let mut rest = Vec::new();
                    let _ = stream.read_to_end(&mut rest).await;
                })
                .unwrap();
        }
        let mut seen = Vec::new();
        for client in &mut clients {
            let mut byte = [0u8];
            client.read_exact(&mut byte).await.unwrap();
            seen.push(byte[0]);
        }
        assert_eq!(seen, [1, 2, 1, 2], "alternates while the counts tie");
        assert_eq!(workers.open_connections(), [2, 2]);
        assert_eq!(current(), 0, "the test's own thread is no worker");

        // Two connections of worker 1 close: the next one goes there.
        drop(clients.remove(2));
        drop(clients.remove(0));
        let (mut more, accepted) = connections(1).await;
        // Worker 1 sees both closes (its tasks end on end-of-file).
        let settled = async {
            while workers.open_connections() != [0, 2] {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), settled)
            .await
            .expect("worker 1's connections end after their clients close");
        for stream in accepted {
            workers
                .spawn_connection(stream, |mut stream| async move {
                    let index = u8::try_from(current()).unwrap();
                    stream.write_all(&[index]).await.unwrap();
                })
                .unwrap();
        }
        let mut byte = [0u8];
        more[0].read_exact(&mut byte).await.unwrap();
        assert_eq!(byte[0], 1);
        workers.stop();
    }

    #[test]
    fn stopping_drops_the_tasks_left_on_a_worker() {
        let workers = Workers::start(counters(1)).unwrap();
        let (dropped, gone) = std::sync::mpsc::channel::<()>();
        workers.workers[0].handle.spawn(async move {
            let _held = dropped;
            std::future::pending::<()>().await;
        });
        workers.stop();
        assert!(
            gone.recv().is_err(),
            "the pending task and its sender were dropped"
        );
    }
}

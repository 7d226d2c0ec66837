//! A plain-HTTP/1.1 connection to a node driven inside the request's own future: the request head written,
//! the response head and body read, by whichever task awaits them (issue 12).
//!
//! hyper's client gives every connection a task of its own, and a request reaches it through a channel and
//! comes back through another: three wake-ups and a third of the proxy's user-space instructions on a small
//! answer (`bench/README.md`). Here the request's future writes and reads the socket itself; the response body
//! reads it from the client's connection task. `wire.rs` holds the format, with hyper's answers to every
//! question of framing. TLS nodes, upgrades and requests with a body stay on hyper's client
//! (`client::takes_the_wire_path`).

use std::future::Future as _;
use std::task::{Context, Poll};

use bytes::BytesMut;
use http::{HeaderMap, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wire::{self, Decoded, Decoder, Head, WireError};

/// Bytes read at a time at first, and at least.
const READ_SIZE: usize = 8 * 1024;

/// Bytes read at a time at most.
const MAX_READ_SIZE: usize = 256 * 1024;

/// One connection to a node and its buffers.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet taken (the next head, or the rest of a body).
    read: BytesMut,
    /// The request head being written (kept for its capacity).
    write: Vec<u8>,
    /// Room made for the next read: doubled when a read fills it (answers larger than it then take one
    /// `recv`, not several), halved when a read uses less than a quarter of it.
    read_size: usize,
}

/// Why a request failed, and whether the node can have seen any of it.
#[derive(Debug)]
pub(crate) struct SendError {
    pub error: WireError,
    /// Nothing of the request reached the socket: it can go out on another connection.
    pub unsent: bool,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            read: BytesMut::with_capacity(READ_SIZE),
            write: Vec::with_capacity(512),
            read_size: READ_SIZE,
        }
    }

    /// Whether an idle connection can take a request: the node has not closed it and sent nothing since the
    /// last answer. Costs no system call unless the socket was reported readable (a close or stray bytes).
    pub(crate) fn is_open_and_quiet(&self) -> bool {
        if !self.is_between_answers() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Writes a bodiless request.
    pub(crate) async fn send(
        &mut self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<(), SendError> {
        self.write.clear();
        wire::encode_request(method, target, headers, &mut self.write);
        let mut written = 0;
        while written < self.write.len() {
            match self.stream.write(&self.write[written..]).await {
                Ok(0) => {
                    return Err(SendError {
                        error: WireError::Io(std::io::ErrorKind::WriteZero.into()),
                        unsent: written == 0,
                    })
                }
                Ok(n) => written += n,
                Err(e) => {
                    return Err(SendError {
                        error: WireError::Io(e),
                        unsent: written == 0,
                    })
                }
            }
        }
        Ok(())
    }

    /// Reads the response head (skipping informational answers).
    pub(crate) async fn read_head(&mut self, method: &Method) -> Result<Head, WireError> {
        loop {
            if let Some(head) = wire::parse_head(&mut self.read, method)? {
                return Ok(head);
            }
            let room = self.make_room(self.read_size);
            let n = self
                .stream
                .read_buf(&mut self.read)
                .await
                .map_err(WireError::Io)?;
            if n == 0 {
                return Err(WireError::ClosedBeforeHead);
            }
            self.adapt(n, room);
        }
    }

    /// The body's next piece: decoded from what was read, else read from the socket when it has more.
    pub(crate) fn poll_body(
        &mut self,
        decoder: &mut Decoder,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Decoded, WireError>> {
        let mut eof = false;
        loop {
            match decoder.decode(&mut self.read, eof)? {
                Decoded::NeedMore => {}
                decoded => return Poll::Ready(Ok(decoded)),
            }
            // A known remainder is read whole if it fits.
            let want = decoder
                .remaining()
                .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
                .clamp(self.read_size, MAX_READ_SIZE);
            let room = self.make_room(want);
            let read = std::pin::pin!(self.stream.read_buf(&mut self.read));
            match read.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(WireError::Io(e))),
                Poll::Ready(Ok(n)) => {
                    eof = n == 0;
                    self.adapt(n, room);
                }
            }
        }
    }

    /// Makes room for at least `want` more bytes; returns the room there is.
    fn make_room(&mut self, want: usize) -> usize {
        self.read.reserve(want);
        self.read.capacity() - self.read.len()
    }

    /// Adjusts the next read's room after a read of `n` bytes into `room`.
    fn adapt(&mut self, n: usize, room: usize) {
        self.read_size = next_read_size(self.read_size, n, room);
    }

    /// Whether the connection is between answers: nothing read beyond the last one (after a failed read for
    /// the next answer: the node closed or reset the connection without starting it).
    pub(crate) fn is_between_answers(&self) -> bool {
        self.read.is_empty()
    }
}

/// The room for the next read, after one of `n` bytes into `room` when the target was `current`.
fn next_read_size(current: usize, n: usize, room: usize) -> usize {
    if n >= room {
        (current * 2).min(MAX_READ_SIZE)
    } else if n < current / 4 {
        (current / 2).max(READ_SIZE)
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_fills_its_room_doubles_the_next_and_small_reads_shrink_it_back() {
        let mut size = READ_SIZE;
        // A 40 KiB answer: two full reads, then it fits.
        for _ in 0..2 {
            size = next_read_size(size, size, size);
        }
        assert_eq!(size, 4 * READ_SIZE);
        assert_eq!(
            next_read_size(size, 40 * 1024 - 16 * 1024, size),
            size,
            "a fair share keeps it"
        );
        // Small answers again: back down to the floor, never below.
        for _ in 0..4 {
            size = next_read_size(size, 100, size);
        }
        assert_eq!(size, READ_SIZE);
        // Never above the ceiling.
        assert_eq!(
            next_read_size(MAX_READ_SIZE, MAX_READ_SIZE, MAX_READ_SIZE),
            MAX_READ_SIZE
        );
    }
}

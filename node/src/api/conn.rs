//! One API connection's clock: what it is doing (waiting for a request, reading one's
//! headers, answering), and the socket wrapper that closes it when a client takes too long
//! at any of it.
//!
//! - **idle**: no request in flight and no byte of the next one for `idle` (a new
//!   connection, or a kept-alive one between requests): closed;
//! - **headers**: a request's headers not complete `header` after their first byte (a slow
//!   header, a byte at a time): closed;
//! - **stalled answer**: an answer the client does not read, the socket not writable for
//!   `idle`: closed.
//!
//! Bodies have their own bound, read by the handlers (`error::read_body`). A connection with
//! a request in flight is busy; one without is idle, and the first to go when the server is
//! full.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper::body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// What one connection is doing, shared by its socket wrapper, its requests and the
/// server's registry.
#[derive(Debug)]
pub(crate) struct ConnState {
    inner: Mutex<Times>,
}

#[derive(Debug)]
struct Times {
    /// Requests whose answer is not yet done (more than one only when pipelined).
    in_flight: usize,
    /// Since when it has had no request in flight.
    idle_since: Instant,
    /// The first byte of the next request's headers, once read.
    head_started: Option<Instant>,
    /// The task reading the socket, woken when the last answer is done (its clock
    /// restarts).
    reader: Option<Waker>,
}

impl ConnState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Times {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
                reader: None,
            }),
        })
    }

    fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Idle since when, or `None` while a request is in flight.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        let t = self.times();
        (t.in_flight == 0).then_some(t.idle_since)
    }

    /// A request's headers were read: it is in flight until its answer is done (the
    /// guard's drop).
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        let mut t = self.times();
        t.in_flight += 1;
        t.head_started = None;
        InFlight(self.clone())
    }

    fn read_some(&self) {
        let mut t = self.times();
        if t.in_flight == 0 && t.head_started.is_none() {
            t.head_started = Some(Instant::now());
        }
    }

    /// When a pending read must give up, and why; `None` while a request is in flight
    /// (remembering who to wake when it is done).
    fn read_deadline(
        &self,
        header: Duration,
        idle: Duration,
        waker: &Waker,
    ) -> Option<(Instant, &'static str)> {
        let mut t = self.times();
        if t.in_flight > 0 {
            t.reader = Some(waker.clone());
            return None;
        }
        Some(match t.head_started {
            Some(s) => (s + header, "the request's headers came too slowly"),
            None => (t.idle_since + idle, "the connection was idle"),
        })
    }
}

/// A request in flight; its drop (the answer sent, or dropped) makes the connection idle
/// again when it was the last.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut t = self.0.times();
        t.in_flight = t.in_flight.saturating_sub(1);
        if t.in_flight == 0 {
            t.idle_since = Instant::now();
            if let Some(w) = t.reader.take() {
                w.wake();
            }
        }
    }
}

/// An answer's body that holds its request's [`InFlight`] until it is sent or dropped.
pub(crate) struct Tracked {
    pub(crate) body: Body,
    pub(crate) _guard: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, with the connection's clock: a read or write that waits past its deadline
/// fails (`TimedOut`), and hyper closes the connection.
pub(crate) struct Guarded {
    io: TcpStream,
    conn: Arc<ConnState>,
    header: Duration,
    idle: Duration,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    write_stalled_since: Option<Instant>,
}

impl Guarded {
    pub(crate) fn new(
        io: TcpStream,
        conn: Arc<ConnState>,
        header: Duration,
        idle: Duration,
    ) -> Self {
        let far = Instant::now() + idle;
        Self {
            io,
            conn,
            header,
            idle,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_stalled_since: None,
        }
    }

    /// `Pending`, or the timeout once `deadline` has passed.
    fn wait(
        timer: &mut Pin<Box<Sleep>>,
        deadline: Instant,
        why: &'static str,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn written<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                let since = *self.write_stalled_since.get_or_insert_with(Instant::now);
                match Self::wait(
                    &mut self.write_timer,
                    since + self.idle,
                    "the client did not read its answer",
                    cx,
                ) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Pending,
                }
            }
            done => {
                self.write_stalled_since = None;
                done
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.conn.read_some();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.conn.read_deadline(this.header, this.idle, cx.waker()) {
                None => Poll::Pending,
                Some((deadline, why)) => Self::wait(&mut this.read_timer, deadline, why, cx),
            },
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        this.written(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.written(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.written(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

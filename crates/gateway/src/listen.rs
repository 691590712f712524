//! The accept loop. `axum::serve` has no header-read timeout and no connection cap, so a page or
//! program that opens connections and sends half a request would hold them forever; here hyper's
//! HTTP/1 connection is driven directly with a header-read timeout (also the keep-alive idle
//! time: waiting for the next request is waiting for its header), and connections are capped.
//! At the cap, a new connection takes the place of one that is not serving a request: first the
//! oldest that has not yet sent a whole request (a half-sent header), then the one idle longest
//! since its last answer. So stalled connections can never lock a real client out, and a flood of
//! them does not close a real client's idle keep-alive connection under it. A connection serving
//! a request is never taken; instead one whose client has stopped reading its answer is closed
//! once a write makes no progress for [`Limits::write_stall`] (and the answer is cancelled, as
//! when a client goes away), so clients that stop reading cannot fill the cap either.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::GatewayError;

/// Connection limits; the defaults drop a half-sent request within 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From accepting a connection (or the end of its last answer) to the end of a request's
    /// header; slower connections are closed.
    pub header_read: Duration,
    /// A request body must arrive within this once its header has; else 408.
    pub body_read: Duration,
    /// Connections open at once; above it the oldest connection not serving a request is closed.
    pub max_connections: usize,
    /// A streamed answer that has sent its client nothing for this long sends an SSE comment
    /// (`: keep-alive`), which clients skip: a tool call held back until the upstream ends it,
    /// or a long prompt for the offline model, would otherwise look dead to an idle timeout
    /// (a proxy's, or the client's own).
    pub keep_alive: Duration,
    /// A write to the client (an answer's header or body) that makes no progress for this long
    /// closes the connection, and the answer behind it is cancelled: its client has stopped
    /// reading. Any progress (the client read something, so the kernel took more) starts it
    /// again, so a slow reader is never cut while it reads.
    pub write_stall: Duration,
    /// Bytes of request bodies over [`crate::FREE_BODY`] (large image requests) held at once, each
    /// until its answer ends; a request that would pass it waits for room within `body_read`,
    /// else gets 503 with `Retry-After`. Never less than one [`crate::MAX_BODY`].
    pub large_bodies: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(15),
            body_read: Duration::from_secs(30),
            max_connections: 256,
            keep_alive: Duration::from_secs(10),
            write_stall: Duration::from_secs(30),
            large_bodies: 256 * 1024 * 1024,
        }
    }
}

/// One open connection: how many requests it is serving (a response body still streaming
/// counts), when it last finished one, and how to close it.
#[derive(Debug, Default)]
struct Conn {
    busy: AtomicUsize,
    /// 0 until a request has been served, then the [`FINISHED`] count when the last one ended.
    last_answer: AtomicU64,
    evict: CancellationToken,
}

/// Answers finished so far (by any connection): orders connections by when they were last used.
static FINISHED: AtomicU64 = AtomicU64::new(0);

/// Keeps its connection busy while alive: from the request's head to the end of the response.
#[derive(Debug)]
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_answer.store(FINISHED.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds its connection's [`Busy`] until sent (or dropped).
#[derive(Debug)]
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Unsent bytes Linux keeps queued per connection. Without it a writer blocked on a full send
/// buffer (which grows to megabytes on loopback) is woken only once a third of it has drained:
/// a client reading 10 KiB/s would make no visible progress for a minute and be taken for one
/// that stopped ([`Limits::write_stall`]). With it a write resumes once the client has read
/// about 8 KiB. (Everything the client has not read yet still waits in its own receive buffer.)
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOTSENT_LOWAT: u32 = 16 * 1024;

/// Open connections by accept order (oldest first).
type Table = Mutex<BTreeMap<u64, Arc<Conn>>>;

/// Closes a connection that serves no request: the oldest that has never sent a whole request,
/// else the one idle longest since its last answer; false if every one is busy.
fn evict_one(table: &Table) -> bool {
    let table = table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let idle = table.iter().filter(|(_, c)| c.busy.load(Ordering::SeqCst) == 0 && !c.evict.is_cancelled());
    // (served, when): never-served ones first, by accept order; then by their last answer.
    match idle.min_by_key(|(id, c)| match c.last_answer.load(Ordering::SeqCst) {
        0 => (false, **id),
        last => (true, last),
    }) {
        Some((_, c)) => {
            c.evict.cancel();
            true
        }
        None => false,
    }
}

/// Serves `app` until `shutdown`; then stops accepting, closes idle connections and waits for
/// the answers in flight. Dropping this future (an aborted task) closes every connection.
pub(crate) async fn run(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let table: Arc<Table> = Arc::default();
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: wait for connections to close.
                    tracing::warn!("gateway accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if evict_one(&table) {
                    tracing::debug!("gateway: at {} connections; closed the oldest idle one", limits.max_connections);
                }
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                    () = &mut shutdown => break,
                }
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            // SSE chunks are small writes; with Nagle each waits for the client's delayed ACK.
            tracing::debug!("TCP_NODELAY: {e}");
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
            tracing::debug!("TCP_NOTSENT_LOWAT: {e}");
        }
        let conn = Arc::new(Conn::default());
        let id = next_id;
        next_id += 1;
        table.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, conn.clone());
        let (app, stop, table) = (app.clone(), stop.clone(), table.clone());
        tasks.spawn(async move {
            let _permit = permit;
            serve_connection(tcp, app, limits, &conn, &stop).await;
            table.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        });
    }
    drop(listener);
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(tcp: tokio::net::TcpStream, app: axum::Router, limits: Limits, conn: &Arc<Conn>, stop: &CancellationToken) {
    let for_requests = conn.clone();
    let service = hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
        let busy = Busy::new(for_requests.clone());
        let mut app = app.clone();
        async move {
            let response = tower_service::Service::call(&mut app, req.map(Body::new)).await.unwrap_or_else(|e: Infallible| match e {});
            Ok::<_, Infallible>(response.map(|inner| Tracked { inner, _busy: busy }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    let served = builder.serve_connection(TokioIo::new(WriteStall::new(tcp, limits.write_stall)), service);
    tokio::pin!(served);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("gateway connection: {e}");
                }
                return;
            }
            () = conn.evict.cancelled(), if !stopping => return,
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A connection's IO whose writes fail (`TimedOut`) once they have been pending, with no byte
/// taken, for `limit`: hyper then drops the connection and with it the response body, which
/// cancels the answer. The clock runs only while a write (or flush) waits for the client (its
/// receive window and our send buffer are full); every byte a write takes stops it.
#[derive(Debug)]
struct WriteStall<T> {
    io: T,
    limit: Duration,
    /// Armed from the first pending write after the last byte taken: when it gives up.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteStall<T> {
    fn new(io: T, limit: Duration) -> Self {
        WriteStall { io, limit, stalled: None }
    }

    /// What a write returned, with the clock stopped once it took bytes.
    fn wrote(&mut self, cx: &mut Context<'_>, r: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match r {
            Poll::Ready(Ok(0)) => r,
            Poll::Ready(_) => {
                self.stalled = None;
                r
            }
            Poll::Pending => self.wait(cx),
        }
    }

    /// A flush or shutdown that completes takes no byte of its own: it neither stops the clock
    /// nor starts it.
    fn flushed(&mut self, cx: &mut Context<'_>, r: Poll<std::io::Result<()>>) -> Poll<std::io::Result<()>> {
        if r.is_ready() {
            return r;
        }
        self.wait(cx)
    }

    /// Pending: starts the clock (or checks it); past the limit, the error that ends the
    /// connection.
    fn wait<R>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match std::future::Future::poll(timer.as_mut(), cx) {
            Poll::Ready(()) => {
                tracing::debug!("gateway: a write made no progress for {limit:?}; the client stopped reading, closing its connection");
                Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading its answer")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteStall<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteStall<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(cx, r)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.flushed(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.flushed(cx, r)
    }
}

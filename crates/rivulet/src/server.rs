//! Running the server: open the data directory, serve HTTP/1.1 and cleartext HTTP/2 on one
//! listener, run the housekeeping timers, and shut down cleanly.
//!
//! The listener and clock are passed in, so tests run many servers on port 0 in one process
//! and move time by hand.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::config::{Config, FsyncPolicy};
use crate::service::Kinesis;
use crate::storage::{Backend, DiskBackend};

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    svc: Arc<Kinesis>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn service(&self) -> &Arc<Kinesis> {
        &self.svc
    }

    /// Stops accepting, finishes in-flight requests and queued writes, and syncs.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let svc = self.svc.clone();
        let _ = tokio::task::spawn_blocking(move || svc.shutdown()).await;
    }
}

/// Opens the data directory on the local disk backend and starts serving on `listener`.
pub async fn start(
    config: Config,
    clock: SharedClock,
    listener: TcpListener,
) -> anyhow::Result<ServerHandle> {
    let backend: Arc<dyn Backend> =
        Arc::new(DiskBackend::new(&config.data_dir, config.segment_bytes_max));
    start_with_backend(config, clock, backend, listener).await
}

pub async fn start_with_backend(
    config: Config,
    clock: SharedClock,
    backend: Arc<dyn Backend>,
    listener: TcpListener,
) -> anyhow::Result<ServerHandle> {
    config.validate().map_err(anyhow::Error::msg)?;
    let addr = listener.local_addr()?;
    let svc =
        tokio::task::spawn_blocking(move || Kinesis::open(config, clock, backend).map(Arc::new))
            .await??;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();

    let app = crate::api::router(svc.clone());
    let limits = ConnectionLimits {
        max: svc.config.max_connections,
        header_read_timeout: Duration::from_millis(svc.config.header_read_timeout_ms),
        write_stall_timeout: Duration::from_millis(svc.config.write_stall_timeout_ms),
    };
    tasks.push(tokio::spawn(serve(listener, app, limits, stopped.clone())));

    let janitor_every = Duration::from_millis(svc.config.janitor_interval_ms);
    tasks.push(every(janitor_every, stopped.clone(), svc.clone(), |svc| {
        svc.tick()
    }));
    tasks.push(tokio::spawn(deliver_notifications(
        svc.clone(),
        stopped.clone(),
    )));
    if let Some(canary) = svc.config.canary.clone() {
        let endpoint = format!("http://{addr}");
        tasks.push(tokio::spawn(crate::canary::run(
            endpoint,
            canary,
            stopped.clone(),
        )));
    }
    if let FsyncPolicy::Interval { ms } = svc.config.fsync {
        tasks.push(every(
            Duration::from_millis(ms),
            stopped.clone(),
            svc.clone(),
            |svc| svc.sync_all(),
        ));
    }
    Ok(ServerHandle {
        addr,
        svc,
        stop,
        tasks,
    })
}

/// Delivers alarm notifications as they fall due, until stopped.
async fn deliver_notifications(svc: Arc<Kinesis>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stopped.changed() => if *stopped.borrow() { return },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if !svc.monitor.outbox.is_empty() {
            crate::monitor::notify::deliver_due(&svc).await;
        }
    }
}

/// How long shutdown waits for open connections to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
struct ConnectionLimits {
    /// Open connections at once; a connection over the limit is closed at accept.
    max: usize,
    header_read_timeout: Duration,
    /// A connection whose peer has read nothing of what it was sent for this long is closed.
    write_stall_timeout: Duration,
}

/// The accept loop: HTTP/1.1 and cleartext HTTP/2 on each connection (the h2 preface is
/// sniffed), at most `limits.max` connections, a deadline on request headers, and a graceful
/// drain on stop.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    mut stopped: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => {
                if *stopped.borrow() {
                    break;
                }
                continue;
            }
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max = limits.max,
                "connection limit reached; closing a new connection"
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(StallGuard::new(stream, limits.write_stall_timeout)),
                service,
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}

/// Runs `job` on a blocking thread every `period` until stopped.
fn every(
    period: Duration,
    mut stopped: watch::Receiver<bool>,
    svc: Arc<Kinesis>,
    job: fn(&Kinesis),
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = timer.tick() => {
                    let svc = svc.clone();
                    let _ = tokio::task::spawn_blocking(move || job(&svc)).await;
                }
                _ = stopped.changed() => {
                    if *stopped.borrow() {
                        return;
                    }
                }
            }
        }
    })
}

/// A connection that fails its writes once the peer has taken nothing for `timeout`: a
/// client that stops reading its response (a 10 MiB GetRecords, an event stream) loses the
/// connection, and the response's memory and in-flight share come back. Reads pass through;
/// idle connections are left alone (they cost a few KiB and count against
/// `--max-connections`).
struct StallGuard<S> {
    inner: S,
    timeout: Duration,
    /// Set while a write is blocked on the peer: when it fires, the write fails.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> StallGuard<S> {
    fn new(inner: S, timeout: Duration) -> StallGuard<S> {
        StallGuard {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// Called with the outcome of a write: progress clears the stall, a pending write
    /// starts it (or checks it) and fails once it has lasted `timeout`.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing for the write-stall timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

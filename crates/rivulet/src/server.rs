//! Running the server: open the data directory, serve HTTP/1.1 and cleartext HTTP/2 on one
//! listener, run the housekeeping timers, and shut down cleanly.
//!
//! The listener and clock are passed in, so tests run many servers on port 0 in one process
//! and move time by hand.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    let mut on_stop = stopped.clone();
    tasks.push(tokio::spawn(async move {
        let shutdown = async move {
            let _ = on_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    }));

    let janitor_every = Duration::from_millis(svc.config.janitor_interval_ms);
    tasks.push(every(janitor_every, stopped.clone(), svc.clone(), |svc| {
        svc.tick()
    }));
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

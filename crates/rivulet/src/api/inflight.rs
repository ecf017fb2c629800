//! The memory that request and response bodies hold, bounded. A request body reserves its
//! length before it is read; GetRecords reserves the most its read and its response can take
//! before it reads, and keeps the response's share until the last byte has been handed to
//! the connection. When the budget (`--inflight-mib`) is spent, a request waits up to
//! a few seconds for its share and is then refused with a retryable `ServiceUnavailable`, so a
//! crowd of slow readers or uploaders cannot push the server out of memory; the write-stall
//! and body deadlines in `server.rs` make sure the share of a client that stopped reading
//! or sending comes back.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{ApiError, ErrorKind};

/// How long a request waits for its share of the budget before it is refused.
pub const WAIT_DEFAULT: Duration = Duration::from_secs(5);

/// Responses are handed to the connection in pieces of this size, each a copy, so the whole
/// response is freed (and its share returned) once the last piece is taken.
const PIECE_BYTES: usize = 64 << 10;

/// Bodies below this size are not counted: a reservation costs more than they do.
pub const UNCOUNTED_BYTES: usize = 64 << 10;

pub struct Inflight {
    budget: Arc<Semaphore>,
    max: usize,
    wait: Duration,
}

/// A share of the budget, returned when dropped.
pub struct Share(Option<OwnedSemaphorePermit>);

impl Inflight {
    pub fn new(max_bytes: usize, wait: Duration) -> Inflight {
        Inflight {
            budget: Arc::new(Semaphore::new(max_bytes)),
            max: max_bytes,
            wait,
        }
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        self.max - self.budget.available_permits()
    }

    /// Reserves `bytes`, waiting a while for them.
    pub async fn reserve(&self, bytes: usize) -> Result<Share, ApiError> {
        if bytes < UNCOUNTED_BYTES {
            return Ok(Share(None));
        }
        let want = bytes.min(self.max) as u32;
        match tokio::time::timeout(self.wait, self.budget.clone().acquire_many_owned(want)).await {
            Ok(Ok(permit)) => Ok(Share(Some(permit))),
            _ => Err(ApiError::new(
                ErrorKind::ServiceUnavailable,
                format!(
                    "The server has {} MiB of request and response bodies in flight, its limit \
                     (--inflight-mib {}); retry the request.",
                    self.in_use() >> 20,
                    self.max >> 20
                ),
            )),
        }
    }
}

impl Inflight {
    /// Reserves as much as is free now, up to `max`; when less than `min` is free, waits a
    /// while for `min`. For work that can do with less (GetRecords reads fewer records).
    pub async fn reserve_up_to(&self, max: usize, min: usize) -> Result<Share, ApiError> {
        let free = self.budget.available_permits();
        if free >= min {
            let want = free.min(max).min(self.max) as u32;
            if let Ok(permit) = self.budget.clone().try_acquire_many_owned(want) {
                return Ok(Share(Some(permit)));
            }
        }
        self.reserve(min).await
    }
}

impl Share {
    /// Bytes this share holds (0 for a body too small to count).
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Keeps `bytes` of the share and returns the rest to the budget.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < UNCOUNTED_BYTES {
            self.0 = None;
        } else if let Some(permit) = &mut self.0
            && permit.num_permits() > bytes
        {
            drop(permit.split(permit.num_permits() - bytes));
        }
    }
}

/// A response body that holds its share until its last piece has been taken.
pub fn held_body(data: Vec<u8>, share: Share) -> Body {
    if share.0.is_none() {
        return Body::from(data);
    }
    Body::from_stream(Pieces {
        data,
        offset: 0,
        _share: share,
    })
}

struct Pieces {
    data: Vec<u8>,
    offset: usize,
    _share: Share,
}

impl futures_core::Stream for Pieces {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.offset >= this.data.len() {
            return Poll::Ready(None);
        }
        let end = (this.offset + PIECE_BYTES).min(this.data.len());
        let piece = Bytes::copy_from_slice(&this.data[this.offset..end]);
        this.offset = end;
        if this.offset == this.data.len() {
            // Free the response and return its share now; the connection keeps only copies.
            this.data = Vec::new();
            this._share = Share(None);
        }
        Poll::Ready(Some(Ok(piece)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_share_is_returned_when_its_body_has_been_taken() {
        let inflight = Inflight::new(1 << 20, WAIT_DEFAULT);
        let share = inflight.reserve(600 << 10).await.unwrap();
        assert_eq!(inflight.in_use(), 600 << 10);
        let body = held_body(vec![7u8; 300 << 10], {
            let mut s = share;
            s.shrink_to(300 << 10);
            s
        });
        assert_eq!(inflight.in_use(), 300 << 10);
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(bytes.len(), 300 << 10);
        assert!(bytes.iter().all(|&b| b == 7));
        assert_eq!(inflight.in_use(), 0);
    }

    #[tokio::test]
    async fn a_spent_budget_refuses_after_the_wait() {
        let inflight = Inflight::new(1 << 20, Duration::from_millis(50));
        let held = inflight.reserve(1 << 20).await.unwrap();
        let refused = inflight.reserve(100 << 10).await.err().unwrap();
        assert_eq!(refused.kind, ErrorKind::ServiceUnavailable);
        assert!(refused.message.unwrap().contains("--inflight-mib 1"));
        drop(held);
        assert!(inflight.reserve(100 << 10).await.is_ok());
        // Work that can do with less takes what is free.
        let held = inflight.reserve(900 << 10).await.unwrap();
        let some = inflight.reserve_up_to(1 << 20, 100 << 10).await.unwrap();
        assert_eq!(some.bytes(), 124 << 10);
        drop((held, some));
        assert_eq!(
            inflight
                .reserve_up_to(600 << 10, 100 << 10)
                .await
                .unwrap()
                .bytes(),
            600 << 10
        );
        // Small bodies are not counted at all.
        let small = inflight.reserve(1000).await.unwrap();
        assert!(small.0.is_none());
    }
}

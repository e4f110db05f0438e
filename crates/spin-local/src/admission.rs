//! Admission into a capped component: a fair, bounded queue in front of its instances.
//!
//! A component may have only so many instances accepting requests ([`InstanceCap`]). When all of
//! them are busy, the `ProxyHandler` tries to start another, the cap refuses it, and the request
//! comes back. Such a request waits here — in arrival order, behind every request that arrived
//! before it — until the component has room: an instance took in the head of the queue (reported
//! by the worker when the request starts, not guessed from time), an instance says it would accept
//! another request, or one retires and frees a place under the cap. Only then is the head handed
//! in again; nothing retries on a timer. A request that finds the queue full is answered
//! `503 Service Unavailable` with `Retry-After` at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

use crate::stats::ComponentStats;

/// How many instances of a component may accept requests at once, and the queue of requests
/// waiting for room in one of them.
pub struct InstanceCap {
    limit: usize,
    accepting: AtomicUsize,
    /// Requests in the queue (waiting to become the head, or the head itself).
    queued: AtomicUsize,
    /// The most requests the queue holds.
    max_queued: usize,
    /// Held by the head of the queue until an instance takes it in; a fair (FIFO) semaphore, so
    /// requests become the head in the order they arrived. While it is held, any sign of room
    /// must wake the head.
    head: Semaphore,
    /// Signalled when there may be room.
    room: Notify,
    /// Where the queue's counters go.
    stats: Arc<ComponentStats>,
}

/// A request's place in the queue; leaving the queue gives it up.
pub struct Place<'a> {
    cap: &'a InstanceCap,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.cap.queued.fetch_sub(1, Relaxed);
    }
}

/// The head of the queue, while it hands its request in; it keeps its place until it is dropped.
pub struct Head<'a> {
    cap: &'a InstanceCap,
    _permit: SemaphorePermit<'a>,
    _place: Place<'a>,
}

impl<'a> Head<'a> {
    /// The next sign of room. Pin it and `enable` it *before* the request is handed in, so room
    /// that appears while the handler refuses the request is not missed.
    pub fn room(&self) -> tokio::sync::futures::Notified<'a> {
        self.cap.room.notified()
    }
}

impl InstanceCap {
    /// A cap of `limit` accepting instances, with a queue of at most `max_queued` requests.
    pub fn new(limit: usize, max_queued: usize, stats: Arc<ComponentStats>) -> Self {
        Self {
            limit,
            accepting: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            max_queued,
            head: Semaphore::new(1),
            room: Notify::new(),
            stats,
        }
    }

    /// Takes a place for a new instance, if there is one.
    pub fn acquire(&self) -> bool {
        self.accepting
            .fetch_update(Relaxed, Relaxed, |n| (n < self.limit).then_some(n + 1))
            .is_ok()
    }

    /// Gives a place back (an instance retired): there is room for a new one.
    pub fn release(&self) {
        self.accepting.fetch_sub(1, Relaxed);
        self.room.notify_waiters();
    }

    /// An instance would accept another request.
    pub fn instance_has_room(&self) {
        if self.head.available_permits() == 0 {
            self.room.notify_waiters();
        }
    }

    /// A place in the queue, or `None` when it is full.
    pub fn enter(&self) -> Option<Place<'_>> {
        self.queued
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max_queued).then_some(n + 1))
            .map(|_| Place { cap: self })
            .map_err(|_| self.stats.queue.rejected.fetch_add(1, Relaxed))
            .ok()
    }

    /// Waits, in its place, to be the head of the queue.
    pub async fn head<'a>(&'a self, place: Place<'a>) -> Head<'a> {
        let permit = self
            .head
            .acquire()
            .await
            .expect("the head semaphore is never closed");
        Head {
            cap: self,
            _permit: permit,
            _place: place,
        }
    }

    /// Records how long an admitted request waited.
    pub fn admitted(&self, took: std::time::Duration, refused: bool) {
        let q = &self.stats.queue;
        if refused {
            q.waited.fetch_add(1, Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        q.longest_wait_us.fetch_max(us, Relaxed);
    }
}

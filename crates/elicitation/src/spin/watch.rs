//! Waiting for a change without polling per request: `GET /v1/elicitations/:id?wait=N`.
//!
//! A waiting request registers the agents whose changes concern it and parks on the read end of a
//! component-model stream that nobody writes to. One loop per instance, the *watcher*, reads the
//! [change feed](crate::changes) every `stream_tick_ms` (`stream_idle_tick_ms` after a quiet second) while anybody waits; when an agent of a
//! waiter changed it drops that waiter's write end, which completes the parked read. So a waiter
//! costs no timer ticks of its own (only one at its deadline), however many wait in the instance.
//! Waking a task from another one this way goes through the component model (a stream between two
//! tasks of one instance, `u8` payload), not through Rust wakers, which the current wasmtime cannot
//! do across tasks.
//!
//! A waiter says from which feed position it needs changes (`since`, read before it read the
//! record); [`Watchers`] (in the domain, unit-tested) decides whom a poll wakes and whether a
//! newcomer must look again at once instead of parking.

use std::cell::RefCell;
use std::collections::BTreeSet;

use spin_sdk::wasip3::wit_bindgen::StreamWriter;
use spin_sdk::wasip3::wit_stream;

use super::events::Pace;
use super::{SpinStore, sleep_ms};
use crate::changes::{Feed, Poll};
use crate::time::Timestamp;
use crate::wait::{Joined, Watchers};

thread_local! {
    /// The instance's waits; a waiter's handle is the never-written end of its parked stream.
    static WATCH: RefCell<Watchers<StreamWriter<u8>>> = RefCell::new(Watchers::default());
}

/// Waits until one of `agents` changes after feed position `since`, or `ms` pass.
pub async fn until_changed(agents: Vec<String>, since: i64, ms: u64) {
    let (wake, mut parked) = wit_stream::new::<u8>();
    let until = Timestamp::now().0.saturating_add(ms);
    match WATCH.with(|w| w.borrow_mut().join(agents, since, until, wake)) {
        Joined::Changed => return,
        Joined::StartAt(from) => spin_sdk::wasip3::spawn(watcher(from)),
        Joined::Parked => {}
    }
    let read = parked.read(Vec::with_capacity(1));
    let deadline = sleep_ms(ms);
    futures::future::select(std::pin::pin!(read), std::pin::pin!(deadline)).await;
}

/// The instance's watcher: runs while anybody waits.
async fn watcher(from: i64) {
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            WATCH.with(|w| w.borrow_mut().stopped());
        }
    }
    let _running = Running;
    let Ok(store) = SpinStore::open_default().await else {
        return;
    };
    let mut pace = Pace::load().await;
    let mut feed = Feed::at(from);
    loop {
        if WATCH.with(|w| w.borrow().idle()) {
            return;
        }
        pace.wait().await;
        let now = Timestamp::now();
        let poll = feed.poll(&store, now).await.unwrap_or(Poll::Everything);
        if !matches!(poll, Poll::Quiet) {
            pace.changed(now);
        }
        // Nobody (a quiet poll still lets go of waits past their time), these agents, or anyone.
        let changed = match poll {
            Poll::Quiet => Some(BTreeSet::new()),
            Poll::Agents(agents) => Some(agents.into_keys().collect()),
            Poll::Everything => None,
        };
        WATCH.with(|w| w.borrow_mut().polled(feed.position(), changed, now.0));
    }
}

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
//! record): the watcher remembers which agents changed over its recent polls and wakes a newcomer at
//! once if one of its agents changed after `since`, or if `since` is older than it remembers.

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};

use spin_sdk::wasip3::wit_bindgen::StreamWriter;
use spin_sdk::wasip3::wit_stream;

use super::events::Pace;
use super::{SpinStore, sleep_ms};
use crate::changes::{Feed, Poll};
use crate::time::Timestamp;

/// How many past polls the watcher remembers for newcomers.
const REMEMBERED: usize = 1024;

struct Waiter {
    agents: Vec<String>,
    /// Never written: dropping it completes the waiter's parked read.
    _wake: StreamWriter<u8>,
}

#[derive(Default)]
struct Watch {
    waiters: Vec<Waiter>,
    /// Feed position after each recent poll, and the agents that poll reported (`None`: all).
    recent: VecDeque<(i64, Option<BTreeSet<String>>)>,
    /// The oldest position `recent` covers changes from.
    covers_from: i64,
    running: bool,
}

impl Watch {
    /// Whether an agent in `agents` may have changed after feed position `since`, by what the
    /// running watcher has seen (changes it has not polled yet it will report to the waiter).
    fn changed_since(&self, agents: &[String], since: i64) -> bool {
        since < self.covers_from
            || self.recent.iter().any(|(pos, changed)| {
                *pos > since
                    && changed
                        .as_ref()
                        .is_none_or(|set| agents.iter().any(|a| set.contains(a)))
            })
    }
}

thread_local! {
    static WATCH: RefCell<Watch> = RefCell::new(Watch::default());
}

/// Waits until one of `agents` changes after feed position `since`, or `ms` pass.
pub async fn until_changed(agents: Vec<String>, since: i64, ms: u64) {
    let (wake, mut parked) = wit_stream::new::<u8>();
    let start = WATCH.with(|w| {
        let mut w = w.borrow_mut();
        if w.running && w.changed_since(&agents, since) {
            return None; // already changed: no need to park
        }
        w.waiters.push(Waiter {
            agents,
            _wake: wake,
        });
        let start = !w.running;
        w.running = true;
        Some(start)
    });
    match start {
        None => return,
        Some(true) => spin_sdk::wasip3::spawn(watcher(since)),
        Some(false) => {}
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
            WATCH.with(|w| {
                let mut w = w.borrow_mut();
                w.running = false;
                w.recent.clear();
                // Whoever still waits is woken to look for themselves.
                w.waiters.clear();
            });
        }
    }
    let _running = Running;
    let Ok(store) = SpinStore::open_default().await else {
        return;
    };
    let mut pace = Pace::load().await;
    let mut feed = Feed::at(from);
    WATCH.with(|w| w.borrow_mut().covers_from = from);
    loop {
        if WATCH.with(|w| w.borrow().waiters.is_empty()) {
            return;
        }
        pace.wait().await;
        let now = Timestamp::now();
        let poll = feed.poll(&store, now).await.unwrap_or(Poll::Everything);
        let changed = match poll {
            Poll::Quiet => continue,
            Poll::Agents(agents) => Some(agents.into_keys().collect::<BTreeSet<String>>()),
            Poll::Everything => None,
        };
        pace.changed(now);
        WATCH.with(|w| {
            let mut w = w.borrow_mut();
            // Dropping a waiter's write end completes its parked read.
            w.waiters.retain(|waiter| {
                !changed
                    .as_ref()
                    .is_none_or(|set| waiter.agents.iter().any(|a| set.contains(a)))
            });
            w.recent.push_back((feed.position(), changed));
            while w.recent.len() > REMEMBERED {
                if let Some((pos, _)) = w.recent.pop_front() {
                    w.covers_from = pos;
                }
            }
        });
    }
}

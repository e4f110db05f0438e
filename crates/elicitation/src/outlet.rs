//! When an event stream is cut: the rules the stream hub applies to each stream's writes.
//!
//! A stream's write completes when the host has taken its bytes, which it does as fast as the
//! client reads. A client that stops reading leaves its write pending, and its frames pile up
//! behind it. Such a stream is cut, so it holds nothing for long, and only such a stream: a host
//! that stalls the whole instance (a long pause, a busy core) delays every write but also stops
//! the hub itself, so a write counts as slow only when it stayed pending both for a while *and*
//! across many of the hub's own ticks. The hub keeps ticking (every few milliseconds) whatever its
//! clients do.
//!
//! An agent holds at most `max_streams_per_agent` streams, on every node together. A stream takes
//! a number from the agent's counter as it opens and announces it on the change feed, and
//! announces its end; every stream learns from the feed which of the agent's streams opened after
//! it and are still open ([`Newer`]). When the limit's worth of them are, it ends: so a new stream
//! is never refused, the oldest gives way — a client reconnecting after a dropped connection is
//! not locked out by its own dead one — and within a hub tick or two no agent holds more than the
//! limit. (A stream on a node that died never announces its end, so it still counts as open to
//! older streams elsewhere, which then end one stream early: the limit errs on the safe side.)

use std::collections::BTreeSet;

use crate::changes::{self, Change, Mention};
use crate::keys;
use crate::store::{Store, StoreResult};

/// Default `max_streams_per_agent`.
pub const MAX_STREAMS_PER_AGENT: u64 = 8;

/// Gives a stream of `agent` its number and announces it.
pub async fn opened<S: Store>(store: &S, agent: &str) -> StoreResult<i64> {
    let n = store.increment(&keys::streams(agent), 1).await?;
    changes::publish(store, &[Mention::Opened(agent, n)]).await?;
    Ok(n)
}

/// Announces the end of `agent`'s stream `n`.
pub async fn closed<S: Store>(store: &S, agent: &str, n: i64) -> StoreResult<()> {
    changes::publish(store, &[Mention::Closed(agent, n)]).await
}

/// The streams of the same agent that opened after stream `mine` and are still open, as the
/// change feed tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Newer {
    mine: i64,
    open: BTreeSet<i64>,
    /// Ends seen before their opens (the feed's order is not the streams' order).
    ended: BTreeSet<i64>,
}

impl Newer {
    /// For stream number `mine`.
    pub fn of(mine: i64) -> Self {
        Self {
            mine,
            ..Self::default()
        }
    }

    /// Takes in what the feed said of the agent.
    pub fn apply(&mut self, change: &Change) {
        for n in change.opened.iter().filter(|n| **n > self.mine) {
            if !self.ended.remove(n) {
                self.open.insert(*n);
            }
        }
        for n in change.closed.iter().filter(|n| **n > self.mine) {
            if !self.open.remove(n) {
                self.ended.insert(*n);
            }
        }
    }

    /// Whether this stream must give way: `max` newer ones are open.
    pub fn crowded(&self, max: u64) -> bool {
        self.open.len() as u64 >= max.max(1)
    }
}

/// How long a write may stay pending before its client counts as not reading, in milliseconds.
pub const SLOW_CLIENT_MS: u64 = 250;

/// How many of the hub's ticks a write must stay pending before its client counts as not
/// reading: a host stall of any length passes few ticks.
pub const SLOW_CLIENT_TICKS: u64 = 20;

/// Unsent frames one stream may hold before it is cut, in bytes.
pub const MAX_BACKLOG_BYTES: usize = 1 << 20;

/// Why the hub ended a stream other than as planned: the message its response body ends with
/// (the host counts body ends by this message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Its write stayed pending too long ([`is_slow`]).
    SlowClient,
    /// More than [`MAX_BACKLOG_BYTES`] waited to be sent.
    Backlog,
    /// The client closed the connection (a write found the body's reader gone).
    ClientGone,
    /// The stream's token was revoked.
    Revoked,
    /// The stream's token expired.
    Expired,
    /// Newer streams of the same agent took its place ([`Newer`]).
    Replaced,
}

impl Cut {
    /// The message the body ends with.
    pub fn message(self) -> &'static str {
        match self {
            Self::SlowClient => "event stream cut: its client stopped reading",
            Self::Backlog => "event stream cut: too many frames waiting for its client",
            Self::ClientGone => "event stream ended: its client went away",
            Self::Revoked => "event stream ended: its token was revoked",
            Self::Expired => "event stream ended: its token expired",
            Self::Replaced => {
                "event stream ended: its agent opened more than max_streams_per_agent after it"
            }
        }
    }
}

/// A write in flight: when it started, by the clock and by the hub's tick count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The hub's tick count when the write started.
    pub tick: u64,
    /// When it started (ms).
    pub at: u64,
}

/// Whether the stream must be cut now, at the hub's tick `tick` and time `now` (ms), with
/// `pending` its write in flight and `backlog` bytes waiting behind it.
pub fn cut(pending: Option<Pending>, backlog: usize, tick: u64, now: u64) -> Option<Cut> {
    if backlog > MAX_BACKLOG_BYTES {
        return Some(Cut::Backlog);
    }
    let p = pending?;
    let slow = tick.saturating_sub(p.tick) >= SLOW_CLIENT_TICKS
        && now.saturating_sub(p.at) >= SLOW_CLIENT_MS;
    slow.then_some(Cut::SlowClient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_pending_for_long_across_many_ticks_is_a_slow_client() {
        let p = Some(Pending {
            tick: 100,
            at: 5000,
        });
        assert_eq!(cut(p, 0, 100 + 60, 5000 + 300), Some(Cut::SlowClient));
        // Not yet: not long enough, however many ticks.
        assert_eq!(cut(p, 0, 100 + 60, 5000 + 200), None);
    }

    #[test]
    fn a_host_stall_cuts_nobody() {
        // The whole instance stood still for two seconds: the hub ticked once meanwhile.
        let p = Some(Pending {
            tick: 100,
            at: 5000,
        });
        assert_eq!(cut(p, 0, 101, 7000), None);
        assert_eq!(cut(p, 0, 100 + SLOW_CLIENT_TICKS - 1, 7000), None);
    }

    #[test]
    fn nothing_pending_is_never_slow_but_a_huge_backlog_is_cut() {
        assert_eq!(cut(None, 0, 1_000_000, 1_000_000), None);
        assert_eq!(cut(None, MAX_BACKLOG_BYTES, 0, 0), None);
        assert_eq!(cut(None, MAX_BACKLOG_BYTES + 1, 0, 0), Some(Cut::Backlog));
    }

    fn change(opened: &[i64], closed: &[i64]) -> Change {
        Change {
            opened: opened.iter().copied().collect(),
            closed: closed.iter().copied().collect(),
            ..Change::default()
        }
    }

    #[test]
    fn a_stream_gives_way_when_the_limit_of_newer_ones_are_open() {
        let mut third = Newer::of(3);
        // Older streams and itself do not count.
        third.apply(&change(&[1, 2, 3], &[]));
        assert!(!third.crowded(2));
        third.apply(&change(&[4], &[]));
        assert!(!third.crowded(2));
        // One newer closed before another opened: still one.
        third.apply(&change(&[5], &[4]));
        assert!(!third.crowded(2));
        third.apply(&change(&[6], &[]));
        assert!(third.crowded(2));
    }

    #[test]
    fn an_end_read_before_its_open_cancels_it() {
        let mut first = Newer::of(1);
        first.apply(&change(&[], &[2]));
        first.apply(&change(&[2, 3], &[]));
        assert!(!first.crowded(2));
        first.apply(&change(&[4], &[]));
        assert!(first.crowded(2));
    }

    #[test]
    fn a_stream_is_replaced_once_the_limit_of_newer_streams_is_open_across_nodes() {
        use crate::store::{MemoryStore, Store};
        futures::executor::block_on(async {
            let store = MemoryStore::default();
            let mut feed = changes::Feed::start(&store, crate::Timestamp(1))
                .await
                .unwrap();
            let mine = opened(&store, "a").await.unwrap();
            let mut newer = Newer::of(mine);
            let second = opened(&store, "a").await.unwrap();
            opened(&store, "b").await.unwrap();
            closed(&store, "a", second).await.unwrap();
            opened(&store, "a").await.unwrap();
            for _ in 0..4 {
                if let changes::Poll::Agents(a) =
                    feed.poll(&store, crate::Timestamp(2)).await.unwrap()
                    && let Some(c) = a.get("a")
                {
                    newer.apply(c);
                }
            }
            assert!(!newer.crowded(2));
            assert!(newer.crowded(1));
            assert_eq!(store.increment(&keys::streams("a"), 0).await.unwrap(), 3);
        });
    }
}

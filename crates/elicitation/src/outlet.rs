//! When an event stream is cut: the rules the stream hub applies to each stream's writes.
//!
//! A stream's write completes when the host has taken its bytes, which it does as fast as the
//! client reads. A client that stops reading leaves its write pending, and its frames pile up
//! behind it. Such a stream is cut, so it holds nothing for long, and only such a stream: a host
//! that stalls the whole instance (a long pause, a busy core) delays every write but also stops
//! the hub itself, so a write counts as slow only when it stayed pending both for a while *and*
//! across many of the hub's own ticks. The hub keeps ticking (every few milliseconds) whatever its
//! clients do.

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
}

//! Timestamps: milliseconds since the Unix epoch, written as RFC 3339 UTC (`2026-11-26T22:41:59.123Z`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// This time plus `secs` seconds.
    pub fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// Milliseconds from `self` until `later` (0 if `later` is not later).
    pub fn millis_until(self, later: Self) -> u64 {
        later.0.saturating_sub(self.0)
    }

    /// RFC 3339 UTC with milliseconds.
    pub fn to_rfc3339(self) -> String {
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(self.0)).to_string()
    }

    /// Parses an RFC 3339 UTC timestamp (as written by [`Self::to_rfc3339`]).
    pub fn parse(s: &str) -> Option<Self> {
        let t = humantime::parse_rfc3339(s).ok()?;
        let d = t.duration_since(UNIX_EPOCH).ok()?;
        Some(Self(u64::try_from(d.as_millis()).ok()?))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 UTC time: {s:?}")))
    }
}

/// When a poller ticking every `period` (on a monotonic clock, any unit) should look next, at
/// `now`, its previous look having been due at `previous`: one period after that, at a fixed rate
/// — so neither the work of a tick nor a timer that rounds sleeps up stretches every period. A
/// late tick is not made up for: the next look is at least half a period away, so a busy poller
/// does not look back to back.
pub fn next_tick(previous: Option<u64>, now: u64, period: u64) -> u64 {
    previous.map_or(now.saturating_add(period), |due| {
        due.saturating_add(period)
            .max(now.saturating_add(period / 2))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_keep_a_fixed_rate_without_catching_up() {
        // The first look is a period away.
        assert_eq!(next_tick(None, 1000, 100), 1100);
        // The work took 30 and the timer woke 20 late: still one period after the last due time.
        assert_eq!(next_tick(Some(1100), 1150, 100), 1200);
        // Far behind: not back to back, half a period from now.
        assert_eq!(next_tick(Some(1100), 1500, 100), 1550);
        assert_eq!(next_tick(Some(u64::MAX - 10), 0, 100), u64::MAX);
    }

    #[test]
    fn round_trips_through_rfc3339() {
        let t = Timestamp(1_795_733_719_123);
        let s = t.to_rfc3339();
        assert!(s.ends_with(".123Z"), "{s}");
        assert_eq!(Timestamp::parse(&s), Some(t));
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
    }
}

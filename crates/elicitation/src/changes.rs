//! The change feed: which agents' logs moved (and to which number), so a poller reads only those.
//!
//! Spin offers no change notification, so stream hubs poll. Polling every agent's log costs reads
//! in proportion to the streams a hub holds, on every tick. Instead every writer *publishes* what
//! it changes: it takes a number from the global [`EPOCH`](keys::EPOCH) counter and writes
//! `"<number> <mention> …"` into slot `number % RING` of a fixed ring of keys. A mention is an
//! agent whose log grew, with the number its new event has (`b:17`), or an agent whose tokens were
//! revoked (`!a`: its streams check whether theirs is one), or an agent's event stream that opened
//! or ended, with its number (`+a:3`, `-a:3`: see [`outlet`](crate::outlet)). Agent ids have no
//! spaces or colons, and start with a letter or digit.
//!
//! A [`Feed`] never decodes the counter's bytes (Spin's backends encode counters differently): it
//! reads the ring slots after the last number it has seen, each tick, until one is not written
//! yet — one read per tick when nothing happens, a few per change when things do. Once a second
//! it reads the counter itself (through `increment(epoch, 0)`) to learn of numbers it cannot see
//! yet: a publisher that died between its two writes leaves a slot that never fills, and the
//! numbers after it would otherwise stay unread.
//!
//! The feed is a hint, never the record: the logs are. So whenever it cannot be sure it answers
//! [`Poll::Everything`] and the caller checks every log it cares about:
//! - a number taken but not written is read again on later ticks, and after [`GAP_GRACE_MS`] given
//!   up on (its publisher died);
//! - a slot holding a newer number was overwritten: the reader fell a whole ring behind;
//! - the counter went back (a store replaced, or Redis restarted without its last writes).
//!
//! A writer announces an event *before* it commits it (it takes the change's number before the
//! increment that commits the event, and may write the slot alongside the commit), so the feed
//! mentions every committed event, or shows a gap where it would: a reader never has to look at
//! each log in turn to find an event the feed missed. A reader that learns of a number before its
//! event is there waits at that slot as at any hole (see [`log`](crate::log)); a writer that dies
//! in between leaves a hole that readers resolve.

use std::collections::{BTreeMap, BTreeSet};

use crate::keys;
use crate::store::{Store, StoreResult, get_all};
use crate::time::Timestamp;

/// Slots in the ring. A reader more than half a ring behind reads everything instead.
pub const RING: i64 = 4096;

/// How long a reader waits for a slot whose number was taken but not yet written.
pub const GAP_GRACE_MS: u64 = 1000;

/// How often a reader reads the counter itself.
pub const COUNTER_EVERY_MS: u64 = 1000;

/// The most slots one poll reads.
const WINDOW_MAX: i64 = 256;

/// The feed's position now: every change published so far has a number up to it.
pub async fn position<S: Store>(store: &S) -> StoreResult<i64> {
    store.increment(keys::EPOCH, 0).await
}

/// One agent in a published change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mention<'a> {
    /// The agent's log grew to (at least) this number.
    Log(&'a str, i64),
    /// The agent's tokens were revoked: its streams look whether theirs is among them.
    Revoked(&'a str),
    /// An event stream of the agent opened with this number (see [`outlet`](crate::outlet)).
    Opened(&'a str, i64),
    /// The agent's event stream with this number ended.
    Closed(&'a str, i64),
}

/// Announces these changes in one entry: [`take`], then [`write`]. Call before the events it
/// mentions are committed (see the module documentation).
pub async fn publish<S: Store>(store: &S, mentions: &[Mention<'_>]) -> StoreResult<()> {
    if mentions.is_empty() {
        return Ok(());
    }
    let n = take(store).await?;
    write(store, n, mentions).await
}

/// Wakes whoever waits on `agent`'s changes although its log did not grow (the MCP gateway's
/// relay uses it to say that a human's answer was refused): the change mentions the agent with
/// log number 0, which every stream's cursor has passed, so streams read nothing for it.
pub async fn nudge<S: Store>(store: &S, agent: &str) -> StoreResult<()> {
    publish(store, &[Mention::Log(agent, 0)]).await
}

/// Takes the number of a change about to be announced: the first half of [`publish`], which a
/// writer may make alongside other writes. From here on, readers count on number `n` being
/// written (or, after [`GAP_GRACE_MS`], look at everything).
pub async fn take<S: Store>(store: &S) -> StoreResult<i64> {
    store.increment(keys::EPOCH, 1).await
}

/// Writes change `n` (a number [`take`] gave) with these mentions: the second half of [`publish`].
pub async fn write<S: Store>(store: &S, n: i64, mentions: &[Mention<'_>]) -> StoreResult<()> {
    let mut entry = n.to_string();
    for m in mentions {
        entry.push(' ');
        match m {
            Mention::Log(agent, seq) => entry.push_str(&format!("{agent}:{seq}")),
            Mention::Revoked(agent) => entry.push_str(&format!("!{agent}")),
            Mention::Opened(agent, n) => entry.push_str(&format!("+{agent}:{n}")),
            Mention::Closed(agent, n) => entry.push_str(&format!("-{agent}:{n}")),
        }
    }
    store
        .set(&keys::change_slot(n % RING), entry.as_bytes())
        .await
}

/// What one agent's changes were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The highest log number published for it, if its log grew.
    pub head: Option<i64>,
    /// Its tokens were revoked.
    pub revoked: bool,
    /// Numbers of its event streams that opened.
    pub opened: BTreeSet<i64>,
    /// Numbers of its event streams that ended.
    pub closed: BTreeSet<i64>,
}

/// What changed since the last poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Nothing was published.
    Quiet,
    /// These agents changed (and nothing else that the feed knows of).
    Agents(BTreeMap<String, Change>),
    /// The feed cannot tell: check every agent.
    Everything,
}

/// A slot as read: the number it holds and its mentions.
fn parse(value: Option<&[u8]>) -> Option<(i64, &str)> {
    let text = std::str::from_utf8(value?).ok()?;
    let (n, rest) = text.split_once(' ').unwrap_or((text, ""));
    Some((n.parse().ok()?, rest))
}

fn note(agents: &mut BTreeMap<String, Change>, mentions: &str) {
    for word in mentions.split(' ').filter(|w| !w.is_empty()) {
        if let Some(agent) = word.strip_prefix('!') {
            agents.entry(agent.to_string()).or_default().revoked = true;
        } else if let Some((sign, (agent, n))) = word
            .strip_prefix('+')
            .map(|w| (true, w))
            .or_else(|| word.strip_prefix('-').map(|w| (false, w)))
            .and_then(|(sign, w)| Some((sign, w.split_once(':')?)))
        {
            let c = agents.entry(agent.to_string()).or_default();
            if let Ok(n) = n.parse::<i64>() {
                if sign { &mut c.opened } else { &mut c.closed }.insert(n);
            }
        } else if let Some((agent, seq)) = word.split_once(':') {
            let c = agents.entry(agent.to_string()).or_default();
            if let Ok(seq) = seq.parse::<i64>() {
                c.head = Some(c.head.map_or(seq, |h| h.max(seq)));
            }
        } else {
            agents.entry(word.to_string()).or_default();
        }
    }
}

/// One reader's position in the feed.
#[derive(Debug, Clone)]
pub struct Feed {
    last: i64,
    /// Numbers taken but not yet readable, with when they were first missed.
    gaps: BTreeMap<i64, Timestamp>,
    /// How many slots after `last` the next poll reads.
    window: i64,
    /// When the counter was last read.
    counted: Timestamp,
}

impl Feed {
    /// A reader starting at the current end of the feed.
    pub async fn start<S: Store>(store: &S, now: Timestamp) -> StoreResult<Self> {
        let mut feed = Self::at(position(store).await?);
        feed.counted = now;
        Ok(feed)
    }

    /// A reader that reports the changes numbered after `position`.
    pub fn at(position: i64) -> Self {
        Self {
            last: position,
            gaps: BTreeMap::new(),
            window: 1,
            counted: Timestamp(0),
        }
    }

    /// The last number this reader has looked at.
    pub fn position(&self) -> i64 {
        self.last
    }

    /// Reads what was published since the last call.
    pub async fn poll<S: Store>(&mut self, store: &S, now: Timestamp) -> StoreResult<Poll> {
        let mut everything = false;
        if self.counted.millis_until(now) >= COUNTER_EVERY_MS {
            self.counted = now;
            let end = position(store).await?;
            if end < self.last || end - self.last > RING / 2 {
                // The counter went back, or we are too far behind to trust the ring.
                self.last = end;
                self.gaps.clear();
                self.window = 1;
                return Ok(Poll::Everything);
            }
            // Numbers we have not seen yet: read them now; any that stay unwritten are gaps.
            for n in self.last + 1..=end {
                self.gaps.entry(n).or_insert(now);
            }
        }
        let ahead: Vec<i64> = (self.last + 1..=self.last + self.window).collect();
        let numbers: Vec<i64> = self
            .gaps
            .keys()
            .copied()
            .filter(|n| *n <= self.last)
            .chain(ahead.iter().copied())
            .chain(
                self.gaps
                    .keys()
                    .copied()
                    .filter(|n| *n > self.last + self.window),
            )
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let slots: Vec<String> = numbers
            .iter()
            .map(|n| keys::change_slot(n % RING))
            .collect();
        let values = get_all(store, &slots).await?;
        let mut agents = BTreeMap::new();
        let mut ready = BTreeSet::new();
        for (n, value) in numbers.iter().zip(&values) {
            match parse(value.as_deref()) {
                Some((m, mentions)) if m == *n => {
                    ready.insert(*n);
                    note(&mut agents, mentions);
                }
                Some((m, _)) if m > *n => {
                    // Overwritten by a later lap of the ring.
                    ready.insert(*n);
                    everything = true;
                }
                _ => {}
            }
        }
        // Numbers known to be taken (up to the highest one read, or counted) that are not written
        // yet are gaps: read again until they are, or given up on.
        let known = ready
            .last()
            .copied()
            .into_iter()
            .chain(self.gaps.keys().next_back().copied())
            .max()
            .unwrap_or(self.last);
        let mut passed = ready.last().copied().unwrap_or(self.last);
        for n in numbers.iter().filter(|n| **n <= known) {
            if ready.contains(n) {
                self.gaps.remove(n);
            } else {
                let since = *self.gaps.entry(*n).or_insert(now);
                if since.millis_until(now) >= GAP_GRACE_MS {
                    self.gaps.remove(n);
                    passed = passed.max(*n);
                    everything = true;
                }
            }
        }
        let all_ahead_ready = ahead.iter().all(|n| ready.contains(n));
        self.window = if all_ahead_ready {
            (self.window * 2).min(WINDOW_MAX)
        } else {
            1
        };
        self.last = self.last.max(passed);
        Ok(if everything {
            Poll::Everything
        } else if agents.is_empty() {
            Poll::Quiet
        } else {
            Poll::Agents(agents)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, SpinRedis, SpinSqlite};
    use futures::executor::block_on;

    fn names(poll: &Poll) -> Vec<String> {
        match poll {
            Poll::Agents(a) => a.keys().cloned().collect(),
            other => panic!("{other:?}"),
        }
    }

    async fn learns<S: Store>(store: &S) {
        publish(store, &[Mention::Log("old", 1)]).await.unwrap();
        let t = Timestamp(10_000);
        let mut feed = Feed::start(store, t).await.unwrap();
        assert_eq!(feed.poll(store, t).await.unwrap(), Poll::Quiet);
        publish(store, &[Mention::Log("a", 3)]).await.unwrap();
        publish(
            store,
            &[
                Mention::Log("b", 1),
                Mention::Log("c", 2),
                Mention::Opened("d-1", 3),
                Mention::Closed("d-1", 2),
            ],
        )
        .await
        .unwrap();
        publish(store, &[Mention::Log("a", 4)]).await.unwrap();
        publish(store, &[]).await.unwrap();
        // The window grows as the slots keep being there.
        let mut seen = BTreeMap::new();
        for _ in 0..3 {
            if let Poll::Agents(a) = feed.poll(store, t).await.unwrap() {
                for (k, v) in a {
                    let c: &mut Change = seen.entry(k).or_default();
                    c.head = c.head.max(v.head);
                    c.opened.extend(v.opened);
                    c.closed.extend(v.closed);
                }
            }
        }
        assert_eq!(seen["d-1"].opened, BTreeSet::from([3]));
        assert_eq!(seen["d-1"].closed, BTreeSet::from([2]));
        assert_eq!(seen["d-1"].head, None);
        assert_eq!(seen["a"].head, Some(4));
        assert_eq!(seen["b"].head, Some(1));
        assert_eq!(seen["c"].head, Some(2));
        assert_eq!(feed.position(), 4);
        assert_eq!(feed.poll(store, t).await.unwrap(), Poll::Quiet);
    }

    async fn gaps<S: Store>(store: &S) {
        let t0 = Timestamp(10_000);
        let mut feed = Feed::start(store, t0).await.unwrap();
        // A publisher takes number 1 and has not written its slot yet; another publishes 2.
        store.increment(keys::EPOCH, 1).await.unwrap();
        publish(store, &[Mention::Log("b", 1)]).await.unwrap();
        // Slot 1 is not there, so the reader does not see 2 until it reads the counter.
        assert_eq!(feed.poll(store, t0).await.unwrap(), Poll::Quiet);
        let t1 = Timestamp(t0.0 + COUNTER_EVERY_MS);
        assert_eq!(names(&feed.poll(store, t1).await.unwrap()), ["b"]);
        // The late slot arrives: it is picked up.
        store.set(&keys::change_slot(1), b"1 a:1").await.unwrap();
        assert_eq!(names(&feed.poll(store, t1).await.unwrap()), ["a"]);
        // A number whose slot never arrives: quiet within the grace, then "check everything".
        store.increment(keys::EPOCH, 1).await.unwrap();
        let t2 = Timestamp(t1.0 + COUNTER_EVERY_MS);
        assert_eq!(feed.poll(store, t2).await.unwrap(), Poll::Quiet);
        assert_eq!(
            feed.poll(store, Timestamp(t2.0 + GAP_GRACE_MS - 1))
                .await
                .unwrap(),
            Poll::Quiet
        );
        assert_eq!(
            feed.poll(store, Timestamp(t2.0 + GAP_GRACE_MS))
                .await
                .unwrap(),
            Poll::Everything
        );
        assert_eq!(
            feed.poll(store, Timestamp(t2.0 + GAP_GRACE_MS))
                .await
                .unwrap(),
            Poll::Quiet
        );
    }

    async fn behind<S: Store>(store: &S) {
        let t = Timestamp(0);
        let mut feed = Feed::start(store, t).await.unwrap();
        for _ in 0..RING / 2 + 1 {
            publish(store, &[Mention::Log("a", 1)]).await.unwrap();
        }
        let later = Timestamp(COUNTER_EVERY_MS);
        assert_eq!(feed.poll(store, later).await.unwrap(), Poll::Everything);
        assert_eq!(feed.poll(store, later).await.unwrap(), Poll::Quiet);
        // A slot overwritten by a later lap (its number is newer than expected) says the same.
        let mut feed = Feed::start(store, t).await.unwrap();
        publish(store, &[Mention::Log("a", 1)]).await.unwrap();
        let n = position(store).await.unwrap();
        store
            .set(
                &keys::change_slot(n % RING),
                format!("{} x:1", n + RING).as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(feed.poll(store, t).await.unwrap(), Poll::Everything);
        // And a counter that went back (a store replaced) too.
        let mut feed = Feed::at(n + 10);
        assert_eq!(feed.poll(store, later).await.unwrap(), Poll::Everything);
        assert_eq!(feed.position(), n);
    }

    macro_rules! every_backend {
        ($name:ident, $body:ident) => {
            #[test]
            fn $name() {
                block_on(async {
                    $body(&MemoryStore::new()).await;
                    let s = SpinSqlite::new();
                    $body(&s).await;
                    assert_eq!(s.violations(), []);
                    let s = SpinRedis::new();
                    $body(&s).await;
                    assert_eq!(s.violations(), []);
                });
            }
        };
    }

    every_backend!(a_reader_learns_exactly_which_agents_changed, learns);
    every_backend!(
        a_number_taken_but_not_written_is_waited_for_then_given_up,
        gaps
    );
    every_backend!(a_reader_that_fell_behind_the_ring_checks_everything, behind);
}

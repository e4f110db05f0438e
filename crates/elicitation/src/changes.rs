//! The change feed: which agents' logs or indexes moved, so a poller reads only those.
//!
//! Spin offers no change notification, so stream hubs poll. Polling every agent's heads costs reads
//! in proportion to the streams a hub holds, on every tick anything changed anywhere. Instead every
//! writer *publishes* the agents it changed: it takes a number from the global
//! [`EPOCH`](keys::EPOCH) counter and writes `"<number> <agent> [<agent> …]"` into slot
//! `number % RING` of a fixed ring of keys (agent ids have no spaces). A [`Feed`] reads the counter
//! once per tick; when it moved it reads exactly the new slots and learns which agents changed. An
//! idle system costs one read per tick per hub, a busy one a few reads per change.
//!
//! The feed is a hint, never the record: the logs are. So whenever it cannot be sure it answers
//! [`Poll::Everything`] and the caller checks every head it cares about:
//! - a slot still holding an older number is a publisher between its two writes; it is read again
//!   on later ticks, and after [`GAP_GRACE_MS`] given up on (the publisher died);
//! - a slot holding a newer number was overwritten: the reader fell a whole ring behind.
//!
//! A publisher that dies after its change but before publishing leaves nothing in the feed; readers
//! catch up on that agent at their next periodic check (the stream heartbeat) or the next change.

use std::collections::{BTreeMap, BTreeSet};

use crate::keys;
use crate::store::{Store, StoreResult, decode_counter};
use crate::time::Timestamp;

/// Slots in the ring. A reader more than half a ring behind reads everything instead.
pub const RING: i64 = 4096;

/// How long a reader waits for a slot whose number was taken but not yet written.
pub const GAP_GRACE_MS: u64 = 1000;

/// The feed's position now: every change published so far has a number up to it.
pub async fn position<S: Store>(store: &S) -> StoreResult<i64> {
    Ok(decode_counter(store.get(keys::EPOCH).await?.as_deref()))
}

/// Announces that these agents' logs or indexes changed, in one entry. Call after the changes
/// are written.
pub async fn publish<S: Store>(store: &S, agents: &[&str]) -> StoreResult<()> {
    if agents.is_empty() {
        return Ok(());
    }
    let n = store.increment(keys::EPOCH, 1).await?;
    let mut entry = n.to_string();
    for a in agents {
        entry.push(' ');
        entry.push_str(a);
    }
    store
        .set(&keys::change_slot(n % RING), entry.as_bytes())
        .await
}

/// What changed since the last poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Nothing was published.
    Quiet,
    /// These agents changed (and nothing else that the feed knows of).
    Agents(BTreeSet<String>),
    /// The feed cannot tell: check every agent.
    Everything,
}

/// One reader's position in the feed.
#[derive(Debug, Clone)]
pub struct Feed {
    last: i64,
    /// Numbers taken but not yet readable, with when they were first missed.
    gaps: BTreeMap<i64, Timestamp>,
}

impl Feed {
    /// A reader starting at the current end of the feed.
    pub async fn start<S: Store>(store: &S) -> StoreResult<Self> {
        Ok(Self::at(position(store).await?))
    }

    /// A reader that reports the changes numbered after `position`.
    pub fn at(position: i64) -> Self {
        Self {
            last: position,
            gaps: BTreeMap::new(),
        }
    }

    /// The last number this reader has looked at.
    pub fn position(&self) -> i64 {
        self.last
    }

    /// Reads what was published since the last call.
    pub async fn poll<S: Store>(&mut self, store: &S, now: Timestamp) -> StoreResult<Poll> {
        let end = decode_counter(store.get(keys::EPOCH).await?.as_deref());
        if end == self.last && self.gaps.is_empty() {
            return Ok(Poll::Quiet);
        }
        if end < self.last || end - self.last > RING / 2 {
            // The counter went back (a new store) or we are too far behind to trust the ring.
            self.last = end;
            self.gaps.clear();
            return Ok(Poll::Everything);
        }
        let numbers: Vec<i64> = self
            .gaps
            .keys()
            .copied()
            .chain(self.last + 1..=end)
            .collect();
        let slots: Vec<String> = numbers
            .iter()
            .map(|n| keys::change_slot(n % RING))
            .collect();
        let values = store.get_many(&slots).await?;
        self.last = end;
        let mut agents = BTreeSet::new();
        let mut everything = false;
        for (n, value) in numbers.into_iter().zip(values) {
            let parsed = value.as_deref().and_then(|v| {
                let mut words = std::str::from_utf8(v).ok()?.split(' ');
                let m = words.next()?.parse::<i64>().ok()?;
                Some((m, words.map(str::to_string).collect::<Vec<_>>()))
            });
            match parsed {
                Some((m, named)) if m == n => {
                    self.gaps.remove(&n);
                    agents.extend(named);
                }
                Some((m, _)) if m > n => {
                    // Overwritten by a later lap of the ring.
                    self.gaps.remove(&n);
                    everything = true;
                }
                _ => {
                    let since = *self.gaps.entry(n).or_insert(now);
                    if since.millis_until(now) >= GAP_GRACE_MS {
                        self.gaps.remove(&n);
                        everything = true;
                    }
                }
            }
        }
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
    use crate::store::MemoryStore;
    use futures::executor::block_on;

    fn agents(names: &[&str]) -> Poll {
        Poll::Agents(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_reader_learns_exactly_which_agents_changed() {
        block_on(async {
            let store = MemoryStore::new();
            publish(&store, &["old"]).await.unwrap();
            let mut feed = Feed::start(&store).await.unwrap();
            let t = Timestamp(1000);
            assert_eq!(feed.poll(&store, t).await.unwrap(), Poll::Quiet);
            publish(&store, &["a"]).await.unwrap();
            publish(&store, &["b", "c"]).await.unwrap();
            publish(&store, &["a"]).await.unwrap();
            publish(&store, &[]).await.unwrap();
            assert_eq!(
                feed.poll(&store, t).await.unwrap(),
                agents(&["a", "b", "c"])
            );
            assert_eq!(feed.poll(&store, t).await.unwrap(), Poll::Quiet);
        });
    }

    #[test]
    fn a_number_taken_but_not_written_is_waited_for_then_given_up() {
        block_on(async {
            let store = MemoryStore::new();
            let mut feed = Feed::start(&store).await.unwrap();
            // A publisher takes number 1 and has not written its slot yet; another publishes 2.
            store.increment(keys::EPOCH, 1).await.unwrap();
            publish(&store, &["b"]).await.unwrap();
            let t0 = Timestamp(10_000);
            assert_eq!(feed.poll(&store, t0).await.unwrap(), agents(&["b"]));
            // The late slot arrives: it is picked up.
            store.set(&keys::change_slot(1), b"1 a").await.unwrap();
            assert_eq!(
                feed.poll(&store, Timestamp(t0.0 + 10)).await.unwrap(),
                agents(&["a"])
            );
            // A number whose slot never arrives: quiet within the grace, then "check everything".
            store.increment(keys::EPOCH, 1).await.unwrap();
            assert_eq!(feed.poll(&store, t0).await.unwrap(), Poll::Quiet);
            assert_eq!(
                feed.poll(&store, Timestamp(t0.0 + GAP_GRACE_MS - 1))
                    .await
                    .unwrap(),
                Poll::Quiet
            );
            assert_eq!(
                feed.poll(&store, Timestamp(t0.0 + GAP_GRACE_MS))
                    .await
                    .unwrap(),
                Poll::Everything
            );
            assert_eq!(feed.poll(&store, t0).await.unwrap(), Poll::Quiet);
        });
    }

    #[test]
    fn a_reader_that_fell_behind_the_ring_checks_everything() {
        block_on(async {
            let store = MemoryStore::new();
            let mut feed = Feed::start(&store).await.unwrap();
            for _ in 0..RING / 2 + 1 {
                publish(&store, &["a"]).await.unwrap();
            }
            let t = Timestamp(0);
            assert_eq!(feed.poll(&store, t).await.unwrap(), Poll::Everything);
            assert_eq!(feed.poll(&store, t).await.unwrap(), Poll::Quiet);
            // A slot overwritten by a later lap (its number is newer than expected) says the same.
            let mut feed = Feed::start(&store).await.unwrap();
            publish(&store, &["a"]).await.unwrap();
            let n = decode_counter(store.get(keys::EPOCH).await.unwrap().as_deref());
            store
                .set(
                    &keys::change_slot(n % RING),
                    format!("{} x", n + RING).as_bytes(),
                )
                .await
                .unwrap();
            assert_eq!(feed.poll(&store, t).await.unwrap(), Poll::Everything);
        });
    }
}

//! Each agent's event log: a strictly increasing sequence 1, 2, 3, … of [`Event`]s, delivered in
//! order, each once, on every backend Spin ships (see [`store`](crate::store) for what they do).
//!
//! A writer takes a number `n` from the log's head counter ([`take`]), then [`commit`]s its event
//! at `n` in three writes: the event as *pending* (`log/<agent>/<n>/p`), one increment of the
//! slot's *claim* counter (`…/<n>/c`), and — if that increment returned a commit (1, or another
//! small number: see below) — the event itself (`log/<agent>/<n>`). A reader reads slot bodies only;
//! a body is written only after its claim is decided, so a body it finds is final.
//!
//! A slot whose body is missing is a writer between its steps, or one that died. A reader waits at
//! it (in order: nothing behind it is delivered first) until it has seen it empty for
//! [`HOLE_GRACE_MS`] — every empty slot a read shows is timed from then, so holes in a row are
//! waited for together — then [`resolve`]s it: it reads the claim through `increment(claim, 0)`. A
//! commit (1 ..= [`COMMITTED_MAX`]) means the writer died after committing: the reader copies the
//! pending event into the body. Zero means nobody committed: the reader *seals* the claim, swapping
//! [`SEAL`] over the zero it read (it reads the value for the swap and compares it with a counter
//! at zero, [`zero`], so the swap is over a zero, atomic on both backends, with no write between
//! the read and the swap), and writes the void marker as the body. The seal and the commit are one
//! atomic decision on one key: a writer that increments a sealed claim gets a number above
//! [`COMMITTED_MAX`] and takes a new number; a sealer that finds a commit copies the event. So no
//! committed event is skipped, and none is delivered twice.
//!
//! Whoever else knows an event's content — a re-drive of a transition a crash cut short — may
//! commit it at its number too (its increment gives 2, 3, …: still a commit, and the same event).
//! A number its taker will never use (a transition that lost its race) is committed void.
//!
//! A reader that starts at the head (a stream with no cursor, or one reset to the head) looks at the
//! [`FRESH_WINDOW`] slots below it first: those committed already are history, not delivered;
//! those still open are waited for like any hole, so an event whose number was taken just before
//! the reader started is not skipped.
//!
//! Each log keeps its newest [`RETAINED`] events (bodies and pending copies are deleted in batches;
//! claims much later). A reader whose cursor is older than that is told so
//! ([`Resume::Reset`]) instead of skipping.

use std::collections::{BTreeMap, BTreeSet};

use crate::keys;
use crate::model::Event;
use crate::store::{COMMITTED_MAX, SEAL, Store, StoreResult, get_all, swap, zero};
use crate::time::Timestamp;

/// How many of its newest events an agent's log keeps.
pub const RETAINED: i64 = 1000;

/// How long a reader waits on an empty slot below the head before resolving it.
pub const HOLE_GRACE_MS: u64 = 2000;

/// How many slots below the head a reader starting at the head looks at.
pub const FRESH_WINDOW: i64 = 32;

/// Slots are trimmed this many at a time.
const TRIM_EVERY: i64 = 32;

/// Claims are kept this many times longer than events: a writer would have to stall that long for
/// its number to be forgotten.
const CLAIMS_RETAINED: i64 = 8 * RETAINED;

/// The body of a slot that holds no event.
pub const VOID: &[u8] = br#"{"void":true}"#;

/// Where a reader with a given cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Deliver every event after this sequence.
    After(i64),
    /// Only events from now on: start at the head (see [`Reader::fresh`]).
    Head(i64),
    /// The cursor is older than the retained history (or newer than the log): the reader must
    /// re-synchronise from the inbox list, then continue from the head.
    Reset {
        /// The log's head now.
        head: i64,
    },
}

/// Decides how a reader with `cursor` (none = only new events) continues, given the log's `head`.
pub fn resume(cursor: Option<i64>, head: i64) -> Resume {
    match cursor {
        None => Resume::Head(head),
        Some(c) if c < 0 || c > head || c < head - RETAINED => Resume::Reset { head },
        Some(c) => Resume::After(c),
    }
}

/// Takes the next number of `agent`'s log.
pub async fn take<S: Store>(store: &S, agent: &str) -> StoreResult<i64> {
    store.increment(&keys::log_head(agent), 1).await
}

/// The last number handed out in `agent`'s log (0 for an empty log), read through the counter.
pub async fn head<S: Store>(store: &S, agent: &str) -> StoreResult<i64> {
    store.increment(&keys::log_head(agent), 0).await
}

/// How a slot's claim was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// An event (or, for a number given up by its taker, the void marker) is committed there.
    Committed,
    /// Sealed by a reader: no event will ever be there; its writer takes a new number.
    Sealed,
}

fn decided(claim: i64) -> Option<Decided> {
    match claim {
        0 => None,
        1..=COMMITTED_MAX => Some(Decided::Committed),
        _ => Some(Decided::Sealed),
    }
}

/// Commits `body` (an event's JSON with `sequence` = `n`, or [`VOID`]) at slot `n` of `agent`'s log.
pub async fn commit<S: Store>(store: &S, agent: &str, n: i64, body: &[u8]) -> StoreResult<Decided> {
    stage(store, agent, n, body).await?;
    decide(store, agent, n, body).await
}

/// The first step of a [`commit`]: the pending copy, which a writer may make alongside other
/// writes (nothing reads it until the claim is committed).
pub async fn stage<S: Store>(store: &S, agent: &str, n: i64, body: &[u8]) -> StoreResult<()> {
    store.set(&keys::log_pending(agent, n), body).await
}

/// The rest of a [`commit`], once [`stage`] has written the same `body` at `n`.
pub async fn decide<S: Store>(store: &S, agent: &str, n: i64, body: &[u8]) -> StoreResult<Decided> {
    let claim = store.increment(&keys::log_claim(agent, n), 1).await?;
    if decided(claim) != Some(Decided::Committed) {
        return Ok(Decided::Sealed);
    }
    store.set(&keys::log_event(agent, n), body).await?;
    trim(store, agent, n).await?;
    Ok(Decided::Committed)
}

/// Gives up number `n` (its taker will not use it): committed void, so readers pass it at once.
pub async fn void<S: Store>(store: &S, agent: &str, n: i64) -> StoreResult<()> {
    commit(store, agent, n, VOID).await.map(drop)
}

/// After committing `n`: every [`TRIM_EVERY`]th number deletes the oldest slots in one batch.
async fn trim<S: Store>(store: &S, agent: &str, n: i64) -> StoreResult<()> {
    if n % TRIM_EVERY != 0 {
        return Ok(());
    }
    let mut keys = Vec::new();
    for s in (n - RETAINED - TRIM_EVERY + 1..=n - RETAINED).filter(|s| *s > 0) {
        keys.push(keys::log_event(agent, s));
        keys.push(keys::log_pending(agent, s));
    }
    for s in (n - CLAIMS_RETAINED - TRIM_EVERY + 1..=n - CLAIMS_RETAINED).filter(|s| *s > 0) {
        keys.push(keys::log_claim(agent, s));
    }
    if keys.is_empty() {
        return Ok(());
    }
    store.delete_many(&keys).await
}

/// Takes out of `agent`'s log what the event at slot `n` holds, for an elicitation past its
/// retention: the slot's body becomes the void marker, so a reader passes it at once as it passes
/// a given-up number, and the returned keys (its pending copy and its claim) are for the caller
/// to delete with the rest of what it forgets. The marker goes with the log's tail.
pub async fn forget<S: Store>(store: &S, agent: &str, n: i64) -> StoreResult<[String; 2]> {
    store.set(&keys::log_event(agent, n), VOID).await?;
    Ok([keys::log_pending(agent, n), keys::log_claim(agent, n)])
}

/// Decides slot `n` now if nobody has: seals its claim unless it holds a commit (see the module
/// documentation), and returns how it is decided.
pub async fn resolve<S: Store>(store: &S, agent: &str, n: i64) -> StoreResult<Decided> {
    let claim = keys::log_claim(agent, n);
    loop {
        // Creates the counter if it is missing, so the swap below is over a value that exists.
        if let Some(d) = decided(store.increment(&claim, 0).await?) {
            return Ok(d);
        }
        let zero = zero(store).await?;
        let (cas, seen) = store.cas_read(&claim).await?;
        // Still zero as read for the swap (compared with a counter at zero, so nothing is
        // written between the read and the swap); anything else is decided: look again.
        if seen.as_deref() == Some(zero.as_slice()) && swap(store, &claim, cas, SEAL).await? {
            return Ok(Decided::Sealed);
        }
    }
}

/// What slot `n` holds as its body says: nothing yet (`None`), an event, or the void marker
/// (`Sealed`: whoever knows the event that belongs there gives it a new number).
pub async fn written<S: Store>(store: &S, agent: &str, n: i64) -> StoreResult<Option<Decided>> {
    Ok(match store.get(&keys::log_event(agent, n)).await? {
        Some(v) if v == VOID => Some(Decided::Sealed),
        Some(_) => Some(Decided::Committed),
        None => None,
    })
}

/// An event as read from a log: parsed, and the JSON it is stored as, which is what a stream
/// sends as its `data:` (so it is not serialized again).
#[derive(Debug, Clone)]
pub struct Logged {
    /// The event.
    pub event: Event,
    /// Its stored JSON (one line).
    pub json: String,
}

impl Logged {
    /// `event` with its JSON, as it is stored.
    pub fn new(event: Event) -> Self {
        let json = serde_json::to_string(&event).unwrap_or_default();
        Self { event, json }
    }
}

/// Reads one agent's log in order from a cursor, across calls.
#[derive(Debug, Clone)]
pub struct Reader {
    agent: String,
    cursor: i64,
    /// Empty slots after the cursor, with when each was first seen empty. Every empty slot a read
    /// sees is timed from then, so several holes in a row (writers killed together) are resolved
    /// together one grace period later, not one grace period each.
    holes: BTreeMap<i64, Timestamp>,
    /// Set when the reader fell behind the retained window: (its cursor then, the cursor now).
    behind: Option<(i64, i64)>,
    /// Slots above the cursor that held an event when the reader started at the head: history,
    /// passed without being delivered.
    history: BTreeSet<i64>,
    /// Slots passed that held something that is not an event: (the slot, why).
    unreadable: Vec<(i64, String)>,
}

impl Reader {
    /// A reader that delivers the events after `cursor`.
    pub fn new(agent: &str, cursor: i64) -> Self {
        Self {
            agent: agent.to_string(),
            cursor,
            holes: BTreeMap::new(),
            behind: None,
            history: BTreeSet::new(),
            unreadable: Vec::new(),
        }
    }

    /// A reader of only the events from now on, the log's head being `head`: it looks at the
    /// [`FRESH_WINDOW`] slots up to the head, treats those that hold something as history, and
    /// starts below the lowest that is still open, so an event being written is not skipped.
    pub async fn fresh<S: Store>(store: &S, agent: &str, head: i64) -> StoreResult<Self> {
        let mut r = Self::new(agent, head);
        r.start_at(store, head).await?;
        Ok(r)
    }

    async fn start_at<S: Store>(&mut self, store: &S, head: i64) -> StoreResult<()> {
        let low = (head - FRESH_WINDOW).max(0);
        let slots: Vec<i64> = (low + 1..=head).collect();
        let keys: Vec<String> = slots
            .iter()
            .map(|s| keys::log_event(&self.agent, *s))
            .collect();
        let bodies = get_all(store, &keys).await?;
        let open: Vec<i64> = slots
            .iter()
            .zip(&bodies)
            .filter(|(_, b)| b.is_none())
            .map(|(s, _)| *s)
            .collect();
        self.cursor = open.first().map_or(head, |s| s - 1);
        self.history = slots
            .iter()
            .zip(&bodies)
            .filter(|(s, b)| b.is_some() && **s > self.cursor)
            .map(|(s, _)| *s)
            .collect();
        self.holes.clear();
        Ok(())
    }

    /// If the reader fell more than [`RETAINED`] events behind, the events in between are gone:
    /// it has moved on to the head and tells it once here, as (its cursor then, the new cursor).
    /// The consumer must re-synchronise from the inbox list, as for [`Resume::Reset`].
    pub fn take_reset(&mut self) -> Option<(i64, i64)> {
        self.behind.take()
    }

    /// The slots the last read passed because they held something that is not an event, with
    /// why: never skipped in silence, the consumer reports each (a stream sends an `error` frame
    /// with the slot's number, before the events the same read returned).
    pub fn take_unreadable(&mut self) -> Vec<(i64, String)> {
        std::mem::take(&mut self.unreadable)
    }

    /// The slots it passes as history (tests).
    #[cfg(test)]
    pub(crate) fn history_for_tests(&self) -> BTreeSet<i64> {
        self.history.clone()
    }

    /// Whether the reader is waiting at an empty slot below the head.
    pub fn has_hole(&self) -> bool {
        self.holes.contains_key(&(self.cursor + 1))
    }

    /// Whether a read now could deliver more up to `head`: the cursor is below it and not held
    /// at a hole. A read that returned fewer events than its limit may still leave this true (the
    /// slots it passed held voids or history), so a consumer reads until this is false.
    pub fn more_below(&self, head: i64) -> bool {
        self.cursor < head && !self.has_hole()
    }

    /// The last sequence read (delivered, passed as history or void); a client resuming from it
    /// misses nothing.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// The next events after the cursor, in order, at most `limit`, reading the head first.
    pub async fn next<S: Store>(
        &mut self,
        store: &S,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<Logged>> {
        let head = head(store, &self.agent).await?;
        self.next_upto(store, now, limit, head).await
    }

    /// As [`next`](Self::next), reading no further than `head`, a number the caller knows was
    /// handed out (stops before a slot not yet written, and resolves one that stayed empty for
    /// [`HOLE_GRACE_MS`]).
    pub async fn next_upto<S: Store>(
        &mut self,
        store: &S,
        now: Timestamp,
        limit: usize,
        head: i64,
    ) -> StoreResult<Vec<Logged>> {
        if self.cursor < head - RETAINED {
            let from = self.cursor;
            self.start_at(store, head).await?;
            self.behind = Some((from, self.cursor));
            return Ok(Vec::new());
        }
        let last = head.min(
            self.cursor
                .saturating_add(i64::try_from(limit).unwrap_or(i64::MAX)),
        );
        let mut events = Vec::new();
        if last <= self.cursor {
            return Ok(events);
        }
        let seqs: Vec<i64> = (self.cursor + 1..=last).collect();
        let keys: Vec<String> = seqs
            .iter()
            .map(|s| keys::log_event(&self.agent, *s))
            .collect();
        let mut stopped = false;
        for (seq, value) in seqs.into_iter().zip(get_all(store, &keys).await?) {
            if stopped {
                // Behind the hole the reader waits at: start the clock of every empty slot.
                if value.is_none() {
                    self.holes.entry(seq).or_insert(now);
                }
                continue;
            }
            let body = match value {
                Some(v) => v,
                None => match self.wait_or_resolve(store, seq, now).await {
                    Ok(Some(v)) => v,
                    Err(e) if events.is_empty() => return Err(e),
                    // A slot still open, or one whose resolve failed after events were read:
                    // those are returned (the cursor is past them), and the slot is looked at
                    // again on the next read.
                    Ok(None) | Err(_) => {
                        stopped = true;
                        continue;
                    }
                },
            };
            if body == VOID || self.history.remove(&seq) {
                self.cursor = seq;
                continue;
            }
            match serde_json::from_slice::<Event>(&body) {
                Ok(event) => {
                    let json = String::from_utf8(body).unwrap_or_default();
                    events.push(Logged { event, json });
                }
                // An event that cannot be read is passed only as the first slot of a read, so
                // its report comes before the events after it.
                Err(_) if !events.is_empty() => {
                    stopped = true;
                    continue;
                }
                Err(e) => self.unreadable.push((seq, e.to_string())),
            }
            self.cursor = seq;
        }
        let cursor = self.cursor;
        self.holes.retain(|s, _| *s > cursor);
        self.history.retain(|s| *s > self.cursor);
        Ok(events)
    }

    /// At an empty slot: waits (None) until it has been empty for the grace period, then decides
    /// it and returns its body.
    async fn wait_or_resolve<S: Store>(
        &mut self,
        store: &S,
        seq: i64,
        now: Timestamp,
    ) -> StoreResult<Option<Vec<u8>>> {
        let since = *self.holes.entry(seq).or_insert(now);
        if since.millis_until(now) < HOLE_GRACE_MS {
            return Ok(None);
        }
        let body = match resolve(store, &self.agent, seq).await? {
            Decided::Sealed => VOID.to_vec(),
            Decided::Committed => {
                // The writer died between its commit and the body: the pending copy is the event.
                match store.get(&keys::log_pending(&self.agent, seq)).await? {
                    Some(p) => p,
                    None => return Ok(None),
                }
            }
        };
        store.set(&keys::log_event(&self.agent, seq), &body).await?;
        self.holes.remove(&seq);
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Elicitation, EventKind, Mode, Status};
    use crate::store::{MemoryStore, SpinRedis, SpinSqlite};
    use futures::executor::block_on;

    fn event(seq: i64) -> Vec<u8> {
        let e = Elicitation {
            id: format!("el_{seq}"),
            from: "a".into(),
            to: "b".into(),
            mode: Mode::Form,
            message: "m".into(),
            requested_schema: None,
            url: None,
            status: Status::Pending,
            created_at: Timestamp(0),
            expires_at: Timestamp(1000),
            responded_at: None,
            response: None,
            context: None,
        };
        Logged::new(Event {
            sequence: seq,
            kind: EventKind::Created,
            at: Timestamp(0),
            elicitation: e,
        })
        .json
        .into_bytes()
    }

    async fn append<S: Store>(store: &S) -> i64 {
        loop {
            let n = take(store, "b").await.unwrap();
            if commit(store, "b", n, &event(n)).await.unwrap() == Decided::Committed {
                return n;
            }
        }
    }

    fn seqs(events: &[Logged]) -> Vec<i64> {
        events.iter().map(|l| l.event.sequence).collect()
    }

    /// A test run on the plain store and on both backend models, which must see no call either
    /// backend would get wrong.
    macro_rules! every_backend {
        ($name:ident, $body:expr) => {
            #[test]
            fn $name() {
                block_on(async {
                    let s = MemoryStore::new();
                    ($body)(&s).await;
                    let s = SpinSqlite::new();
                    ($body)(&s).await;
                    assert_eq!(s.violations(), []);
                    let s = SpinRedis::new();
                    ($body)(&s).await;
                    assert_eq!(s.violations(), []);
                });
            }
        };
    }

    async fn unreadable_is_reported_in_place<S: Store>(store: &S) {
        assert_eq!(append(store).await, 1);
        // Slot 2 holds something that is not an event (a bug, a hand edit, a foreign writer).
        let n = take(store, "b").await.unwrap();
        assert_eq!(
            commit(store, "b", n, b"{not json").await.unwrap(),
            Decided::Committed
        );
        assert_eq!(append(store).await, 3);
        let mut r = Reader::new("b", 0);
        let t = Timestamp(10_000);
        // The first read stops before it; the next reports it first, then reads on.
        assert_eq!(seqs(&r.next(store, t, 10).await.unwrap()), [1]);
        assert!(r.take_unreadable().is_empty());
        assert_eq!(seqs(&r.next(store, t, 10).await.unwrap()), [3]);
        let bad = r.take_unreadable();
        assert_eq!(bad.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [2]);
        assert_eq!(r.cursor(), 3);
    }

    every_backend!(an_unreadable_event_is_reported_not_skipped, |s| {
        unreadable_is_reported_in_place(s)
    });

    async fn hole_then_sealed<S: Store>(store: &S) {
        assert_eq!(append(store).await, 1);
        // A writer takes number 2 and stops before committing it; another commits 3.
        assert_eq!(take(store, "b").await.unwrap(), 2);
        assert_eq!(append(store).await, 3);
        let mut r = Reader::new("b", 0);
        let t0 = Timestamp(10_000);
        assert_eq!(seqs(&r.next(store, t0, 10).await.unwrap()), [1]);
        assert!(
            r.next(store, Timestamp(t0.0 + 1000), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(r.has_hole());
        // After the grace the reader seals 2 and reads on.
        let later = Timestamp(t0.0 + HOLE_GRACE_MS);
        assert_eq!(seqs(&r.next(store, later, 10).await.unwrap()), [3]);
        // The late writer finds its slot sealed and takes number 4.
        assert_eq!(
            commit(store, "b", 2, &event(2)).await.unwrap(),
            Decided::Sealed
        );
        assert_eq!(append(store).await, 4);
        assert_eq!(seqs(&r.next(store, later, 10).await.unwrap()), [4]);
        // A reader from the start sees the same: 2 is void.
        let mut again = Reader::new("b", 0);
        assert_eq!(
            seqs(&again.next(store, later, 10).await.unwrap()),
            [1, 3, 4]
        );
    }
    every_backend!(a_reader_waits_at_a_hole_then_seals_it, hole_then_sealed);

    async fn holes_in_a_row<S: Store>(store: &S) {
        // Three writers take numbers 1, 2 and 3 and die (a host killed); another commits 4.
        for n in 1..=3 {
            assert_eq!(take(store, "b").await.unwrap(), n);
        }
        assert_eq!(append(store).await, 4);
        let mut r = Reader::new("b", 0);
        let t0 = Timestamp(10_000);
        assert!(r.next(store, t0, 10).await.unwrap().is_empty());
        assert!(r.has_hole());
        // Every hole was timed from the first read, so one grace period later all three are
        // sealed in one read, not one grace period after another.
        let later = Timestamp(t0.0 + HOLE_GRACE_MS);
        assert_eq!(seqs(&r.next(store, later, 10).await.unwrap()), [4]);
        assert!(!r.has_hole());
    }
    every_backend!(holes_in_a_row_are_resolved_together, holes_in_a_row);

    async fn voids_in_a_batch<S: Store>(store: &S) {
        // 1 and 3 are events, 2 and 4 void (numbers their takers gave up), then 5 and 6.
        for n in 1..=6 {
            assert_eq!(take(store, "b").await.unwrap(), n);
            let body = if n % 2 == 0 && n < 5 {
                VOID.to_vec()
            } else {
                event(n)
            };
            commit(store, "b", n, &body).await.unwrap();
        }
        let mut r = Reader::new("b", 0);
        let t = Timestamp(0);
        // A read of 4 slots returns 2 events: fewer than its limit, yet not the end of the log.
        assert_eq!(seqs(&r.next_upto(store, t, 4, 6).await.unwrap()), [1, 3]);
        assert!(r.more_below(6));
        assert_eq!(seqs(&r.next_upto(store, t, 4, 6).await.unwrap()), [5, 6]);
        assert!(!r.more_below(6));
        // Held at a hole, there is nothing more to read until it is decided.
        assert_eq!(take(store, "b").await.unwrap(), 7);
        assert_eq!(append(store).await, 8);
        assert!(r.next_upto(store, t, 4, 8).await.unwrap().is_empty());
        assert!(!r.more_below(8));
    }
    every_backend!(a_batch_of_voids_is_not_the_end_of_the_log, voids_in_a_batch);

    async fn committed_then_died<S: Store>(store: &S) {
        // A writer commits number 1 and dies before writing the body.
        let n = take(store, "b").await.unwrap();
        store
            .set(&keys::log_pending("b", n), &event(n))
            .await
            .unwrap();
        store.increment(&keys::log_claim("b", n), 1).await.unwrap();
        let mut r = Reader::new("b", 0);
        let t0 = Timestamp(5_000);
        assert!(r.next(store, t0, 10).await.unwrap().is_empty());
        let got = r
            .next(store, Timestamp(t0.0 + HOLE_GRACE_MS), 10)
            .await
            .unwrap();
        assert_eq!(seqs(&got), [1]);
        assert_eq!(got[0].json.as_bytes(), event(1).as_slice());
        // The body is in place for everyone else now.
        assert_eq!(
            store.get(&keys::log_event("b", 1)).await.unwrap(),
            Some(event(1))
        );
    }
    every_backend!(
        a_writer_that_died_after_its_commit_is_completed_from_its_pending_copy,
        committed_then_died
    );

    async fn seal_race<S: Store>(store: &S) {
        // Two sealers and the writer, in every order of their steps' outcomes: one decision.
        let n = take(store, "b").await.unwrap();
        assert_eq!(resolve(store, "b", n).await.unwrap(), Decided::Sealed);
        assert_eq!(resolve(store, "b", n).await.unwrap(), Decided::Sealed);
        assert_eq!(
            commit(store, "b", n, &event(n)).await.unwrap(),
            Decided::Sealed
        );
        assert_eq!(resolve(store, "b", n).await.unwrap(), Decided::Sealed);
        let m = take(store, "b").await.unwrap();
        assert_eq!(
            commit(store, "b", m, &event(m)).await.unwrap(),
            Decided::Committed
        );
        assert_eq!(resolve(store, "b", m).await.unwrap(), Decided::Committed);
        assert_eq!(
            written(store, "b", m).await.unwrap(),
            Some(Decided::Committed)
        );
        // A reader that sealed a slot writes the void marker as its body.
        assert_eq!(written(store, "b", n).await.unwrap(), None);
        store.set(&keys::log_event("b", n), VOID).await.unwrap();
        assert_eq!(written(store, "b", n).await.unwrap(), Some(Decided::Sealed));
        // A second committer of the same event (a re-drive) still counts as a commit.
        let k = take(store, "b").await.unwrap();
        assert_eq!(written(store, "b", k).await.unwrap(), None);
        assert_eq!(
            commit(store, "b", k, &event(k)).await.unwrap(),
            Decided::Committed
        );
        assert_eq!(
            commit(store, "b", k, &event(k)).await.unwrap(),
            Decided::Committed
        );
    }
    every_backend!(a_claim_is_decided_once, seal_race);

    async fn fresh_start<S: Store>(store: &S) {
        for _ in 0..3 {
            append(store).await;
        }
        // Number 4 is taken, not yet written; 5 is committed.
        let four = take(store, "b").await.unwrap();
        assert_eq!(append(store).await, 5);
        let mut r = Reader::fresh(store, "b", 5).await.unwrap();
        assert_eq!(r.cursor(), 3, "starts below the open slot");
        assert!(r.next(store, Timestamp(0), 10).await.unwrap().is_empty());
        commit(store, "b", four, &event(four)).await.unwrap();
        // 4 arrives; 5 was history when the reader started.
        assert_eq!(seqs(&r.next(store, Timestamp(1), 10).await.unwrap()), [4]);
        assert_eq!(r.cursor(), 5);
        assert_eq!(append(store).await, 6);
        assert_eq!(seqs(&r.next(store, Timestamp(2), 10).await.unwrap()), [6]);
        // With nothing open, a fresh reader starts at the head.
        assert_eq!(Reader::fresh(store, "b", 6).await.unwrap().cursor(), 6);
    }
    every_backend!(
        a_reader_started_at_the_head_still_gets_an_event_being_written,
        fresh_start
    );

    async fn trimmed<S: Store>(store: &S) {
        for _ in 0..RETAINED + TRIM_EVERY {
            append(store).await;
        }
        assert!(store.get(&keys::log_event("b", 1)).await.unwrap().is_none());
        assert!(
            store
                .get(&keys::log_pending("b", 1))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get(&keys::log_event("b", TRIM_EVERY + 1))
                .await
                .unwrap()
                .is_some()
        );
        // A reader left behind the window jumps to the head and says so.
        let mut r = Reader::new("b", 1);
        assert!(r.next(store, Timestamp(0), 10).await.unwrap().is_empty());
        let head = RETAINED + TRIM_EVERY;
        assert_eq!(r.take_reset(), Some((1, head)));
        assert_eq!(r.take_reset(), None);
        let n = append(store).await;
        assert_eq!(seqs(&r.next(store, Timestamp(0), 10).await.unwrap()), [n]);
    }
    every_backend!(old_events_are_trimmed_and_a_reader_behind_is_reset, trimmed);

    async fn upto<S: Store>(store: &S) {
        for _ in 0..3 {
            append(store).await;
        }
        let mut r = Reader::new("b", 0);
        let got = r.next_upto(store, Timestamp(0), 10, 2).await.unwrap();
        assert_eq!(seqs(&got), [1, 2]);
        assert_eq!(got[1].json.as_bytes(), event(2).as_slice());
        assert_eq!(seqs(&r.next(store, Timestamp(0), 10).await.unwrap()), [3]);
        void(store, "b", take(store, "b").await.unwrap())
            .await
            .unwrap();
        assert_eq!(append(store).await, 5);
        assert_eq!(seqs(&r.next(store, Timestamp(0), 10).await.unwrap()), [5]);
        assert!(!r.has_hole());
    }
    every_backend!(
        a_reader_reads_up_to_a_given_head_and_passes_void_numbers,
        upto
    );

    #[test]
    fn resume_decisions() {
        assert_eq!(resume(None, 7), Resume::Head(7));
        assert_eq!(resume(Some(3), 7), Resume::After(3));
        assert_eq!(resume(Some(7), 7), Resume::After(7));
        assert_eq!(resume(Some(8), 7), Resume::Reset { head: 7 });
        assert_eq!(resume(Some(-1), 7), Resume::Reset { head: 7 });
        assert_eq!(resume(Some(0), RETAINED), Resume::After(0));
        assert_eq!(
            resume(Some(0), RETAINED + 1),
            Resume::Reset { head: RETAINED + 1 }
        );
    }
}

//! Each agent's event log: a strictly increasing sequence 1, 2, 3, … of [`Event`]s.
//!
//! Appending takes a sequence number with the store's atomic increment (so concurrent writers never
//! share one), writes the event under it only if that slot is still empty (compare-and-swap), then
//! publishes the agent on the [change feed](crate::changes), so pollers know where to look (a
//! transition that appends to both parties' logs publishes both at once, after the second). A
//! [`Reader`] delivers strictly in sequence: it reads up to the head and stops at the first slot
//! whose event is not written yet (its writer is between the two steps), so nothing is skipped and
//! nothing is delivered twice; a cursor is the last sequence read.
//!
//! A writer that dies between the two steps (a killed host, a trap) would leave its slot empty for
//! ever and stall every reader. So a reader that has seen the same empty slot for [`HOLE_GRACE_MS`]
//! seals it with a void marker — again only if it is still empty — and moves on; a writer that finds
//! its slot sealed takes a new number. Either the event or the marker lands, never both, so no
//! committed event is skipped. Sequences stay strictly increasing; a sealed slot is a number no
//! event has.
//!
//! Each log keeps its newest [`RETAINED`] events: appending event `n` deletes event `n - RETAINED`.
//! A reader whose cursor is older than that is told so ([`Resume::Reset`]) instead of skipping.

/// How many of its newest events an agent's log keeps.
pub const RETAINED: i64 = 1000;

/// Where a reader with a given cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Deliver every event after this sequence.
    After(i64),
    /// The cursor is older than the retained history (or newer than the log): the reader must
    /// re-synchronise from the inbox list, then continue after `head`.
    Reset {
        /// The log's head now.
        head: i64,
    },
}

/// Decides how a reader with `cursor` (none = only new events) continues, given the log's `head`.
pub fn resume(cursor: Option<i64>, head: i64) -> Resume {
    match cursor {
        None => Resume::After(head),
        Some(c) if c < 0 || c > head || c < head - RETAINED => Resume::Reset { head },
        Some(c) => Resume::After(c),
    }
}

use crate::changes;
use crate::keys;
use crate::model::{Elicitation, Event, EventKind};
use crate::store::{Store, StoreResult, Swap, decode_counter};
use crate::time::Timestamp;

/// How long a reader waits on an empty slot below the head before sealing it.
pub const HOLE_GRACE_MS: u64 = 2000;

const VOID: &[u8] = br#"{"void":true}"#;

/// Appends an event to `agent`'s log, publishes the change, and returns its sequence number.
pub async fn append<S: Store>(
    store: &S,
    agent: &str,
    kind: EventKind,
    at: Timestamp,
    elicitation: &Elicitation,
) -> StoreResult<i64> {
    loop {
        let sequence = store.increment(&keys::log_head(agent), 1).await?;
        if write(store, agent, sequence, kind, at, elicitation).await? {
            changes::publish(store, &[agent]).await?;
            return Ok(sequence);
        }
        // A reader gave this slot up for lost: take the next one.
    }
}

/// What the caller of [`append_once`] knows about the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The caller has just made the transition the event reports (its compare-and-swap won), so
    /// the event's once-marker is almost surely absent and is not read first. Should a twin have
    /// taken it after all, the marker's compare-and-swap settles it as below.
    First,
    /// A re-drive (a retried request, a replay, a reader at a deadline): the event may be there.
    Again,
}

/// The outcome of [`append_once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The event's sequence number.
    pub sequence: i64,
    /// Whether this call wrote it (else it was there already).
    pub written: bool,
}

/// Appends the `kind` event of `elicitation` to `agent`'s log unless it is there already. Doing it
/// again (a retried answer after a crash cut the first one short between its record and its
/// events) adds no duplicate and fills in what is missing. The number taken for it is kept under
/// [`keys::event_marker`].
///
/// It does not publish the change: the caller publishes every agent whose log it wrote, at once
/// ([`changes::publish`]), after its last append.
pub async fn append_once<S: Store>(
    store: &S,
    agent: &str,
    kind: EventKind,
    at: Timestamp,
    elicitation: &Elicitation,
    attempt: Attempt,
) -> StoreResult<Appended> {
    let marker = keys::event_marker(agent, &elicitation.id, kind);
    let appended = |sequence, written| Appended { sequence, written };
    let mut read_marker = attempt == Attempt::Again;
    loop {
        let taken = if read_marker {
            store.get(&marker).await?
        } else {
            None
        };
        read_marker = true;
        if let Some(seq) = taken
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<i64>().ok())
        {
            if seq <= head(store, agent).await? - RETAINED {
                return Ok(appended(seq, false)); // long since written and trimmed
            }
            match store.get(&keys::log_event(agent, seq)).await? {
                Some(v) if v != VOID => return Ok(appended(seq, false)),
                // Sealed by a reader: the event never landed; it gets a new number below.
                Some(_) => {}
                // Taken by a writer that died before writing it: write it now.
                None => {
                    if write(store, agent, seq, kind, at, elicitation).await? {
                        return Ok(appended(seq, true));
                    }
                    continue;
                }
            }
        }
        let seq = store.increment(&keys::log_head(agent), 1).await?;
        let mine = seq.to_string();
        if store
            .compare_and_swap(&marker, taken.as_deref(), mine.as_bytes())
            .await?
            != Swap::Done
        {
            // A concurrent twin took the marker first (or, on a first attempt, it was there after
            // all). Our number will never hold an event: void it now, so readers pass it at once
            // instead of waiting for it to be given up.
            store
                .compare_and_swap(&keys::log_event(agent, seq), None, VOID)
                .await?;
            continue;
        }
        if write(store, agent, seq, kind, at, elicitation).await? {
            return Ok(appended(seq, true));
        }
    }
}

/// Writes the event under `sequence` if that slot is still empty, then trims the log; false if a
/// reader had sealed the slot.
async fn write<S: Store>(
    store: &S,
    agent: &str,
    sequence: i64,
    kind: EventKind,
    at: Timestamp,
    elicitation: &Elicitation,
) -> StoreResult<bool> {
    let event = Event {
        sequence,
        kind,
        at,
        elicitation: elicitation.clone(),
    };
    let json = Logged::new(event).json;
    if store
        .compare_and_swap(&keys::log_event(agent, sequence), None, json.as_bytes())
        .await?
        != Swap::Done
    {
        return Ok(false);
    }
    if sequence > RETAINED {
        store
            .delete(&keys::log_event(agent, sequence - RETAINED))
            .await?;
    }
    Ok(true)
}

/// The last sequence number handed out for `agent` (0 for an empty log).
pub async fn head<S: Store>(store: &S, agent: &str) -> StoreResult<i64> {
    Ok(decode_counter(
        store.get(&keys::log_head(agent)).await?.as_deref(),
    ))
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
    /// `event` with its JSON, as [`append`] stores it.
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
    hole: Option<(i64, Timestamp)>,
    /// Set when the reader fell behind the retained window: (its cursor then, the head it jumped to).
    behind: Option<(i64, i64)>,
}

impl Reader {
    /// A reader that delivers the events after `cursor`.
    pub fn new(agent: &str, cursor: i64) -> Self {
        Self {
            agent: agent.to_string(),
            cursor,
            hole: None,
            behind: None,
        }
    }

    /// If the reader fell more than [`RETAINED`] events behind, the events in between are gone:
    /// it has moved on to the head and tells it once here, as (its cursor then, the new cursor).
    /// The consumer must re-synchronise from the inbox list, as for [`Resume::Reset`].
    pub fn take_reset(&mut self) -> Option<(i64, i64)> {
        self.behind.take()
    }

    fn jump_to(&mut self, head: i64) {
        self.behind = Some((self.cursor, head));
        self.cursor = head;
        self.hole = None;
    }

    /// Whether the reader is waiting at an empty slot below the head.
    pub fn has_hole(&self) -> bool {
        self.hole.is_some()
    }

    /// The last sequence read (delivered or sealed).
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// The next events after the cursor, in order, at most `limit`; stops before a slot not yet
    /// written, and seals one that stayed empty for [`HOLE_GRACE_MS`].
    pub async fn next<S: Store>(
        &mut self,
        store: &S,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<Logged>> {
        let head = head(store, &self.agent).await?;
        self.next_upto(store, now, limit, head).await
    }

    /// As [`next`](Self::next), reading no further than `head`, the log's head as the caller has
    /// just read it (a head read a moment ago is never ahead of the log, so nothing is skipped).
    pub async fn next_upto<S: Store>(
        &mut self,
        store: &S,
        now: Timestamp,
        limit: usize,
        head: i64,
    ) -> StoreResult<Vec<Logged>> {
        if self.cursor < head - RETAINED {
            self.jump_to(head);
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
        let keys: Vec<String> = (self.cursor + 1..=last)
            .map(|s| keys::log_event(&self.agent, s))
            .collect();
        for (seq, value) in (self.cursor + 1..=last).zip(store.get_many(&keys).await?) {
            match value {
                Some(v) if v == VOID => self.cursor = seq,
                Some(v) => {
                    if let Ok(event) = serde_json::from_slice::<Event>(&v) {
                        let json = String::from_utf8(v).unwrap_or_default();
                        events.push(Logged { event, json });
                    }
                    self.cursor = seq;
                }
                None => {
                    // Trimmed while we were reading (the log moved on by a whole window)?
                    let now_head = self::head(store, &self.agent).await?;
                    if seq <= now_head - RETAINED {
                        self.jump_to(now_head);
                        return Ok(Vec::new());
                    }
                    match self.hole {
                        Some((s, since))
                            if s == seq && since.millis_until(now) >= HOLE_GRACE_MS =>
                        {
                            let key = keys::log_event(&self.agent, seq);
                            if store.compare_and_swap(&key, None, VOID).await? == Swap::Done {
                                self.cursor = seq;
                                self.hole = None;
                                continue;
                            }
                            // The event arrived after all: read it next time.
                        }
                        Some((s, _)) if s == seq => {}
                        _ => self.hole = Some((seq, now)),
                    }
                    break;
                }
            }
        }
        if self.hole.is_some_and(|(s, _)| s <= self.cursor) {
            self.hole = None;
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::Attempt::{Again, First};
    use super::*;
    use crate::model::{Mode, Status};
    use crate::store::MemoryStore;
    use futures::executor::block_on;

    fn sample() -> Elicitation {
        Elicitation {
            id: "el_1".into(),
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
        }
    }

    #[test]
    fn a_reader_waits_at_a_hole_then_seals_it_and_the_late_writer_moves_on() {
        block_on(async {
            let store = MemoryStore::new();
            let e = sample();
            append(&store, "b", EventKind::Created, Timestamp(0), &e)
                .await
                .unwrap();
            // A writer takes number 2 and stops before writing it.
            store.increment(&keys::log_head("b"), 1).await.unwrap();
            append(&store, "b", EventKind::Answered, Timestamp(0), &e)
                .await
                .unwrap();
            let mut r = Reader::new("b", 0);
            let t0 = Timestamp(10_000);
            assert_eq!(r.next(&store, t0, 10).await.unwrap().len(), 1);
            assert_eq!(r.cursor(), 1);
            // Still inside the grace period: nothing past the hole.
            assert!(
                r.next(&store, Timestamp(t0.0 + 1000), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // After it: the hole is sealed and event 3 arrives.
            let later = r
                .next(&store, Timestamp(t0.0 + HOLE_GRACE_MS), 10)
                .await
                .unwrap();
            assert_eq!(
                later.iter().map(|e| e.event.sequence).collect::<Vec<_>>(),
                [3]
            );
            // The late writer of slot 2 finds it sealed and takes number 4.
            let key = keys::log_event("b", 2);
            assert_eq!(
                store.compare_and_swap(&key, None, b"x").await.unwrap(),
                Swap::Changed(Some(VOID.to_vec()))
            );
            assert_eq!(
                append(&store, "b", EventKind::Expired, Timestamp(0), &e)
                    .await
                    .unwrap(),
                4
            );
            assert_eq!(
                r.next(&store, Timestamp(t0.0 + HOLE_GRACE_MS), 10)
                    .await
                    .unwrap()[0]
                    .event
                    .sequence,
                4
            );
        });
    }

    #[test]
    fn old_events_are_trimmed_to_the_retained_window() {
        block_on(async {
            let store = MemoryStore::new();
            let e = sample();
            for _ in 0..RETAINED + 3 {
                append(&store, "b", EventKind::Created, Timestamp(0), &e)
                    .await
                    .unwrap();
            }
            assert!(store.get(&keys::log_event("b", 3)).await.unwrap().is_none());
            assert!(store.get(&keys::log_event("b", 4)).await.unwrap().is_some());
        });
    }

    #[test]
    fn a_reader_left_behind_the_retained_window_jumps_to_the_head_and_says_so() {
        block_on(async {
            let store = MemoryStore::new();
            let e = sample();
            let mut r = Reader::new("b", 0);
            append(&store, "b", EventKind::Created, Timestamp(0), &e)
                .await
                .unwrap();
            assert_eq!(r.next(&store, Timestamp(0), 10).await.unwrap().len(), 1);
            assert_eq!(r.take_reset(), None);
            for _ in 0..RETAINED + 5 {
                append(&store, "b", EventKind::Created, Timestamp(0), &e)
                    .await
                    .unwrap();
            }
            assert!(r.next(&store, Timestamp(0), 10).await.unwrap().is_empty());
            assert_eq!(r.take_reset(), Some((1, RETAINED + 6)));
            assert_eq!(r.take_reset(), None);
            append(&store, "b", EventKind::Answered, Timestamp(0), &e)
                .await
                .unwrap();
            let next = r.next(&store, Timestamp(0), 10).await.unwrap();
            assert_eq!(
                next.iter().map(|e| e.event.sequence).collect::<Vec<_>>(),
                [RETAINED + 7]
            );
            // Nothing was sealed below the window.
            assert!(store.get(&keys::log_event("b", 2)).await.unwrap().is_none());
        });
    }

    #[test]
    fn appending_once_twice_adds_nothing_and_fills_in_a_lost_write() {
        block_on(async {
            let store = MemoryStore::new();
            let e = sample();
            let first = append_once(&store, "b", EventKind::Answered, Timestamp(0), &e, First)
                .await
                .unwrap();
            let again = append_once(&store, "b", EventKind::Answered, Timestamp(5), &e, Again)
                .await
                .unwrap();
            assert_eq!((first.sequence, first.written), (1, true));
            assert_eq!((again.sequence, again.written), (1, false));
            assert_eq!(head(&store, "b").await.unwrap(), 1);
            // A writer that took number 2 for the expiry and died before writing it.
            let marker = keys::event_marker("b", &e.id, EventKind::Expired);
            store.increment(&keys::log_head("b"), 1).await.unwrap();
            store.set(&marker, b"2").await.unwrap();
            assert_eq!(
                append_once(&store, "b", EventKind::Expired, Timestamp(0), &e, Again)
                    .await
                    .unwrap(),
                Appended {
                    sequence: 2,
                    written: true
                }
            );
            // Or a reader sealed its slot meanwhile: a new number.
            let marker = keys::event_marker("b", &e.id, EventKind::Withdrawn);
            store.increment(&keys::log_head("b"), 1).await.unwrap();
            store.set(&marker, b"3").await.unwrap();
            store
                .compare_and_swap(&keys::log_event("b", 3), None, VOID)
                .await
                .unwrap();
            assert_eq!(
                append_once(&store, "b", EventKind::Withdrawn, Timestamp(0), &e, Again)
                    .await
                    .unwrap()
                    .sequence,
                4
            );
            let mut r = Reader::new("b", 0);
            let kinds: Vec<EventKind> = r
                .next(&store, Timestamp(0), 10)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.event.kind)
                .collect();
            assert_eq!(
                kinds,
                [
                    EventKind::Answered,
                    EventKind::Expired,
                    EventKind::Withdrawn
                ]
            );
        });
    }

    /// A store in which a concurrent twin takes a marker just before our compare-and-swap on it.
    struct Twin {
        inner: MemoryStore,
        marker: String,
        raced: std::cell::Cell<bool>,
    }

    impl Store for Twin {
        async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
            self.inner.get(key).await
        }
        async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
            self.inner.get_many(keys).await
        }
        async fn set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
            self.inner.set(key, value).await
        }
        async fn delete(&self, key: &str) -> StoreResult<()> {
            self.inner.delete(key).await
        }
        async fn increment(&self, key: &str, delta: i64) -> StoreResult<i64> {
            self.inner.increment(key, delta).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: Option<&[u8]>,
            new: &[u8],
        ) -> StoreResult<Swap> {
            if key == self.marker && !self.raced.replace(true) {
                // The twin takes its own number and the marker, and has not written yet.
                let n = self.inner.increment(&keys::log_head("b"), 1).await?;
                self.inner.set(key, n.to_string().as_bytes()).await?;
            }
            self.inner.compare_and_swap(key, expected, new).await
        }
    }

    #[test]
    fn a_twin_that_loses_the_marker_voids_its_number_at_once() {
        block_on(async {
            let e = sample();
            let store = Twin {
                inner: MemoryStore::new(),
                marker: keys::event_marker("b", &e.id, EventKind::Answered),
                raced: std::cell::Cell::new(false),
            };
            // We take number 1, the twin takes 2 and the marker; we void 1, then find the
            // twin's number unwritten and write the event there ourselves.
            let seq = append_once(&store, "b", EventKind::Answered, Timestamp(0), &e, Again)
                .await
                .unwrap()
                .sequence;
            assert_eq!(seq, 2);
            one_event_and_a_void_number(&store, 1).await;
        });
    }

    /// Number `void` of b's log holds the void marker, and a reader gets the one event of the two
    /// numbers and passes the void one without waiting at it.
    async fn one_event_and_a_void_number<S: Store>(store: &S, void: i64) {
        let slot = store.get(&keys::log_event("b", void)).await.unwrap();
        assert_eq!(slot.as_deref(), Some(VOID));
        let mut r = Reader::new("b", 0);
        assert_eq!(r.next(store, Timestamp(0), 10).await.unwrap().len(), 1);
        assert_eq!((r.cursor(), r.has_hole()), (2, false));
    }

    #[test]
    fn a_first_attempt_that_finds_the_event_there_adds_nothing() {
        block_on(async {
            let store = MemoryStore::new();
            let e = sample();
            let first = append_once(&store, "b", EventKind::Answered, Timestamp(0), &e, First)
                .await
                .unwrap();
            // A second "first" attempt (a twin that believed it made the transition) skips the
            // marker read, loses the marker's compare-and-swap, voids its number and finds the event.
            let twin = append_once(&store, "b", EventKind::Answered, Timestamp(0), &e, First)
                .await
                .unwrap();
            assert_eq!((first.sequence, twin.sequence, twin.written), (1, 1, false));
            one_event_and_a_void_number(&store, 2).await;
        });
    }

    #[test]
    fn a_reader_given_the_head_reads_up_to_it_and_hands_out_the_stored_json() {
        block_on(async {
            let store = MemoryStore::new();
            let e = sample();
            for kind in [EventKind::Created, EventKind::Answered, EventKind::Expired] {
                append(&store, "b", kind, Timestamp(0), &e).await.unwrap();
            }
            let mut r = Reader::new("b", 0);
            let got = r.next_upto(&store, Timestamp(0), 10, 2).await.unwrap();
            assert_eq!(
                got.iter().map(|l| l.event.sequence).collect::<Vec<_>>(),
                [1, 2]
            );
            let stored = store.get(&keys::log_event("b", 2)).await.unwrap().unwrap();
            assert_eq!(got[1].json.as_bytes(), stored.as_slice());
            // The rest comes with the next read.
            let rest = r.next(&store, Timestamp(0), 10).await.unwrap();
            assert_eq!(
                rest.iter().map(|l| l.event.sequence).collect::<Vec<_>>(),
                [3]
            );
        });
    }

    #[test]
    fn resume_decisions() {
        assert_eq!(resume(None, 7), Resume::After(7));
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

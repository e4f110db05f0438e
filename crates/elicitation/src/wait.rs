//! Reads that wait for a change without polling the store per request: one elicitation until it is
//! no longer pending, an agent's inbox until a request arrives. The HTTP `?wait=` read and the MCP
//! tools (`ask`, `check`, `inbox`) wait this way.
//!
//! A wait reads the [change feed](crate::changes)'s position *before* it reads what it waits on,
//! then parks on [`Changes::until_changed`] for the agents whose changes concern it: whatever
//! changes after that position wakes it, so nothing that happens between the read and the park is
//! missed. On Spin one watcher per instance polls the feed for all parked waits
//! (`spin::watch`); the domain only needs the trait.
//!
//! A wait holds the caller's verified token and ends with `401` when that expires or is revoked:
//! it never parks past the token's expiry, and a revocation is announced on the feed under the
//! agent's name, which wakes the agent's waits to look at their token again.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;

use crate::changes;
use crate::error::Error;
use crate::keys::Role;
use crate::model::{Elicitation, Status};
use crate::service::{self, ListQuery, Page};
use crate::store::Store;
use crate::time::Timestamp;
use crate::token::Verified;

/// How a wait learns of changes.
pub trait Changes {
    /// Returns once one of `agents` changed after feed position `since`, or after `ms`.
    fn until_changed(&self, agents: Vec<String>, since: i64, ms: u64) -> impl Future<Output = ()>;
}

impl<F, Fut> Changes for F
where
    F: Fn(Vec<String>, i64, u64) -> Fut,
    Fut: Future<Output = ()>,
{
    fn until_changed(&self, agents: Vec<String>, since: i64, ms: u64) -> impl Future<Output = ()> {
        self(agents, since, ms)
    }
}

/// Elicitation `id` as `actor` sees it, once it is no longer pending or `wait_ms` after `clock()`
/// first read — whichever comes first. It wakes at the elicitation's deadline at the latest, so an
/// expiry is seen (and written) on time.
pub async fn settled<S: Store>(
    store: &S,
    who: &Verified,
    id: &str,
    wait_ms: u64,
    clock: &impl Fn() -> Timestamp,
    changes: &impl Changes,
) -> Result<Elicitation, Error> {
    let no_interrupt = async || Ok(None::<std::convert::Infallible>);
    let settled = settled_or(store, who, id, wait_ms, clock, changes, no_interrupt).await?;
    Ok(settled.unwrap_or_else(|never| match never {}))
}

/// [`settled`], also ending as soon as `interrupt` — asked each time the elicitation is found
/// still pending, before the wait is over — has something to say (`Err` of the result).
pub async fn settled_or<S: Store, T>(
    store: &S,
    who: &Verified,
    id: &str,
    wait_ms: u64,
    clock: &impl Fn() -> Timestamp,
    changes: &impl Changes,
    mut interrupt: impl AsyncFnMut() -> Result<Option<T>, Error>,
) -> Result<Result<Elicitation, T>, Error> {
    let started = clock();
    let mut since = if wait_ms > 0 {
        changes::position(store).await?
    } else {
        0
    };
    let actor = who.agent.as_str();
    let mut e = service::get(store, actor, id, started).await?;
    loop {
        if e.status != Status::Pending {
            return Ok(Ok(e));
        }
        if let Some(said) = interrupt().await? {
            return Ok(Err(said));
        }
        let now = clock();
        if started.millis_until(now) >= wait_ms {
            return Ok(Ok(e));
        }
        let left = wait_ms - started.millis_until(now);
        let ms = left
            .min(now.millis_until(e.expires_at).max(1))
            .min(now.millis_until(who.expires).max(1));
        changes
            .until_changed(vec![e.from.clone(), e.to.clone()], since, ms)
            .await;
        since = changes::position(store).await?;
        let now = clock();
        crate::api::still_valid(store, who, now).await?;
        e = service::get(store, actor, id, now).await?;
    }
}

/// A page of `actor`'s pending inbox (`query`, whose role is forced to the inbox and status to
/// pending), returned as soon as it has an item — or, when nothing arrives, `wait_ms` after
/// `clock()` first read. With `query.after` set only requests above that position count, so a
/// caller that leaves one request pending can wait for the next.
pub async fn inbox<S: Store>(
    store: &S,
    who: &Verified,
    query: &ListQuery,
    wait_ms: u64,
    clock: &impl Fn() -> Timestamp,
    changes: &impl Changes,
) -> Result<Page, Error> {
    let query = ListQuery {
        role: Role::Inbox,
        statuses: vec![Status::Pending],
        ..query.clone()
    };
    let actor = who.agent.as_str();
    let started = clock();
    let mut woken = false;
    loop {
        let since = if wait_ms > 0 {
            changes::position(store).await?
        } else {
            0
        };
        let now = clock();
        if woken {
            crate::api::still_valid(store, who, now).await?;
        }
        let page = service::list(store, actor, actor, &query, now).await?;
        if !page.items.is_empty() || started.millis_until(now) >= wait_ms {
            return Ok(page);
        }
        let left = wait_ms - started.millis_until(now);
        let ms = left.min(now.millis_until(who.expires).max(1));
        changes
            .until_changed(vec![actor.to_string()], since, ms)
            .await;
        woken = true;
    }
}

/// How many past polls [`Watchers`] remember for newcomers.
pub const REMEMBERED: usize = 1024;

/// The waits one poller of the change feed serves (on Spin, one per instance: `spin::watch`):
/// who waits on which agents until when, and what the poller saw lately.
///
/// A wait names the feed position it needs changes after (`since`, read before it read what it
/// waits on). A newcomer is not parked when the running poller already saw one of its agents
/// change after `since`, or when `since` is older than anything the poller can vouch for — the
/// position it started at, or the oldest poll it still remembers. The position a poller starts
/// at is set the moment it is started, so a wait that joins before the poller's first poll is
/// judged against it too. `W` is whatever wakes a parked wait when dropped.
pub struct Watchers<W> {
    waiters: Vec<Waiter<W>>,
    /// Feed position after each recent poll, and the agents that poll reported (`None`: all).
    recent: VecDeque<(i64, Option<BTreeSet<String>>)>,
    /// The oldest position `recent` covers changes from.
    covers_from: i64,
    running: bool,
}

struct Waiter<W> {
    agents: Vec<String>,
    /// When it stops waiting anyway (ms).
    until: u64,
    _wake: W,
}

/// What joining came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// One of the agents may have changed already: look again instead of parking.
    Changed,
    /// Parked; start a poller at this position (none was running).
    StartAt(i64),
    /// Parked; the running poller will wake it.
    Parked,
}

impl<W> Default for Watchers<W> {
    fn default() -> Self {
        Self {
            waiters: Vec::new(),
            recent: VecDeque::new(),
            covers_from: 0,
            running: false,
        }
    }
}

impl<W> Watchers<W> {
    /// A wait on `agents` for changes after `since`, until `until` (ms), woken by dropping `wake`.
    pub fn join(&mut self, agents: Vec<String>, since: i64, until: u64, wake: W) -> Joined {
        if self.running && self.changed_since(&agents, since) {
            return Joined::Changed;
        }
        self.waiters.push(Waiter {
            agents,
            until,
            _wake: wake,
        });
        if self.running {
            return Joined::Parked;
        }
        self.running = true;
        self.recent.clear();
        self.covers_from = since;
        Joined::StartAt(since)
    }

    fn changed_since(&self, agents: &[String], since: i64) -> bool {
        since < self.covers_from
            || self.recent.iter().any(|(pos, changed)| {
                *pos > since
                    && changed
                        .as_ref()
                        .is_none_or(|set| agents.iter().any(|a| set.contains(a)))
            })
    }

    /// The poller read the feed up to `position` at `now` (ms): the agents in `changed` (`None`:
    /// possibly anyone; empty: nobody) changed. Wakes their waits, lets go of waits past their time, and
    /// remembers the poll for newcomers.
    pub fn polled(&mut self, position: i64, changed: Option<BTreeSet<String>>, now: u64) {
        self.waiters.retain(|w| {
            w.until > now
                && !changed
                    .as_ref()
                    .is_none_or(|set| w.agents.iter().any(|a| set.contains(a)))
        });
        if changed.as_ref().is_some_and(BTreeSet::is_empty) {
            return; // a quiet poll: nothing for newcomers to learn
        }
        self.recent.push_back((position, changed));
        while self.recent.len() > REMEMBERED {
            if let Some((pos, _)) = self.recent.pop_front() {
                self.covers_from = pos;
            }
        }
    }

    /// Whether nobody waits (the poller may stop).
    pub fn idle(&self) -> bool {
        self.waiters.is_empty()
    }

    /// The poller stopped: whoever still waits is woken to look for themselves.
    pub fn stopped(&mut self) {
        self.running = false;
        self.recent.clear();
        self.waiters.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde_json::json;

    use super::*;
    use crate::store::MemoryStore;

    /// A token of `agent` that lasts through every test's waits.
    fn who(agent: &str) -> Verified {
        Verified {
            agent: agent.into(),
            issued: Timestamp(0),
            expires: Timestamp(u64::MAX / 2),
        }
    }

    /// A clock that a wait moves on: each park advances it by what the wait asked for, after
    /// running `during` once (a change made while the caller waits).
    struct Parked<'a, F: Fn(Timestamp)> {
        now: &'a Cell<u64>,
        during: F,
        parks: Cell<u32>,
    }

    impl<F: Fn(Timestamp)> Changes for Parked<'_, F> {
        fn until_changed(&self, _: Vec<String>, _: i64, ms: u64) -> impl Future<Output = ()> {
            self.parks.set(self.parks.get() + 1);
            (self.during)(Timestamp(self.now.get()));
            self.now.set(self.now.get() + ms);
            std::future::ready(())
        }
    }

    /// Runs `f`, which never waits on a memory store, so a park may run calls of its own.
    fn block_on<F: Future>(f: F) -> F::Output {
        futures::FutureExt::now_or_never(f).expect("nothing here waits")
    }

    async fn ask(store: &MemoryStore, from: &str, to: &str, now: Timestamp, id: &str) {
        let body = json!({"to": to, "message": "ok?", "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}});
        service::create(
            store,
            from,
            body.to_string().as_bytes(),
            None,
            &service::Limits::default(),
            now,
            id.into(),
        )
        .await
        .unwrap();
    }

    /// A wake handle that counts its drops.
    struct Wake<'a>(&'a Cell<u32>);

    impl Drop for Wake<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn a_wait_that_joins_before_the_pollers_first_poll_is_judged_against_its_start() {
        let woken = Cell::new(0);
        let mut w = Watchers::default();
        // A poller ran before and stopped at an old position.
        assert_eq!(
            w.join(vec!["x".into()], 10, 9_999, Wake(&woken)),
            Joined::StartAt(10)
        );
        w.polled(50, Some(BTreeSet::new()), 0);
        w.stopped();
        assert_eq!(woken.get(), 1);
        // A wait from position 100 starts a new poller there; one that read position 95 before it
        // joins next: the poller will not read 96..=100, so it must look again at once.
        assert_eq!(
            w.join(vec!["a".into()], 100, 9_999, Wake(&woken)),
            Joined::StartAt(100)
        );
        assert_eq!(
            w.join(vec!["b".into()], 95, 9_999, Wake(&woken)),
            Joined::Changed
        );
        assert_eq!(
            w.join(vec!["b".into()], 100, 9_999, Wake(&woken)),
            Joined::Parked
        );
    }

    #[test]
    fn a_poll_wakes_the_waits_of_the_agents_it_names_and_newcomers_it_already_passed() {
        let woken = Cell::new(0);
        let mut w = Watchers::default();
        assert_eq!(
            w.join(vec!["a".into()], 7, 9_999, Wake(&woken)),
            Joined::StartAt(7)
        );
        assert_eq!(
            w.join(vec!["b".into()], 7, 9_999, Wake(&woken)),
            Joined::Parked
        );
        w.polled(9, Some(BTreeSet::from(["a".to_string()])), 0);
        assert_eq!(woken.get(), 1, "a's wait, not b's");
        // A newcomer that read position 8 missed a's change at 9 (it is not parked: its handle
        // goes at once); one that read 9 did not.
        assert_eq!(
            w.join(vec!["a".into()], 8, 9_999, Wake(&woken)),
            Joined::Changed
        );
        assert_eq!(woken.get(), 2);
        assert_eq!(
            w.join(vec!["a".into()], 9, 9_999, Wake(&woken)),
            Joined::Parked
        );
        // "Anyone may have changed" wakes everybody; a wait past its time is let go.
        w.polled(10, None, 0);
        assert_eq!(woken.get(), 4);
        assert!(w.idle());
        assert_eq!(
            w.join(vec!["c".into()], 10, 500, Wake(&woken)),
            Joined::Parked
        );
        w.polled(10, Some(BTreeSet::new()), 500);
        assert!(w.idle());
    }

    #[test]
    fn an_inbox_wait_returns_at_once_when_something_is_pending_and_at_its_end_when_nothing_came() {
        let store = MemoryStore::new();
        let now = Cell::new(1_000_000);
        let clock = || Timestamp(now.get());
        let parked = Parked {
            now: &now,
            during: |_| {},
            parks: Cell::new(0),
        };
        let q = ListQuery::pending(Role::Inbox, 10);
        let page = block_on(inbox(&store, &who("b"), &q, 5000, &clock, &parked)).unwrap();
        assert!(page.items.is_empty());
        assert_eq!(now.get(), 1_005_000, "it waited the whole wait");
        block_on(ask(&store, "a", "b", clock(), "el_1"));
        let page = block_on(inbox(&store, &who("b"), &q, 5000, &clock, &parked)).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.position, 1);
        assert_eq!(parked.parks.get(), 1, "no park while something is pending");
    }

    #[test]
    fn an_inbox_wait_after_a_position_ignores_older_requests_and_wakes_for_a_new_one() {
        let store = MemoryStore::new();
        let now = Cell::new(1_000_000);
        let clock = || Timestamp(now.get());
        block_on(ask(&store, "a", "b", clock(), "el_old"));
        let asked = Cell::new(false);
        let parked = Parked {
            now: &now,
            during: |at| {
                if !asked.replace(true) {
                    block_on(ask(&store, "a", "b", at, "el_new"));
                }
            },
            parks: Cell::new(0),
        };
        let mut q = ListQuery::pending(Role::Inbox, 10);
        q.after = Some(1);
        let page = block_on(inbox(&store, &who("b"), &q, 5000, &clock, &parked)).unwrap();
        let ids: Vec<&str> = page.items.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["el_new"]);
        assert_eq!(page.position, 2);
        assert!(page.next_cursor.is_none());
    }

    #[test]
    fn a_wait_ends_with_401_when_its_token_is_revoked_or_expires_meanwhile() {
        let store = MemoryStore::new();
        let now = Cell::new(1_000_000);
        let clock = || Timestamp(now.get());
        block_on(ask(&store, "a", "b", clock(), "el_1"));
        let revoke = |at: Timestamp| {
            block_on(store.set(&crate::keys::revoked("a"), at.0.to_string().as_bytes())).unwrap();
        };
        let parked = Parked {
            now: &now,
            during: revoke,
            parks: Cell::new(0),
        };
        let mut token = who("a");
        token.issued = Timestamp(now.get() - 1);
        let e = block_on(settled(&store, &token, "el_1", 20_000, &clock, &parked)).unwrap_err();
        assert_eq!(e, Error::Unauthorized("token revoked".into()));
        let q = ListQuery::pending(Role::Inbox, 10);
        let e = block_on(inbox(&store, &token, &q, 20_000, &clock, &parked)).unwrap_err();
        assert_eq!(e, Error::Unauthorized("token revoked".into()));
        // A token that expires during the wait: it parks no longer than that, then ends.
        let idle = Parked {
            now: &now,
            during: |_| {},
            parks: Cell::new(0),
        };
        let brief = Verified {
            agent: "b".into(),
            issued: clock(),
            expires: Timestamp(now.get() + 3_000),
        };
        let e = block_on(inbox(&store, &brief, &q, 20_000, &clock, &idle));
        assert_eq!(
            e.map(|p| p.items.len()),
            Ok(1),
            "something is pending: no wait"
        );
        let started = now.get();
        let e = block_on(settled(&store, &brief, "el_1", 20_000, &clock, &idle)).unwrap_err();
        assert_eq!(e, Error::Unauthorized("token expired".into()));
        assert_eq!(now.get() - started, 3_000, "it ended at the token's expiry");
    }

    #[test]
    fn a_settled_wait_returns_the_answer_and_wakes_at_the_deadline_at_the_latest() {
        let store = MemoryStore::new();
        let now = Cell::new(1_000_000);
        let clock = || Timestamp(now.get());
        block_on(ask(&store, "a", "b", clock(), "el_1"));
        let parked = Parked {
            now: &now,
            during: |at| {
                let body = json!({"action": "accept", "content": {"ok": true}});
                let _ = block_on(service::respond(
                    &store,
                    "b",
                    "el_1",
                    body.to_string().as_bytes(),
                    at,
                ));
            },
            parks: Cell::new(0),
        };
        let e = block_on(settled(&store, &who("a"), "el_1", 20_000, &clock, &parked)).unwrap();
        assert_eq!(e.status, Status::Accepted);
        assert_eq!(parked.parks.get(), 1);

        block_on(ask(&store, "a", "b", clock(), "el_2"));
        let idle = Parked {
            now: &now,
            during: |_| {},
            parks: Cell::new(0),
        };
        // The default ttl is 300 s: a 25 s wait ends pending; a wait past the deadline ends expired.
        let e = block_on(settled(&store, &who("a"), "el_2", 25_000, &clock, &idle)).unwrap();
        assert_eq!(e.status, Status::Pending);
        now.set(now.get() + 270_000);
        let e = block_on(settled(&store, &who("a"), "el_2", 25_000, &clock, &idle)).unwrap();
        assert_eq!(e.status, Status::Expired);
    }
}

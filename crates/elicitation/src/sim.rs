//! Adversarial runs of the storage protocol (tests only): several operations run at once against
//! a model of one of Spin's backends ([`SpinSqlite`], [`SpinRedis`]), interleaved at every store
//! call in an order a seeded generator picks, and any of them may crash between two calls (its
//! future is dropped there, as a killed host drops it). Afterwards the survivors' view is checked:
//! one transition per elicitation, every event of it in each party's log exactly once, nothing a
//! backend would get wrong ever called.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::log::{HOLE_GRACE_MS, Reader};
use crate::model::EventKind;
#[cfg(test)]
use crate::model::Status;
use crate::store::{MemoryCas, SpinRedis, SpinSqlite, Store, StoreResult, Swapped, Violation};
use crate::time::Timestamp;
#[cfg(test)]
use crate::{changes, service};

/// A small seeded generator (xorshift64*), so a failing seed can be replayed.
pub struct Rng(Cell<u64>);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(Cell::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1))
    }

    pub fn below(&self, n: u64) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Shared by the store wrapper and the scheduler: which task runs, and which must crash.
#[derive(Default)]
struct Control {
    current: Cell<usize>,
    /// Task → the number of store calls it may still make before it crashes (absent: no crash).
    budget: RefCell<std::collections::BTreeMap<usize, u64>>,
    crashed: RefCell<std::collections::BTreeSet<usize>>,
    /// Store calls made so far: a run that never ends (a livelock) fails instead of hanging.
    calls: Cell<u64>,
}

/// More store calls than any of these runs needs.
const LIVELOCK: u64 = 100_000;

/// A model store whose every call is a point where the scheduler may switch tasks or crash one.
pub struct Sim<S> {
    pub inner: S,
    control: Rc<Control>,
}

/// Returns `Pending` once, so the scheduler gets to pick who goes next.
struct Turn(bool);

impl Future for Turn {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// Never completes: the task that awaits it has crashed.
struct Dead;

impl Future for Dead {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl<S> Sim<S> {
    async fn step(&self) {
        let calls = self.control.calls.get() + 1;
        self.control.calls.set(calls);
        assert!(calls < LIVELOCK, "{calls} store calls: a livelock");
        Turn(false).await;
        let me = self.control.current.get();
        let crash = {
            let mut budget = self.control.budget.borrow_mut();
            match budget.get_mut(&me) {
                Some(0) => true,
                Some(n) => {
                    *n -= 1;
                    false
                }
                None => false,
            }
        };
        if crash {
            self.control.crashed.borrow_mut().insert(me);
            Dead.await;
        }
    }
}

impl<S: Store<Cas = MemoryCas>> Store for Sim<S> {
    type Cas = MemoryCas;

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.step().await;
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.step().await;
        self.inner.set(key, value).await
    }
    async fn delete_many(&self, keys: &[String]) -> StoreResult<()> {
        self.step().await;
        self.inner.delete_many(keys).await
    }
    async fn increment(&self, key: &str, delta: i64) -> StoreResult<i64> {
        self.step().await;
        self.inner.increment(key, delta).await
    }
    async fn cas_read(&self, key: &str) -> StoreResult<(MemoryCas, Option<Vec<u8>>)> {
        self.step().await;
        self.inner.cas_read(key).await
    }
    async fn cas_swap(&self, cas: MemoryCas, new: &[u8]) -> StoreResult<Swapped> {
        self.step().await;
        self.inner.cas_swap(cas, new).await
    }
}

/// The backend models, with the calls they flagged.
pub trait Model: Store<Cas = MemoryCas> + Default {
    fn flagged(&self) -> Vec<Violation>;
    fn keys(&self) -> Vec<String>;
}

impl Model for SpinSqlite {
    fn flagged(&self) -> Vec<Violation> {
        self.violations()
    }
    fn keys(&self) -> Vec<String> {
        SpinSqlite::keys(self)
    }
}

impl Model for SpinRedis {
    fn keys(&self) -> Vec<String> {
        SpinRedis::keys(self)
    }
    fn flagged(&self) -> Vec<Violation> {
        self.violations()
    }
}

type Task<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Runs `tasks` to completion, one store call at a time in a seeded order; task `i` crashes after
/// `crash_after[i]` calls if that is set.
pub fn run<S>(sim: &Sim<S>, rng: &Rng, mut tasks: Vec<Task<'_>>, crash_after: &[Option<u64>]) {
    *sim.control.budget.borrow_mut() = crash_after
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, (*c)?)))
        .collect();
    sim.control.crashed.borrow_mut().clear();
    let mut live: Vec<usize> = (0..tasks.len()).collect();
    let mut cx = Context::from_waker(Waker::noop());
    while !live.is_empty() {
        let pick = live[rng.below(live.len() as u64) as usize];
        sim.control.current.set(pick);
        let done = tasks[pick].as_mut().poll(&mut cx).is_ready();
        if done || sim.control.crashed.borrow().contains(&pick) {
            live.retain(|t| *t != pick);
        }
    }
}

impl<S: Default> Sim<S> {
    pub fn new() -> Self {
        Self {
            inner: S::default(),
            control: Rc::new(Control::default()),
        }
    }
}

/// Reads on with `r` as a late reader would, resolving holes, and returns (sequence, kind, id) of
/// each event in order.
pub async fn read_on<S: Store>(
    store: &S,
    r: &mut Reader,
    now: Timestamp,
) -> Vec<(i64, EventKind, String)> {
    let mut out = Vec::new();
    // A hole is waited at for the grace period, then resolved: read on, a grace later each time.
    let mut t = now.0;
    for _ in 0..64 {
        loop {
            let before = r.cursor();
            let batch = r.next(store, Timestamp(t), 100).await.expect("read");
            let moved = r.cursor() != before;
            out.extend(
                batch
                    .into_iter()
                    .map(|l| (l.event.sequence, l.event.kind, l.event.elicitation.id)),
            );
            if !moved {
                break;
            }
        }
        if !r.has_hole() {
            break;
        }
        t += HOLE_GRACE_MS;
    }
    assert!(!r.has_hole(), "a hole outlived its grace");
    out
}

/// How often the `kind` event of `id` appears in a log.
pub fn count(log: &[(i64, EventKind, String)], id: &str, kind: EventKind) -> usize {
    log.iter().filter(|(_, k, i)| *k == kind && i == id).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const LIMITS: service::Limits = service::Limits {
        create_rate_per_minute: 1_000_000,
        max_pending_per_agent: 1_000_000,
        retention_seconds: 604_800,
    };

    const SEEDS: u64 = 300;
    const T0: Timestamp = Timestamp(1_000_000);

    fn body(to: &str) -> Vec<u8> {
        format!(r#"{{"to":"{to}","message":"m","ttlSeconds":60}}"#).into_bytes()
    }

    /// The whole logs of `agents`, each read from the start at `at` by one task that does not
    /// crash.
    fn read_logs<M: Model>(
        sim: &Sim<M>,
        rng: &Rng,
        agents: &[&str],
        at: Timestamp,
    ) -> Vec<Vec<(i64, EventKind, String)>> {
        let mut logs = Vec::new();
        run(
            sim,
            rng,
            vec![Box::pin(async {
                for agent in agents {
                    logs.push(read_on(sim, &mut Reader::new(agent, 0), at).await);
                }
            })],
            &[None],
        );
        logs
    }

    /// Checks that a stream hub would learn of every event in `logs` (agent, its log) from the
    /// change feed alone, as it does with no periodic look at each stream: the feed mentions the
    /// agent at the event's number or beyond, or tells the hub to look at everything (a number
    /// taken and never written: its publisher died).
    fn announced<M: Model>(
        sim: &Sim<M>,
        rng: &Rng,
        logs: &[(&str, &[(i64, EventKind, String)])],
        at: Timestamp,
    ) {
        let mut heads = std::collections::BTreeMap::new();
        let mut everything = false;
        run(
            sim,
            rng,
            vec![Box::pin(async {
                let mut feed = changes::Feed::at(0);
                let mut t = at;
                for _ in 0..4 {
                    match feed.poll(sim, t).await.expect("poll") {
                        changes::Poll::Everything => everything = true,
                        changes::Poll::Agents(agents) => {
                            for (agent, c) in agents {
                                let h = heads.entry(agent).or_insert(0);
                                *h = c.head.unwrap_or(0).max(*h);
                            }
                        }
                        changes::Poll::Quiet => {}
                    }
                    t = Timestamp(t.0 + changes::GAP_GRACE_MS + changes::COUNTER_EVERY_MS);
                }
            })],
            &[None],
        );
        if everything {
            return;
        }
        for (agent, log) in logs {
            let head = heads.get(*agent).copied().unwrap_or(0);
            for (seq, kind, id) in log.iter() {
                assert!(
                    *seq <= head,
                    "{agent}'s {kind:?} of {id} at {seq} is not in the feed (it says {head})"
                );
            }
        }
    }

    /// Each of `n` tasks crashes with probability 1/3, after up to 14 store calls.
    fn crashes(rng: &Rng, n: usize) -> Vec<Option<u64>> {
        (0..n)
            .map(|_| (rng.below(3) == 0).then(|| rng.below(15)))
            .collect()
    }

    /// Answers, a withdrawal, a read past the deadline (an expiry) and a reader race, any of
    /// them crashing; then a stream's re-drive at the deadline, and late readers.
    fn racing_transitions<M: Model>(seed: u64) {
        let rng = Rng::new(seed);
        let sim = Sim::<M>::new();
        let created = RefCell::new(None);
        run(
            &sim,
            &rng,
            vec![Box::pin(async {
                let c =
                    service::create(&sim, "a", &body("b"), None, &LIMITS, T0, "el_1".into()).await;
                *created.borrow_mut() = Some(c.map(|c| c.elicitation.id));
            })],
            &[None],
        );
        let id = created.take().unwrap().unwrap();
        let late = Timestamp(T0.0 + 61_000);
        let outcomes = RefCell::new(Vec::new());
        let seen = RefCell::new(Vec::new());
        let answer = |body: &'static str| {
            let (sim, id, outcomes) = (&sim, &id, &outcomes);
            Box::pin(async move {
                let r = service::respond(sim, "b", id, body.as_bytes(), Timestamp(T0.0 + 1)).await;
                outcomes.borrow_mut().push(r.map(|e| e.status));
            }) as Task<'_>
        };
        let tasks: Vec<Task<'_>> = vec![
            answer(r#"{"action":"accept"}"#),
            answer(r#"{"action":"decline"}"#),
            answer(r#"{"action":"accept"}"#),
            Box::pin(async {
                let r = service::withdraw(&sim, "a", &id, Timestamp(T0.0 + 2)).await;
                outcomes.borrow_mut().push(r.map(|e| e.status));
            }),
            Box::pin(async {
                let r = service::get(&sim, "a", &id, late).await;
                outcomes.borrow_mut().push(r.map(|e| e.status));
            }),
            Box::pin(async {
                let mut r = Reader::new("b", 0);
                for i in 0..4 {
                    if let Ok(batch) = r.next(&sim, Timestamp(T0.0 + i * 1500), 10).await {
                        seen.borrow_mut()
                            .extend(batch.into_iter().map(|l| l.event.sequence));
                    }
                }
            }),
        ];
        let crash = crashes(&rng, tasks.len());
        run(&sim, &rng, tasks, &crash);
        // Before anyone re-drives: every committed event is readable (a writer that died after
        // its commit left its pending copy), and no event is there twice.
        for log in &read_logs(&sim, &rng, &["a", "b"], Timestamp(T0.0 + 30_000)) {
            for kind in [
                EventKind::Answered,
                EventKind::Withdrawn,
                EventKind::Expired,
            ] {
                assert!(count(log, &id, kind) <= 1, "seed {seed}: {log:?}");
            }
        }
        let logs = read_logs(&sim, &rng, &["a", "b"], Timestamp(T0.0 + 30_000));
        announced(
            &sim,
            &rng,
            &[("a", &logs[0]), ("b", &logs[1])],
            Timestamp(T0.0 + 30_000),
        );
        // A stream at the deadline re-drives whatever a crash left undone.
        let mut record = None;
        run(
            &sim,
            &rng,
            vec![Box::pin(async {
                record = Some(service::expire_due(&sim, "b", &id, late).await.unwrap());
            })],
            &[None],
        );
        let e = record.unwrap();
        assert_ne!(e.status, Status::Pending, "seed {seed}");
        let kind = service::final_kind(e.status).expect("a final status");
        let logs = read_logs(&sim, &rng, &["a", "b"], Timestamp(late.0 + 10_000));
        let (a, b) = (&logs[0], &logs[1]);
        announced(
            &sim,
            &rng,
            &[("a", a), ("b", b)],
            Timestamp(late.0 + 10_000),
        );
        assert_eq!(count(b, &id, EventKind::Created), 1, "seed {seed}: {b:?}");
        assert_eq!(count(b, &id, kind), 1, "seed {seed}: {b:?}");
        assert_eq!(count(a, &id, kind), 1, "seed {seed}: {a:?}");
        assert_eq!(a.len(), 1, "seed {seed}: {a:?}");
        assert_eq!(b.len(), 2, "seed {seed}: {b:?}");
        // Whoever was told it succeeded was told the state that won.
        for s in outcomes.borrow().iter().flatten() {
            if *s != Status::Pending {
                assert!(
                    *s == e.status || e.status == Status::Expired || *s == Status::Expired,
                    "seed {seed}: told {s:?}, final {:?}",
                    e.status
                );
            }
        }
        // The concurrent reader got events in order, each once.
        let seen = seen.borrow();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: {seen:?}"
        );
        assert_eq!(sim.inner.flagged(), [], "seed {seed}");
    }

    /// Twin creates with one `Idempotency-Key`, any crashing; then a replay.
    fn idempotent_twins<M: Model>(seed: u64) {
        let rng = Rng::new(seed);
        let sim = Sim::<M>::new();
        let ids = RefCell::new(Vec::new());
        let twin = |n: usize| {
            let (sim, ids) = (&sim, &ids);
            Box::pin(async move {
                let r = service::create(
                    sim,
                    "a",
                    &body("b"),
                    Some("k"),
                    &LIMITS,
                    T0,
                    format!("el_t{n}"),
                )
                .await;
                if let Ok(c) = r {
                    ids.borrow_mut().push(c.elicitation.id);
                }
            }) as Task<'_>
        };
        let tasks = vec![twin(0), twin(1), twin(2)];
        let crash = crashes(&rng, tasks.len());
        run(&sim, &rng, tasks, &crash);
        run(&sim, &rng, vec![twin(9)], &[None]);
        let log = read_logs(&sim, &rng, &["b"], Timestamp(T0.0 + 10_000)).remove(0);
        let ids = ids.borrow();
        let winner = ids.last().expect("the replay returns").clone();
        assert!(ids.iter().all(|i| *i == winner), "seed {seed}: {ids:?}");
        assert_eq!(log.len(), 1, "seed {seed}: {log:?}");
        assert_eq!(count(&log, &winner, EventKind::Created), 1, "seed {seed}");
        announced(&sim, &rng, &[("b", &log)], Timestamp(T0.0 + 10_000));
        assert_eq!(sim.inner.flagged(), [], "seed {seed}");
    }

    /// Creates to one agent, any crashing, while a stream starts at the head: it must get every
    /// event that was not already there when it started, once.
    fn fresh_reader_among_writers<M: Model>(seed: u64) {
        let rng = Rng::new(seed);
        let sim = Sim::<M>::new();
        let mk = |from: &'static str, n: usize| {
            let sim = &sim;
            Box::pin(async move {
                let _ = service::create(
                    sim,
                    from,
                    &body("b"),
                    None,
                    &LIMITS,
                    T0,
                    format!("el_{from}{n}"),
                )
                .await;
            }) as Task<'_>
        };
        run(&sim, &rng, vec![mk("x", 0), mk("x", 1)], &[None, None]);
        let fresh = RefCell::new(None);
        let got = RefCell::new(Vec::new());
        let mut tasks = vec![mk("p", 0), mk("q", 0), mk("r", 0), mk("s", 0)];
        let mut crash = crashes(&rng, tasks.len());
        tasks.push(Box::pin(async {
            let head = crate::log::head(&sim, "b").await.unwrap();
            let mut r = Reader::fresh(&sim, "b", head).await.unwrap();
            let start = (r.cursor(), r.history_for_tests());
            for i in 0..3 {
                if let Ok(batch) = r.next(&sim, Timestamp(T0.0 + i * 1000), 10).await {
                    got.borrow_mut()
                        .extend(batch.into_iter().map(|l| l.event.sequence));
                }
            }
            *fresh.borrow_mut() = Some((r, start));
        }));
        crash.push(None);
        run(&sim, &rng, tasks, &crash);
        let (mut r, (cursor, history)) = fresh.take().unwrap();
        let mut all = Vec::new();
        run(
            &sim,
            &rng,
            vec![Box::pin(async {
                let late = Timestamp(T0.0 + 20_000);
                let rest = read_on(&sim, &mut r, late).await;
                got.borrow_mut().extend(rest.into_iter().map(|e| e.0));
                all = read_on(&sim, &mut Reader::new("b", 0), late).await;
            })],
            &[None],
        );
        announced(&sim, &rng, &[("b", &all)], Timestamp(T0.0 + 20_000));
        let got = got.borrow();
        let unique: BTreeSet<i64> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "seed {seed}: twice in {got:?}");
        for (seq, _, _) in &all {
            if *seq > cursor && !history.contains(seq) {
                assert!(
                    unique.contains(seq),
                    "seed {seed}: {seq} missed; got {got:?}, all {all:?}"
                );
            }
        }
        assert_eq!(sim.inner.flagged(), [], "seed {seed}");
    }

    /// Five creates race for room under `limits` (from `froms`, all to `b`), none crashing:
    /// exactly `admitted` of them are created, every other one is a 429 that left nothing behind
    /// (its counters given back, no record), and the counters then hold what was admitted.
    fn racing_creates_under_limits<M: Model>(
        seed: u64,
        limits: service::Limits,
        froms: [&'static str; 5],
        admitted: usize,
    ) {
        let rng = Rng::new(seed);
        let sim = Sim::<M>::new();
        let results = RefCell::new(Vec::new());
        let tasks: Vec<Task<'_>> = froms
            .iter()
            .enumerate()
            .map(|(n, from)| {
                let (sim, results) = (&sim, &results);
                Box::pin(async move {
                    let id = format!("el_{n}");
                    let r =
                        service::create(sim, from, &body("b"), None, &limits, T0, id.clone()).await;
                    results.borrow_mut().push((id, r.map(|_| ())));
                }) as Task<'_>
            })
            .collect();
        run(&sim, &rng, tasks, &[None; 5]);
        let results = results.take();
        let ok: Vec<&String> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ok.len(), admitted, "seed {seed}: {results:?}");
        let mut counts = Vec::new();
        run(
            &sim,
            &rng,
            vec![Box::pin(async {
                for (id, r) in &results {
                    let record = sim.get(&crate::keys::record(id)).await.unwrap();
                    match r {
                        Ok(()) => assert!(record.is_some()),
                        Err(e) => {
                            assert_eq!(e.status(), 429, "seed {seed}: {e:?}");
                            assert!(record.is_none(), "seed {seed}: refused {id} was stored");
                        }
                    }
                }
                counts.push(sim.increment(&crate::keys::pending("b"), 0).await.unwrap());
                for from in BTreeSet::from(froms) {
                    let k = crate::keys::create_rate(from, T0);
                    counts.push(sim.increment(&k, 0).await.unwrap());
                }
            })],
            &[None],
        );
        let admitted = i64::try_from(admitted).unwrap();
        assert_eq!(counts[0], admitted, "seed {seed}: pending count");
        assert_eq!(
            counts[1..].iter().sum::<i64>(),
            admitted,
            "seed {seed}: rate counts"
        );
        assert_eq!(sim.inner.flagged(), [], "seed {seed}");
    }

    #[test]
    fn the_create_rate_is_exact_under_racing_creates_on_both_backends() {
        let limits = service::Limits {
            create_rate_per_minute: 3,
            ..LIMITS
        };
        for seed in 0..SEEDS / 3 {
            racing_creates_under_limits::<SpinSqlite>(seed, limits, ["a"; 5], 3);
            racing_creates_under_limits::<SpinRedis>(seed, limits, ["a"; 5], 3);
        }
    }

    #[test]
    fn the_pending_limit_is_exact_under_racing_creates_on_both_backends() {
        let limits = service::Limits {
            max_pending_per_agent: 2,
            ..LIMITS
        };
        let froms = ["p", "q", "r", "s", "t"];
        for seed in 0..SEEDS / 3 {
            racing_creates_under_limits::<SpinSqlite>(seed, limits, froms, 2);
            racing_creates_under_limits::<SpinRedis>(seed, limits, froms, 2);
        }
    }

    #[test]
    fn a_pending_count_below_zero_is_within_the_limit() {
        // Elicitations created before the limit existed give back units they never took.
        let limits = service::Limits {
            max_pending_per_agent: 1,
            ..LIMITS
        };
        let sim = Sim::<SpinSqlite>::new();
        let ok = RefCell::new(Vec::new());
        run(
            &sim,
            &Rng::new(3),
            vec![Box::pin(async {
                sim.increment(&crate::keys::pending("b"), -2).await.unwrap();
                let b = body("b");
                for n in 0..4 {
                    let r = service::create(&sim, "a", &b, None, &limits, T0, format!("el_{n}"));
                    let admitted = r.await.is_ok();
                    ok.borrow_mut().push(admitted);
                }
            })],
            &[None],
        );
        assert_eq!(ok.take(), [true, true, true, false]);
    }

    #[test]
    fn an_ended_elicitation_gives_its_pending_room_back_once() {
        let limits = service::Limits {
            max_pending_per_agent: 1,
            ..LIMITS
        };
        let sim = Sim::<SpinRedis>::new();
        let rng = Rng::new(1);
        let outcomes = RefCell::new(Vec::new());
        run(
            &sim,
            &rng,
            vec![Box::pin(async {
                let mut o = Vec::new();
                let b = body("b");
                let create =
                    |id: &str| service::create(&sim, "a", &b, None, &limits, T0, id.to_string());
                o.push(create("el_1").await.is_ok());
                o.push(create("el_2").await.is_ok());
                // Declined twice: the repeat is answered as the first was, and gives back nothing.
                let decline = br#"{"action":"decline"}"#;
                o.push(
                    service::respond(&sim, "b", "el_1", decline, T0)
                        .await
                        .is_ok(),
                );
                o.push(
                    service::respond(&sim, "b", "el_1", decline, T0)
                        .await
                        .is_ok(),
                );
                o.push(create("el_3").await.is_ok());
                o.push(create("el_4").await.is_ok());
                *outcomes.borrow_mut() = o;
            })],
            &[None],
        );
        assert_eq!(outcomes.take(), [true, false, true, true, true, false]);
    }

    /// Three elicitations (one with an `Idempotency-Key`) end every way there is — answered,
    /// withdrawn, expired with nobody looking — while a stream hub's expiry pass and creates'
    /// upkeep run: the pending one is expired by the pass at its deadline, each is gone for its
    /// parties once its retention is over, and after the retention pass nothing stored for them is
    /// left but their log events, while every count is back where it started.
    fn retention_leaves_nothing<M: Model>() {
        let sim = Sim::<M>::new();
        let rng = Rng::new(7);
        let limits = service::Limits {
            retention_seconds: 10,
            ..LIMITS
        };
        let mut seen = Vec::new();
        run(
            &sim,
            &rng,
            vec![Box::pin(async {
                let b = body("b");
                let new = |id: &'static str, key: Option<&'static str>| {
                    service::create(&sim, "a", &b, key, &limits, T0, id.to_string())
                };
                new("el_1", None).await.unwrap();
                new("el_2", Some("k")).await.unwrap();
                new("el_3", None).await.unwrap();
                let decline = br#"{"action":"decline"}"#;
                service::respond(&sim, "b", "el_1", decline, T0)
                    .await
                    .unwrap();
                service::withdraw(&sim, "a", "el_2", T0).await.unwrap();
                // Past el_3's deadline (60 s) the hubs' pass writes its expiry.
                let late = Timestamp(T0.0 + 61_300);
                for _ in 0..3 {
                    service::expire_pass(&sim, "hub", late).await.unwrap();
                }
                let raw = sim
                    .get(&crate::keys::record("el_3"))
                    .await
                    .unwrap()
                    .unwrap();
                let r: crate::model::Record = serde_json::from_slice(&raw).unwrap();
                seen.push(r.elicitation.status == Status::Expired);
                seen.push(sim.increment(&crate::keys::pending("b"), 0).await.unwrap() == 0);
                // Retention over: gone for its parties even before anything is deleted.
                let gone = Timestamp(T0.0 + 70_000);
                seen.push(service::get(&sim, "a", "el_1", gone).await.is_err());
                let q = service::ListQuery::pending(crate::keys::Role::Outbox, 10);
                let q = service::ListQuery {
                    statuses: vec![],
                    ..q
                };
                seen.push(
                    service::list(&sim, "a", "a", &q, gone)
                        .await
                        .unwrap()
                        .items
                        .is_empty(),
                );
                let after = Timestamp(T0.0 + 71_300);
                service::upkeep(&sim, &limits, "c", after).await.unwrap();
                // The minute's mark goes when the pass is past the minute.
                let minute_on = Timestamp(T0.0 + 91_300);
                service::upkeep(&sim, &limits, "c", minute_on)
                    .await
                    .unwrap();
            })],
            &[None],
        );
        assert_eq!(seen, [true, true, true, true]);
        // The logs keep only their heads and, at the three's slots, the void marker.
        let logs: Vec<String> = sim
            .inner
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("log/") && !k.ends_with("/head"))
            .collect();
        assert_eq!(logs.len(), 9, "{logs:?}");
        for k in &logs {
            let v = futures::executor::block_on(sim.inner.get(k)).unwrap();
            assert_eq!(v.as_deref(), Some(crate::log::VOID), "{k}");
        }
        let left: Vec<String> = sim
            .inner
            .keys()
            .into_iter()
            .filter(|k| {
                let kept = k.starts_with("log/")
                    || k.ends_with("/head")
                    || k.starts_with("pend/")
                    || k.starts_with("chg/")
                    || ["epoch", "zero", "due/x", "due/r"].contains(&k.as_str());
                !kept
            })
            .collect();
        assert_eq!(left, Vec::<String>::new());
        assert_eq!(sim.inner.flagged(), []);
    }

    #[test]
    fn retention_leaves_nothing_on_spin_sqlite() {
        retention_leaves_nothing::<SpinSqlite>();
    }

    #[test]
    fn retention_leaves_nothing_on_spin_redis() {
        retention_leaves_nothing::<SpinRedis>();
    }

    /// One generated scenario: writers to `b` (each with its number of creates, all with one
    /// `Idempotency-Key` when `keyed`, so they are twins of one request, and a point after which
    /// it crashes), readers of `b`'s log (from the start, or fresh at the head), a replay of the
    /// keyed request after everything; then the whole log and the feed are checked.
    fn generated<M: Model>(
        seed: u64,
        writers: &[(u8, Option<u64>)],
        keyed: bool,
        fresh_readers: &[bool],
    ) -> Result<(), String> {
        let rng = Rng::new(seed);
        let sim = Sim::<M>::new();
        let key = keyed.then_some("k");
        let created = RefCell::new(BTreeSet::new());
        type Seen = (i64, BTreeSet<i64>, Vec<i64>, Option<Reader>);
        let got: Vec<RefCell<Seen>> = fresh_readers
            .iter()
            .map(|_| RefCell::new((0, BTreeSet::new(), Vec::new(), None)))
            .collect();
        let mut tasks: Vec<Task<'_>> = Vec::new();
        let mut crash = Vec::new();
        for (w, (creates, crash_after)) in writers.iter().enumerate() {
            let (sim, created) = (&sim, &created);
            tasks.push(Box::pin(async move {
                for n in 0..*creates {
                    let id = format!("el_w{w}n{n}");
                    if let Ok(c) = service::create(sim, "a", &body("b"), key, &LIMITS, T0, id).await
                    {
                        created.borrow_mut().insert(c.elicitation.id);
                    }
                }
            }));
            crash.push(*crash_after);
        }
        for (fresh, slot) in fresh_readers.iter().zip(&got) {
            let sim = &sim;
            tasks.push(Box::pin(async move {
                let mut r = if *fresh {
                    let Ok(head) = crate::log::head(sim, "b").await else {
                        return;
                    };
                    let Ok(r) = Reader::fresh(sim, "b", head).await else {
                        return;
                    };
                    r
                } else {
                    Reader::new("b", 0)
                };
                {
                    let mut s = slot.borrow_mut();
                    s.0 = r.cursor();
                    s.1 = r.history_for_tests();
                }
                for i in 0..4 {
                    if let Ok(batch) = r.next(sim, Timestamp(T0.0 + i * 1000), 10).await {
                        slot.borrow_mut()
                            .2
                            .extend(batch.into_iter().map(|l| l.event.sequence));
                    }
                }
                slot.borrow_mut().3 = Some(r);
            }));
            crash.push(None);
        }
        run(&sim, &rng, tasks, &crash);
        // The readers read on once the writers are done (or dead), and are held to the log as it
        // is then.
        run(
            &sim,
            &rng,
            vec![Box::pin(async {
                for slot in &got {
                    let reader = slot.borrow_mut().3.take();
                    if let Some(mut r) = reader {
                        let rest = read_on(&sim, &mut r, Timestamp(T0.0 + 20_000)).await;
                        slot.borrow_mut().2.extend(rest.into_iter().map(|e| e.0));
                    }
                }
            })],
            &[None],
        );
        let read_by_then: Vec<i64> = read_logs(&sim, &rng, &["b"], Timestamp(T0.0 + 25_000))
            .remove(0)
            .iter()
            .map(|e| e.0)
            .collect();
        if keyed {
            // A replay of the keyed request after everything: it names what the twins created.
            let replayed = RefCell::new(None);
            run(
                &sim,
                &rng,
                vec![Box::pin(async {
                    let r = service::create(&sim, "a", &body("b"), key, &LIMITS, T0, "el_r".into())
                        .await;
                    *replayed.borrow_mut() = r.ok().map(|c| (c.elicitation.id, c.replayed));
                })],
                &[None],
            );
            let replayed = replayed.take();
            let twins = created.borrow();
            if twins.len() > 1 {
                return Err(format!("twins created {twins:?}"));
            }
            let first = twins.first().cloned();
            drop(twins);
            match (&replayed, first) {
                (Some((id, true)), Some(first)) if *id == first => {}
                // No twin was acknowledged: the replay creates it, or finishes the one a twin
                // that crashed began.
                (Some((id, false)), None) if id == "el_r" => {}
                (Some((id, true)), None) if id.starts_with("el_w") && id.ends_with("n0") => {}
                other => return Err(format!("replay {other:?} of {:?}", created.borrow())),
            }
            if let Some((id, _)) = replayed {
                created.borrow_mut().insert(id);
            }
        }
        let all = read_logs(&sim, &rng, &["b"], Timestamp(T0.0 + 30_000)).remove(0);
        announced(&sim, &rng, &[("b", &all)], Timestamp(T0.0 + 30_000));
        // The log: numbers in order, each once; one created event per elicitation that exists.
        let seqs: Vec<i64> = all.iter().map(|e| e.0).collect();
        if !seqs.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!("log out of order {seqs:?}"));
        }
        let ids: Vec<&String> = all.iter().map(|e| &e.2).collect();
        let unique: BTreeSet<&String> = ids.iter().copied().collect();
        if unique.len() != ids.len() {
            return Err(format!("an elicitation has two created events: {ids:?}"));
        }
        for id in created.borrow().iter() {
            if !unique.contains(id) {
                return Err(format!(
                    "{id} was acknowledged but its event is not in the log"
                ));
            }
        }
        // Every reader: in order, each once, nothing after its start missed (a fresh one passes
        // what was there when it started as history).
        for (fresh, slot) in fresh_readers.iter().zip(&got) {
            let (start, history, seen, _) = &*slot.borrow();
            if !seen.windows(2).all(|w| w[0] < w[1]) {
                return Err(format!("reader (fresh {fresh}) got {seen:?}"));
            }
            for s in read_by_then
                .iter()
                .filter(|s| **s > *start && !history.contains(s))
            {
                if !seen.contains(s) {
                    return Err(format!(
                        "reader from {start} missed {s}: {seen:?} of {read_by_then:?}"
                    ));
                }
            }
        }
        let flagged = sim.inner.flagged();
        if flagged.is_empty() {
            Ok(())
        } else {
            Err(format!("{flagged:?}"))
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 400,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn generated_writers_readers_crashes_and_replays_lose_and_repeat_nothing(
            seed in proptest::prelude::any::<u64>(),
            writers in proptest::collection::vec((0u8..3, proptest::option::of(0u64..20)), 1..5),
            keyed in proptest::prelude::any::<bool>(),
            fresh in proptest::collection::vec(proptest::prelude::any::<bool>(), 1..3),
            redis in proptest::prelude::any::<bool>(),
        ) {
            let checked = if redis {
                generated::<SpinRedis>(seed, &writers, keyed, &fresh)
            } else {
                generated::<SpinSqlite>(seed, &writers, keyed, &fresh)
            };
            proptest::prop_assert_eq!(checked, Ok(()));
        }
    }

    #[test]
    fn racing_transitions_with_crashes_on_spin_sqlite() {
        (0..SEEDS).for_each(racing_transitions::<SpinSqlite>);
    }

    #[test]
    fn racing_transitions_with_crashes_on_spin_redis() {
        (0..SEEDS).for_each(racing_transitions::<SpinRedis>);
    }

    #[test]
    fn idempotent_twins_with_crashes_on_spin_sqlite() {
        (0..SEEDS).for_each(idempotent_twins::<SpinSqlite>);
    }

    #[test]
    fn idempotent_twins_with_crashes_on_spin_redis() {
        (0..SEEDS).for_each(idempotent_twins::<SpinRedis>);
    }

    #[test]
    fn a_fresh_reader_among_crashing_writers_on_spin_sqlite() {
        (0..SEEDS).for_each(fresh_reader_among_writers::<SpinSqlite>);
    }

    #[test]
    fn a_fresh_reader_among_crashing_writers_on_spin_redis() {
        (0..SEEDS).for_each(fresh_reader_among_writers::<SpinRedis>);
    }

    #[test]
    fn the_scheduler_interleaves_and_crashes() {
        // Two tasks of three increments each: some seed interleaves them, and a crash after one
        // call leaves exactly one increment of that task.
        let mut interleaved = false;
        for seed in 0..20 {
            let sim = Sim::<SpinSqlite>::new();
            let order = RefCell::new(Vec::new());
            let task = |t: u8| {
                let (sim, order) = (&sim, &order);
                Box::pin(async move {
                    for _ in 0..3 {
                        sim.increment("n", 1).await.unwrap();
                        order.borrow_mut().push(t);
                    }
                }) as Task<'_>
            };
            run(
                &sim,
                &Rng::new(seed),
                vec![task(0), task(1)],
                &[None, Some(1)],
            );
            let order = order.borrow();
            assert_eq!(order.iter().filter(|t| **t == 1).count(), 1);
            interleaved |= order.first() == Some(&1);
        }
        assert!(interleaved);
    }
}

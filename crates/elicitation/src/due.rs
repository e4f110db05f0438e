//! Deadlines by the second: the structure the expiry and retention passes read, so that neither a
//! stream nor a sweeper ever scans an agent's lists.
//!
//! A create files its elicitation's id under the second its deadline falls in (`due/<s>` counts
//! the entries, `due/<s>/<n>` holds them) and marks the minute as having some (`due/m/<minute>`).
//! Two passes walk the seconds in order, each with a cursor of its own:
//! - the **expiry** pass takes a second once it is over: every elicitation in it that is still
//!   pending gets its expiry written (the transition's swap makes that happen once), so its
//!   parties' streams are pushed the expired event whoever holds them, on any node — every
//!   pending request, however many an agent has;
//! - the **retention** pass takes a second once `retention_seconds` more are over: everything
//!   stored for its elicitations is deleted, and then the second's own keys.
//!
//! A pass moves its cursor with a compare-and-swap over the value it read, so of concurrent
//! callers exactly one takes each second (the value swapped in names the caller, as the store
//! rules require), and takes it before doing its work: a caller that dies on the way leaves that
//! second's expiries to whoever reads the elicitations (any read writes an expiry that is due)
//! and its deletions undone, never done twice. Seconds without entries are skipped cheaply —
//! whole minutes at a time when the minute has none — so a pass catches up quickly after a quiet
//! spell. The passes are bounded work: the stream hubs run the expiry pass every second, and every
//! create runs both (one read of each cursor when nothing is ready), so no sweeper process is
//! needed.

use crate::keys;
use crate::store::{Store, StoreResult, get_all, swap};
use crate::time::Timestamp;

/// How long after a second is over its entries are taken: a create files its entry at least a
/// second before its deadline, so only a create slower than that could come later (the
/// elicitation then expires when it is next read).
pub const GRACE_MS: u64 = 250;

/// The most seconds (or whole minutes) without entries one call moves past.
const MAX_SKIPS: usize = 64;

/// Which pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Writes the expiries of pending elicitations.
    Expiry,
    /// Deletes elicitations this long (ms) after their deadline's second.
    Retention(u64),
}

impl Pass {
    fn cursor(self) -> &'static str {
        match self {
            Self::Expiry => keys::DUE_EXPIRY_CURSOR,
            Self::Retention(_) => keys::DUE_RETENTION_CURSOR,
        }
    }

    /// How long after the start of a second (ms) the pass may take it.
    fn lag(self) -> u64 {
        match self {
            Self::Expiry => 1000 + GRACE_MS,
            Self::Retention(ms) => 1000 + GRACE_MS + ms,
        }
    }

    /// The latest second it may take at `now`, if any.
    fn ready_upto(self, now: Timestamp) -> Option<u64> {
        now.0.checked_sub(self.lag()).map(|t| t / 1000)
    }
}

/// Takes the place of a deadline `expires` in its second: the first half of filing it, which a
/// create makes alongside its other counters ([`file`] is the second).
pub async fn place<S: Store>(store: &S, expires: Timestamp) -> StoreResult<i64> {
    store.increment(&keys::due_count(expires.0 / 1000), 1).await
}

/// Files `id` at place `n` ([`place`]) of the second of its deadline `expires`.
pub async fn file<S: Store>(store: &S, expires: Timestamp, n: i64, id: &str) -> StoreResult<()> {
    let second = expires.0 / 1000;
    let (entry, minute) = futures::future::join(
        store.set(&keys::due_entry(second, n), id.as_bytes()),
        async {
            if n == 1 {
                store.set(&keys::due_minute(second / 60), b"1").await
            } else {
                Ok(())
            }
        },
    )
    .await;
    entry?;
    minute
}

/// A second a pass took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// Which second.
    pub second: u64,
    /// The ids filed under it.
    pub ids: Vec<String>,
    /// Its own keys (the count, the entries, and the minute's mark when it is the minute's
    /// last second with entries the pass will see): the retention pass deletes them last.
    pub keys: Vec<String>,
}

/// Takes the next second `pass` may take at `now` for this caller alone (`me`, unique to it),
/// moving past up to [`MAX_SKIPS`] empty seconds or minutes first. `None` when nothing is ready
/// or another caller took it.
pub async fn take<S: Store>(
    store: &S,
    pass: Pass,
    me: &str,
    now: Timestamp,
) -> StoreResult<Option<Taken>> {
    let Some(upto) = pass.ready_upto(now) else {
        return Ok(None);
    };
    // Most calls find nothing ready: a plain read tells (a compare-and-swap's read costs a
    // `WATCH` more on Redis).
    match store.get(pass.cursor()).await? {
        None => {
            // The first pass ever (or after a store was emptied): nothing was filed before now
            // that this pass has not already gone past.
            let start = upto.saturating_sub(1);
            store
                .set(pass.cursor(), format!("{start} {me}").as_bytes())
                .await?;
            return Ok(None);
        }
        Some(raw) if parse_cursor(&raw) > upto => return Ok(None),
        Some(_) => {}
    }
    for _ in 0..MAX_SKIPS {
        let (cas, raw) = store.cas_read(pass.cursor()).await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let second = parse_cursor(&raw);
        if second > upto {
            return Ok(None);
        }
        let minute = second / 60;
        let (count, marked) = futures::future::join(
            store.get(&keys::due_count(second)),
            store.get(&keys::due_minute(minute)),
        )
        .await;
        let (count, marked) = (count?, marked?);
        let next = if count.is_none() && marked.is_none() && (minute + 1) * 60 - 1 <= upto {
            // Nothing in the whole minute, and all of it is ready.
            (minute + 1) * 60
        } else {
            second + 1
        };
        let mine = format!("{next} {me}");
        if !swap(store, pass.cursor(), cas, mine.as_bytes()).await? {
            return Ok(None);
        }
        if count.is_none() {
            if next % 60 == 0 && marked.is_some() && matches!(pass, Pass::Retention(_)) {
                store.delete_many(&[keys::due_minute(minute)]).await?;
            }
            continue;
        }
        let n = store.increment(&keys::due_count(second), 0).await?;
        let entries: Vec<String> = (1..=n).map(|i| keys::due_entry(second, i)).collect();
        let ids = get_all(store, &entries)
            .await?
            .into_iter()
            .flatten()
            .filter_map(|v| String::from_utf8(v).ok())
            .collect();
        let mut own = entries;
        own.push(keys::due_count(second));
        if next % 60 == 0 {
            own.push(keys::due_minute(minute));
        }
        return Ok(Some(Taken {
            second,
            ids,
            keys: own,
        }));
    }
    Ok(None)
}

/// The second a cursor names (`"<second> <who moved it>"`).
fn parse_cursor(raw: &[u8]) -> u64 {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, SpinRedis, SpinSqlite};
    use futures::executor::block_on;

    const T: u64 = 1_800_000_000_000;

    async fn walks<S: Store>(store: &S) {
        // The first call only sets the cursor.
        assert_eq!(
            take(store, Pass::Expiry, "a", Timestamp(T)).await.unwrap(),
            None
        );
        for (at, id) in [
            (T + 2_500, "el_1"),
            (T + 2_999, "el_2"),
            (T + 600_000, "el_3"),
        ] {
            let n = place(store, Timestamp(at)).await.unwrap();
            file(store, Timestamp(at), n, id).await.unwrap();
        }
        // Not before the second is over (and the grace).
        assert_eq!(
            take(store, Pass::Expiry, "a", Timestamp(T + 3_100))
                .await
                .unwrap(),
            None
        );
        let t = take(store, Pass::Expiry, "a", Timestamp(T + 3_300))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.second, t.ids.as_slice()),
            (T / 1000 + 2, &["el_1".to_string(), "el_2".into()][..])
        );
        // Taken once.
        assert_eq!(
            take(store, Pass::Expiry, "b", Timestamp(T + 3_300))
                .await
                .unwrap(),
            None
        );
        // Ten minutes later two calls walk the rest of the first minute second by second, skip
        // the empty minutes whole, and take el_3's second.
        let later = Timestamp(T + 601_300);
        assert_eq!(take(store, Pass::Expiry, "b", later).await.unwrap(), None);
        let t = take(store, Pass::Expiry, "b", later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.ids, ["el_3"]);
        // The retention pass sees the same seconds later, and names their keys to delete.
        let r = Pass::Retention(60_000);
        assert_eq!(take(store, r, "a", Timestamp(T)).await.unwrap(), None);
        assert_eq!(
            take(store, r, "a", Timestamp(T + 3_300)).await.unwrap(),
            None
        );
        let t = take(store, r, "a", Timestamp(T + 63_300))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.ids.len(), 2);
        assert!(
            t.keys.contains(&keys::due_count(T / 1000 + 2)),
            "{:?}",
            t.keys
        );
        store.delete_many(&t.keys).await.unwrap();
        let later = Timestamp(T + 661_300);
        assert_eq!(take(store, r, "a", later).await.unwrap(), None);
        let t = take(store, r, "a", later).await.unwrap().unwrap();
        assert_eq!(t.ids, ["el_3"]);
        store.delete_many(&t.keys).await.unwrap();
    }

    #[test]
    fn passes_take_each_second_once_in_order_and_skip_empty_minutes() {
        block_on(walks(&MemoryStore::new()));
        block_on(walks(&SpinSqlite::new()));
        let redis = SpinRedis::new();
        block_on(walks(&redis));
        assert_eq!(redis.violations(), []);
    }
}

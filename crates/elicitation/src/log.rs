//! Each agent's event log: a gap-free sequence 1, 2, 3, … of [`Event`]s.
//!
//! Appending takes a sequence number with the store's atomic increment (so concurrent writers never
//! share one), writes the event under it, then bumps the global [`EPOCH`](keys::EPOCH). A reader
//! delivers strictly in sequence: it reads up to the head and stops at the first number whose event
//! is not written yet (its writer is between the two steps), so nothing is skipped and nothing is
//! delivered twice; a cursor is simply the last sequence delivered.

use crate::keys;
use crate::model::{Elicitation, Event, EventKind};
use crate::store::{Store, StoreResult, decode_counter};
use crate::time::Timestamp;

/// Appends an event to `agent`'s log and returns its sequence number.
pub async fn append<S: Store>(
    store: &S,
    agent: &str,
    kind: EventKind,
    at: Timestamp,
    elicitation: &Elicitation,
) -> StoreResult<i64> {
    let sequence = store.increment(&keys::log_head(agent), 1).await?;
    let event = Event {
        sequence,
        kind,
        at,
        elicitation: elicitation.clone(),
    };
    let json = serde_json::to_vec(&event).unwrap_or_default();
    store.set(&keys::log_event(agent, sequence), &json).await?;
    store.increment(keys::EPOCH, 1).await?;
    Ok(sequence)
}

/// The last sequence number handed out for `agent` (0 for an empty log).
pub async fn head<S: Store>(store: &S, agent: &str) -> StoreResult<i64> {
    Ok(decode_counter(
        store.get(&keys::log_head(agent)).await?.as_deref(),
    ))
}

/// Events after `after`, in order, at most `limit`, stopping before the first one not yet written.
pub async fn read_after<S: Store>(
    store: &S,
    agent: &str,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<Event>> {
    let head = head(store, agent).await?;
    let last = head.min(after.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX)));
    if last <= after {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = (after + 1..=last)
        .map(|s| keys::log_event(agent, s))
        .collect();
    let mut events = Vec::new();
    for value in store.get_many(&keys).await? {
        let Some(event) = value.and_then(|v| serde_json::from_slice::<Event>(&v).ok()) else {
            break;
        };
        events.push(event);
    }
    Ok(events)
}

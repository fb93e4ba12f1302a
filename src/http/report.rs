//! Store failures at the HTTP edge: each is counted
//! (`rolling_session_store_errors_total{kind}`) and logged with its source
//! chain, at most once per second per kind (the log line says how many
//! were left out since the last), so that an outage is visible without
//! flooding the log.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, StoreError};

/// The kinds counted, in the order of [`Burst`]'s slots.
const KINDS: [&str; 4] = ["unavailable", "corrupt", "conflict", "other"];

/// At most one log line per kind per this long.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(1);

/// Per kind: when it was last logged (ms since `START`, plus one; 0 =
/// never), and how many were left out since.
struct Burst {
    logged_at: [AtomicU64; KINDS.len()],
    left_out: [AtomicU64; KINDS.len()],
}

static START: LazyLock<Instant> = LazyLock::new(Instant::now);
static BURST: Burst = Burst {
    logged_at: [const { AtomicU64::new(0) }; KINDS.len()],
    left_out: [const { AtomicU64::new(0) }; KINDS.len()],
};

/// The metric label of a store error.
pub(crate) fn kind_of(e: Option<&StoreError>) -> usize {
    match e {
        Some(StoreError::Unavailable(_)) => 0,
        Some(StoreError::Corrupt(_)) => 1,
        Some(StoreError::Conflict) => 2,
        _ => 3,
    }
}

/// Counts and (rate-limited) logs `e` if the store failed; nothing
/// otherwise.
pub(crate) fn store_failure(e: &Error) {
    if !matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Store) {
        return;
    }
    let source = std::error::Error::source(e).and_then(|s| s.downcast_ref::<StoreError>());
    let slot = kind_of(source);
    let kind = KINDS[slot];
    metrics::counter!("rolling_session_store_errors_total", "kind" => kind).increment(1);

    let now = u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
    let last = BURST.logged_at[slot].load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64;
    if !due
        || BURST.logged_at[slot]
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        BURST.left_out[slot].fetch_add(1, Ordering::Relaxed);
        return;
    }
    let left_out = BURST.left_out[slot].swap(0, Ordering::Relaxed);
    tracing::error!(
        target: "rolling_session::store",
        kind,
        left_out,
        error = %chain(e),
        "session store failure (logged at most once a second per kind; left_out counts the others since the last line)"
    );
}

/// `e: its source: its source's source ...`
fn chain(e: &Error) -> String {
    let mut text = e.to_string();
    let mut next = std::error::Error::source(e);
    // Bounded: error chains are short, and a cycle must not hang a request.
    for _ in 0..16 {
        let Some(source) = next else { break };
        let _ = write!(text, ": {source}");
        next = source.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_source() {
        let e = Error::from(StoreError::unavailable(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused by 127.0.0.1:1",
        )));
        assert_eq!(
            chain(&e),
            "the session store is unavailable; try again shortly: session store unavailable: \
             connection refused by 127.0.0.1:1"
        );
        assert_eq!(kind_of(Some(&StoreError::Conflict)), 2);
    }
}

//! Time as the session logic sees it: milliseconds since the Unix epoch,
//! read through a [`Clock`] so tests can move it by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// The manager and the drift predictor never read the system clock
/// themselves; they ask their `Clock`, the way rustls asks its
/// `TimeProvider`. Production code uses [`SystemClock`]; tests use
/// [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Whether this clock follows real time, so that the process's
    /// monotonic clock measures its intervals (the request path then reads
    /// one clock instead of two to tell a late response). Default `false`:
    /// a test clock is read every time.
    fn follows_real_time(&self) -> bool {
        false
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(as_ms)
            .unwrap_or(0)
    }

    fn follows_real_time(&self) -> bool {
        true
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
///
/// ```
/// use rolling_session::{clock::Clock, clock::ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_ms(), 3_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(now_ms)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        self.now.fetch_add(as_ms(by), Ordering::SeqCst);
    }

    /// Sets the clock to `now_ms`.
    pub fn set(&self, now_ms: u64) {
        self.now.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Whole milliseconds of `d`, saturating at `u64::MAX`.
pub(crate) fn as_ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

//! Admission of new sessions: the per-IP creation rate and the cap on all
//! sessions ([`AdmissionPolicy`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::AdmissionPolicy;

/// At most this many addresses are tracked at once (about 40 bytes each).
/// When full, windows that ended are dropped; if every tracked address is
/// still inside its window, a new address is let through untracked (and
/// counted in `rolling_session_logins_untracked_total`): the session cap
/// still bounds memory.
const MAX_TRACKED: usize = 65_536;

/// The `Retry-After` of a refusal at capacity: sessions free up as they
/// end or expire, which no one can predict.
pub(crate) const CAPACITY_RETRY: Duration = Duration::from_secs(30);

/// A client address as rate-limited: IPv4 whole, IPv6 by its /64 (one
/// subscriber's prefix; a client can pick any address in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.into()),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: u64,
    count: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Admission {
    windows: Mutex<HashMap<Client, Window>>,
    in_flight: AtomicU64,
}

/// A creation admitted under the cap; dropping it ends the reservation.
pub(crate) struct Reservation<'a>(Option<&'a AtomicU64>);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(in_flight) = self.0 {
            in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Admission {
    /// Counts a creation by `ip`; `Err(wait)` if its window is used up.
    pub(crate) fn check_ip(
        &self,
        policy: &AdmissionPolicy,
        ip: Option<IpAddr>,
        now_ms: u64,
    ) -> Result<(), Duration> {
        let (Some(limit), Some(ip)) = (policy.per_ip_logins, ip) else {
            return Ok(());
        };
        let window_ms = u64::try_from(policy.per_ip_window.as_millis()).unwrap_or(u64::MAX);
        let ended = |w: &Window| now_ms.saturating_sub(w.start_ms) >= window_ms;
        let client = Client::of(ip);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if !windows.contains_key(&client) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| !ended(w));
            if windows.len() >= MAX_TRACKED {
                metrics::counter!("rolling_session_logins_untracked_total").increment(1);
                return Ok(());
            }
        }
        let window = windows.entry(client).or_insert(Window {
            start_ms: now_ms,
            count: 0,
        });
        if ended(window) {
            *window = Window {
                start_ms: now_ms,
                count: 0,
            };
        }
        if window.count >= limit {
            let ends_at = window.start_ms.saturating_add(window_ms);
            return Err(Duration::from_millis(ends_at.saturating_sub(now_ms).max(1)));
        }
        window.count += 1;
        Ok(())
    }

    /// Admits one creation under `policy.max_sessions`, given how to count
    /// the stored sessions; `Err(())` at capacity.
    ///
    /// Creations in flight are counted with the stored sessions: each
    /// reserves first, then reads the in-flight count, then the store's.
    /// A creation that finished before that read is in the store's count,
    /// one still running is in the in-flight count, and one that starts
    /// later counts this one: on one node the cap is never exceeded,
    /// whatever the parallelism (near the cap, racing logins may both be
    /// refused).
    pub(crate) fn reserve(
        &self,
        policy: &AdmissionPolicy,
        stored: impl FnOnce() -> Option<u64>,
    ) -> Result<Reservation<'_>, ()> {
        let Some(max) = policy.max_sessions else {
            return Ok(Reservation(None));
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let reservation = Reservation(Some(&self.in_flight));
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        // A store that cannot count is refused when the manager is built.
        let stored = stored().unwrap_or(u64::MAX);
        if stored.saturating_add(in_flight) > max {
            return Err(());
        }
        Ok(reservation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(per_ip: u32, max: Option<u64>) -> AdmissionPolicy {
        AdmissionPolicy {
            max_sessions: max,
            per_ip_logins: Some(per_ip),
            per_ip_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn per_ip_windows() {
        let a = Admission::default();
        let p = policy(2, None);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(a.check_ip(&p, Some(ip), 0), Ok(()));
        assert_eq!(a.check_ip(&p, Some(ip), 10_000), Ok(()));
        assert_eq!(
            a.check_ip(&p, Some(ip), 15_000),
            Err(Duration::from_secs(45))
        );
        // Another address, and no address, are not limited by it.
        assert_eq!(
            a.check_ip(&p, Some("198.51.100.8".parse().unwrap()), 15_000),
            Ok(())
        );
        assert_eq!(a.check_ip(&p, None, 15_000), Ok(()));
        // The window ends.
        assert_eq!(a.check_ip(&p, Some(ip), 60_000), Ok(()));
        // An IPv6 /64 is one client.
        let v6 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(a.check_ip(&p, v6("2001:db8:1:2::1"), 0), Ok(()));
        assert_eq!(a.check_ip(&p, v6("2001:db8:1:2:ffff::9"), 0), Ok(()));
        assert!(a.check_ip(&p, v6("2001:db8:1:2:abcd::1"), 0).is_err());
        assert_eq!(a.check_ip(&p, v6("2001:db8:1:3::1"), 0), Ok(()));
    }

    #[test]
    fn tracking_is_bounded() {
        let a = Admission::default();
        let p = policy(1, None);
        for i in 0..MAX_TRACKED as u32 {
            assert_eq!(a.check_ip(&p, Some(IpAddr::V4(i.into())), 0), Ok(()));
        }
        let late = Some(IpAddr::V4(u32::MAX.into()));
        // Full, every window running: let through untracked.
        assert_eq!(a.check_ip(&p, late, 1), Ok(()));
        assert_eq!(a.check_ip(&p, late, 1), Ok(()));
        assert_eq!(a.windows.lock().unwrap().len(), MAX_TRACKED);
        // Once the windows end, they make room.
        assert_eq!(a.check_ip(&p, late, 60_000), Ok(()));
        assert!(a.check_ip(&p, late, 60_001).is_err());
        assert_eq!(a.windows.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_cap_counts_creations_in_flight() {
        let a = Admission::default();
        let p = AdmissionPolicy {
            max_sessions: Some(3),
            ..AdmissionPolicy::default()
        };
        let first = a.reserve(&p, || Some(1)).unwrap();
        let second = a.reserve(&p, || Some(1)).unwrap();
        assert!(a.reserve(&p, || Some(1)).is_err(), "1 stored + 2 in flight");
        drop((first, second));
        assert_eq!(a.in_flight.load(Ordering::SeqCst), 0);
        assert!(a.reserve(&p, || Some(3)).is_err());
        assert!(a.reserve(&p, || Some(2)).is_ok());
        assert!(a.reserve(&AdmissionPolicy::default(), || None).is_ok());
    }
}

//! A lineage's recent retirements: a ring of at most the grace depth,
//! cut by the grace window at its old end and pushed at its new end, so
//! that a request touches the two ends and not the whole list.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::sequence::Retirement;

/// The most retirements a list holds (the grace depth is at most 256).
/// Beyond it the oldest are forgotten, as the depth forgets them.
pub const MAX_RETIRED: usize = u16::MAX as usize;

/// Recent retirements, oldest first: what
/// [`SequenceState::retired`](super::SequenceState::retired) holds.
///
/// Read it like a slice ([`iter`](Self::iter), [`len`](Self::len),
/// [`last`](Self::last)); build it from a `Vec` (a store reading its own
/// encoding back). It serializes as the list of its entries, oldest first,
/// and compares by them.
///
/// ```
/// use rolling_session::store::{Retirement, Retirements};
///
/// let list = Retirements::from(vec![
///     Retirement { from: 0, to: 0, at: 1_000 },
///     Retirement { from: 1, to: 3, at: 2_000 },
/// ]);
/// assert_eq!(list.len(), 2);
/// assert_eq!(list.last().map(|r| r.from), Some(1));
/// assert_eq!(list.iter().map(|r| r.at).collect::<Vec<_>>(), [1_000, 2_000]);
/// ```
//
// A ring in a boxed slice: 24 bytes like the `Vec` it replaced (a
// `VecDeque` takes 32), as every session carries one. Keeping the last K
// of a full list moves its start instead of shifting K entries, and while
// the times are in order (as retirements are made unless a clock steps
// back) the window's cut reads only the entries it forgets. With K = 64 the
// list is 1.5 KB: reading all of it per request, on a store larger than
// the CPU's caches, was a quarter of `validate_session`'s time.
#[derive(Clone)]
pub struct Retirements {
    /// Room for the entries; the slots outside `head..head + len` (around
    /// the end) are unused.
    slots: Box<[Retirement]>,
    /// Where the oldest entry is.
    head: u16,
    /// How many entries there are.
    len: u16,
    /// Whether the entries' times never decrease, oldest to newest.
    in_order: bool,
}

impl Default for Retirements {
    fn default() -> Self {
        Self {
            slots: Box::default(),
            head: 0,
            len: 0,
            in_order: true,
        }
    }
}

impl Retirements {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many retirements are kept.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many it has room for without allocating.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The entries, oldest first (reversible: `iter().rev()` is newest
    /// first).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Retirement> + '_ {
        self.into_iter()
    }

    /// The oldest entry.
    pub fn first(&self) -> Option<&Retirement> {
        self.iter().next()
    }

    /// The newest entry.
    pub fn last(&self) -> Option<&Retirement> {
        self.iter().next_back()
    }

    /// The entries in order, as a `Vec`.
    pub fn to_vec(&self) -> Vec<Retirement> {
        self.iter().copied().collect()
    }

    /// The two runs the entries make in `slots`: from `head` to the end
    /// of the slots or of the entries, then the rest from slot 0.
    fn as_slices(&self) -> (&[Retirement], &[Retirement]) {
        let (head, len) = (usize::from(self.head), usize::from(self.len));
        let first = len.min(self.slots.len() - head);
        (&self.slots[head..head + first], &self.slots[..len - first])
    }

    fn slot(&self, i: usize) -> usize {
        (usize::from(self.head) + i) % self.slots.len()
    }

    fn pop_front(&mut self) {
        // A slot index: below the capacity, at most `MAX_RETIRED`.
        self.head = self.slot(1) as u16;
        self.len -= 1;
        if self.len == 0 {
            self.head = 0;
            self.in_order = true;
        }
    }

    /// The entries moved into `capacity` slots from slot 0.
    fn reallocate(&mut self, capacity: usize) {
        let mut slots = vec![Retirement::default(); capacity].into_boxed_slice();
        for (slot, r) in slots.iter_mut().zip(self.iter()) {
            *slot = *r;
        }
        self.slots = slots;
        self.head = 0;
    }

    /// `SequenceState::retire`: forgets what is older than `horizon`,
    /// pushes `entry`, keeps the last `keep` (at least one).
    pub(super) fn retire(&mut self, entry: Retirement, horizon: u64, keep: usize) {
        let keep = keep.clamp(1, MAX_RETIRED);
        if self.in_order {
            // The entries the window forgets are the first ones.
            while self.first().is_some_and(|r| r.at < horizon) {
                self.pop_front();
            }
            while self.len() >= keep {
                self.pop_front();
            }
        } else {
            self.keep_newest_since(horizon, keep - 1);
        }
        // Room for exactly what is kept while requests are spaced out (one
        // or two retirements); a burst doubles it up to the depth, and the
        // next quiet retirement gives that room back.
        let capacity = match self.len() {
            0 | 1 if self.capacity() > 2 => 2,
            n if n == self.capacity() => (n * 2).clamp(n + 1, keep),
            _ => self.capacity(),
        };
        if capacity != self.capacity() {
            self.reallocate(capacity);
        }
        if self.last().is_some_and(|r| r.at > entry.at) {
            self.in_order = false;
        }
        let at = self.slot(self.len());
        self.slots[at] = entry;
        self.len += 1;
    }

    /// Keeps the newest `room` of the entries retired at `horizon` or
    /// later, from slot 0, and finds whether they are in order now: the
    /// whole list read, for a list whose times are out of order.
    fn keep_newest_since(&mut self, horizon: u64, room: usize) {
        let mut kept: Vec<Retirement> = self.iter().copied().filter(|r| r.at >= horizon).collect();
        kept.drain(..kept.len().saturating_sub(room));
        self.head = 0;
        for (slot, r) in self.slots.iter_mut().zip(&kept) {
            *slot = *r;
        }
        // No more than there were.
        self.len = kept.len() as u16;
        self.in_order = kept.windows(2).all(|w| w[0].at <= w[1].at);
    }
}

impl From<Vec<Retirement>> for Retirements {
    /// The entries, oldest first (only the newest [`MAX_RETIRED`] are kept).
    fn from(mut entries: Vec<Retirement>) -> Self {
        if entries.len() > MAX_RETIRED {
            entries.drain(..entries.len() - MAX_RETIRED);
        }
        let in_order = entries.windows(2).all(|w| w[0].at <= w[1].at);
        Self {
            len: entries.len() as u16,
            slots: entries.into_boxed_slice(),
            head: 0,
            in_order,
        }
    }
}

impl FromIterator<Retirement> for Retirements {
    fn from_iter<I: IntoIterator<Item = Retirement>>(entries: I) -> Self {
        Self::from(entries.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a Retirements {
    type Item = &'a Retirement;
    type IntoIter =
        std::iter::Chain<std::slice::Iter<'a, Retirement>, std::slice::Iter<'a, Retirement>>;

    fn into_iter(self) -> Self::IntoIter {
        let (front, back) = self.as_slices();
        front.iter().chain(back)
    }
}

impl PartialEq for Retirements {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for Retirements {}

impl fmt::Debug for Retirements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Retirements {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Retirements {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Retirement>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(n: u64, at: u64) -> Retirement {
        Retirement { from: n, to: n, at }
    }

    /// The rule as it was written on a `Vec`: retain, push, drain.
    fn on_a_vec(list: &mut Vec<Retirement>, entry: Retirement, horizon: u64, keep: usize) {
        list.retain(|r| r.at >= horizon);
        list.push(entry);
        let keep = keep.max(1);
        if list.len() > keep {
            list.drain(..list.len() - keep);
        }
    }

    proptest! {
        /// Whatever the times do (a clock stepping back included) and
        /// whatever the depth and window, the ring keeps exactly what the
        /// `Vec` kept, in the same order, and knows whether it is in order.
        #[test]
        fn the_ring_keeps_what_the_vec_kept(
            start in proptest::collection::vec(0u64..60, 0..10),
            steps in proptest::collection::vec((0u64..12, 0u64..4, 0u64..40, 1usize..10), 1..300),
        ) {
            let mut expected: Vec<Retirement> =
                start.iter().enumerate().map(|(i, at)| entry(i as u64, *at)).collect();
            let mut ring = Retirements::from(expected.clone());
            let mut now = 60;
            let mut most = expected.len().max(2);
            for (i, (forward, back, window, keep)) in steps.into_iter().enumerate() {
                // Mostly forward, now and then a step back.
                now = (now + forward).saturating_sub(if back == 0 { 9 } else { 0 });
                let e = entry(100 + i as u64, now);
                let horizon = now.saturating_sub(window);
                on_a_vec(&mut expected, e, horizon, keep);
                ring.retire(e, horizon, keep);
                prop_assert_eq!(ring.to_vec(), expected.clone());
                prop_assert_eq!(ring.len(), expected.len());
                prop_assert_eq!(ring.last(), expected.last());
                prop_assert_eq!(ring.iter().rev().copied().collect::<Vec<_>>(),
                    expected.iter().rev().copied().collect::<Vec<_>>());
                prop_assert_eq!(ring.in_order, expected.windows(2).all(|w| w[0].at <= w[1].at));
                // Room grows to the deepest depth asked for, no further.
                most = most.max(keep);
                prop_assert!(ring.capacity() <= most);
                if ring.len() <= 1 {
                    prop_assert!(ring.capacity() <= 2, "room given back: {}", ring.capacity());
                }
            }
        }
    }

    #[test]
    fn a_full_ring_moves_its_start_instead_of_shifting() {
        let mut ring = Retirements::new();
        for n in 0..10 {
            ring.retire(entry(n, 1_000 + n), 0, 4);
        }
        assert_eq!(ring.capacity(), 4);
        assert_ne!(
            ring.head, 0,
            "the oldest entry is not in slot 0 after wrapping"
        );
        assert_eq!(
            ring.iter().map(|r| r.from).collect::<Vec<_>>(),
            [6, 7, 8, 9]
        );
        // Compared and serialized by its entries, wherever they start.
        let same = Retirements::from(ring.to_vec());
        assert_eq!(same.head, 0);
        assert_eq!(ring, same);
        let json = serde_json::to_string(&ring).unwrap();
        assert_eq!(json, serde_json::to_string(&ring.to_vec()).unwrap());
        assert_eq!(serde_json::from_str::<Retirements>(&json).unwrap(), ring);
        assert_eq!(format!("{ring:?}"), format!("{:?}", ring.to_vec()));
    }

    #[test]
    fn a_list_longer_than_the_most_keeps_the_newest() {
        let long: Vec<Retirement> = (0..MAX_RETIRED as u64 + 3).map(|n| entry(n, n)).collect();
        let ring = Retirements::from(long);
        assert_eq!(ring.len(), MAX_RETIRED);
        assert_eq!(ring.first().map(|r| r.from), Some(3));
        let mut ring = ring;
        ring.retire(entry(u64::MAX, u64::MAX), 0, usize::MAX);
        assert_eq!(ring.len(), MAX_RETIRED);
        assert_eq!(ring.last().map(|r| r.from), Some(u64::MAX));
    }
}

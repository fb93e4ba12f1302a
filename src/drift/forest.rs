//! Isolation Forest (Liu, Ting & Zhou, 2008) across sessions, hand-written.
//!
//! Each tree is grown on `ψ` points drawn without replacement, splitting on a random feature
//! at a value drawn uniformly between that feature's minimum and maximum in the node, down to
//! `ceil(log₂ ψ)` levels. A point's path length is the depth at which it lands plus `c(size)`
//! for the unbuilt subtree of the leaf; the score is `s = 2^(−E[h] / c(ψ))`: about 0.5 or less
//! for ordinary points, towards 1 for points that isolate quickly. `c(n) = 2·H(n−1) − 2(n−1)/n`
//! is computed here with exact harmonic numbers rather than the `ln(n) + γ` approximation.
//!
//! Why hand-written: the algorithm is about 150 lines, the crates that offer it pull in
//! `ndarray`-sized dependency trees, and we need a compact, allocation-free scorer (nodes of
//! 8 bytes, preorder layout so the left child is the next node) to stay within the per-report
//! budget. Features are stored as `f32`, like scikit-learn does.
//!
//! Randomness comes from a seeded `ChaCha8Rng`, so a forest trained on the same data with the
//! same seed is identical on every platform.

use rand::{Rng, SeedableRng, seq::index};
use rand_chacha::ChaCha8Rng;

/// Largest number of features a forest accepts.
pub(crate) const MAX_FEATURES: usize = 16;

/// Largest subsample size `ψ`.
pub(crate) const MAX_SUBSAMPLE: usize = 4096;

/// The feature of a leaf. The scorer reads a NaN there, and `NaN <= threshold` is false: a
/// leaf's "right child" is the leaf itself, so a cursor that reached a leaf stays on it
/// without a test of its own.
const LEAF: u8 = u8::MAX;

/// The unused slots after a tree's nodes.
const PADDING: Node = Node {
    value: 0.0,
    right: 0,
    feature: LEAF,
};

/// Trees walked side by side when scoring.
pub(crate) const LANES: usize = 8;

/// Shape and seed of a forest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForestParams {
    /// Number of trees (Liu et al.: 100).
    pub trees: usize,
    /// Subsample size ψ per tree (Liu et al.: 256).
    pub subsample: usize,
    /// RNG seed.
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            trees: 100,
            subsample: 256,
            seed: 0x5eed_d41f,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Node {
    /// Split threshold, or for a leaf the path length `depth + c(size)`.
    value: f32,
    /// Offset of the right child from the tree's root; a leaf's own offset.
    right: u16,
    /// Split feature, or [`LEAF`].
    feature: u8,
}

/// Average path length of an unsuccessful search in a binary search tree of `n` points,
/// `c(n) = 2·H(n−1) − 2(n−1)/n` with the exact harmonic number; `c(0) = c(1) = 0`.
#[must_use]
pub(crate) fn average_path_length(n: usize) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let harmonic: f64 = (1..n).rev().map(|i| 1.0 / i as f64).sum();
    let n = n as f64;
    2.0 * harmonic - 2.0 * (n - 1.0) / n
}

/// A trained isolation forest.
#[derive(Clone, Debug, PartialEq)]
pub struct IsolationForest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    dims: usize,
    c_psi: f64,
    max_depth: usize,
}

/// Grows the trees over rows of `D` features (a constant, so that a row's bounds are
/// updated without a loop).
struct Builder<'a, const D: usize> {
    rows: &'a [[f32; D]],
    max_depth: usize,
    c_table: Vec<f64>,
    nodes: Vec<Node>,
    rng: ChaCha8Rng,
}

impl<const D: usize> Builder<'_, D> {
    fn row(&self, i: u32) -> [f32; D] {
        self.rows.get(i as usize).copied().unwrap_or([0.0; D])
    }

    /// A leaf: its `right` points at itself and its feature reads a NaN (see [`LEAF`]), so a
    /// cursor that reached it stays there.
    fn leaf(&mut self, base: usize, depth: usize, size: usize) {
        let c = self.c_table.get(size).copied().unwrap_or(0.0);
        let at = self.nodes.len() - base;
        self.nodes.push(Node {
            value: (depth as f64 + c) as f32,
            right: at as u16,
            feature: LEAF,
        });
    }

    /// The bounds of the rows `idx`.
    fn bounds_of(&self, idx: &[u32]) -> Bounds<D> {
        let mut bounds = Bounds::EMPTY;
        for &i in idx {
            bounds.widen(&self.row(i));
        }
        bounds
    }

    /// Grows the subtree of the rows `idx` at `depth`.
    fn grow(&mut self, base: usize, idx: &mut [u32], depth: usize) {
        if depth >= self.max_depth || idx.len() <= 1 {
            self.leaf(base, depth, idx.len());
            return;
        }
        let bounds = self.bounds_of(idx);
        let (lo, hi) = (&bounds.lo, &bounds.hi);
        let mut candidates = [0u8; MAX_FEATURES];
        let mut n_candidates = 0;
        for f in 0..D.min(MAX_FEATURES) {
            if hi[f] > lo[f] {
                candidates[n_candidates] = f as u8;
                n_candidates += 1;
            }
        }
        if n_candidates == 0 {
            self.leaf(base, depth, idx.len());
            return;
        }
        let feature = candidates[self.rng.gen_range(0..n_candidates)];
        let (min, max) = (lo[feature as usize], hi[feature as usize]);
        let u: f64 = self.rng.r#gen();
        let mut threshold = (f64::from(min) + u * (f64::from(max) - f64::from(min))) as f32;
        if threshold.is_nan() || threshold >= max || threshold < min {
            threshold = min;
        }
        // Partition: values <= threshold go left (non-empty: the minimum), the rest right
        // (non-empty: the maximum). Children at the depth limit are leaves: no bounds.
        // Branch-free (the comparison is a coin flip): every row is swapped to `split`, which
        // moves on past the left ones. The order within each side differs from a swap of
        // the left rows only, but a child depends on its set of rows alone.
        let mut split = 0;
        for j in 0..idx.len() {
            let i = idx[j];
            let left = self.row(i).get(feature as usize).copied().unwrap_or(0.0) <= threshold;
            idx[j] = idx[split];
            idx[split] = i;
            split += usize::from(left);
        }
        let me = self.nodes.len();
        self.nodes.push(Node {
            value: threshold,
            right: 0,
            feature,
        });
        let (left, right) = idx.split_at_mut(split);
        self.grow(base, left, depth + 1);
        let right_at = self.nodes.len() - base;
        if let Some(node) = self.nodes.get_mut(me) {
            node.right = right_at as u16;
        }
        self.grow(base, right, depth + 1);
    }
}

/// Per-feature minimum and maximum of a set of rows.
struct Bounds<const D: usize> {
    lo: [f32; D],
    hi: [f32; D],
}

impl<const D: usize> Bounds<D> {
    const EMPTY: Self = Self {
        lo: [f32::INFINITY; D],
        hi: [f32::NEG_INFINITY; D],
    };

    fn widen(&mut self, row: &[f32; D]) {
        for ((l, h), &v) in self.lo.iter_mut().zip(&mut self.hi).zip(row) {
            // Comparisons rather than `f32::min`/`max` (which cost a NaN test each; these
            // compile to `minss`/`maxss`): the same bounds for every value but a NaN (which
            // neither takes) and a zero of the other sign (which no comparison tells apart),
            // whatever the order of the rows.
            if v < *l {
                *l = v;
            }
            if v > *h {
                *h = v;
            }
        }
    }
}

impl IsolationForest {
    /// Trains on `data`, `dims` features per row (row-major). Returns `None` without at least
    /// two rows, with `dims` outside `1..=MAX_FEATURES`, or with a length that is not a
    /// multiple of `dims`. Non-finite values should be cleaned by the caller (they are
    /// treated as ordinary, extreme values).
    #[must_use]
    pub fn fit(data: &[f32], dims: usize, params: &ForestParams) -> Option<Self> {
        if dims == 0 || dims > MAX_FEATURES || !data.len().is_multiple_of(dims) {
            return None;
        }
        macro_rules! by_dims {
            ($($d:literal)*) => {
                match dims {
                    $($d => Self::fit_rows::<$d>(data.as_chunks().0, params),)*
                    _ => None,
                }
            };
        }
        by_dims!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
    }

    fn fit_rows<const D: usize>(rows: &[[f32; D]], params: &ForestParams) -> Option<Self> {
        let n = rows.len();
        if n < 2 || n > u32::MAX as usize {
            return None;
        }
        let psi = params.subsample.clamp(2, MAX_SUBSAMPLE).min(n);
        let trees = params.trees.clamp(1, 10_000);
        let max_depth = (psi as f64).log2().ceil() as usize;
        let mut b = Builder {
            rows,
            max_depth,
            c_table: (0..=psi).map(average_path_length).collect(),
            nodes: Vec::with_capacity(trees << (max_depth + 1)),
            rng: ChaCha8Rng::seed_from_u64(params.seed),
        };
        let mut roots = Vec::with_capacity(trees);
        let mut idx: Vec<u32> = Vec::with_capacity(psi);
        for _ in 0..trees {
            idx.clear();
            idx.extend(
                index::sample(&mut b.rng, n, psi)
                    .into_iter()
                    .map(|i| i as u32),
            );
            let base = b.nodes.len();
            roots.push(base as u32);
            b.grow(base, &mut idx, 0);
            // Every tree takes `2^(max_depth + 1)` slots (it has fewer nodes), so that the
            // scorer finds tree `t` at a fixed stride and needs no bounds checks.
            b.nodes.resize(base + (1 << (max_depth + 1)), PADDING);
        }
        Some(Self {
            nodes: b.nodes,
            roots,
            dims: D,
            c_psi: average_path_length(psi),
            max_depth,
        })
    }

    /// Number of features per row.
    #[must_use]
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Number of trees.
    #[must_use]
    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// Bytes held by the nodes.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.roots.capacity() * std::mem::size_of::<u32>()
    }

    /// Mean path length `E[h(x)]` over the trees. Missing features count as 0.
    ///
    /// Trees are walked `LANES` at a time in lockstep, one level per pass, so that the
    /// node loads of different trees overlap instead of waiting on each other. Every step is
    /// the same branch-free move (a leaf is its own right child, see `LEAF`). A last group
    /// of at most half the lanes is walked with half the lanes.
    #[must_use]
    pub fn mean_path_length(&self, x: &[f32]) -> f64 {
        // Indexed by a node's `u8` feature: the features, 0 for missing ones up to
        // `MAX_FEATURES`, NaN beyond (where [`LEAF`] points).
        let mut xs = [f32::NAN; 256];
        for (i, slot) in xs.iter_mut().take(MAX_FEATURES).enumerate() {
            *slot = x.get(i).copied().unwrap_or(0.0);
        }
        let mut total = 0.0f64;
        macro_rules! by_depth {
            ($($d:literal)*) => {
                match self.max_depth {
                    $($d => self.walk_strided::<{ 1 << ($d + 1) }>(&xs, &mut total),)*
                    _ => false,
                }
            };
        }
        if !by_depth!(1 2 3 4 5 6 7 8 9 10 11 12) {
            for chunk in self.roots.chunks(LANES) {
                if chunk.len() <= LANES / 2 {
                    self.walk::<{ LANES / 2 }>(&xs, chunk, &mut total);
                } else {
                    self.walk::<LANES>(&xs, chunk, &mut total);
                }
            }
        }
        total / self.roots.len().max(1) as f64
    }

    /// Walks trees laid out every `S` nodes (`S = 2^(max_depth + 1)`), `LANES` at a time, then
    /// 4, then one; adds their path lengths to `total` in tree order. Returns `false` (and
    /// adds nothing) if the nodes are not laid out so.
    fn walk_strided<const S: usize>(&self, xs: &[f32; 256], total: &mut f64) -> bool {
        let (trees, rest) = self.nodes.as_chunks::<S>();
        if !rest.is_empty() || trees.len() != self.roots.len() {
            return false;
        }
        let (groups, rest) = trees.as_chunks::<LANES>();
        for group in groups {
            self.walk_group(group, xs, total);
        }
        let (groups, rest) = rest.as_chunks::<{ LANES / 2 }>();
        for group in groups {
            self.walk_group(group, xs, total);
        }
        for tree in rest {
            self.walk_group(std::array::from_ref(tree), xs, total);
        }
        true
    }

    /// Walks `L` trees of `S` slots in lockstep. A cursor is an offset from its tree's root,
    /// masked to the tree's slots: no bounds checks, and the lane's tree is a constant
    /// displacement from the group's address.
    fn walk_group<const S: usize, const L: usize>(
        &self,
        group: &[[Node; S]; L],
        xs: &[f32; 256],
        total: &mut f64,
    ) {
        let mut cur = [0usize; L];
        for _ in 0..self.max_depth {
            for j in 0..L {
                let node = group[j][cur[j] & (S - 1)];
                // `select_unpredictable`: the comparisons are coin flips by construction,
                // and LLVM otherwise emits a jump that mispredicts half the time.
                cur[j] = std::hint::select_unpredictable(
                    xs[usize::from(node.feature)] <= node.value,
                    cur[j] + 1,
                    usize::from(node.right),
                );
            }
        }
        for j in 0..L {
            *total += f64::from(group[j][cur[j] & (S - 1)].value);
        }
    }

    /// Walks the trees of `roots` (at most `L`; spare lanes walk the first tree again and are
    /// not counted) and adds their path lengths to `total`, in order.
    fn walk<const L: usize>(&self, xs: &[f32; 256], roots: &[u32], total: &mut f64) {
        let first = roots.first().copied().unwrap_or(0) as usize;
        let mut base = [first; L];
        for (slot, &root) in base.iter_mut().zip(roots) {
            *slot = root as usize;
        }
        let mut cur = base;
        // After `max_depth` moves every cursor is on a leaf (leaves sit at most that deep).
        for _ in 0..self.max_depth {
            for j in 0..L {
                let Some(node) = self.nodes.get(cur[j]) else {
                    continue;
                };
                // `select_unpredictable`: the comparisons are coin flips by construction,
                // and LLVM otherwise emits a jump that mispredicts half the time.
                cur[j] = std::hint::select_unpredictable(
                    xs[usize::from(node.feature)] <= node.value,
                    cur[j] + 1,
                    base[j] + usize::from(node.right),
                );
            }
        }
        for &c in cur.iter().take(roots.len()) {
            *total += f64::from(self.nodes.get(c).map_or(0.0, |n| n.value));
        }
    }

    /// Anomaly score `2^(−E[h(x)] / c(ψ))` in `(0, 1]`.
    #[must_use]
    pub fn score(&self, x: &[f32]) -> f64 {
        if self.c_psi <= 0.0 {
            return 0.5;
        }
        let s = (-self.mean_path_length(x) / self.c_psi).exp2();
        if s.is_finite() {
            s.clamp(0.0, 1.0)
        } else {
            0.5
        }
    }
}

/// Area under the ROC curve of `scores` against `labels` (`true` = anomaly), with ties
/// counted as one half (the Mann–Whitney statistic). `None` if a class is empty.
#[must_use]
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = pairs.iter().filter(|p| p.1).count();
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Sum of average ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j + 1 < pairs.len() && pairs[j + 1].0 == pairs[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * pairs[i..=j].iter().filter(|p| p.1).count() as f64;
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_matches_the_paper() {
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        // c(256) with exact H(255).
        let h255: f64 = (1..256).map(|i| 1.0 / f64::from(i)).sum();
        assert!((average_path_length(256) - (2.0 * h255 - 2.0 * 255.0 / 256.0)).abs() < 1e-12);
        assert!((average_path_length(256) - 10.248_689_925_634_562).abs() < 1e-9);
    }

    fn cluster(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * 2).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn outlier_scores_higher_and_is_reproducible() {
        let data = cluster(1000, 1);
        let params = ForestParams::default();
        let forest = IsolationForest::fit(&data, 2, &params);
        let again = IsolationForest::fit(&data, 2, &params);
        assert_eq!(forest, again);
        let forest = forest.unwrap_or_else(|| unreachable!());
        let inlier = forest.score(&[0.0, 0.0]);
        let outlier = forest.score(&[8.0, -8.0]);
        assert!(inlier < 0.5, "{inlier}");
        assert!(outlier > 0.6 && outlier > inlier + 0.15, "{outlier}");
        assert_eq!(forest.trees(), 100);
        // Missing or non-finite features do not panic.
        assert!(forest.score(&[]).is_finite());
        assert!(forest.score(&[f32::NAN, f32::INFINITY]).is_finite());
    }

    #[test]
    fn rejects_bad_shapes() {
        let p = ForestParams::default();
        assert!(IsolationForest::fit(&[], 2, &p).is_none());
        assert!(IsolationForest::fit(&[1.0, 2.0, 3.0], 2, &p).is_none());
        assert!(IsolationForest::fit(&[1.0, 2.0], 0, &p).is_none());
        // Constant data: every tree is one leaf.
        let f = IsolationForest::fit(&[1.0; 20], 2, &p);
        assert!(f.is_some_and(|f| f.score(&[1.0, 1.0]).is_finite()));
    }

    #[test]
    fn auc_of_known_orderings() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]),
            Some(0.5)
        );
        assert_eq!(roc_auc(&[0.5], &[true]), None);
    }
}

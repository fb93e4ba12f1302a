//! The isolation forest shared by every session (opt-in): a reservoir of recent feature
//! vectors, retrained into a new forest every `forest_retrain_every` reports.

use std::sync::{Mutex, PoisonError, RwLock};

use super::DriftConfig;
use super::forest::{ForestParams, IsolationForest};

/// Number of features per report fed to the forest: standardised rate innovation, offset
/// residual (ms), client entropy, `Δt` (s) and session age (s).
pub(super) const FEATURES: usize = 5;

/// One report's feature vector.
pub(super) type Features = [f32; FEATURES];

#[derive(Debug, Default)]
struct Reservoir {
    rows: Vec<Features>,
    next: usize,
    since_retrain: u64,
    generation: u64,
}

#[derive(Debug)]
struct TrainedForest {
    generation: u64,
    forest: IsolationForest,
}

/// The forest and the reservoir it is retrained from. The forest is read by every report and
/// replaced whole by a retraining; a newer generation is never overwritten by an older one.
#[derive(Debug, Default)]
pub(super) struct ForestPool {
    forest: RwLock<Option<TrainedForest>>,
    reservoir: Mutex<Reservoir>,
}

impl ForestPool {
    /// How many times the forest has been trained.
    pub(super) fn generation(&self) -> u64 {
        self.forest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |f| f.generation)
    }

    /// Bytes held by the forest.
    pub(super) fn bytes(&self) -> usize {
        self.forest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |f| f.forest.heap_bytes())
    }

    /// Retrains now from the reservoir. Returns whether a forest was trained.
    pub(super) fn retrain_now(&self, config: &DriftConfig) -> bool {
        let snapshot = {
            let mut r = self
                .reservoir
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if r.rows.len() < 2 {
                return false;
            }
            r.since_retrain = 0;
            r.generation += 1;
            (r.rows.clone(), r.generation)
        };
        self.train(config, snapshot.0, snapshot.1)
    }

    fn train(&self, config: &DriftConfig, rows: Vec<Features>, generation: u64) -> bool {
        let flat = rows.as_flattened();
        let params = ForestParams {
            trees: config.forest_trees,
            subsample: config.forest_subsample,
            seed: config
                .seed
                .wrapping_add(generation.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        };
        let Some(forest) = IsolationForest::fit(flat, FEATURES, &params) else {
            return false;
        };
        let mut slot = self.forest.write().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|f| f.generation < generation) {
            *slot = Some(TrainedForest { generation, forest });
        }
        true
    }

    /// Scores `features` with the current forest (`None` before the first training), keeps
    /// them in the reservoir and retrains when due.
    pub(super) fn score_and_record(&self, config: &DriftConfig, features: Features) -> Option<f64> {
        let score = self
            .forest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|f| f.forest.score(&features));
        let snapshot = {
            let mut r = self
                .reservoir
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let cap = config.forest_reservoir;
            if r.rows.len() < cap {
                r.rows.push(features);
            } else {
                let at = r.next % cap;
                if let Some(slot) = r.rows.get_mut(at) {
                    *slot = features;
                }
            }
            r.next = (r.next + 1) % cap;
            r.since_retrain = r.since_retrain.saturating_add(1);
            let first = r.generation == 0 && r.rows.len() >= config.forest_min_train;
            let due = config.forest_retrain_every > 0
                && r.since_retrain >= config.forest_retrain_every
                && r.rows.len() >= config.forest_min_train;
            if (first && config.forest_retrain_every > 0) || due {
                r.since_retrain = 0;
                r.generation += 1;
                Some((r.rows.clone(), r.generation))
            } else {
                None
            }
        };
        if let Some((rows, generation)) = snapshot {
            self.train(config, rows, generation);
        }
        score
    }
}

//! The in-memory store passes the store conformance suite.
#![cfg(feature = "test-util")]

use std::sync::Arc;

use rolling_session::MemoryStore;
use rolling_session::store::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    conformance::run(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_agrees_with_the_sequence_rule_over_many_seeds() {
    let store = MemoryStore::new();
    for seed in 0..20 {
        conformance::differential(&store, seed, 300).await;
    }
}

//! The store a user writes on their own (`examples/custom_store.rs`, on
//! SQLite) passes the conformance suite: in memory and in a file.
#![cfg(feature = "test-util")]

#[path = "../examples/custom_store.rs"]
#[allow(dead_code)]
mod custom_store;

use std::sync::Arc;

use custom_store::SqliteStore;
use rolling_session::store::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_in_memory_passes_the_conformance_suite() {
    conformance::run(Arc::new(SqliteStore::open_in_memory().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_in_a_file_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("sessions.db")).unwrap();
    conformance::run(Arc::new(store.clone())).await;
    conformance::differential(&store, 42, 300).await;
}

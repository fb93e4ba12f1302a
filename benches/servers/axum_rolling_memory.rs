//! Bench server: axum + rolling-session on the `MemoryStore` (the app is in
//! `rolling_axum.rs`).

#[path = "common.rs"]
mod common;
#[path = "rolling_axum.rs"]
mod rolling_axum;

use rolling_session::MemoryStore;

fn main() {
    let Some(addr) = common::addr() else { return };
    common::runtime().block_on(rolling_axum::serve(&addr, MemoryStore::new(), false));
}

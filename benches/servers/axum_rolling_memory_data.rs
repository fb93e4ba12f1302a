//! Bench server: axum + rolling-session on the `MemoryStore`, `GET /`
//! reading a session value and writing it back (the app is in
//! `rolling_axum.rs`): the same work as the tower-sessions server.

#[path = "common.rs"]
mod common;
#[path = "rolling_axum.rs"]
mod rolling_axum;

use rolling_session::MemoryStore;

fn main() {
    let Some(addr) = common::addr() else { return };
    common::runtime().block_on(rolling_axum::serve(&addr, MemoryStore::new(), true));
}

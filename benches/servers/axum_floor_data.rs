//! Bench server: the floor layer (`benches/common/floor_layer.rs`) on
//! axum, `GET /` reading a session value and writing it back (the app is in
//! `floor_axum.rs`): a lower bound for `axum_rolling_memory_data`.

#[path = "common.rs"]
mod common;
#[path = "floor_axum.rs"]
mod floor_axum;

fn main() {
    let Some(addr) = common::addr() else { return };
    common::runtime().block_on(floor_axum::serve(&addr, true));
}

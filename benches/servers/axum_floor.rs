//! Bench server: the floor layer (`benches/common/floor_layer.rs`) on
//! axum, `GET /` reading nothing of the session (the app is in
//! `floor_axum.rs`): a lower bound for `axum_rolling_memory`.

#[path = "common.rs"]
mod common;
#[path = "floor_axum.rs"]
mod floor_axum;

fn main() {
    let Some(addr) = common::addr() else { return };
    common::runtime().block_on(floor_axum::serve(&addr, false));
}

//! Bench server: axum + rolling-session on the `RedisStore`
//! (`REDIS_URL`, default `redis://127.0.0.1:6390`). Same app as
//! `axum_rolling_memory` (`rolling_axum.rs`).

#[path = "common.rs"]
mod common;
#[path = "rolling_axum.rs"]
mod rolling_axum;

use rolling_session::store::RedisStore;

fn main() {
    let Some(addr) = common::addr() else { return };
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390".into());
    common::runtime().block_on(async {
        let store = RedisStore::connect(&url)
            .await
            .expect("redis-server reachable");
        rolling_axum::serve(&addr, store, false).await;
    });
}

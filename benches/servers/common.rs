//! What every bench server shares: the address, the runtime, and the rule
//! that `cargo bench` (which runs every bench target with `--bench`) does
//! not start a server. Included with `#[path]` by each server.

#![allow(dead_code)]

/// The listen address: the first argument, else `127.0.0.1:8088`.
/// Returns `None` under `cargo bench`.
pub fn addr() -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--bench" || a == "--test") {
        eprintln!("bench server: started by scripts/bench, nothing to do under cargo bench");
        return None;
    }
    Some(
        args.into_iter()
            .next()
            .unwrap_or_else(|| "127.0.0.1:8088".into()),
    )
}

/// A tokio runtime with one worker (the server is pinned to one core).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A unique user id per login, so the per-user session limit never
/// evicts another connection's session.
pub fn next_user() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("user-{}", N.fetch_add(1, Ordering::Relaxed))
}

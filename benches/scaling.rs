//! Multi-core scaling of the in-process request path: the same axum
//! `Router`s as `benches/overhead.rs` (`common/overhead_routers.rs`, every
//! request through the real `SessionLayer` by `ServiceExt::oneshot`, a
//! cookie in and `Set-Cookie` out), driven by `SCALING_CLIENTS`
//! independent clients (each its own session on one shared `MemoryStore`)
//! on a tokio multi-thread runtime with 1 and then 2 worker threads.
//! Throughput(2 threads) / throughput(1 thread) near 2 says nothing on the
//! path serializes the workers (docs/benchmarks.md, "Multi-core scaling").
//!
//! ```text
//! nice -n 10 cargo bench --bench scaling
//! SCALING_ROUNDS=5 SCALING_SECS=3 SCALING_ROUTERS="bare rolling_read_only" cargo bench --bench scaling
//! ```
//!
//! Rounds interleave the configurations (1 thread, 2 threads, for each
//! router, then again) so slow changes of the machine's load hit all of
//! them alike; each figure is the median round with the min–max of the
//! rounds, and the ratio is taken within each round. Besides requests/s
//! it reports the CPU time the process got (*cores used* = CPU seconds /
//! wall seconds): on a shared machine two threads may not get two cores,
//! and requests per CPU-second (*efficiency*) separates that from
//! contention (a lock that makes threads wait lowers throughput but not
//! efficiency; cache-line bouncing and spinning lower efficiency).
//!
//! Routers: `bare` (no session layer: what the runtime, axum and the
//! allocator scale to on this machine), `rolling_read_write` (read one
//! value, write it back), `rolling_read_only` (read it), `tower_sessions`
//! (tower-sessions' `MemoryStore`, read and write, for comparison).
//!
//! Without `--bench` (`cargo test --benches`) it runs one short round as a
//! smoke check.

#[path = "common/overhead_routers.rs"]
mod routers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use routers::Client;

/// Requests a client sends between two looks at the clock.
const BATCH: u64 = 64;

struct Setup {
    clients: usize,
    secs: f64,
    warmup: f64,
    rounds: usize,
    threads: Vec<usize>,
    routers: Vec<&'static str>,
}

const ROUTERS: [&str; 4] = [
    "bare",
    "rolling_read_write",
    "rolling_read_only",
    "tower_sessions",
];

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Setup {
    fn from_env() -> Self {
        let bench = std::env::args().any(|a| a == "--bench");
        let routers = match std::env::var("SCALING_ROUTERS") {
            Ok(list) => ROUTERS
                .into_iter()
                .filter(|r| list.split_whitespace().any(|w| w == *r))
                .collect(),
            Err(_) => ROUTERS.to_vec(),
        };
        let threads = std::env::var("SCALING_THREADS")
            .ok()
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|t| t.parse().ok())
                    .filter(|&t| t > 0)
                    .collect::<Vec<usize>>()
            })
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| vec![1, 2]);
        if bench {
            Self {
                clients: env("SCALING_CLIENTS", 16),
                secs: env("SCALING_SECS", 2.0),
                warmup: env("SCALING_WARMUP", 0.5),
                rounds: env("SCALING_ROUNDS", 3usize).max(1),
                threads,
                routers,
            }
        } else {
            Self {
                clients: 4,
                secs: 0.05,
                warmup: 0.0,
                rounds: 1,
                threads,
                routers,
            }
        }
    }
}

fn router(name: &str) -> Router {
    match name {
        "bare" => routers::bare_router(),
        "tower_sessions" => routers::tower_sessions_router(),
        _ => routers::rolling_router(),
    }
}

fn path(name: &str) -> &'static str {
    if name == "rolling_read_only" {
        "/read"
    } else {
        "/"
    }
}

/// The process's CPU time (user + system) so far, from `/proc/self/stat`
/// (0 where there is none).
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The fields after the command name (which is in parentheses).
    let Some(rest) = stat.rsplit(')').next() else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = f
        .get(11..13)
        .map(|t| t.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

struct Sample {
    rps: f64,
    cores: f64,
}

/// One measurement: `setup.clients` clients on a fresh router (one store),
/// `threads` worker threads, warm-up then `setup.secs` of requests.
fn measure(name: &str, threads: usize, setup: &Setup) -> Sample {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let app = router(name);
        let target = path(name);
        let mut clients = Vec::with_capacity(setup.clients);
        for _ in 0..setup.clients {
            clients.push(Client::new(app.clone()).await);
        }
        let run = |clients: Vec<Client>, secs: f64| async move {
            let barrier = Arc::new(tokio::sync::Barrier::new(clients.len() + 1));
            let limit = Duration::from_secs_f64(secs);
            let mut tasks = Vec::with_capacity(clients.len());
            for mut client in clients {
                let barrier = Arc::clone(&barrier);
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let start = Instant::now();
                    let mut sent = 0u64;
                    // Bounded: at most ten million batches.
                    for _ in 0..10_000_000u64 {
                        if start.elapsed() >= limit {
                            break;
                        }
                        client.run(target, BATCH).await;
                        sent += BATCH;
                        // The in-process path never waits, so without this a
                        // task would keep its worker until its time is up
                        // and the clients would run one after another.
                        tokio::task::yield_now().await;
                    }
                    (client, sent)
                }));
            }
            barrier.wait().await;
            let (wall0, cpu0) = (Instant::now(), cpu_time());
            let mut sent = 0;
            let mut back = Vec::with_capacity(tasks.len());
            for t in tasks {
                let (client, n) = t.await.expect("client task");
                sent += n;
                back.push(client);
            }
            let (wall, cpu) = (wall0.elapsed(), cpu_time() - cpu0);
            let sample = Sample {
                rps: sent as f64 / wall.as_secs_f64(),
                cores: cpu.as_secs_f64() / wall.as_secs_f64(),
            };
            (back, sample)
        };
        let (clients, _) = run(clients, setup.warmup).await;
        run(clients, setup.secs).await.1
    })
}

/// Median, min and max.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// `median (min–max)`, or the median alone when there is one round.
fn fmt((m, lo, hi): (f64, f64, f64), digits: usize) -> String {
    if lo == hi {
        format!("{m:.digits$}")
    } else {
        format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})")
    }
}

/// The load average, as `/proc/loadavg` gives it (1, 5, 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let setup = Setup::from_env();
    let load_before = load_average();
    eprintln!(
        "scaling: {} clients, {} s per measurement after {} s warm-up, {} round(s), threads {:?}, {} cores online",
        setup.clients,
        setup.secs,
        setup.warmup,
        setup.rounds,
        setup.threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    // samples[router][thread index] = one Sample per round.
    let mut samples: Vec<Vec<Vec<Sample>>> = setup
        .routers
        .iter()
        .map(|_| setup.threads.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 1..=setup.rounds {
        for (r, name) in setup.routers.iter().enumerate() {
            for (t, &threads) in setup.threads.iter().enumerate() {
                let s = measure(name, threads, &setup);
                eprintln!(
                    "round {round}  {name:<20} {threads} thread(s) {:>9.0} req/s  {:.2} cores used",
                    s.rps, s.cores
                );
                samples[r][t].push(s);
            }
        }
    }

    let base = 0; // ratios against the first thread count
    println!();
    println!(
        "| router | threads | requests/s | cores used | requests per CPU-second | vs {} thread(s) | efficiency vs {} thread(s) |",
        setup.threads[base], setup.threads[base]
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (r, name) in setup.routers.iter().enumerate() {
        for (t, &threads) in setup.threads.iter().enumerate() {
            let s = &samples[r][t];
            let b = &samples[r][base];
            let rps = stats(s.iter().map(|x| x.rps).collect());
            let cores = stats(s.iter().map(|x| x.cores).collect());
            let eff = stats(s.iter().map(|x| x.rps / x.cores.max(1e-9)).collect());
            // Ratios within each round (the same machine load).
            let ratio = stats(s.iter().zip(b).map(|(x, y)| x.rps / y.rps).collect());
            let eff_ratio = stats(
                s.iter()
                    .zip(b)
                    .map(|(x, y)| (x.rps / x.cores.max(1e-9)) / (y.rps / y.cores.max(1e-9)))
                    .collect(),
            );
            println!(
                "| {name} | {threads} | {} | {} | {} | {} | {} |",
                fmt(rps, 0),
                fmt(cores, 2),
                fmt(eff, 0),
                fmt(ratio, 2),
                fmt(eff_ratio, 2)
            );
        }
    }
    println!();
    println!(
        "Median of {} round(s) (min–max); ratios are taken within each round. \
         Load average before / after: {load_before} / {}.",
        setup.rounds,
        load_average()
    );
    // Did each configuration get the cores it asked for?
    for (r, name) in setup.routers.iter().enumerate() {
        for (t, &threads) in setup.threads.iter().enumerate() {
            let (cores, _, _) = stats(samples[r][t].iter().map(|x| x.cores).collect());
            if cores < 0.9 * threads as f64 {
                println!(
                    "Note: {name} with {threads} thread(s) got {cores:.2} cores: the machine was busy, \
                     so its requests/s ratio measures the machine; requests per CPU-second (efficiency) \
                     still compares the code."
                );
            }
        }
    }
}

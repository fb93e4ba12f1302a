//! The in-process overhead benchmark's requests (`benches/overhead.rs`),
//! one case at a time, for counting instructions under callgrind:
//! `scripts/instructions` runs each case at two request counts and reports
//! the difference per request, which start-up and warm-up cancel out of.
//! Instruction counts repeat to a few parts per million from run to run,
//! where the time of 2 µs on a shared machine varies by 10 %.
//!
//! ```text
//! cargo bench --bench overhead_instructions -- rolling_session/read_write 1000
//! ```

#[path = "common/overhead_routers.rs"]
mod routers;

use routers::Client;

/// The cases, named as in `benches/overhead.rs`.
const CASES: [&str; 7] = [
    "bare",
    "floor/read_write",
    "floor/read_only",
    "rolling_session/read_write",
    "rolling_session/read_only",
    "tower_sessions/read_write",
    "rolling_session/read_write_metrics",
];

/// A metrics recorder as a production exporter has one (what
/// `metrics-exporter-prometheus` does per registration: a lookup in a
/// `metrics_util` registry of atomic counters), so that the
/// `_metrics` case counts what the layer's counters cost with one
/// installed; the other cases run without a recorder.
struct RegistryRecorder(
    metrics_util::registry::Registry<metrics::Key, metrics_util::registry::AtomicStorage>,
);

impl metrics::Recorder for RegistryRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        self.0
            .get_or_create_counter(key, |c| metrics::Counter::from_arc(c.clone()))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        self.0
            .get_or_create_gauge(key, |g| metrics::Gauge::from_arc(g.clone()))
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        self.0
            .get_or_create_histogram(key, |h| metrics::Histogram::from_arc(h.clone()))
    }
}

fn main() {
    // `cargo bench` adds `--bench`; the case and the count are the other two.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(case), Some(iters)) = (args.first(), args.get(1)) else {
        eprintln!("usage: overhead_instructions <case> <requests>; cases: {CASES:?}");
        std::process::exit(2);
    };
    let iters: u64 = iters.parse().expect("<requests> is a number");
    let floor = || {
        let (router, jar) = routers::floor_router();
        (router, Some(jar))
    };
    let (made, path) = match case.as_str() {
        "bare" => ((routers::bare_router(), None), "/"),
        "floor/read_write" => (floor(), "/"),
        "floor/read_only" => (floor(), "/read"),
        "rolling_session/read_write" => ((routers::rolling_router(), None), "/"),
        "rolling_session/read_only" => ((routers::rolling_router(), None), "/read"),
        "tower_sessions/read_write" => ((routers::tower_sessions_router(), None), "/"),
        "rolling_session/read_write_metrics" => ((routers::rolling_router(), None), "/"),
        other => {
            eprintln!("unknown case {other}; cases: {CASES:?}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorder = RegistryRecorder(metrics_util::registry::Registry::atomic());
    let _recorder = case
        .ends_with("_metrics")
        .then(|| metrics::set_default_local_recorder(&recorder));
    rt.block_on(async {
        let (router, jar) = made;
        let mut client = match jar {
            Some(jar) => Client::with_jar(router, jar),
            None => Client::new(router).await,
        };
        // Warm-up: the first requests fill caches and the store's tables.
        client.run(path, 10).await;
        client.run(path, iters).await;
        // Every request counted was served in the client's session.
        if case != "bare" {
            client.check_served().await;
        }
    });
}

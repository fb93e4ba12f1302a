//! Any text as a configuration file, in TOML, YAML and JSON: parsed into a
//! `Config` or refused, then validated, and a manager built from every
//! valid one; never a panic. A configuration that parses writes back to
//! each format and reads back equal.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rolling_session::{Config, KeyRing, MemoryStore, SessionManager, TokenKey};

fn check(config: Config) {
    // One key ring and a one-shard store for every input: what is fuzzed is
    // the configuration, not the key schedule or the store's allocation.
    static RING: LazyLock<KeyRing> = LazyLock::new(|| KeyRing::new(TokenKey::new(1, &[7; 32])));
    let built = SessionManager::builder(RING.clone())
        .store(MemoryStore::with_shards(1))
        .config(config.clone())
        .build();
    assert_eq!(
        built.is_ok(),
        config.validate().is_ok(),
        "a configuration builds exactly when it validates"
    );
    // NaN is not equal to itself: compare only what can be.
    if config != config {
        return;
    }
    if let Ok(text) = toml::to_string(&config) {
        let back: Config = toml::from_str(&text).expect("written TOML reads back");
        assert_eq!(back, config, "TOML round trip of {text}");
    }
    if let Ok(text) = serde_json::to_string(&config) {
        let back: Config = serde_json::from_str(&text).expect("written JSON reads back");
        assert_eq!(back, config, "JSON round trip of {text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = toml::from_str::<Config>(text) {
        check(config);
    }
    if let Ok(config) = serde_yaml_ng::from_str::<Config>(text) {
        check(config);
    }
    if let Ok(config) = serde_json::from_str::<Config>(text) {
        check(config);
    }
});

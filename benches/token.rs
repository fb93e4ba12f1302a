//! Token mint and verify, and the HMAC-SHA256 primitive behind them.
//!
//! Tokens are HMAC-SHA256 (`ring::hmac`, the crate's one crypto stack) over
//! short messages: a 26-byte tag message and a 16-byte keystream message.
//! This bench times the crate's `KeyRing` mint and verify (good, bad tag,
//! junk) and the bare primitive on those two message sizes.
//!
//! ```text
//! cargo bench --bench token
//! ```
//!
//! Figures: `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rolling_session::{KeyRing, TokenKey, store::SessionId};

const SECRET: [u8; 32] = [0x5a; 32];
const KEY_ID: u8 = 1;

fn tokens(c: &mut Criterion) {
    let keyring = KeyRing::new(TokenKey::new(KEY_ID, SECRET));
    let sid = SessionId::from_bytes([0x17; 16]);
    let counter = 123_456_u64;
    let text = keyring.mint(&sid, counter).expose().to_owned();
    assert_eq!(keyring.verify(&text).map(|v| v.counter), Ok(counter));

    let mut g = c.benchmark_group("token");
    g.bench_function("mint", |b| {
        b.iter(|| keyring.mint(black_box(&sid), black_box(counter)))
    });
    g.bench_function("verify", |b| {
        b.iter(|| keyring.verify(black_box(&text)).unwrap())
    });
    let mut bad = text.clone().into_bytes();
    bad[50] = if bad[50] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    g.bench_function("verify_bad_tag", |b| {
        b.iter(|| keyring.verify(black_box(&bad)).unwrap_err())
    });
    g.bench_function("verify_junk_length", |b| {
        b.iter(|| keyring.verify(black_box("short")).unwrap_err())
    });
    g.finish();
}

/// The bare primitive: one HMAC-SHA256 over the tag message (26 bytes)
/// and over the keystream message (16 bytes), key prepared once.
fn hmac_primitive(c: &mut Criterion) {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0x33u8; 32]);
    for (name, msg) in [("26B", &[0x42u8; 26][..]), ("16B", &[0x42u8; 16][..])] {
        let mut g = c.benchmark_group(format!("hmac_sha256_{name}"));
        g.bench_function("ring", |b| {
            b.iter(|| ring::hmac::sign(&key, black_box(msg)))
        });
        g.finish();
    }
}

criterion_group!(benches, tokens, hmac_primitive);
criterion_main!(benches);

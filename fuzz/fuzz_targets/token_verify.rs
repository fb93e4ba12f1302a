//! Any bytes as a presented token: never a panic, never a valid token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolling_session::{KeyRing, TokenKey};

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::new(TokenKey::new(1, &[7; 32])).with_accepted(TokenKey::new(2, &[8; 32]));
    let text = String::from_utf8_lossy(data);
    assert!(
        ring.verify(&text).is_err(),
        "forged a token from fuzz input"
    );
});

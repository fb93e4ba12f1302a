//! Any bytes as Cookie header values: the transport finds a token or none,
//! and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolling_session::http::{CookieConfig, TokenTransport};

fuzz_target!(|data: &[u8]| {
    let cookie =
        TokenTransport::Cookie(CookieConfig::development("s").expect("a valid cookie name"));
    let header = TokenTransport::header("x-session-token").expect("a valid header name");
    let values: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let _ = cookie.read(values.iter().copied());
    let _ = header.read(values.iter().copied());
});

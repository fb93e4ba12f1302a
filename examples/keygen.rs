//! Prints fresh keys for a deployment, as environment variables:
//!
//! ```text
//! cargo run --example keygen
//! ```
//!
//! Put the lines in your secret manager and load them with
//! `TokenKey::from_env(1, "SESSION_TOKEN_KEY")` (and
//! `PayloadKey::from_env(1, "SESSION_PAYLOAD_KEY")` for the Redis store's
//! sealed payloads). Every node of a deployment needs the same keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use rolling_session::TokenKey;

fn main() {
    let random = SystemRandom::new();
    for var in ["SESSION_TOKEN_KEY", "SESSION_PAYLOAD_KEY"] {
        let mut bytes = [0u8; 32];
        if random.fill(&mut bytes).is_err() {
            eprintln!("the operating system's random generator failed");
            std::process::exit(1);
        }
        let text = STANDARD.encode(bytes);
        // The printed text loads back, and is not mistaken for a placeholder.
        if let Err(error) = TokenKey::from_base64(1, &text) {
            eprintln!("generated key refused: {error}");
            std::process::exit(1);
        }
        println!("{var}={text}");
    }
}

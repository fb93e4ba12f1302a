//! The one source of randomness: the operating system's CSPRNG via `ring`.

use ring::rand::{SecureRandom, SystemRandom};

/// `N` bytes from the operating system's CSPRNG.
///
/// # Panics
/// When the operating system cannot supply randomness at all, which leaves
/// no safe way to mint session ids or keys.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's CSPRNG failed");
    out
}

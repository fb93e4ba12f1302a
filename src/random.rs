//! The one source of randomness: the operating system's CSPRNG, through
//! `getrandom`.

/// `N` bytes from the operating system's CSPRNG.
///
/// # Panics
/// When the operating system cannot supply randomness at all, which leaves
/// no safe way to mint session ids or keys.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out).expect("the operating system's CSPRNG failed");
    out
}

/// Fills `out` from the operating system's CSPRNG, for callers that can
/// report a failure instead of panicking (the AES-GCM nonce of a payload
/// sealed by the Redis store).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn fill(out: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of the buffer is written (a 12-byte nonce's last bytes
    /// too) and two draws differ: 256 bits colliding by chance is not a
    /// concern.
    #[test]
    fn fill_writes_fresh_bytes_to_the_whole_buffer() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(&mut a).unwrap();
        fill(&mut b).unwrap();
        assert_ne!(a, b);
        // A byte left zero at the same place in 8 draws: 2^-64.
        let mut seen = [0u8; 12];
        for _ in 0..8 {
            let mut nonce = [0u8; 12];
            fill(&mut nonce).unwrap();
            for (s, n) in seen.iter_mut().zip(nonce) {
                *s |= n;
            }
        }
        assert!(seen.iter().all(|&s| s != 0), "{seen:?}");
        assert_ne!(bytes::<16>(), bytes::<16>());
    }
}

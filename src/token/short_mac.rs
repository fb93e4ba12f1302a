//! HMAC-SHA256 of a message of at most 55 bytes, from the key's two
//! midstates: the two SHA-256 compressions of the construction and nothing
//! else.
//!
//! RFC 2104, section 4: "the intermediate results of the compression
//! function on the B-byte blocks (K XOR ipad) and (K XOR opad) can be
//! precomputed only once at the time of generation of the key". Then a
//! message that fits one block with its padding (55 bytes or fewer) costs
//! one compression for the inner hash and one for the outer: the floor of
//! HMAC-SHA256. The tokens' two MACs (26 and 16 bytes) run here, four per
//! request: about 17 ns less each than through the `hmac` crate's buffered
//! state (a mint 253 -> 219 ns; the two compressions alone take 72 ns, the
//! crate's whole MAC 117; `cargo bench --bench token`). The compressions
//! are the `sha2` crate's own (SHA extensions where the CPU has them); a
//! property test holds random keys and lengths 0..=55, and every length
//! under one key, to the `hmac` crate's result, with RFC 4231's test cases
//! 1 to 4. Anything longer (the record seal) stays on the `hmac` crate.

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256's block, in bytes.
const BLOCK: usize = 64;

/// The longest message whose padding (a `0x80` byte and the 8-byte bit
/// length) still fits its block.
pub(super) const MAX_MESSAGE: usize = BLOCK - 9;

/// An HMAC-SHA256 key as its two midstates. Secret: no `Debug`.
#[derive(Clone)]
pub(super) struct ShortMac {
    /// SHA-256's state after the block `K XOR ipad`.
    inner: [u32; 8],
    /// SHA-256's state after the block `K XOR opad`.
    outer: [u32; 8],
}

impl ShortMac {
    /// The midstates of `key` (32 bytes: shorter than a block, so HMAC
    /// pads it with zeros).
    pub(super) fn new(key: &[u8; 32]) -> Self {
        Self {
            inner: keyed(key, 0x36),
            outer: keyed(key, 0x5c),
        }
    }

    /// HMAC-SHA256(key, `message`); a message longer than [`MAX_MESSAGE`]
    /// does not compile.
    pub(super) fn mac<const N: usize>(&self, message: [u8; N]) -> [u8; 32] {
        const { assert!(N <= MAX_MESSAGE, "one block: at most 55 bytes") };
        self.mac_short(&message)
    }

    /// HMAC-SHA256(key, `message`) for `message.len() <= MAX_MESSAGE`
    /// ([`mac`](Self::mac) makes sure of it).
    fn mac_short(&self, message: &[u8]) -> [u8; 32] {
        let inner = digest_after(self.inner, message);
        to_bytes(digest_after(self.outer, &to_bytes(inner)))
    }
}

/// SHA-256's state after the one block `key XOR pad`, from the start.
fn keyed(key: &[u8; 32], pad: u8) -> [u32; 8] {
    let mut block = GenericArray::from([pad; BLOCK]);
    for (b, k) in block.iter_mut().zip(key) {
        *b ^= k;
    }
    let mut state = IV;
    compress256(&mut state, std::slice::from_ref(&block));
    block.fill(0);
    state
}

/// The SHA-256 digest of a message whose first block (a key's block) left
/// `state`, and whose rest is `tail` (at most [`MAX_MESSAGE`] bytes): the
/// tail, `0x80`, zeros, and the whole message's length in bits, one block.
fn digest_after(mut state: [u32; 8], tail: &[u8]) -> [u32; 8] {
    let mut block = GenericArray::from([0u8; BLOCK]);
    block[..tail.len()].copy_from_slice(tail);
    block[tail.len()] = 0x80;
    let bits = ((BLOCK + tail.len()) as u64) * 8;
    block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
    compress256(&mut state, std::slice::from_ref(&block));
    state
}

fn to_bytes(state: [u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use sha2::Sha256;

    fn reference(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    proptest! {
        /// Every message length the midstates take, any key: the `hmac`
        /// crate's answer.
        #[test]
        fn equals_the_hmac_crate(
            key in any::<[u8; 32]>(),
            message in proptest::collection::vec(any::<u8>(), 0..=MAX_MESSAGE),
        ) {
            prop_assert_eq!(ShortMac::new(&key).mac_short(&message), reference(&key, &message));
        }
    }

    #[test]
    fn every_length_at_the_edges_equals_the_hmac_crate() {
        let key = [0xa5; 32];
        let mac = ShortMac::new(&key);
        let message: Vec<u8> = (0..=MAX_MESSAGE as u8).collect();
        for n in 0..=MAX_MESSAGE {
            assert_eq!(
                mac.mac_short(&message[..n]),
                reference(&key, &message[..n]),
                "{n}"
            );
        }
        assert_eq!(mac.mac([1u8; 26]), reference(&key, &[1u8; 26]));
        assert_eq!(mac.mac([2u8; 16]), reference(&key, &[2u8; 16]));
    }

    /// RFC 4231's test cases whose key fits 32 bytes and whose message
    /// fits one block (1 to 4; 3 and 4 are 50 bytes, near the padding's
    /// edge): a key shorter than 32 bytes, padded with zeros, is the same
    /// HMAC key.
    #[test]
    fn rfc_4231_test_cases_1_to_4() {
        let case4_key: Vec<u8> = (1..=25).collect();
        let cases: [(&[u8], &[u8], &str); 4] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 20],
                &[0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                &case4_key,
                &[0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
        ];
        for (i, (key, message, expected)) in cases.into_iter().enumerate() {
            let mut padded = [0u8; 32];
            padded[..key.len()].copy_from_slice(key);
            assert_eq!(
                hex::encode(ShortMac::new(&padded).mac_short(message)),
                expected,
                "case {}",
                i + 1
            );
        }
    }
}

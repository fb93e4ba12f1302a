//! Secret key material as operators hand it over: 32 bytes written in
//! base64 or hex, often in an environment variable, and the check that
//! refuses keys nobody drew at random.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// Base64 engines that take a key with or without its `=` padding.
const PADDING_OPTIONAL: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, PADDING_OPTIONAL);
const URL_SAFE_ANY_PADDING: GeneralPurpose =
    GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_OPTIONAL);

/// Why 32 bytes of key material could not be loaded.
///
/// Never carries the material itself, so printing the error cannot leak
/// a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The environment variable is unset or not valid Unicode.
    #[error("environment variable {var} does not hold a key")]
    Env {
        /// The variable read.
        var: String,
        /// Why it could not be read.
        #[source]
        source: std::env::VarError,
    },
    /// Neither base64 (standard or URL-safe, padding optional) nor hex.
    #[error("a key is 32 bytes written as base64 or hex; this text is neither")]
    Encoding,
    /// Decoded, but not to 32 bytes.
    #[error("a key is 32 bytes; this one decodes to {found}")]
    Length {
        /// The number of bytes decoded.
        found: usize,
    },
    /// Too few distinct byte values to have come from a random generator
    /// (all zeros, one repeated byte, a short pattern): a placeholder left
    /// in the configuration. Generate one with `cargo run --example
    /// keygen`.
    #[error(
        "this key has {distinct} distinct byte values (32 random bytes have about 30): \
         it is a placeholder, not a secret; make one with `cargo run --example keygen`"
    )]
    Weak {
        /// Distinct byte values among the 32.
        distinct: usize,
    },
}

/// Fewer distinct byte values than this and the key is refused: 32
/// uniformly random bytes have fewer than 16 distinct values with
/// probability below 2^-60.
pub(crate) const MIN_DISTINCT_BYTES: usize = 16;

/// The number of distinct byte values in `bytes`.
pub(crate) fn distinct_bytes(bytes: &[u8; 32]) -> usize {
    let mut seen = [false; 256];
    bytes.iter().for_each(|&b| seen[usize::from(b)] = true);
    seen.iter().filter(|&&s| s).count()
}

/// Whether `bytes` look drawn at random (see [`KeyError::Weak`]).
pub(crate) fn is_weak(bytes: &[u8; 32]) -> bool {
    distinct_bytes(bytes) < MIN_DISTINCT_BYTES
}

/// Refuses weak material.
pub(crate) fn strong(bytes: [u8; 32]) -> Result<[u8; 32], KeyError> {
    match distinct_bytes(&bytes) {
        distinct if distinct < MIN_DISTINCT_BYTES => Err(KeyError::Weak { distinct }),
        _ => Ok(bytes),
    }
}

/// 32 bytes from base64 (standard or URL-safe alphabet, padded or not).
pub(crate) fn from_base64(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim().trim_end_matches('=');
    let decoded = [STANDARD_ANY_PADDING, URL_SAFE_ANY_PADDING]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or(KeyError::Encoding)?;
    exactly_32(decoded)
}

/// 32 bytes from 64 hex digits (either case).
pub(crate) fn from_hex(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    let mut out = [0u8; 32];
    match hex::decode_to_slice(text, &mut out) {
        Ok(()) => Ok(out),
        Err(hex::FromHexError::InvalidStringLength | hex::FromHexError::OddLength)
            if text.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Err(KeyError::Length {
                found: text.len() / 2,
            })
        }
        Err(_) => Err(KeyError::Encoding),
    }
}

/// 32 bytes from hex (text of an even number of hex digits) or else
/// base64. The two never overlap for a 32-byte key: its base64 is 43
/// characters, or 44 ending in `=`, neither an even run of hex digits.
pub(crate) fn from_text(text: &str) -> Result<[u8; 32], KeyError> {
    let trimmed = text.trim();
    if trimmed.len().is_multiple_of(2) && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
        from_hex(trimmed)
    } else {
        from_base64(trimmed)
    }
}

/// 32 bytes from the environment variable `var`, in hex or base64.
pub(crate) fn from_env(var: &str) -> Result<[u8; 32], KeyError> {
    let text = std::env::var(var).map_err(|source| KeyError::Env {
        var: var.to_owned(),
        source,
    })?;
    from_text(&text)
}

fn exactly_32(decoded: Vec<u8>) -> Result<[u8; 32], KeyError> {
    <[u8; 32]>::try_from(decoded.as_slice()).map_err(|_| KeyError::Length {
        found: decoded.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    const KEY: [u8; 32] = *b"\x8f\x12\xa0\x33\x5c\x01\xee\x7b\x90\x44\xd2\x19\x6a\xc3\x05\xfb\
                             \x28\x71\xbd\x0e\x93\x5a\xf6\x1c\x87\x4e\x30\xa9\xdb\x62\x15\xc8";

    #[test]
    fn base64_in_either_alphabet_with_or_without_padding() {
        let standard = STANDARD.encode(KEY);
        let url = URL_SAFE.encode(KEY);
        assert!(standard.contains('+') || standard.contains('/') || standard != url);
        for text in [
            standard.clone(),
            standard.trim_end_matches('=').to_owned(),
            url.clone(),
            format!("  {url}\n"),
        ] {
            assert_eq!(from_base64(&text).unwrap(), KEY, "{text}");
            assert_eq!(from_text(&text).unwrap(), KEY, "{text}");
        }
    }

    #[test]
    fn hex_in_either_case() {
        let lower = hex::encode(KEY);
        assert_eq!(from_hex(&lower).unwrap(), KEY);
        assert_eq!(from_text(&lower.to_uppercase()).unwrap(), KEY);
    }

    #[test]
    fn wrong_lengths_and_encodings_are_named() {
        assert!(matches!(
            from_text(&hex::encode([1u8; 16])),
            Err(KeyError::Length { found: 16 })
        ));
        assert!(matches!(
            from_base64(&STANDARD.encode([3u8; 31])),
            Err(KeyError::Length { found: 31 })
        ));
        assert!(matches!(from_text("not a key!"), Err(KeyError::Encoding)));
        assert!(matches!(from_text(""), Err(KeyError::Length { found: 0 })));
    }

    #[test]
    fn placeholders_are_weak_and_random_keys_are_not() {
        assert!(is_weak(&[0; 32]));
        assert!(is_weak(&[7; 32]));
        assert!(is_weak(b"abababababababababababababababab"));
        assert!(matches!(
            strong([0; 32]),
            Err(KeyError::Weak { distinct: 1 })
        ));
        assert!(!is_weak(&KEY));
        for _ in 0..1000 {
            assert!(!is_weak(&crate::random::bytes::<32>()));
        }
    }

    #[test]
    fn env_errors_name_the_variable_not_the_value() {
        let err = from_env("ROLLING_SESSION_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(
            err.to_string()
                .contains("ROLLING_SESSION_TEST_SURELY_UNSET_VAR")
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}

//! Session ids and lineage keys.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A session id: 128 bits from the operating system's CSPRNG.
///
/// It appears inside tokens, but is not a credential by itself: a token
/// also needs the server key's tag.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(crate::random::bytes::<16>())
    }

    /// A fresh id in the same lineage as `self`: the first 8 bytes (the
    /// [`LineageKey`]) are kept, the last 8 are new random bytes. Renewal
    /// and elevation give the session such an id, so every id a lineage
    /// ever had leads a store to the one record.
    pub fn next_generation(&self) -> Self {
        let mut bytes = self.0;
        bytes[8..].copy_from_slice(&crate::random::bytes::<8>());
        Self(bytes)
    }

    /// The lineage this id belongs to: the key under which a store keeps
    /// the session's record.
    pub fn lineage(&self) -> LineageKey {
        let mut key = [0u8; 8];
        key.copy_from_slice(&self.0[..8]);
        LineageKey(key)
    }

    /// An id from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes of the id.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the 32-character lowercase hex form that `Display` writes.
    pub fn parse_hex(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 32 hex digits"))
    }
}

/// The key of a session lineage: the first 8 bytes of every id the
/// lineage had. A login starts a lineage with a fresh random id; renewal and
/// elevation give it new ids ([`SessionId::next_generation`]) that keep
/// these bytes, so a store finds the lineage's one record from any of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineageKey([u8; 8]);

impl LineageKey {
    /// The lowest key (for range bounds).
    pub(crate) const MIN: Self = Self([0; 8]);
    /// The highest key (for range bounds).
    pub(crate) const MAX: Self = Self([0xff; 8]);

    /// The 8 bytes of the key.
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for LineageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for LineageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LineageKey({self})")
    }
}

//! The session record a store keeps, and the identifiers and context in it.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::sequence::SequenceState;

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

/// Where a session is used from: the facts a request carries about its
/// client. Every field is optional; only those present are compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionContext {
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// A device identifier supplied by the application.
    pub device_id: Option<String>,
    /// A coarse location (region, data centre) supplied by the application.
    pub location: Option<String>,
}

impl SessionContext {
    /// Fills the fields set in `update` and keeps the others.
    pub fn merge(&mut self, update: SessionContext) {
        let SessionContext {
            ip,
            user_agent,
            device_id,
            location,
        } = update;
        self.ip = ip.or(self.ip);
        self.user_agent = user_agent.or(self.user_agent.take());
        self.device_id = device_id.or(self.device_id.take());
        self.location = location.or(self.location.take());
    }
}

/// Facts about a session that are not part of its token sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionFlags {
    /// Permissions were elevated during the session's life.
    pub elevated: bool,
    /// A request came from a context unlike the one recorded.
    pub context_mismatch: bool,
    /// The drift predictor flagged an anomaly.
    pub anomaly: bool,
    /// Created with "remember me": the cookie has a `Max-Age` and outlives
    /// the browser, and the session has the longer
    /// [`RememberMe`](crate::RememberMe) lifetimes. Otherwise the cookie
    /// ends when the browser closes.
    pub remembered: bool,
}

/// The descriptive half of a session: everything except the token sequence.
///
/// [`SessionStore::update_meta`](crate::SessionStore::update_meta) writes
/// only this half, so an update racing with a request can never move the
/// counter back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    /// Where the session is used from.
    pub context: SessionContext,
    /// Permissions granted to this session.
    pub permissions: Vec<String>,
    /// The permissions before the last elevation: what a request carrying
    /// a token of the previous id sees while that token is still within
    /// its grace. Requests with older ids see no permissions.
    #[serde(default)]
    pub previous_permissions: Vec<String>,
    /// End of the current (renewable) lifetime, ms since the epoch.
    pub expires_at: u64,
    /// End of the absolute lifetime that renewal never extends.
    pub absolute_expires_at: u64,
    /// Idle time after which the session ends, in ms.
    pub idle_timeout_ms: u64,
    /// How many times the session has been renewed.
    pub renewals: u32,
    /// Flags raised during the session's life.
    pub flags: SessionFlags,
    /// The manager's MAC over what identifies and limits the session
    /// ([`RecordSeal`]): set whenever the manager creates a record or
    /// writes its meta, checked on every record it reads. Stores keep it
    /// as part of the meta and never look inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<RecordSeal>,
}

impl SessionMeta {
    /// When the session ends at the latest, whatever its activity.
    pub fn ends_at(&self) -> u64 {
        self.expires_at.min(self.absolute_expires_at)
    }
}

/// The manager's MAC over a record: HMAC-SHA256 (truncated to 128 bits)
/// under a subkey of the [`KeyRing`](crate::KeyRing) key with id
/// [`key_id`](Self::key_id), over the lineage key, the user id, the
/// creation time, the lifetimes, the idle timeout, the renewal count, the
/// permissions (current and previous), the context and the flags:
/// everything that says whose session it is, what it may do, where it may
/// be used from, and how long it lives. Only the token sequence (and the
/// list of ids, which the sequence rule moves) is left out: stores move it
/// atomically without the key.
///
/// A store with write access can therefore not make a session another
/// user's, grant it permissions or extend it: the manager refuses any
/// record whose seal does not match (`session_tampered`).
/// `docs/security.md` has the threat model.
///
/// Stored inside [`SessionMeta`] as `"<key id>.<32 hex digits>"`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordSeal {
    key_id: u8,
    mac: [u8; 16],
}

impl RecordSeal {
    /// A seal from its parts (for stores that keep them apart; the manager
    /// computes seals with [`KeyRing::seal_record`](crate::KeyRing::seal_record)).
    pub const fn from_parts(key_id: u8, mac: [u8; 16]) -> Self {
        Self { key_id, mac }
    }

    /// The id of the key that sealed the record.
    pub const fn key_id(&self) -> u8 {
        self.key_id
    }

    /// The 16 bytes of the MAC.
    pub const fn mac(&self) -> &[u8; 16] {
        &self.mac
    }

    /// Parses the `"<key id>.<32 hex digits>"` form that `Display` writes.
    pub fn parse(s: &str) -> Option<Self> {
        let (id, hex) = s.split_once('.')?;
        if id.is_empty() || id.len() > 3 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let key_id = id.parse().ok()?;
        let mut mac = [0u8; 16];
        for (i, byte) in mac.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self { key_id, mac })
    }
}

impl fmt::Display for RecordSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.", self.key_id)?;
        self.mac.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for RecordSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordSeal({self})")
    }
}

impl Serialize for RecordSeal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordSeal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("expected <key id>.<32 hex digits>"))
    }
}

/// A session lineage as a store keeps it: one record from login to logout,
/// whatever renewals and elevations happened in between.
///
/// Stores key it by [`lineage`](Self::lineage) and must find it from any of
/// its ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session's current id (the last renewal or elevation gave it).
    pub id: SessionId,
    /// The ids the lineage had before, oldest first. Their tokens are
    /// predecessors of the live one: accepted within the grace, theft after.
    #[serde(default)]
    pub previous_ids: Vec<SessionId>,
    /// The user the session belongs to.
    pub user_id: String,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// The descriptive half, written by `update_meta`.
    pub meta: SessionMeta,
    /// The token sequence, written only by `verify_and_advance`.
    pub sequence: SequenceState,
}

impl SessionRecord {
    /// The key a store keeps the record under.
    pub fn lineage(&self) -> LineageKey {
        self.id.lineage()
    }

    /// Whether `id` is the current or an earlier id of this lineage.
    pub fn has_id(&self, id: &SessionId) -> bool {
        self.id == *id || self.previous_ids.contains(id)
    }

    /// Every id of the lineage, oldest first, the current one last.
    pub fn all_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.previous_ids
            .iter()
            .copied()
            .chain(std::iter::once(self.id))
    }

    /// Whether the session can no longer be used at `now_ms`: expired,
    /// idle too long, or revoked.
    pub fn is_dead(&self, now_ms: u64) -> bool {
        self.sequence.revoked.is_some()
            || now_ms >= self.meta.ends_at()
            || now_ms >= self.idle_deadline()
    }

    /// When the session ends for inactivity if no request comes first.
    pub fn idle_deadline(&self) -> u64 {
        self.sequence
            .last_seen_at
            .saturating_add(self.meta.idle_timeout_ms)
    }

    /// When a store may forget the record: the earliest of its deadlines.
    /// Revoked records are kept until then too, so a late replay still
    /// reports `session_revoked` rather than an unknown session.
    pub fn purge_at(&self) -> u64 {
        self.meta.ends_at().min(self.idle_deadline())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_and_round_trip_as_hex() {
        let a = SessionId::generate();
        assert_ne!(a, SessionId::generate());
        let hex = a.to_string();
        assert_eq!(hex.len(), 32);
        assert_eq!(SessionId::parse_hex(&hex), Some(a));
        assert_eq!(SessionId::parse_hex("zz"), None);
        assert_eq!(SessionId::parse_hex(&"é".repeat(16)), None);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<SessionId>(&json).unwrap(), a);
    }

    #[test]
    fn record_seals_round_trip_as_text() {
        let seal = RecordSeal::from_parts(7, [0xab; 16]);
        let text = seal.to_string();
        assert_eq!(text, format!("7.{}", "ab".repeat(16)));
        assert_eq!(RecordSeal::parse(&text), Some(seal));
        let json = serde_json::to_string(&seal).unwrap();
        assert_eq!(serde_json::from_str::<RecordSeal>(&json).unwrap(), seal);
        for bad in [
            "",
            ".",
            "7",
            "7.",
            "256.abababababababababababababababab",
            "-1.abababababababababababababababab",
            "7.ABABABABABABABABABABABABABABABAB",
            "7.abababababababababababababababa",
            "7.abababababababababababababababab0",
            "7.abababababababababababababababé",
            "1234.abababababababababababababababab",
        ] {
            assert_eq!(RecordSeal::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn merge_keeps_unset_fields() {
        let mut ctx = SessionContext {
            ip: Some("10.0.0.1".parse().unwrap()),
            user_agent: Some("ua".into()),
            device_id: None,
            location: Some("eu".into()),
        };
        ctx.merge(SessionContext {
            location: Some("us".into()),
            ..Default::default()
        });
        assert_eq!(ctx.user_agent.as_deref(), Some("ua"));
        assert_eq!(ctx.location.as_deref(), Some("us"));
        assert_eq!(ctx.ip, Some("10.0.0.1".parse().unwrap()));
    }
}

//! The descriptive half of a session: its context, flags, lifetimes and
//! seal.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where a session is used from: the facts a request carries about its
/// client. Every field is optional; only those present are compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionContext {
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<Box<str>>,
    /// A device identifier supplied by the application.
    pub device_id: Option<Box<str>>,
    /// A coarse location (region, data centre) supplied by the application.
    pub location: Option<Box<str>>,
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
    /// [`RememberMe`](crate::config::RememberMe) lifetimes. Otherwise the cookie
    /// ends when the browser closes.
    pub remembered: bool,
}

/// The descriptive half of a session: everything except the token sequence.
///
/// [`SessionStore::update_meta`](crate::SessionStore::update_meta) writes
/// only this half, so an update racing with a request can never move the
/// counter back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// In this order (`repr(C)`): what every request reads first, right after
// the sequence in the record (see `SessionRecord`).
#[repr(C)]
pub struct SessionMeta {
    /// End of the current (renewable) lifetime, ms since the epoch.
    pub expires_at: u64,
    /// End of the absolute lifetime that renewal never extends.
    pub absolute_expires_at: u64,
    /// Idle time after which the session ends, in ms.
    pub idle_timeout_ms: u64,
    /// The manager's MAC over what identifies and limits the session
    /// ([`RecordSeal`]): set whenever the manager creates a record or
    /// writes its meta, checked on every record it reads. Stores keep it
    /// as part of the meta and never look inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<RecordSeal>,
    /// How many times the session has been renewed.
    pub renewals: u32,
    /// Flags raised during the session's life.
    pub flags: SessionFlags,
    /// Permissions granted to this session (boxed, as they change only by
    /// elevation: 8 bytes less than a `Vec` in every record).
    pub permissions: Box<[String]>,
    /// The permissions before the last elevation: what a request carrying
    /// a token of the previous id sees while that token is still within
    /// its grace. Requests with older ids see no permissions.
    #[serde(default)]
    pub previous_permissions: Box<[String]>,
    /// Where the session is used from.
    pub context: SessionContext,
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

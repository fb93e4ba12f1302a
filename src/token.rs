//! Rolling tokens: minting and verifying the per-request credential.
//!
//! A token binds a session id to the session's request counter under a
//! server key. Its 42 bytes, base64url without padding (56 characters):
//!
//! ```text
//! +---------+--------+-----------------+--------------------+-----------+
//! | version | key id | session id (16) | sealed counter (8) | tag (16)  |
//! +---------+--------+-----------------+--------------------+-----------+
//! tag            = HMAC-SHA256(mac_key, version ‖ key id ‖ session id ‖ counter)[..16]
//! sealed counter = counter XOR HMAC-SHA256(enc_key, tag)[..8]
//! ```
//!
//! This is the SIV construction (Rogaway & Shrimpton, 2006) with HMAC as
//! both PRFs: deterministic authenticated encryption of the counter. The
//! counter is unreadable without the key, the tag gives 128 bits of
//! unforgeability, and the node learns which counter to check without asking
//! the store, so verification plus advance costs one store round trip.
//! `docs/protocol.md` gives the reasoning and the rejected alternatives.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

mod short_mac;

use short_mac::ShortMac;

use crate::error::RecordSealError;
use crate::record::{
    RecordSeal, SessionContext, SessionFlags, SessionId, SessionMeta, SessionRecord,
};

pub use crate::error::TokenError;
pub use crate::secret::KeyError;

/// The format version written in the first byte of every token.
pub const TOKEN_VERSION: u8 = 1;
/// Bytes in a decoded token.
const TOKEN_BYTES: usize = 42;
/// Characters in an encoded token (base64url, no padding).
pub const TOKEN_LEN: usize = 56;
const TAG_BYTES: usize = 16;

/// A rolling token as sent to the client.
///
/// Its `Debug` output is redacted; call [`Token::expose`] where the value
/// must really leave the process (a `Set-Cookie` header).
///
/// Cheap to clone and free to make: a token of the format's length (every
/// minted one, every presented one that may be valid) is held inline, so a
/// request's tokens cost no allocation; any other presented text (junk,
/// refused by [`KeyRing::verify`]) is shared.
#[derive(Clone)]
pub struct Token(Text);

#[derive(Clone)]
enum Text {
    /// [`TOKEN_LEN`] bytes of a `str` (they came from one).
    Inline([u8; TOKEN_LEN]),
    /// A presented text of any other length.
    Shared(Arc<str>),
}

impl Token {
    /// Wraps the token a client presented (checked later, by
    /// [`KeyRing::verify`]).
    pub(crate) fn presented(text: &str) -> Self {
        match <[u8; TOKEN_LEN]>::try_from(text.as_bytes()) {
            Ok(bytes) => Self(Text::Inline(bytes)),
            Err(_) => Self(Text::Shared(Arc::from(text))),
        }
    }

    /// The token text, for writing into a cookie or header.
    pub fn expose(&self) -> &str {
        match &self.0 {
            // Inline bytes always came from a `str`: the check passes, and
            // its fallback only avoids a panic path.
            Text::Inline(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            Text::Shared(text) => text,
        }
    }

    /// The token text as bytes, without the UTF-8 check of
    /// [`expose`](Self::expose) (the request path: verification, the
    /// `Set-Cookie` value, comparisons).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Text::Inline(bytes) => bytes,
            Text::Shared(text) => text.as_bytes(),
        }
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Token {}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(REDACTED)")
    }
}

/// What a valid token says: which session, which counter, which key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The session the token belongs to.
    pub session_id: SessionId,
    /// The request counter sealed inside the token.
    pub counter: u64,
    /// The id of the key that minted it.
    pub key_id: u8,
}

/// A server secret with its key id.
///
/// The 32 secret bytes never print; three subkeys are derived from them
/// with HKDF-SHA256: one for the token tag, one for sealing the token's
/// counter, and one for the [`RecordSeal`] that binds a stored record
/// (info `tag`, `seal` and `record`).
#[derive(Clone)]
pub struct TokenKey {
    id: u8,
    /// The token's two MACs as HMAC-SHA256 midstates: two compressions
    /// per MAC (`short_mac`).
    mac: ShortMac,
    seal: ShortMac,
    /// The record seal's HMAC-SHA256 state, keyed once; each use clones it.
    record: Hmac<Sha256>,
    /// Too few distinct bytes to be random: refused by
    /// [`SessionManagerBuilder::build`](crate::SessionManagerBuilder::build)
    /// outside tests.
    weak: bool,
}

impl TokenKey {
    /// A key from 32 secret bytes, by value or by reference. Load them
    /// from your secret manager and keep the same bytes on every node; the
    /// text forms ([`from_env`](Self::from_env),
    /// [`from_base64`](Self::from_base64), [`from_hex`](Self::from_hex))
    /// are usually handier.
    ///
    /// A placeholder (all zeros, one repeated byte: fewer than 16 distinct
    /// byte values) is accepted here but refused when the manager is built,
    /// unless the `test-util` feature is on.
    ///
    /// ```
    /// use rolling_session::TokenKey;
    ///
    /// let secret: [u8; 32] = *b"change me: 32 bytes from a CSPRG";
    /// let key = TokenKey::new(1, secret);
    /// assert_eq!(key.id(), 1);
    /// assert_eq!(format!("{key:?}"), "TokenKey { id: 1, secret: \"REDACTED\" }");
    /// ```
    pub fn new(id: u8, secret: impl Borrow<[u8; 32]>) -> Self {
        let secret = secret.borrow();
        let prk = Hkdf::<Sha256>::new(Some(b"rolling-session token v1"), secret);
        Self {
            id,
            mac: with_subkey(&prk, b"tag", ShortMac::new),
            seal: with_subkey(&prk, b"seal", ShortMac::new),
            record: with_subkey(&prk, b"record", |subkey| {
                Hmac::<Sha256>::new_from_slice(subkey).expect("HMAC takes keys of any length")
            }),
            weak: crate::secret::is_weak(secret),
        }
    }

    /// A key from 32 bytes written in base64 (standard or URL-safe, with or
    /// without padding). Refuses placeholders ([`KeyError::Weak`]).
    ///
    /// ```
    /// use rolling_session::TokenKey;
    ///
    /// let key = TokenKey::from_base64(1, "jxKgM1wB7nuQRNIZasMF+yhxvQ6TWvYch04wqdtiFcg=")?;
    /// assert_eq!(key.id(), 1);
    /// assert!(TokenKey::from_base64(1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_err());
    /// # Ok::<(), rolling_session::KeyError>(())
    /// ```
    pub fn from_base64(id: u8, text: &str) -> Result<Self, KeyError> {
        crate::secret::from_base64(text)
            .and_then(crate::secret::strong)
            .map(|bytes| Self::new(id, bytes))
    }

    /// A key from 64 hex digits. Refuses placeholders ([`KeyError::Weak`]).
    ///
    /// ```
    /// use rolling_session::TokenKey;
    ///
    /// let key = TokenKey::from_hex(
    ///     2,
    ///     "8f12a0335c01ee7b9044d2196ac305fb2871bd0e935af61c874e30a9db6215c8",
    /// )?;
    /// assert_eq!(key.id(), 2);
    /// # Ok::<(), rolling_session::KeyError>(())
    /// ```
    pub fn from_hex(id: u8, text: &str) -> Result<Self, KeyError> {
        crate::secret::from_hex(text)
            .and_then(crate::secret::strong)
            .map(|bytes| Self::new(id, bytes))
    }

    /// A key from the environment variable `var`, holding 64 hex digits or
    /// base64 (as printed by `cargo run --example keygen`). Refuses
    /// placeholders; the error names the variable, never its value.
    ///
    /// ```
    /// use rolling_session::{KeyError, TokenKey};
    ///
    /// // Set by your deployment, e.g. from a secret manager.
    /// match TokenKey::from_env(1, "SESSION_TOKEN_KEY") {
    ///     Ok(key) => assert_eq!(key.id(), 1),
    ///     Err(KeyError::Env { var, .. }) => assert_eq!(var, "SESSION_TOKEN_KEY"),
    ///     Err(other) => panic!("{other}"),
    /// }
    /// ```
    pub fn from_env(id: u8, var: &str) -> Result<Self, KeyError> {
        crate::secret::from_env(var)
            .and_then(crate::secret::strong)
            .map(|bytes| Self::new(id, bytes))
    }

    /// Whether the secret looks like a placeholder rather than random bytes.
    pub(crate) fn is_weak(&self) -> bool {
        self.weak
    }

    /// A key with fresh random bytes from the operating system's CSPRNG.
    /// Tokens minted under it die with the process: use it for tests and
    /// single-node demos only.
    pub fn generate(id: u8) -> Self {
        Self::new(id, crate::random::bytes::<32>())
    }

    /// The key id written into the tokens this key mints.
    pub fn id(&self) -> u8 {
        self.id
    }

    fn tag(&self, session_id: &SessionId, counter: u64) -> [u8; TAG_BYTES] {
        let mut message = [0u8; 26];
        message[..2].copy_from_slice(&[TOKEN_VERSION, self.id]);
        message[2..18].copy_from_slice(session_id.as_bytes());
        message[18..].copy_from_slice(&counter.to_be_bytes());
        let full = self.mac.mac(message);
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// The MAC of a [`RecordSeal`]: HMAC-SHA256 under the `record` subkey
    /// over a length-prefixed encoding of the bound fields, truncated to
    /// 128 bits.
    fn record_mac(&self, record: &SessionRecord) -> [u8; TAG_BYTES] {
        // Every field named, so that a new field must be classified here:
        // bound, or deliberately left to the store.
        let SessionMeta {
            context,
            permissions,
            previous_permissions,
            expires_at,
            absolute_expires_at,
            idle_timeout_ms,
            renewals,
            flags,
            seal: _,
        } = &record.meta;
        let SessionContext {
            ip,
            user_agent,
            device_id,
            location,
        } = context;
        let SessionFlags {
            elevated,
            context_mismatch,
            anomaly,
            remembered,
        } = *flags;
        let mut mac = self.record.clone();
        mac.update(RECORD_LABEL);
        mac.update(&[self.id]);
        mac.update(record.lineage().as_bytes());
        bytes_field(&mut mac, record.user_id.as_bytes());
        for n in [
            record.created_at,
            *expires_at,
            *absolute_expires_at,
            *idle_timeout_ms,
        ] {
            mac.update(&n.to_be_bytes());
        }
        mac.update(&renewals.to_be_bytes());
        for list in [permissions, previous_permissions] {
            mac.update(&(list.len() as u64).to_be_bytes());
            for p in list {
                bytes_field(&mut mac, p.as_bytes());
            }
        }
        match ip {
            None => mac.update(&[0]),
            Some(std::net::IpAddr::V4(v4)) => {
                mac.update(&[4]);
                mac.update(&v4.octets());
            }
            Some(std::net::IpAddr::V6(v6)) => {
                mac.update(&[6]);
                mac.update(&v6.octets());
            }
        }
        for field in [user_agent, device_id, location] {
            match field {
                None => mac.update(&[0]),
                Some(text) => {
                    mac.update(&[1]);
                    bytes_field(&mut mac, text.as_bytes());
                }
            }
        }
        mac.update(&[u8::from(elevated)
            | u8::from(context_mismatch) << 1
            | u8::from(anomaly) << 2
            | u8::from(remembered) << 3]);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; TAG_BYTES];
        out.copy_from_slice(&full[..TAG_BYTES]);
        out
    }

    fn keystream(&self, tag: &[u8; TAG_BYTES]) -> u64 {
        let full = self.seal.mac(*tag);
        let mut ks = [0u8; 8];
        ks.copy_from_slice(&full[..8]);
        u64::from_be_bytes(ks)
    }
}

/// The first input of every record MAC: the construction and its version.
const RECORD_LABEL: &[u8] = b"rolling-session/record/v1";

/// A variable-length field: its length (8 bytes, big-endian), then its
/// bytes, so that no two field lists encode alike.
fn bytes_field(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

/// One subkey, HKDF-SHA256 expanded to 32 bytes under `label`, handed to
/// `keyed` (which keys a MAC with it) and zeroed after.
fn with_subkey<T>(prk: &Hkdf<Sha256>, label: &[u8], keyed: impl FnOnce(&[u8; 32]) -> T) -> T {
    let mut subkey = [0u8; 32];
    prk.expand(label, &mut subkey)
        .expect("HKDF-SHA256 can always expand 32 bytes");
    let mac = keyed(&subkey);
    subkey.fill(0);
    mac
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("id", &self.id)
            .field("secret", &"REDACTED")
            .finish()
    }
}

/// The keys a node mints and accepts tokens with, and seals and checks
/// stored records with.
///
/// The current key mints and seals; every listed key verifies. To rotate:
/// add the new key as current and keep the old one listed until every
/// session has rolled onto the new key, then drop it. A token rolls on the
/// session's next request; a record's [`RecordSeal`] is renewed whenever
/// the manager writes the session's meta (renewal, elevation, a context
/// update, a flag), so keep a retired key listed for the absolute lifetime
/// (`absolute_timeout`) after the rotation: a record still sealed under a
/// key that is no longer listed is refused (`session_tampered`), and its
/// user has to log in again.
///
/// ```
/// use rolling_session::{KeyRing, store::SessionId, TokenKey};
///
/// let old = TokenKey::new(1, [7; 32]);
/// let new = TokenKey::new(2, [9; 32]);
/// let sid = SessionId::generate();
///
/// let before = KeyRing::new(old.clone());
/// let token = before.mint(&sid, 5);
///
/// // After the rotation the old token still verifies...
/// let after = KeyRing::new(new).with_accepted(old);
/// assert_eq!(after.verify(token.expose())?.counter, 5);
/// // ...and the next one is minted under key 2.
/// assert_eq!(after.verify(after.mint(&sid, 6).expose())?.key_id, 2);
/// # Ok::<(), rolling_session::token::TokenError>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: TokenKey,
    accepted: Vec<TokenKey>,
}

/// A ring of one key.
impl From<TokenKey> for KeyRing {
    fn from(key: TokenKey) -> Self {
        Self::new(key)
    }
}

impl KeyRing {
    /// A ring whose only key is `current`.
    pub fn new(current: TokenKey) -> Self {
        Self {
            current,
            accepted: Vec::new(),
        }
    }

    /// Also accept tokens minted under `key` (an older key being retired).
    #[must_use]
    pub fn with_accepted(mut self, key: TokenKey) -> Self {
        self.accepted.retain(|k| k.id != key.id);
        if key.id != self.current.id {
            self.accepted.push(key);
        }
        self
    }

    /// The key that mints.
    pub fn current(&self) -> &TokenKey {
        &self.current
    }

    /// The ids of keys whose secret looks like a placeholder.
    pub(crate) fn weak_key_ids(&self) -> impl Iterator<Item = u8> + '_ {
        std::iter::once(&self.current)
            .chain(&self.accepted)
            .filter(|k| k.is_weak())
            .map(TokenKey::id)
    }

    fn key(&self, id: u8) -> Option<&TokenKey> {
        std::iter::once(&self.current)
            .chain(&self.accepted)
            .find(|k| k.id == id)
    }

    /// Mints the token for `counter` of `session_id` under the current key.
    /// Minting is deterministic: the same inputs give the same token.
    pub fn mint(&self, session_id: &SessionId, counter: u64) -> Token {
        let key = &self.current;
        let tag = key.tag(session_id, counter);
        let sealed = counter ^ key.keystream(&tag);
        let mut raw = [0u8; TOKEN_BYTES];
        raw[0] = TOKEN_VERSION;
        raw[1] = key.id;
        raw[2..18].copy_from_slice(session_id.as_bytes());
        raw[18..26].copy_from_slice(&sealed.to_be_bytes());
        raw[26..].copy_from_slice(&tag);
        // Encoded on the stack, where the token stays: no allocation. 42
        // bytes always fill the 56 characters (the tests check it); were
        // that ever not so, the token would be empty and refused.
        let mut text = [0u8; TOKEN_LEN];
        match URL_SAFE_NO_PAD.encode_slice(raw, &mut text) {
            Ok(TOKEN_LEN) => Token(Text::Inline(text)),
            _ => Token(Text::Shared(Arc::from(""))),
        }
    }

    /// The seal of `record` under the current key: what the manager stores
    /// in [`SessionMeta::seal`] whenever it creates a record or writes its
    /// meta.
    pub fn seal_record(&self, record: &SessionRecord) -> RecordSeal {
        RecordSeal::from_parts(self.current.id, self.current.record_mac(record))
    }

    /// Checks the seal stored in `record.meta.seal` against the record, in
    /// constant time, under the listed key it names.
    pub fn verify_record(&self, record: &SessionRecord) -> Result<(), RecordSealError> {
        let seal = record.meta.seal.ok_or(RecordSealError::Missing)?;
        let key = self.key(seal.key_id()).ok_or(RecordSealError::UnknownKey {
            key_id: seal.key_id(),
        })?;
        if key.record_mac(record).ct_eq(seal.mac()).into() {
            Ok(())
        } else {
            Err(RecordSealError::Mismatch)
        }
    }

    /// Checks a presented token and opens its counter.
    ///
    /// Junk is rejected cheaply, in this order, before any store access:
    /// length, base64url alphabet, version byte, key id, then the tag
    /// (compared in constant time).
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.verify_bytes(token.as_bytes())
    }

    /// [`verify`](Self::verify) of the token's bytes (a [`Token`]'s,
    /// without the UTF-8 check of [`Token::expose`]).
    pub(crate) fn verify_bytes(&self, token: &[u8]) -> Result<VerifiedToken, TokenError> {
        if token.len() != TOKEN_LEN {
            return Err(TokenError::Length { len: token.len() });
        }
        let mut raw = [0u8; TOKEN_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(token, &mut raw) {
            Ok(TOKEN_BYTES) => {}
            _ => return Err(TokenError::Encoding),
        }
        if raw[0] != TOKEN_VERSION {
            return Err(TokenError::Version { version: raw[0] });
        }
        let key = self
            .key(raw[1])
            .ok_or(TokenError::UnknownKey { key_id: raw[1] })?;
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&raw[2..18]);
        let session_id = SessionId::from_bytes(sid);
        let mut sealed = [0u8; 8];
        sealed.copy_from_slice(&raw[18..26]);
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&raw[26..]);

        let counter = u64::from_be_bytes(sealed) ^ key.keystream(&tag);
        let expected = key.tag(&session_id, counter);
        if expected.ct_eq(&tag).into() {
            Ok(VerifiedToken {
                session_id,
                counter,
                key_id: key.id,
            })
        } else {
            Err(TokenError::BadTag)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring() -> KeyRing {
        KeyRing::new(TokenKey::new(1, [42; 32]))
    }

    /// The token format, recomputed with an independent HMAC (`ring`'s):
    /// switching HMAC implementations must never change a token.
    #[test]
    fn tokens_match_an_independent_hmac_implementation() {
        use ring::hkdf as rhkdf;
        use ring::hmac as rh;
        let secret = [42u8; 32];
        let prk =
            rhkdf::Salt::new(rhkdf::HKDF_SHA256, b"rolling-session token v1").extract(&secret);
        let subkey = |label: &[u8]| {
            let info = [label];
            rh::Key::from(prk.expand(&info, rh::HMAC_SHA256).unwrap())
        };
        let (mac, seal) = (subkey(b"tag"), subkey(b"seal"));
        let sid = SessionId::from_bytes([7; 16]);
        for counter in [0u64, 1, 0xdead_beef, u64::MAX] {
            let mut msg = vec![TOKEN_VERSION, 1];
            msg.extend_from_slice(sid.as_bytes());
            msg.extend_from_slice(&counter.to_be_bytes());
            let tag = rh::sign(&mac, &msg);
            let ks = rh::sign(&seal, &tag.as_ref()[..TAG_BYTES]);
            let sealed = counter ^ u64::from_be_bytes(ks.as_ref()[..8].try_into().unwrap());
            let mut raw = vec![TOKEN_VERSION, 1];
            raw.extend_from_slice(sid.as_bytes());
            raw.extend_from_slice(&sealed.to_be_bytes());
            raw.extend_from_slice(&tag.as_ref()[..TAG_BYTES]);
            assert_eq!(
                ring().mint(&sid, counter).expose(),
                URL_SAFE_NO_PAD.encode(raw)
            );
        }
    }

    #[test]
    fn round_trip() {
        let ring = ring();
        let sid = SessionId::generate();
        for counter in [0, 1, 2, u64::MAX] {
            let t = ring.mint(&sid, counter);
            assert_eq!(t.expose().len(), TOKEN_LEN);
            let v = ring.verify(t.expose()).unwrap();
            assert_eq!((v.session_id, v.counter, v.key_id), (sid, counter, 1));
        }
    }

    #[test]
    fn counter_is_not_visible() {
        // Consecutive counters must not leave consecutive or equal bytes in
        // the sealed-counter field: it looks random.
        let ring = ring();
        let sid = SessionId::from_bytes([3; 16]);
        let sealed: Vec<[u8; 8]> = (0..64u64)
            .map(|c| {
                let raw = URL_SAFE_NO_PAD.decode(ring.mint(&sid, c).expose()).unwrap();
                raw[18..26].try_into().unwrap()
            })
            .collect();
        for (c, s) in sealed.iter().enumerate() {
            assert_ne!(u64::from_be_bytes(*s), c as u64, "counter readable");
        }
        let mut unique = sealed.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), sealed.len());
        // About half of the 64 bits differ between neighbours.
        let mean_flips: f64 = sealed
            .windows(2)
            .map(|w| (u64::from_be_bytes(w[0]) ^ u64::from_be_bytes(w[1])).count_ones() as f64)
            .sum::<f64>()
            / 63.0;
        assert!((24.0..40.0).contains(&mean_flips), "{mean_flips}");
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let ring = ring();
        let sid = SessionId::generate();
        let raw = URL_SAFE_NO_PAD.decode(ring.mint(&sid, 9).expose()).unwrap();
        for byte in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[byte] ^= 1 << bit;
                assert!(ring.verify(&URL_SAFE_NO_PAD.encode(&bad)).is_err());
            }
        }
    }

    #[test]
    fn other_key_is_rejected_and_unknown_key_named() {
        let sid = SessionId::generate();
        let t = KeyRing::new(TokenKey::new(1, [1; 32])).mint(&sid, 0);
        let other = KeyRing::new(TokenKey::new(1, [2; 32]));
        assert_eq!(other.verify(t.expose()), Err(TokenError::BadTag));
        let other_id = KeyRing::new(TokenKey::new(7, [1; 32]));
        assert_eq!(
            other_id.verify(t.expose()),
            Err(TokenError::UnknownKey { key_id: 1 })
        );
    }

    #[test]
    fn junk_is_rejected_before_the_tag() {
        let ring = ring();
        assert_eq!(ring.verify(""), Err(TokenError::Length { len: 0 }));
        assert_eq!(
            ring.verify(&"!".repeat(TOKEN_LEN)),
            Err(TokenError::Encoding)
        );
        let mut raw = [0u8; TOKEN_BYTES];
        raw[0] = 9;
        assert_eq!(
            ring.verify(&URL_SAFE_NO_PAD.encode(raw)),
            Err(TokenError::Version { version: 9 })
        );
    }

    #[test]
    fn debug_is_redacted() {
        let key = TokenKey::new(1, [0xAB; 32]);
        let t = KeyRing::new(key.clone()).mint(&SessionId::generate(), 1);
        assert_eq!(format!("{t:?}"), "Token(REDACTED)");
        let dbg = format!("{key:?} {:?}", KeyRing::new(key.clone()));
        assert!(dbg.contains("REDACTED") && !dbg.contains("171") && !dbg.contains("ab"));
    }

    fn sealed_record() -> SessionRecord {
        let mut r = SessionRecord {
            id: SessionId::from_bytes([1; 16]),
            previous_ids: Box::default(),
            user_id: "alice".into(),
            created_at: 1_000,
            meta: SessionMeta {
                context: SessionContext::default(),
                permissions: Box::default(),
                previous_permissions: Box::default(),
                expires_at: 2_000,
                absolute_expires_at: 3_000,
                idle_timeout_ms: 500,
                renewals: 1,
                flags: SessionFlags::default(),
                seal: None,
            },
            sequence: crate::record::SequenceState::new(1_000),
        };
        r.meta.permissions = vec!["read".into(), "write".into()].into();
        r.meta.previous_permissions = vec!["read".into()].into();
        r.meta.context.ip = Some("192.0.2.1".parse().unwrap());
        r.meta.context.user_agent = Some("ua".into());
        r.meta.seal = Some(ring().seal_record(&r));
        r
    }

    /// Every bound field, changed in turn, breaks the seal; the sequence
    /// and the ids do not.
    #[test]
    fn record_seals_bind_identity_lifetime_permissions_and_context() {
        let ring = ring();
        let r = sealed_record();
        assert_eq!(ring.verify_record(&r), Ok(()));
        type Change = (&'static str, fn(&mut SessionRecord));
        let changes: Vec<Change> = vec![
            ("user", |r| r.user_id = format!("{}x", r.user_id).into()),
            ("user prefix", |r| {
                r.user_id = r.user_id[..r.user_id.len() - 1].into();
            }),
            ("lineage", |r| r.id = SessionId::from_bytes([9; 16])),
            ("created", |r| r.created_at += 1),
            ("expires", |r| r.meta.expires_at += 1),
            ("absolute", |r| r.meta.absolute_expires_at += 1),
            ("idle", |r| r.meta.idle_timeout_ms += 1),
            ("renewals", |r| r.meta.renewals += 1),
            ("permission", |r| {
                let mut p = r.meta.permissions.to_vec();
                p.push("admin".into());
                r.meta.permissions = p.into();
            }),
            ("permission moved", |r| {
                let mut now = r.meta.permissions.to_vec();
                let mut before = r.meta.previous_permissions.to_vec();
                before.push(now.pop().unwrap());
                r.meta.permissions = now.into();
                r.meta.previous_permissions = before.into();
            }),
            ("permissions joined", |r| {
                r.meta.permissions = vec!["readwrite".into()].into();
            }),
            ("previous", |r| r.meta.previous_permissions = Box::default()),
            ("ip", |r| {
                r.meta.context.ip = Some("192.0.2.2".parse().unwrap())
            }),
            ("ip gone", |r| r.meta.context.ip = None),
            ("ua", |r| r.meta.context.user_agent = Some("ub".into())),
            ("device", |r| r.meta.context.device_id = Some("".into())),
            ("location", |r| r.meta.context.location = Some("x".into())),
            ("flag", |r| r.meta.flags.context_mismatch = true),
            ("key id", |r| {
                let s = r.meta.seal.unwrap();
                r.meta.seal = Some(RecordSeal::from_parts(1, {
                    let mut m = *s.mac();
                    m[0] ^= 1;
                    m
                }));
            }),
        ];
        for (what, change) in changes {
            let mut bad = r.clone();
            change(&mut bad);
            assert_eq!(
                ring.verify_record(&bad),
                Err(RecordSealError::Mismatch),
                "{what}"
            );
        }
        let mut moved = r.clone();
        moved.sequence.counter = 99;
        moved.sequence.revoked = None;
        moved.previous_ids = [&*moved.previous_ids, &[moved.id]].concat().into();
        moved.id = moved.id.next_generation();
        assert_eq!(ring.verify_record(&moved), Ok(()), "the sequence is free");

        let mut missing = r.clone();
        missing.meta.seal = None;
        assert_eq!(ring.verify_record(&missing), Err(RecordSealError::Missing));
        let other = KeyRing::new(TokenKey::new(1, [43; 32]));
        assert_eq!(other.verify_record(&r), Err(RecordSealError::Mismatch));
        let unlisted = KeyRing::new(TokenKey::new(2, [42; 32]));
        assert_eq!(
            unlisted.verify_record(&r),
            Err(RecordSealError::UnknownKey { key_id: 1 })
        );
        // Rotation: the old key still verifies what it sealed; the new one
        // seals under its id.
        let rotated =
            KeyRing::new(TokenKey::new(2, [44; 32])).with_accepted(TokenKey::new(1, [42; 32]));
        assert_eq!(rotated.verify_record(&r), Ok(()));
        let mut resealed = r.clone();
        resealed.meta.seal = Some(rotated.seal_record(&resealed));
        assert_eq!(resealed.meta.seal.unwrap().key_id(), 2);
        assert_eq!(rotated.verify_record(&resealed), Ok(()));
        assert!(ring.verify_record(&resealed).is_err());
    }

    /// The record MAC, recomputed with an independent HMAC (`ring`'s) from
    /// the documented encoding.
    #[test]
    fn record_seals_match_the_documented_encoding() {
        use ring::hkdf as rhkdf;
        use ring::hmac as rh;
        let prk =
            rhkdf::Salt::new(rhkdf::HKDF_SHA256, b"rolling-session token v1").extract(&[42; 32]);
        let key = rh::Key::from(prk.expand(&[b"record"], rh::HMAC_SHA256).unwrap());
        let r = sealed_record();
        let m = &r.meta;
        let mut msg = b"rolling-session/record/v1".to_vec();
        msg.push(1);
        msg.extend_from_slice(r.lineage().as_bytes());
        let field = |msg: &mut Vec<u8>, b: &[u8]| {
            msg.extend_from_slice(&(b.len() as u64).to_be_bytes());
            msg.extend_from_slice(b);
        };
        field(&mut msg, r.user_id.as_bytes());
        for n in [
            r.created_at,
            m.expires_at,
            m.absolute_expires_at,
            m.idle_timeout_ms,
        ] {
            msg.extend_from_slice(&n.to_be_bytes());
        }
        msg.extend_from_slice(&m.renewals.to_be_bytes());
        for list in [&m.permissions, &m.previous_permissions] {
            msg.extend_from_slice(&(list.len() as u64).to_be_bytes());
            for p in list {
                field(&mut msg, p.as_bytes());
            }
        }
        msg.extend_from_slice(&[4, 192, 0, 2, 1]);
        msg.push(1);
        field(&mut msg, b"ua");
        msg.extend_from_slice(&[0, 0, 0]);
        let tag = rh::sign(&key, &msg);
        assert_eq!(m.seal.unwrap().mac()[..], tag.as_ref()[..TAG_BYTES]);
    }

    proptest! {
        #[test]
        fn random_input_never_panics_nor_verifies(s in ".{0,100}") {
            prop_assert!(ring().verify(&s).is_err());
        }

        #[test]
        fn random_bytes_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert!(ring().verify(&URL_SAFE_NO_PAD.encode(&bytes)).is_err());
        }

        #[test]
        fn any_counter_round_trips(counter in any::<u64>(), sid in any::<[u8; 16]>()) {
            let ring = ring();
            let sid = SessionId::from_bytes(sid);
            let v = ring.verify(ring.mint(&sid, counter).expose()).unwrap();
            prop_assert_eq!(v.counter, counter);
            prop_assert_eq!(v.session_id, sid);
        }
    }
}

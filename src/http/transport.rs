//! Where the token travels: a cookie (browsers) or a header (API clients).

use std::time::Duration;

use cookie::SameSite;
use http::header::{HeaderName, HeaderValue, SET_COOKIE};

use crate::token::Token;

/// How the token travels between client and server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenTransport {
    /// In a cookie (the default, for browsers).
    Cookie(CookieConfig),
    /// In a request header, answered in the same response header (for API
    /// clients). A [`HeaderName`] is valid by construction:
    /// `TokenTransport::Header(HeaderName::from_static("x-session-token"))`,
    /// or [`TokenTransport::header`] for a name read from configuration.
    Header(HeaderName),
}

impl Default for TokenTransport {
    fn default() -> Self {
        Self::Cookie(CookieConfig::default())
    }
}

/// The session cookie's name and attributes, checked when they are set:
/// a configuration browsers would drop or mangle is an error, never a
/// cookie that silently goes missing.
///
/// The default is the strictest a browser session allows: the `__Host-`
/// prefix (which browsers only accept with `Secure`, `Path=/` and no
/// `Domain`), `Secure`, `HttpOnly` and `SameSite=Lax`.
///
/// ```
/// use cookie::SameSite;
/// use rolling_session::http::{CookieConfig, CookieError, TokenTransport};
///
/// // Production: keep the defaults.
/// let secure = CookieConfig::default();
/// assert_eq!((secure.name(), secure.is_secure()), ("__Host-session", true));
///
/// // Plain http://localhost while developing: no `__Host-` prefix and no
/// // `Secure`, which browsers would refuse over HTTP.
/// let dev = CookieConfig::development("rs_session")?;
/// assert!(!dev.is_secure() && dev.is_http_only() && dev.same_site_policy() == SameSite::Lax);
///
/// // Shared by the subdomains of example.com, under /app.
/// let shared = CookieConfig::new("__Secure-sid")?.domain("example.com")?.path("/app")?;
/// assert_eq!(shared.cookie_domain(), Some("example.com"));
///
/// // What browsers would drop is refused where it is written.
/// assert!(matches!(CookieConfig::development("__Host-sid"), Err(CookieError::PrefixNeedsSecure { .. })));
/// assert!(matches!(CookieConfig::new("sessión"), Err(CookieError::Name { .. })));
/// let transport = TokenTransport::Cookie(dev);
/// # let _ = transport;
/// # Ok::<(), CookieError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    name: String,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    domain: Option<String>,
    path: String,
}

/// A cookie (or token header) configuration browsers would drop or mangle,
/// refused when it is set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// Cookie names are RFC 6265 tokens: visible ASCII without separators
    /// (`()<>@,;:\"/[]?={}`, spaces).
    #[error("cookie name {name:?} is not an RFC 6265 token (visible ASCII, no separators)")]
    Name {
        /// The name refused.
        name: String,
    },
    /// `__Host-` and `__Secure-` cookies are only accepted with `Secure`
    /// (and so over HTTPS); `SameSite=None` needs it too.
    #[error("{what} needs the Secure attribute (browsers drop it otherwise)")]
    PrefixNeedsSecure {
        /// The prefix or attribute that needs it.
        what: &'static str,
    },
    /// `__Host-` cookies must have `Path=/` and no `Domain`.
    #[error("a __Host- cookie must have Path=/ and no Domain")]
    HostPrefixScope,
    /// Not a domain name (letters, digits, `-` and `.`).
    #[error("cookie domain {domain:?} is not a domain name")]
    Domain {
        /// The domain refused.
        domain: String,
    },
    /// A path starts with `/` and has no `;` or control characters.
    #[error("cookie path {path:?} must start with / and hold no ; or control characters")]
    Path {
        /// The path refused.
        path: String,
    },
    /// The token header's name is not a valid HTTP header name, or is one
    /// the HTTP stack owns (`cookie`, `set-cookie`, `host`, ...).
    #[error("{0:?} cannot carry the session token: not a valid header name, or one HTTP owns")]
    InvalidHeaderName(String),
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "__Host-session".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            domain: None,
            path: "/".into(),
        }
    }
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

impl CookieConfig {
    /// The secure defaults under another name.
    pub fn new(name: impl Into<String>) -> Result<Self, CookieError> {
        Self {
            name: name.into(),
            ..Self::default()
        }
        .checked()
    }

    /// **For development over plain `http://localhost` only**: no
    /// `__Host-` prefix and no `Secure`, which browsers require for HTTP.
    /// Everything else keeps the secure defaults. A name with the
    /// `__Host-` or `__Secure-` prefix is refused: browsers drop such
    /// cookies without `Secure`.
    pub fn development(name: impl Into<String>) -> Result<Self, CookieError> {
        Self {
            name: name.into(),
            secure: false,
            ..Self::default()
        }
        .checked()
    }

    /// Sends the cookie over HTTPS only (default true).
    pub fn secure(mut self, secure: bool) -> Result<Self, CookieError> {
        self.secure = secure;
        self.checked()
    }

    /// Hides the cookie from JavaScript (default true).
    #[must_use]
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The `SameSite` attribute (default `Lax`; `None` needs `Secure`).
    pub fn same_site(mut self, same_site: SameSite) -> Result<Self, CookieError> {
        self.same_site = same_site;
        self.checked()
    }

    /// Shares the cookie with the subdomains of `domain` (default: this
    /// host only). Not with the `__Host-` prefix.
    pub fn domain(mut self, domain: impl Into<String>) -> Result<Self, CookieError> {
        self.domain = Some(domain.into());
        self.checked()
    }

    /// Sends the cookie only under `path` (default `/`). Not with the
    /// `__Host-` prefix. The session routes must be under it.
    pub fn path(mut self, path: impl Into<String>) -> Result<Self, CookieError> {
        self.path = path.into();
        self.checked()
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Whether it is sent over HTTPS only.
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    /// Whether it is hidden from JavaScript.
    pub fn is_http_only(&self) -> bool {
        self.http_only
    }
    /// Its `SameSite` attribute.
    pub fn same_site_policy(&self) -> SameSite {
        self.same_site
    }
    /// Its `Domain`, if shared with subdomains.
    pub fn cookie_domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }
    /// Its `Path`.
    pub fn cookie_path(&self) -> &str {
        &self.path
    }

    fn checked(self) -> Result<Self, CookieError> {
        if !is_token(&self.name) {
            return Err(CookieError::Name { name: self.name });
        }
        let host = self.name.starts_with("__Host-");
        if host && !self.secure {
            return Err(CookieError::PrefixNeedsSecure {
                what: "the __Host- prefix",
            });
        }
        if self.name.starts_with("__Secure-") && !self.secure {
            return Err(CookieError::PrefixNeedsSecure {
                what: "the __Secure- prefix",
            });
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(CookieError::PrefixNeedsSecure {
                what: "SameSite=None",
            });
        }
        if host && (self.domain.is_some() || self.path != "/") {
            return Err(CookieError::HostPrefixScope);
        }
        if let Some(domain) = &self.domain {
            let bare = domain.strip_prefix('.').unwrap_or(domain);
            let valid = !bare.is_empty()
                && bare.len() <= 253
                && bare.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(CookieError::Domain {
                    domain: domain.clone(),
                });
            }
        }
        if !self.path.starts_with('/')
            || self
                .path
                .bytes()
                .any(|b| b == b';' || b.is_ascii_control() || !b.is_ascii())
        {
            return Err(CookieError::Path { path: self.path });
        }
        Ok(self)
    }

    /// The `Set-Cookie` value. Written directly rather than through
    /// `cookie::Cookie`'s `Display` (a third of the layer's header cost),
    /// nor `write!` (whose formatting machinery was most of what remained):
    /// the value is a base64url token or empty, the attributes are fixed,
    /// and the tests check the result parses back with the `cookie` crate.
    fn build(&self, value: &[u8], max_age: Option<Duration>) -> Option<HeaderValue> {
        let mut seconds = itoa::Buffer::new();
        let max_age = max_age.map(|age| seconds.format(age.as_secs().min(i64::MAX as u64)));
        let same_site = match self.same_site {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        };
        let domain = self.domain.as_deref().map(str::as_bytes);
        let max_age = max_age.map(str::as_bytes);
        let pieces: [Option<&[u8]>; 12] = [
            Some(self.name.as_bytes()),
            Some(b"="),
            Some(value),
            Some(b"; Path="),
            Some(self.path.as_bytes()),
            domain.map(|_| b"; Domain=".as_slice()),
            domain,
            max_age.map(|_| b"; Max-Age=".as_slice()),
            max_age,
            self.secure.then_some(b"; Secure".as_slice()),
            self.http_only.then_some(b"; HttpOnly".as_slice()),
            Some(same_site.as_bytes()),
        ];
        // Exactly sized, so the bytes become the header value without a
        // reallocation or a second allocation.
        let mut out = Vec::with_capacity(pieces.iter().flatten().map(|p| p.len()).sum());
        for piece in pieces.iter().flatten() {
            out.extend_from_slice(piece);
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from(out)).ok()
    }
}

/// The value of the first cookie called `name` in a `Cookie` header: what
/// `cookie::Cookie::split_parse` finds (pairs split at `;`, name and value
/// trimmed, no percent-decoding), without building a `Cookie` for every
/// pair on the way (a property test holds the two to the same answer).
fn cookie_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    // Split at the ASCII `;` and `=` bytes (never inside a multi-byte
    // character, so every piece is a `str`), with plain byte scans: the
    // pairs are short, and `str::split` sets up a search for each.
    header.split(';').find_map(|pair| {
        let at = pair.bytes().position(|b| b == b'=')?;
        let (n, v) = (&pair[..at], &pair[at + 1..]);
        (trim(n) == name).then(|| trim(v))
    })
}

/// `str::trim`, answered at once for a text that starts and ends with a
/// visible ASCII character (a cookie's name and value almost always do).
fn trim(text: &str) -> &str {
    match text.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => text,
        [only] if only.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// Response header carrying the time left before the session expires, ms.
pub const EXPIRES_IN_HEADER: &str = "x-session-expires-in-ms";
/// Response header carrying the time left before the idle timeout, ms.
pub const IDLE_EXPIRES_IN_HEADER: &str = "x-session-idle-expires-in-ms";

impl TokenTransport {
    /// The token in the header `name` (any case; header names are
    /// case-insensitive), refused if it is not a valid header name or is
    /// one the HTTP stack owns (`cookie`, `set-cookie`, `authorization`
    /// is allowed).
    ///
    /// ```
    /// use rolling_session::http::TokenTransport;
    /// assert!(TokenTransport::header("X-Session-Token").is_ok());
    /// assert!(TokenTransport::header("x session").is_err());
    /// assert!(TokenTransport::header("set-cookie").is_err());
    /// ```
    pub fn header(name: &str) -> Result<Self, CookieError> {
        let header = HeaderName::try_from(name.to_ascii_lowercase())
            .map_err(|_| CookieError::InvalidHeaderName(name.to_owned()))?;
        let reserved = [
            http::header::COOKIE,
            SET_COOKIE,
            http::header::CONTENT_TYPE,
            http::header::CONTENT_LENGTH,
            http::header::HOST,
            http::header::CACHE_CONTROL,
        ];
        if reserved.contains(&header) {
            return Err(CookieError::InvalidHeaderName(name.to_owned()));
        }
        Ok(Self::Header(header))
    }

    /// The request header the token is read from (`cookie` or the
    /// configured header).
    pub fn request_header(&self) -> &str {
        self.request_header_name().as_str()
    }

    /// [`request_header`](Self::request_header) as a `HeaderName`.
    pub(crate) fn request_header_name(&self) -> &HeaderName {
        const COOKIE: &HeaderName = &http::header::COOKIE;
        match self {
            Self::Cookie(_) => COOKIE,
            Self::Header(name) => name,
        }
    }

    /// Finds the token among the values of [`request_header`](Self::request_header).
    ///
    /// Returns `None` when no token is present. Whatever bytes arrive,
    /// this never fails: a present but mangled token is returned as is
    /// (lossily decoded) so that verification can reject it with a reason.
    pub fn read<'a>(&self, values: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
        self.read_with(values, str::to_owned)
    }

    /// [`read`](Self::read), as the [`Token`] the request path holds.
    pub(crate) fn read_token<'a>(
        &self,
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<Token> {
        self.read_with(values, Token::presented)
    }

    fn read_with<'a, T>(
        &self,
        values: impl IntoIterator<Item = &'a [u8]>,
        make: impl Fn(&str) -> T,
    ) -> Option<T> {
        let mut values = values.into_iter();
        match self {
            Self::Header(_) => values.next().map(|v| match std::str::from_utf8(v) {
                Ok(text) => make(text.trim()),
                Err(_) => make(String::from_utf8_lossy(v).trim()),
            }),
            Self::Cookie(cfg) => values.find_map(|v| match std::str::from_utf8(v) {
                Ok(text) => cookie_value(text, &cfg.name).map(&make),
                Err(_) => cookie_value(&String::from_utf8_lossy(v), &cfg.name).map(&make),
            }),
        }
    }

    /// The header that hands `token` to the client, valid for `max_age`
    /// (`None`: until the browser closes).
    pub fn write(
        &self,
        token: &Token,
        max_age: Option<Duration>,
    ) -> Option<(HeaderName, HeaderValue)> {
        match self {
            Self::Cookie(cfg) => cfg
                .build(token.as_bytes(), max_age)
                .map(|value| (SET_COOKIE, value)),
            Self::Header(name) => Some((
                name.clone(),
                HeaderValue::from_bytes(token.as_bytes()).ok()?,
            )),
        }
    }

    /// The header that tells the client to drop its token, if the
    /// transport has one (a cookie removal).
    pub fn clear(&self) -> Option<(HeaderName, HeaderValue)> {
        match self {
            Self::Cookie(cfg) => cfg
                .build(b"", Some(Duration::ZERO))
                .map(|value| (SET_COOKIE, value)),
            Self::Header(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cookie::Cookie;

    proptest::proptest! {
        /// `cookie_value` answers what the `cookie` crate's parser finds,
        /// on headers built from the characters that matter to it.
        #[test]
        fn cookie_value_agrees_with_the_cookie_crate(
            header in "[a-c =;\t\u{a0}\"é]{0,40}",
            name in "[a-c]{1,2}",
        ) {
            let expected = Cookie::split_parse(header.as_str())
                .filter_map(Result::ok)
                .find(|c| c.name() == name)
                .map(|c| c.value().to_owned());
            proptest::prop_assert_eq!(cookie_value(&header, &name).map(str::to_owned), expected);
        }
    }

    proptest::proptest! {
        /// The shortcut of `trim` answers what `str::trim` does.
        #[test]
        fn trim_is_str_trim(text in "[a!~ \t\u{a0}\u{3000}\u{7f}é]{0,6}") {
            proptest::prop_assert_eq!(trim(&text), text.trim());
        }
    }

    #[test]
    fn cookie_value_finds_the_first_pair_of_that_name() {
        let header = " other=1; rs =  tok-1 ;rs=tok-2; broken; =x";
        assert_eq!(cookie_value(header, "rs"), Some("tok-1"));
        assert_eq!(cookie_value(header, "other"), Some("1"));
        assert_eq!(cookie_value(header, "broken"), None);
        assert_eq!(cookie_value("", "rs"), None);
    }

    #[test]
    fn secure_cookie_defaults() {
        let t = TokenTransport::default();
        let token = crate::KeyRing::new(crate::TokenKey::new(1, [1; 32]))
            .mint(&crate::store::SessionId::from_bytes([1; 16]), 0);
        let (name, value) = t.write(&token, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(name, "set-cookie");
        let value = value.to_str().unwrap();
        let parsed = Cookie::parse(value).unwrap();
        assert_eq!(parsed.name(), "__Host-session");
        assert_eq!(parsed.value(), token.expose());
        assert_eq!(parsed.max_age(), Some(cookie::time::Duration::seconds(60)));
        assert_eq!(parsed.same_site(), Some(SameSite::Lax));
        assert_eq!(
            (parsed.secure(), parsed.http_only()),
            (Some(true), Some(true))
        );
        assert_eq!(parsed.path(), Some("/"));
        for attr in [
            "__Host-session=",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(value.contains(attr), "{value} lacks {attr}");
        }
        assert!(!value.contains("Domain"));
        let dev = TokenTransport::Cookie(
            CookieConfig::development("rs_session").expect("a valid cookie name"),
        );
        let (_, value) = dev.write(&token, None).unwrap();
        let value = value.to_str().unwrap();
        assert!(value.starts_with("rs_session=") && !value.contains("Secure"));
        // A browser-session cookie: no Max-Age, no Expires.
        assert!(
            !value.contains("Max-Age") && !value.contains("Expires"),
            "{value}"
        );
        assert!(value.contains("HttpOnly"));
        let (_, cleared) = dev.clear().unwrap();
        let cleared = Cookie::parse(cleared.to_str().unwrap()).unwrap();
        assert_eq!(
            (cleared.value(), cleared.max_age()),
            ("", Some(cookie::time::Duration::ZERO))
        );
    }

    #[test]
    fn configurations_browsers_would_drop_are_refused_where_written() {
        assert!(matches!(
            CookieConfig::development("__Host-sid"),
            Err(CookieError::PrefixNeedsSecure { .. })
        ));
        assert!(matches!(
            CookieConfig::development("__Secure-sid"),
            Err(CookieError::PrefixNeedsSecure { .. })
        ));
        for bad in [
            "", "sessión", "a b", "a;b", "a=b", "a\"b", "a\nb", "a,b", "{x}",
        ] {
            assert!(
                matches!(CookieConfig::new(bad), Err(CookieError::Name { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            CookieConfig::development("dev")
                .unwrap()
                .same_site(SameSite::None),
            Err(CookieError::PrefixNeedsSecure {
                what: "SameSite=None"
            })
        );
        assert_eq!(
            CookieConfig::default().domain("example.com"),
            Err(CookieError::HostPrefixScope)
        );
        assert_eq!(
            CookieConfig::default().path("/app"),
            Err(CookieError::HostPrefixScope)
        );
        assert!(matches!(
            CookieConfig::default().secure(false),
            Err(CookieError::PrefixNeedsSecure { .. })
        ));
        let named = CookieConfig::new("sid").unwrap();
        for bad in [
            "exa mple.com",
            "",
            ".",
            "a..b",
            "bad;domain",
            "ex\u{e4}mple.com",
        ] {
            assert!(
                matches!(named.clone().domain(bad), Err(CookieError::Domain { .. })),
                "{bad:?}"
            );
        }
        for bad in ["app", "/a;b", "/a\nb", ""] {
            assert!(
                matches!(named.clone().path(bad), Err(CookieError::Path { .. })),
                "{bad:?}"
            );
        }
        // Every error says what to fix.
        let err = CookieConfig::development("__Host-sid")
            .unwrap_err()
            .to_string();
        assert!(err.contains("__Host-") && err.contains("Secure"), "{err}");
    }

    #[test]
    fn domain_and_path_are_written() {
        let cfg = CookieConfig::new("__Secure-sid")
            .unwrap()
            .domain("example.com")
            .unwrap()
            .path("/app")
            .unwrap();
        let t = TokenTransport::Cookie(cfg);
        let token = crate::KeyRing::new(crate::TokenKey::new(1, [1; 32]))
            .mint(&crate::store::SessionId::from_bytes([1; 16]), 0);
        let (_, value) = t.write(&token, None).unwrap();
        let parsed = Cookie::parse(value.to_str().unwrap()).unwrap();
        assert_eq!(parsed.name(), "__Secure-sid");
        assert_eq!(parsed.domain(), Some("example.com"));
        assert_eq!(parsed.path(), Some("/app"));
        assert_eq!(parsed.secure(), Some(true));
        let (_, cleared) = t.clear().unwrap();
        let cleared = Cookie::parse(cleared.to_str().unwrap()).unwrap();
        assert_eq!(
            (cleared.domain(), cleared.path()),
            (Some("example.com"), Some("/app"))
        );
    }

    #[test]
    fn reads_the_named_cookie_among_others_and_survives_junk() {
        let t =
            TokenTransport::Cookie(CookieConfig::development("s").expect("a valid cookie name"));
        let found = t.read([b"a=1; s=tok; b=2".as_slice()]);
        assert_eq!(found.as_deref(), Some("tok"));
        assert_eq!(t.read([b"a=1".as_slice()]), None);
        assert_eq!(
            t.read([b"\xff\xfe; s=\xc3".as_slice()]).as_deref(),
            Some("\u{fffd}")
        );
        assert_eq!(t.read([b";;;==;".as_slice()]), None);
        let h = TokenTransport::header("X-Session-Token").expect("a valid header name");
        assert_eq!(h.request_header(), "x-session-token");
        for bad in ["", "x session", "x-tok\n", "cookie", "Set-Cookie", "host"] {
            assert!(TokenTransport::header(bad).is_err(), "{bad:?}");
        }
        assert_eq!(h.read([b" abc ".as_slice()]).as_deref(), Some("abc"));
    }
}

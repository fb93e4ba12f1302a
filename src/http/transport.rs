//! Where the token travels: a cookie (browsers) or a header (API clients).

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::header::{HeaderName, HeaderValue, SET_COOKIE};

use crate::token::Token;

/// How the token travels between client and server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenTransport {
    /// In a cookie (the default, for browsers).
    Cookie(CookieConfig),
    /// In a request header, answered in the same response header (for API
    /// clients). The name is lowercase, e.g. `x-session-token`.
    Header(String),
}

impl Default for TokenTransport {
    fn default() -> Self {
        Self::Cookie(CookieConfig::default())
    }
}

/// The session cookie's name and attributes.
///
/// The default is the strictest a browser session allows: the `__Host-`
/// prefix (which browsers only accept with `Secure`, `Path=/` and no
/// `Domain`), `Secure`, `HttpOnly` and `SameSite=Lax`.
///
/// ```
/// use cookie::SameSite;
/// use rolling_session::http::{CookieConfig, TokenTransport};
///
/// // Production: keep the defaults.
/// let secure = CookieConfig::default();
/// assert_eq!((secure.name.as_str(), secure.secure), ("__Host-session", true));
///
/// // Plain http://localhost while developing: no `__Host-` prefix and no
/// // `Secure`, which browsers would refuse over HTTP.
/// let dev = CookieConfig::development("rs_session");
/// assert!(!dev.secure && dev.http_only && dev.same_site == SameSite::Lax);
/// let transport = TokenTransport::Cookie(dev);
/// # let _ = transport;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// The cookie name, `__Host-session` by default.
    pub name: String,
    /// Send only over HTTPS. Default true.
    pub secure: bool,
    /// Hide from JavaScript. Default true.
    pub http_only: bool,
    /// The `SameSite` attribute. Default `Lax`.
    pub same_site: SameSite,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "__Host-session".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
        }
    }
}

impl CookieConfig {
    /// **For development over plain `http://localhost` only**: no
    /// `__Host-` prefix and no `Secure`, which browsers require for HTTP.
    /// Everything else keeps the secure defaults.
    pub fn development(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            secure: false,
            ..Self::default()
        }
    }

    /// The `Set-Cookie` value. Written directly rather than through
    /// `cookie::Cookie`'s `Display` (a third of the layer's header cost):
    /// the value is a base64url token or empty, the attributes are fixed,
    /// and the tests check the result parses back with the `cookie` crate.
    fn build(&self, value: &str, max_age: Option<Duration>) -> Option<HeaderValue> {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(self.name.len() + value.len() + 80);
        let _ = write!(out, "{}={value}; Path=/", self.name);
        if let Some(max_age) = max_age {
            let _ = write!(out, "; Max-Age={}", max_age.as_secs().min(i64::MAX as u64));
        }
        if self.secure {
            out.push_str("; Secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        match self.same_site {
            SameSite::Strict => out.push_str("; SameSite=Strict"),
            SameSite::Lax => out.push_str("; SameSite=Lax"),
            SameSite::None => out.push_str("; SameSite=None"),
        }
        HeaderValue::try_from(out).ok()
    }
}

/// Response header carrying the time left before the session expires, ms.
pub const EXPIRES_IN_HEADER: &str = "x-session-expires-in-ms";
/// Response header carrying the time left before the idle timeout, ms.
pub const IDLE_EXPIRES_IN_HEADER: &str = "x-session-idle-expires-in-ms";

impl TokenTransport {
    /// The request header the token is read from (`cookie` or the
    /// configured header).
    pub fn request_header(&self) -> &str {
        match self {
            Self::Cookie(_) => "cookie",
            Self::Header(name) => name,
        }
    }

    /// Finds the token among the values of [`request_header`](Self::request_header).
    ///
    /// Returns `None` when no token is present. Whatever bytes arrive,
    /// this never fails: a present but mangled token is returned as is
    /// (lossily decoded) so that verification can reject it with a reason.
    pub fn read<'a>(&self, values: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
        let mut values = values.into_iter();
        match self {
            Self::Header(_) => values
                .next()
                .map(|v| String::from_utf8_lossy(v).trim().to_owned()),
            Self::Cookie(cfg) => values.find_map(|v| {
                let text = String::from_utf8_lossy(v);
                Cookie::split_parse(text.as_ref())
                    .filter_map(Result::ok)
                    .find(|c| c.name() == cfg.name)
                    .map(|c| c.value().to_owned())
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
                .build(token.expose(), max_age)
                .map(|value| (SET_COOKIE, value)),
            Self::Header(name) => Some((
                HeaderName::try_from(name.as_str()).ok()?,
                HeaderValue::try_from(token.expose()).ok()?,
            )),
        }
    }

    /// The header that tells the client to drop its token, if the
    /// transport has one (a cookie removal).
    pub fn clear(&self) -> Option<(HeaderName, HeaderValue)> {
        match self {
            Self::Cookie(cfg) => cfg
                .build("", Some(Duration::ZERO))
                .map(|value| (SET_COOKIE, value)),
            Self::Header(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookie_defaults() {
        let t = TokenTransport::default();
        let token = crate::KeyRing::new(crate::TokenKey::new(1, [1; 32]))
            .mint(&crate::SessionId::from_bytes([1; 16]), 0);
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
        let dev = TokenTransport::Cookie(CookieConfig::development("rs_session"));
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
    fn reads_the_named_cookie_among_others_and_survives_junk() {
        let t = TokenTransport::Cookie(CookieConfig::development("s"));
        let found = t.read([b"a=1; s=tok; b=2".as_slice()]);
        assert_eq!(found.as_deref(), Some("tok"));
        assert_eq!(t.read([b"a=1".as_slice()]), None);
        assert_eq!(
            t.read([b"\xff\xfe; s=\xc3".as_slice()]).as_deref(),
            Some("\u{fffd}")
        );
        assert_eq!(t.read([b";;;==;".as_slice()]), None);
        let h = TokenTransport::Header("x-session-token".into());
        assert_eq!(h.read([b" abc ".as_slice()]).as_deref(), Some("abc"));
    }
}

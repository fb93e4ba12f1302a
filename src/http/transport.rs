//! Where the token travels: a cookie (browsers) or a header (API clients).

use std::time::Duration;

use cookie::{Cookie, SameSite};

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

    fn build(&self, value: String, max_age: Duration) -> String {
        let max_age =
            cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
        Cookie::build((self.name.clone(), value))
            .path("/")
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(self.same_site)
            .max_age(max_age)
            .build()
            .to_string()
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

    /// The header that hands `token` to the client, valid for `max_age`.
    pub fn write(&self, token: &Token, max_age: Duration) -> (String, String) {
        match self {
            Self::Cookie(cfg) => (
                "set-cookie".into(),
                cfg.build(token.expose().to_owned(), max_age),
            ),
            Self::Header(name) => (name.clone(), token.expose().to_owned()),
        }
    }

    /// The header that tells the client to drop its token, if the
    /// transport has one (a cookie removal).
    pub fn clear(&self) -> Option<(String, String)> {
        match self {
            Self::Cookie(cfg) => Some((
                "set-cookie".into(),
                cfg.build(String::new(), Duration::ZERO),
            )),
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
        let token = crate::KeyRing::new(crate::TokenKey::new(1, &[1; 32]))
            .mint(&crate::SessionId::from_bytes([1; 16]), 0);
        let (name, value) = t.write(&token, Duration::from_secs(60));
        assert_eq!(name, "set-cookie");
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
        let (_, value) = dev.write(&token, Duration::from_secs(1));
        assert!(value.starts_with("rs_session=") && !value.contains("Secure"));
        assert!(value.contains("HttpOnly"));
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

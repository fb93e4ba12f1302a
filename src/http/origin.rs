//! Cross-site request checks: who may send a state-changing request, by
//! `Sec-Fetch-Site` and `Origin` (see [`CsrfPolicy`]).

use http::StatusCode;

use crate::config::CsrfPolicy;

use super::RequestHead;
use super::rejection::Rejection;

/// A web origin, `scheme://host[:port]`, compared as browsers write it in
/// the `Origin` header: lowercase, default ports dropped.
///
/// ```
/// use rolling_session::http::Origin;
///
/// let origin = Origin::parse("HTTPS://App.Example.com:443").unwrap();
/// assert_eq!(origin.to_string(), "https://app.example.com");
/// assert_eq!(Origin::parse("https://app.example.com/path"), None);
/// assert_eq!(Origin::parse("null"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    /// `host` or `host:port`, without the scheme's default port.
    authority: String,
}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` is tolerated); `None`
    /// for anything else, including the opaque origin `null`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.strip_suffix('/').unwrap_or(text);
        let (scheme, authority) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return None;
        }
        let authority = normalize_authority(&scheme, authority)?;
        Some(Self { scheme, authority })
    }

    /// Whether this origin is the server's own, given the `Host` the
    /// request was sent to. The scheme is not compared: behind a proxy that
    /// ends TLS the server cannot know it, and the host and port identify
    /// the site.
    fn is_host(&self, host: &str) -> bool {
        normalize_authority(&self.scheme, host).is_some_and(|h| h == self.authority)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// `host[:port]` lowercased, the scheme's default port dropped; `None` if
/// it is empty or has a path, user info, query or fragment.
fn normalize_authority(scheme: &str, authority: &str) -> Option<String> {
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@' | ' ') || c.is_ascii_control())
    {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    // host, host:port, [v6], [v6]:port
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (v6, port)
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority.as_str(), None),
        },
    };
    if host.is_empty()
        || port
            .is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let default_port = match scheme {
        "https" | "wss" => Some(":443"),
        "http" | "ws" => Some(":80"),
        _ => None,
    };
    Some(match default_port.and_then(|p| authority.strip_suffix(p)) {
        Some(bare) => bare.to_owned(),
        None => authority,
    })
}

/// 403 `cross_site_request`.
pub(crate) fn cross_site(site: &str) -> Rejection {
    let mut r = Rejection::new(
        StatusCode::FORBIDDEN,
        "cross_site_request",
        format!(
            "a state-changing request sent by another site ({site}) was refused; \
             list its origin in csrf.allowed_origins if it may"
        ),
    );
    r.hint = Some("send the request from the site's own pages");
    r
}

/// Whether `head` (a request with an unsafe method) may go on, under
/// `policy`: see [`CsrfPolicy`].
pub(crate) fn check(policy: &CsrfPolicy, head: &RequestHead<'_>) -> Result<(), Rejection> {
    if !policy.enabled || head.is_safe_method() {
        return Ok(());
    }
    let origin = head.header_values("origin");
    let origin = match origin.as_slice() {
        [] => None,
        // One header only; several are no browser's doing.
        [one] => Some(std::str::from_utf8(one).ok().and_then(Origin::parse)),
        _ => Some(None),
    };
    let allowed = |origin: &Option<Option<Origin>>| match origin {
        Some(Some(o)) => policy
            .allowed_origins
            .iter()
            .any(|a| Origin::parse(a).is_some_and(|a| &a == o)),
        _ => false,
    };
    let site = head.header_values("sec-fetch-site");
    match site.as_slice() {
        [] => match &origin {
            // No browser sent it (or one too old for both headers).
            None => Ok(()),
            Some(Some(o)) if head.host().is_some_and(|h| o.is_host(&h)) => Ok(()),
            Some(_) if allowed(&origin) => Ok(()),
            Some(Some(o)) => Err(cross_site(&format!("Origin: {o}"))),
            Some(None) => Err(cross_site("an opaque or malformed Origin")),
        },
        [b"same-origin"] | [b"none"] => Ok(()),
        _ if allowed(&origin) => Ok(()),
        [value] => Err(cross_site(&format!(
            "Sec-Fetch-Site: {}",
            String::from_utf8_lossy(value)
                .chars()
                .take(32)
                .collect::<String>()
        ))),
        _ => Err(cross_site("several Sec-Fetch-Site headers")),
    }
}

/// Whether a `Content-Type` value is JSON: `application/json`, with any
/// parameters (`; charset=utf-8`).
pub(crate) fn is_json(content_type: Option<&[u8]>) -> bool {
    content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|essence| essence.eq_ignore_ascii_case("application/json"))
}

/// 415 `unsupported_media_type`.
pub(crate) fn not_json() -> Rejection {
    Rejection::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the body must be sent as Content-Type: application/json".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(
        policy: &CsrfPolicy,
        headers: &[(&str, &str)],
        safe: bool,
    ) -> Result<(), &'static str> {
        let lookup = |name: &str| -> Vec<&[u8]> {
            headers
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
                .collect()
        };
        let method = if safe { "GET" } else { "POST" };
        let head = RequestHead::new(&lookup, method, "/", None);
        check(policy, &head).map_err(|r| r.reason)
    }

    #[test]
    fn origins_parse_like_browsers_write_them() {
        let o = Origin::parse("HTTPS://App.Example.com:443").unwrap();
        assert_eq!(o.to_string(), "https://app.example.com");
        assert_eq!(
            Origin::parse("http://localhost:8080/").unwrap().to_string(),
            "http://localhost:8080"
        );
        assert_eq!(
            Origin::parse("http://[::1]:3000").unwrap().to_string(),
            "http://[::1]:3000"
        );
        for bad in [
            "null",
            "example.com",
            "https://",
            "https://a.com/x",
            "https://u@a.com",
            "https://a.com:x",
            "1http://a",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
        assert!(o.is_host("app.example.com"));
        assert!(o.is_host("APP.example.com:443"));
        assert!(!o.is_host("app.example.com:8443"));
    }

    #[test]
    fn the_rules() {
        let policy = CsrfPolicy {
            enabled: true,
            allowed_origins: vec!["https://app.example.com".into()],
        };
        let host = ("host", "api.example.com");
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Headers<'_>, Result<(), &str>)] = &[
            (&[], Ok(())),
            (&[host], Ok(())),
            (&[("sec-fetch-site", "same-origin")], Ok(())),
            (&[("sec-fetch-site", "none")], Ok(())),
            (
                &[
                    ("sec-fetch-site", "same-site"),
                    ("origin", "https://evil.example.com"),
                ],
                Err("cross_site_request"),
            ),
            (
                &[
                    ("sec-fetch-site", "same-site"),
                    ("origin", "https://app.example.com"),
                ],
                Ok(()),
            ),
            (
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://evil.test"),
                ],
                Err("cross_site_request"),
            ),
            (
                &[("sec-fetch-site", "cross-site")],
                Err("cross_site_request"),
            ),
            (
                &[("sec-fetch-site", "something-new")],
                Err("cross_site_request"),
            ),
            (&[host, ("origin", "https://api.example.com")], Ok(())),
            (&[host, ("origin", "https://app.example.com")], Ok(())),
            (
                &[host, ("origin", "https://evil.example.com")],
                Err("cross_site_request"),
            ),
            (&[host, ("origin", "null")], Err("cross_site_request")),
            (
                &[("origin", "https://api.example.com")],
                Err("cross_site_request"),
            ),
        ];
        for (headers, expected) in cases {
            assert_eq!(verdict(&policy, headers, false), *expected, "{headers:?}");
        }
        // Safe methods and a disabled policy pass everything.
        let cross = [("sec-fetch-site", "cross-site")];
        assert_eq!(verdict(&policy, &cross, true), Ok(()));
        let off = CsrfPolicy {
            enabled: false,
            ..policy
        };
        assert_eq!(verdict(&off, &cross, false), Ok(()));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some(b"application/json")));
        assert!(is_json(Some(b"Application/JSON; charset=utf-8")));
        for other in [
            &b"text/plain"[..],
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=x",
            b"application/jsonp",
            b"",
        ] {
            assert!(!is_json(Some(other)));
        }
        assert!(!is_json(None));
    }
}

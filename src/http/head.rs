//! What the session layer reads of a request before the handler runs: a
//! framework-neutral [`RequestHead`], and the [`MakeContext`] that turns it
//! into the [`SessionContext`] the manager compares with the session's.

use std::net::IpAddr;

use http::HeaderName;
use http::header::USER_AGENT;
use ipnet::IpNet;

use crate::record::SessionContext;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_DEVICE_ID: HeaderName = HeaderName::from_static("x-device-id");

fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// A framework-neutral view of a request head, built by each adapter (the
/// tower layer, the actix-web middleware) and handed to [`MakeContext`]
/// and the cross-site checks.
pub struct RequestHead<'a> {
    headers: Headers<'a>,
    method: &'a str,
    path: &'a str,
    peer_ip: Option<IpAddr>,
    authority: Option<&'a str>,
    /// Whether the method is safe, when the adapter has it parsed already.
    safe: Option<bool>,
}

impl<'a> RequestHead<'a> {
    /// A head from a header lookup (all values of a lowercase header name),
    /// the method, the path, and the peer address if known.
    pub fn new(
        headers: &'a dyn Fn(&str) -> Vec<&'a [u8]>,
        method: &'a str,
        path: &'a str,
        peer_ip: Option<IpAddr>,
    ) -> Self {
        Self {
            headers: Headers::Lookup(headers),
            method,
            path,
            peer_ip,
            authority: None,
            safe: None,
        }
    }

    /// A head over an `http` header map (the tower layer): lookups borrow
    /// the map's values, with no copy.
    pub fn from_header_map(
        headers: &'a http::HeaderMap,
        method: &'a str,
        path: &'a str,
        peer_ip: Option<IpAddr>,
    ) -> Self {
        Self {
            headers: Headers::Map(headers),
            method,
            path,
            peer_ip,
            authority: None,
            safe: None,
        }
    }

    /// The authority of the request target (`host[:port]` of an absolute
    /// URI, HTTP/2's `:authority`), used when there is no `Host` header.
    #[must_use]
    pub fn with_authority(mut self, authority: Option<&'a str>) -> Self {
        self.authority = authority;
        self
    }

    /// The method's [`is_safe_method`](Self::is_safe_method), from the
    /// adapter's parsed method (the tower layer's `http::Method`), so that
    /// its text is not parsed again.
    pub(crate) fn with_safe_method(mut self, safe: bool) -> Self {
        self.safe = Some(safe);
        self
    }

    /// The host the request was sent to: the `Host` header, else the
    /// target's authority.
    pub fn host(&self) -> Option<String> {
        self.header("host")
            .or_else(|| self.authority.map(str::to_owned))
    }

    /// The first value of a header, lossily decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.values_by_str(name).next().map(lossy)
    }

    /// Every value of a header, raw.
    pub fn header_values(&self, name: &str) -> Vec<&'a [u8]> {
        self.values_by_str(name).collect()
    }

    fn values_by_str(&self, name: &str) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        match self.headers {
            Headers::Map(map) => Values::Map(map.get_all(name).into_iter()),
            Headers::Lookup(lookup) => Values::List(lookup(name).into_iter()),
        }
    }

    /// [`header`](Self::header) by a `HeaderName` (the crate's own lookups:
    /// a constant name is not parsed again on every request).
    pub(crate) fn header_named(&self, name: &HeaderName) -> Option<String> {
        match self.headers {
            // The map's own first-value lookup: no iterator over the rest.
            Headers::Map(map) => map.get(name).map(|v| lossy(v.as_bytes())),
            Headers::Lookup(_) => self.values(name).next().map(lossy),
        }
    }

    /// Every value of a header, raw, without collecting them.
    pub(crate) fn values(&self, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        match self.headers {
            Headers::Map(map) => Values::Map(map.get_all(name).into_iter()),
            Headers::Lookup(lookup) => Values::List(lookup(name.as_str()).into_iter()),
        }
    }

    /// The request method, e.g. `"GET"`.
    pub fn method(&self) -> &str {
        self.method
    }

    /// Whether the method is safe (`GET`, `HEAD`, `OPTIONS`, `TRACE`):
    /// RFC 9110's definition, through `http::Method::is_safe`.
    pub fn is_safe_method(&self) -> bool {
        self.safe.unwrap_or_else(|| {
            http::Method::from_bytes(self.method.as_bytes()).is_ok_and(|m| m.is_safe())
        })
    }

    /// The request path, without the query.
    pub fn path(&self) -> &str {
        self.path
    }

    /// The TCP peer's address, when the server provides it (axum:
    /// `into_make_service_with_connect_info::<SocketAddr>()`; actix-web:
    /// always). Behind a proxy this is the proxy: see
    /// [`DefaultContext::trust_proxies`].
    pub fn peer_ip(&self) -> Option<IpAddr> {
        self.peer_ip
    }
}

/// Where a head's headers come from.
#[derive(Clone, Copy)]
enum Headers<'a> {
    Map(&'a http::HeaderMap),
    Lookup(&'a dyn Fn(&str) -> Vec<&'a [u8]>),
}

enum Values<'a> {
    Map(http::header::ValueIter<'a, http::HeaderValue>),
    List(std::vec::IntoIter<&'a [u8]>),
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Values::Map(values) => values.next().map(http::HeaderValue::as_bytes),
            Values::List(values) => values.next(),
        }
    }
}

/// Builds the request context the manager compares with the session's
/// (`Config::context`), in the shape of tower-http's `MakeRequestId`.
/// [`DefaultContext`] is the default; any
/// `Fn(&RequestHead) -> SessionContext` is one too.
///
/// ```
/// use rolling_session::SessionContext;
/// use rolling_session::http::{RequestHead, SessionExchange};
/// # use rolling_session::{KeyRing, SessionManager, TokenKey};
/// # let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
///
/// // A service whose CDN puts the client's country in a header.
/// let exchange = SessionExchange::new(manager).context_from(|head: &RequestHead<'_>| {
///     SessionContext {
///         ip: head.peer_ip(),
///         user_agent: head.header("user-agent").map(Into::into),
///         device_id: None,
///         location: head.header("cdn-client-country").map(Into::into),
///     }
/// });
/// # let _ = exchange;
/// # Ok::<(), rolling_session::ConfigError>(())
/// ```
pub trait MakeContext: Send + Sync + 'static {
    /// The context of the request whose head is `head`.
    fn make_context(&self, head: &RequestHead<'_>) -> SessionContext;
}

impl<F> MakeContext for F
where
    F: Fn(&RequestHead<'_>) -> SessionContext + Send + Sync + 'static,
{
    fn make_context(&self, head: &RequestHead<'_>) -> SessionContext {
        self(head)
    }
}

/// The default context: the client address, the `User-Agent` and the
/// `x-device-id` header.
///
/// The client address is the TCP peer's, unless the peer is one of the
/// trusted proxies: then it is the right-most `X-Forwarded-For` address
/// that is not itself a trusted proxy (the first one a trusted proxy
/// saw). `X-Forwarded-For` from anyone else is ignored, since a client
/// can write whatever it likes there.
///
/// ```
/// use rolling_session::http::{DefaultContext, SessionExchange};
/// # use rolling_session::{KeyRing, SessionManager, TokenKey};
/// # let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
///
/// // Behind a load balancer on 10.0.0.0/8.
/// let context = DefaultContext::default().trust_proxies(["10.0.0.0/8".parse()?]);
/// let exchange = SessionExchange::new(manager).context_from(context);
/// # let _ = exchange;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct DefaultContext {
    trusted_proxies: Vec<IpNet>,
}

impl DefaultContext {
    /// Trusts `X-Forwarded-For` when the TCP peer is in one of these
    /// networks (a single address is a `/32` or `/128`).
    #[must_use]
    pub fn trust_proxies(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        self.trusted_proxies.extend(networks);
        self
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client address: see the type's documentation.
    pub fn client_ip(&self, head: &RequestHead<'_>) -> Option<IpAddr> {
        let peer = head.peer_ip()?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut forwarded: Vec<IpAddr> = Vec::new();
        for value in head.values(&X_FORWARDED_FOR) {
            let text = String::from_utf8_lossy(value);
            forwarded.extend(
                text.split(',')
                    .filter_map(|s| s.trim().parse::<IpAddr>().ok()),
            );
        }
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !self.is_trusted(*ip))
                .unwrap_or(peer),
        )
    }
}

impl MakeContext for DefaultContext {
    fn make_context(&self, head: &RequestHead<'_>) -> SessionContext {
        SessionContext {
            ip: self.client_ip(head),
            user_agent: head.header_named(&USER_AGENT).map(Into::into),
            device_id: head.header_named(&X_DEVICE_ID).map(Into::into),
            location: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_with<'a>(lookup: &'a dyn Fn(&str) -> Vec<&'a [u8]>, peer: &str) -> RequestHead<'a> {
        RequestHead::new(lookup, "GET", "/", Some(peer.parse().unwrap()))
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let lookup = |name: &str| -> Vec<&[u8]> {
            match name {
                "x-forwarded-for" => vec![b"6.6.6.6, 203.0.113.9".as_slice(), b"10.0.0.7"],
                "user-agent" => vec![b"Firefox".as_slice()],
                _ => vec![],
            }
        };
        let plain = DefaultContext::default();
        let behind = DefaultContext::default().trust_proxies(["10.0.0.0/8".parse().unwrap()]);
        // A client writing the header itself gains nothing.
        let direct = head_with(&lookup, "198.51.100.4");
        assert_eq!(plain.client_ip(&direct), "198.51.100.4".parse().ok());
        assert_eq!(behind.client_ip(&direct), "198.51.100.4".parse().ok());
        // Through the trusted balancer: the right-most untrusted hop, not
        // the left-most (which the client wrote).
        let proxied = head_with(&lookup, "10.1.2.3");
        assert_eq!(plain.client_ip(&proxied), "10.1.2.3".parse().ok());
        assert_eq!(behind.client_ip(&proxied), "203.0.113.9".parse().ok());
        let ctx = behind.make_context(&proxied);
        assert_eq!(ctx.user_agent.as_deref(), Some("Firefox"));
        // A balancer that adds nothing: the peer.
        let empty = |_: &str| -> Vec<&[u8]> { vec![] };
        assert_eq!(
            behind.client_ip(&head_with(&empty, "10.9.9.9")),
            "10.9.9.9".parse().ok()
        );
    }

    #[test]
    fn safe_methods_follow_the_http_crate() {
        let empty = |_: &str| -> Vec<&[u8]> { vec![] };
        for (method, safe) in [
            ("GET", true),
            ("HEAD", true),
            ("OPTIONS", true),
            ("TRACE", true),
            ("POST", false),
            ("DELETE", false),
            ("BREW", false),
        ] {
            assert_eq!(
                RequestHead::new(&empty, method, "/", None).is_safe_method(),
                safe,
                "{method}"
            );
        }
    }
}

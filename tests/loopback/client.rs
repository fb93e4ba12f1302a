//! A browser-like HTTP client whose cookie jar the test holds by hand,
//! and the name of the session cookie the test servers use.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The session cookie of the servers the tests start (see
/// [`super::dev_layer`]).
pub const COOKIE: &str = "rs_session";

/// A browser-like client whose cookie jar we control by hand.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub base: String,
    pub cookie: Option<String>,
}

pub struct Answer {
    pub status: StatusCode,
    pub set_cookie: Option<Option<String>>,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl Client {
    pub fn new(base: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
            cookie: None,
        }
    }

    /// Sends a request with the given raw cookie value (not applying the
    /// answer).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&[u8]>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = cookie {
            let mut v = format!("{COOKIE}=").into_bytes();
            v.extend_from_slice(c);
            req = req.header(
                "cookie",
                reqwest::header::HeaderValue::from_bytes(&v).expect("valid header bytes"),
            );
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::answer(req.send().await.expect("request")).await
    }

    async fn answer(res: reqwest::Response) -> Answer {
        let status = res.status();
        let headers = res.headers().clone();
        let set_cookie = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{COOKIE}=")))
            .map(|v| {
                let value = v[COOKIE.len() + 1..].split(';').next().unwrap_or("");
                (!value.is_empty()).then(|| value.to_owned())
            });
        let text = res.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            set_cookie,
            headers,
            json,
        }
    }

    /// Posts a raw JSON text (for bodies `serde_json::Value` cannot hold).
    pub async fn send_raw_json(&self, path: &str, body: String) -> Answer {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header(
                "cookie",
                format!("{COOKIE}={}", self.cookie.as_deref().unwrap_or("")),
            )
            .body(body)
            .send()
            .await
            .expect("request");
        Self::answer(res).await
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_with(
            method,
            path,
            self.cookie.as_deref().map(str::as_bytes),
            body,
        )
        .await
    }

    /// Sends and applies the answer's `Set-Cookie` to the jar.
    pub async fn go(&mut self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let a = self.send(method, path, body).await;
        self.apply(&a);
        a
    }

    pub fn apply(&mut self, a: &Answer) {
        if let Some(c) = &a.set_cookie {
            self.cookie = c.clone();
        }
    }

    pub async fn login(&mut self, user: &str) -> Answer {
        let a = self
            .go(Method::POST, "/login", Some(json!({ "user": user })))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
        assert!(self.cookie.is_some(), "login sets the cookie");
        a
    }

    /// Sends with extra headers and an optional raw body with its content
    /// type, applying the answer's cookie.
    pub async fn go_headers(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("{COOKIE}={c}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let a = Self::answer(req.send().await.expect("request")).await;
        self.apply(&a);
        a
    }

    /// A client whose connections come from `ip` (any 127.0.0.0/8 address
    /// is this machine's loopback on Linux).
    pub fn from_ip(base: String, ip: std::net::Ipv4Addr) -> Self {
        Self {
            http: reqwest::Client::builder()
                .local_address(std::net::IpAddr::V4(ip))
                .build()
                .expect("client"),
            base,
            cookie: None,
        }
    }
}

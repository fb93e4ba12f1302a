//! The least a rolling-cookie session layer does over HTTP, without its
//! cryptography: a lower bound for the in-process overhead
//! (docs/benchmarks.md, "What bounds the 1.0 µs goal"), not a session
//! layer anyone should use.
//!
//! Per request it does what the HTTP side of rolling-session must: find
//! its cookie, base64-decode the 42-byte token, look the session up under a
//! lock and move its counter on (no MAC: the counter is compared in the
//! clear), hand the handler the session's data through the request's
//! extensions, write a changed value back under the lock, and send the
//! next token (base64 of 42 bytes, no MAC) in `Set-Cookie` with the same
//! attributes, with `Cache-Control: no-store` and the two expiry headers.
//! A request to `/login` without a session gets a new one.
//! The store is synchronous (a `Mutex` around a `HashMap`), so its future
//! is the inner service's, unboxed: cheaper than any layer over an
//! asynchronous store can be. No events, metrics, request context, cross-
//! site check, record seal, late-token check, sliding expiry, data limit,
//! clock reading (the expiry values are constants) or retired tokens, and
//! the next token is predictable.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use axum::extract::FromRequestParts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, COOKIE, HeaderName, HeaderValue, SET_COOKIE};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

const TOKEN_BYTES: usize = 42;
/// The cookie's name, as the rolling-session routers name theirs.
const COOKIE_NAME: &str = "rs_session";
/// A request to this path without a session gets a new one (a login).
const LOGIN: &str = "/login";
const EXPIRES_IN: HeaderName = HeaderName::from_static("x-session-expires-in-ms");
const IDLE_EXPIRES_IN: HeaderName = HeaderName::from_static("x-session-idle-expires-in-ms");

type Data = Arc<BTreeMap<String, Arc<[u8]>>>;

/// A session: its counter and its data (JSON values by key, shared with
/// the request that read them).
#[derive(Default)]
struct Entry {
    counter: u64,
    data: Data,
}

/// Session ids are spread by construction (random in a real layer): their
/// first eight bytes are the hash. (An array hashes as its length, then
/// its bytes: the length is left out.)
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        if let Some(first) = bytes.first_chunk::<8>() {
            self.0 = u64::from_le_bytes(*first);
        }
    }
    fn write_usize(&mut self, _: usize) {}
}

type Store = Arc<Mutex<HashMap<[u8; 16], Entry, BuildHasherDefault<IdHasher>>>>;

/// The layer, over a store that starts with one session.
#[derive(Clone)]
pub struct FloorLayer {
    store: Store,
    sessions_made: Arc<AtomicU64>,
}

impl FloorLayer {
    /// The layer and the `Cookie` header of its one session's first token.
    pub fn new() -> (Self, String) {
        let layer = Self {
            store: Store::default(),
            sessions_made: Arc::default(),
        };
        let (id, counter, _) = layer.create();
        let jar = format!(
            "{COOKIE_NAME}={}",
            URL_SAFE_NO_PAD.encode(token(&id, counter))
        );
        (layer, jar)
    }

    /// A new session: its id, its first counter and its (empty) data.
    fn create(&self) -> ([u8; 16], u64, Data) {
        let n = self.sessions_made.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        id[8..].copy_from_slice(&n.to_le_bytes());
        self.store.lock().unwrap().insert(id, Entry::default());
        (id, 0, Data::default())
    }
}

impl<S> Layer<S> for FloorLayer {
    type Service = FloorService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FloorService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct FloorService<S> {
    inner: S,
    layer: FloorLayer,
}

/// What the handler reads and writes: the data as read, and its change.
struct State {
    data: Data,
    changed: Option<(String, Arc<[u8]>)>,
}

/// The extractor's handle on the request's session.
#[derive(Clone)]
pub struct FloorSession(Arc<Mutex<State>>);

impl FloorSession {
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let state = self.0.lock().unwrap();
        let bytes = match &state.changed {
            Some((k, v)) if k == key => v.clone(),
            _ => state.data.get(key)?.clone(),
        };
        serde_json::from_slice(&bytes).ok()
    }

    pub fn insert<T: serde::Serialize>(&self, key: &str, value: &T) {
        // A short value's JSON written on the stack: one allocation, the
        // value's own.
        let mut buf = [0u8; 64];
        let mut rest = &mut buf[..];
        let bytes: Arc<[u8]> = match serde_json::to_writer(&mut rest, value) {
            Ok(()) => {
                let n = 64 - rest.len();
                Arc::from(&buf[..n])
            }
            Err(_) => serde_json::to_vec(value).unwrap().into(),
        };
        self.0.lock().unwrap().changed = Some((key.to_owned(), bytes));
    }
}

impl<S: Send + Sync> FromRequestParts<S> for FloorSession {
    type Rejection = StatusCode;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, StatusCode> {
        parts
            .extensions
            .get::<FloorSession>()
            .cloned()
            .ok_or(StatusCode::UNAUTHORIZED)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for FloorService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let session = req
            .headers()
            .get(COOKIE)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| cookie_value(h, COOKIE_NAME))
            .and_then(decode)
            .and_then(|raw| self.advance(&raw))
            .or_else(|| (req.uri().path() == LOGIN).then(|| self.layer.create()));
        let session = session.map(|(id, counter, data)| {
            let handle = FloorSession(Arc::new(Mutex::new(State {
                data,
                changed: None,
            })));
            req.extensions_mut().insert(handle.clone());
            (id, counter, handle)
        });
        FloorFuture {
            future: self.inner.call(req),
            session: session.map(|s| (s, self.layer.store.clone())),
        }
    }
}

impl<S> FloorService<S> {
    /// The session's id, its next counter and its data, if `raw` holds its
    /// live counter (which then moves on).
    fn advance(&self, raw: &[u8; TOKEN_BYTES]) -> Option<([u8; 16], u64, Data)> {
        let id: [u8; 16] = raw[2..18].try_into().ok()?;
        let counter = u64::from_be_bytes(raw[18..26].try_into().ok()?);
        let mut store = self.layer.store.lock().unwrap();
        let entry = store.get_mut(&id)?;
        if entry.counter != counter {
            return None;
        }
        entry.counter += 1;
        Some((id, entry.counter, entry.data.clone()))
    }
}

pin_project! {
    pub struct FloorFuture<F> {
        #[pin]
        future: F,
        session: Option<(([u8; 16], u64, FloorSession), Store)>,
    }
}

impl<F, ResBody, E> Future for FloorFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.future.poll(cx))?;
        let Some(((id, counter, handle), store)) = this.session.take() else {
            return Poll::Ready(Ok(res));
        };
        let changed = handle.0.lock().unwrap().changed.take();
        // The last handle: the data it read is let go of, so the store's
        // copy changes in place.
        drop(handle);
        if let Some((key, value)) = changed
            && let Some(entry) = store.lock().unwrap().get_mut(&id)
        {
            Arc::make_mut(&mut entry.data).insert(key, value);
        }
        let mut value = [0u8; 56];
        let n = URL_SAFE_NO_PAD
            .encode_slice(token(&id, counter), &mut value)
            .unwrap();
        let pieces: [&[u8]; 4] = [
            COOKIE_NAME.as_bytes(),
            b"=",
            &value[..n],
            b"; Path=/; HttpOnly; SameSite=Lax",
        ];
        let mut cookie = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum());
        for piece in pieces {
            cookie.extend_from_slice(piece);
        }
        let headers = res.headers_mut();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_maybe_shared(Bytes::from(cookie)).unwrap(),
        );
        headers.append(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // rolling-session's defaults (8 hours, 30 minutes), written as it
        // writes them: digits on the stack, one allocation.
        headers.append(EXPIRES_IN, decimal(28_800_000));
        headers.append(IDLE_EXPIRES_IN, decimal(1_800_000));
        Poll::Ready(Ok(res))
    }
}

/// A token's 42 bytes laid out as rolling-session's (version, key id,
/// session id, counter, tag), with the counter in the clear and no tag.
fn token(id: &[u8; 16], counter: u64) -> [u8; TOKEN_BYTES] {
    let mut raw = [0u8; TOKEN_BYTES];
    raw[0] = 1;
    raw[1] = 1;
    raw[2..18].copy_from_slice(id);
    raw[18..26].copy_from_slice(&counter.to_be_bytes());
    raw
}

fn decode(text: &str) -> Option<[u8; TOKEN_BYTES]> {
    let mut raw = [0u8; TOKEN_BYTES];
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut raw).ok()?;
    (n == TOKEN_BYTES).then_some(raw)
}

fn decimal(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n)).unwrap()
}

/// The value of the pair called `name`: pairs split at `;`, spaces
/// trimmed, by byte scans (the header is ASCII where it matters).
fn cookie_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let pair = pair.trim_start_matches(' ');
        let value = pair.strip_prefix(name)?.strip_prefix('=')?;
        Some(value.trim_end_matches(' '))
    })
}

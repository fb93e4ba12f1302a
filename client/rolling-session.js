// rolling-session browser client: a plain ES module without dependencies.
// Remaining times arrive as relative ms and become deadlines on the monotonic
// clock (performance.now()), so a wrong wall clock cannot move them. One tab
// leads (Web Locks) and alone runs checks, telemetry and refresh; every tab
// shares activity, times and the end of the session (BroadcastChannel).

const MIN = 60000;
const SESSION_ERRORS = ['missing_token', 'malformed_token', 'session_not_found', 'session_expired',
  'idle_timeout', 'token_reused', 'session_revoked', 'session_evicted', 'session_tampered', 'context_mismatch',
  'token_ahead'];
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const DEFAULTS = Object.freeze({
  prefix: '/session',
  idleTimeoutMs: 30 * MIN,
  warnBeforeMs: 60000,
  checkIntervalMs: 15 * MIN,
  telemetryMinMs: 5000,
  telemetryMaxMs: 30000,
  throttleMs: 200,
  refreshLeadMs: 5 * MIN,
  drainTimeoutMs: 30000,
  autoSaveTimeoutMs: 5000,
  logoutUrl: null,
  channel: 'rolling-session',
  patchFetch: true,
  activityEvents: ['mousedown', 'mousemove', 'keypress', 'scroll', 'touchstart', 'click', 'visibilitychange'],
});

/** True for the `error` reasons that mean the session is gone. */
export const isSessionError = (reason) => SESSION_ERRORS.includes(reason);

/** Shannon entropy (0..1) of the 0.1 ms digits of timing jitter samples. */
export function jitterEntropy(samples) {
  const bins = new Array(16).fill(0);
  for (const x of samples) bins[Math.floor(Math.abs(x) * 10) & 15]++;
  let e = 0;
  for (const c of bins) if (c) e -= (c / samples.length) * Math.log2(c / samples.length);
  return samples.length ? Math.round((e / 4) * 1e4) / 1e4 : 0;
}

export class RollingSession extends EventTarget {
  constructor(options = {}) {
    super();
    this.o = { ...DEFAULTS, ...options };
    this.state = 'inactive'; // 'active' | 'ended'
    this.leader = false;
    this.status = null;
    this.advice = null;
    this.ops = 0;
    this.expiresAt = this.idleAt = this.renewAt = null;
    this.lastActivity = this.lastContact = now();
    this._seq = this._applied = 0;
    this._pending = new Set();
    this._timers = {};
    this._jitter = [];
    this._fetch = globalThis.fetch.bind(globalThis);
    this._telMs = this.o.telemetryMinMs;
  }

  /** Wires listeners, the channel and leadership once, then reads the status. */
  async start({ fresh = false } = {}) {
    if (!this._on) this._install();
    if (fresh) this.ops = 0;
    const r = await this.call('GET', '/status');
    if (!r || !r.ok) return null;
    const was = this.state;
    this.state = 'active';
    this.lastActivity = now();
    this._applyStatus(r.data, r.mid);
    if (was !== 'active') {
      this._emit('start', r.data);
      this._post({ t: 'start', fresh });
      this._loops();
    }
    return r.data;
  }

  /** Removes every listener and timer and gives up leadership. */
  stop() {
    this._clear();
    if (!this._on) return;
    for (const e of this.o.activityEvents) document.removeEventListener(e, this._on, true);
    if (globalThis.fetch === this.fetch) globalThis.fetch = this._fetch;
    this._bc?.close();
    this._lock?.abort();
    this._release?.();
    this._on = null;
    this.leader = false;
  }

  /** fetch() that counts, tracks in flight and reads the session headers. */
  fetch = (input, init) => this._send(input, init, false);

  /** Backup check: GET status; a session error ends the session in every tab. */
  async check(source = 'check') {
    const r = await this.call('GET', '/status', undefined, source);
    if (r?.ok) this._applyStatus(r.data, r.mid);
    return r?.ok ? r.data : null;
  }

  /** Refresh: let requests in flight land (all tabs), renew, confirm. */
  refresh() {
    return (this._refreshing ??= this._refresh().finally(() => (this._refreshing = null)));
  }

  /** Ends the session here and in every other tab (auto-save first, then `logoutUrl`). */
  logout() {
    return this._end('logout', 'user');
  }

  /** Milliseconds left before idle logout, expiry and the server's idle timeout. */
  remaining() {
    const left = (at) => (at == null ? null : Math.max(0, Math.round(at - now())));
    return { idleMs: left(this.lastActivity + this._idleMs()), expiresMs: left(this.expiresAt), serverIdleMs: left(this.idleAt) };
  }

  /** Entropy of timer lateness and request-time jitter (never input timing). */
  entropy() {
    return jitterEntropy(this._jitter);
  }

  async call(method, path, body, source = path) {
    // The app's requests in flight land first: this one must not retire their tokens.
    await Promise.race([Promise.allSettled([...this._pending]), sleep(3000)]);
    const t0 = now();
    let res, mid, data = null;
    try {
      res = await this._send(this.o.prefix + path, {
        method, credentials: 'same-origin', cache: 'no-store',
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body && JSON.stringify(body),
      }, true);
      mid = (t0 + now()) / 2;
      data = await res.json();
    } catch (e) {
      if (!res) return void this._emit('error', { source, error: String(e) });
    }
    if (res.status === 401) this._end(data?.error || 'unauthorized', source); // only sessions get 401 here
    return { ok: res.ok, status: res.status, data, mid };
  }

  // ---- internals ----

  _install() {
    this._on = (e) => {
      if (e.type === 'visibilitychange' && document.hidden) return;
      const t = now();
      if (t - this._lastEvent < this.o.throttleMs) return;
      this._lastEvent = t;
      this._activity(t);
      if (this.state === 'active') this._post({ t: 'act' });
    };
    this._lastEvent = -Infinity;
    for (const e of this.o.activityEvents) document.addEventListener(e, this._on, { capture: true, passive: true });
    if (this.o.patchFetch) globalThis.fetch = this.fetch;
    try { this.ops = +localStorage.getItem(this._key()) || 0; } catch {}
    this.ops++; // the page load itself
    addEventListener('pagehide', () => this._save());
    if (globalThis.BroadcastChannel) {
      this._bc = new BroadcastChannel(this.o.channel);
      this._bc.onmessage = (e) => this._message(e.data);
    }
    if (navigator.locks) {
      this._lock = new AbortController();
      navigator.locks.request(this.o.channel + ':leader', { signal: this._lock.signal }, () => new Promise((release) => {
        this._release = release;
        this._lead();
      })).catch(() => {});
    } else this._lead();
  }

  _lead() {
    this.leader = true;
    this._emit('leader', true);
    this._loops();
  }

  _loops() {
    if (this.state !== 'active') return;
    this._plan();
    if (!this.leader) return;
    this._later('check', this.o.checkIntervalMs, () => this._backup());
    this._telemetry();
  }

  async _backup() {
    await this.check('check');
    if (this.state === 'active') this._later('check', this.o.checkIntervalMs, () => this._backup());
  }

  _key() { return this.o.channel + ':ops'; }

  _save() { try { localStorage.setItem(this._key(), String(this.ops)); } catch {} }

  _count(n) {
    this.ops += n;
    this._post({ t: 'ops', n });
  }

  _sample(x) {
    this._jitter.push(x);
    if (this._jitter.length > 64) this._jitter.shift();
  }

  _idleMs() {
    return Math.min(this.o.idleTimeoutMs, this.status?.idle_timeout_ms || Infinity);
  }

  async _send(input, init, own) {
    const url = new URL(input instanceof Request ? input.url : String(input), location.href);
    if (url.origin !== location.origin) return this._fetch(input, init);
    const seq = ++this._seq, t0 = now();
    this._count(1);
    const p = this._fetch(input, init);
    this._pending.add(p);
    try {
      const res = await p;
      const t1 = now();
      this._sample(t1 - t0);
      this.lastContact = Math.max(this.lastContact, t0);
      const e = res.headers.get('x-session-expires-in-ms'), i = res.headers.get('x-session-idle-expires-in-ms');
      if (e != null && i != null && seq > this._applied && this.state === 'active') {
        this._applied = seq;
        this._times(+e, +i, (t0 + t1) / 2, true);
      }
      if (!own && res.status === 401 && this.state === 'active') {
        res.clone().json().then((b) => isSessionError(b?.error) && this.check('fetch'), () => {});
      }
      return res;
    } finally {
      this._pending.delete(p);
    }
  }

  _times(expiresIn, idleIn, at, share) {
    this.expiresAt = at + expiresIn;
    this.idleAt = at + idleIn;
    this._emit('times', { expiresInMs: expiresIn, idleExpiresInMs: idleIn });
    if (share) this._post({ t: 'times', e: this.expiresAt - now(), i: this.idleAt - now() });
    this._plan();
  }

  _applyStatus(s, at, shared) {
    if (!s || s.expires_in_ms == null) return;
    this.status = s;
    this.renewAt = s.renewal_allowed_in_ms == null ? null : at + s.renewal_allowed_in_ms;
    this._echo ??= s.server_timestamp;
    this._emit('status', s);
    if (!shared) this._post({ t: 'status', s });
    this._times(s.expires_in_ms, s.idle_expires_in_ms, at, false);
  }

  _later(name, ms, fn) {
    clearTimeout(this._timers[name]);
    const due = now() + Math.max(0, ms);
    this._timers[name] = setTimeout(() => {
      this._sample(now() - due);
      fn();
    }, Math.min(Math.max(0, ms), 2 ** 31 - 1));
  }

  _clear() {
    for (const k in this._timers) clearTimeout(this._timers[k]);
    this._timers = {};
  }

  _activity(t) {
    this._plan(); // a deadline passed while timers slept (background tab) ends it first
    this.lastActivity = t;
    this._plan();
  }

  // Every tab keeps the deadlines; the leader acts at once, the others only
  // if the leader has not ended the session 3 s after the deadline.
  _plan() {
    if (this.state !== 'active') return;
    const t = now(), idleEnd = this.lastActivity + this._idleMs();
    const expiry = this.expiresAt != null && this.expiresAt <= idleEnd;
    const at = expiry ? this.expiresAt : idleEnd, kind = expiry ? 'expiry' : 'idle';
    const end = at + (this.leader ? 0 : 3000);
    if (t >= end) return void this._end(expiry ? 'session_expired' : 'idle_timeout', 'timer');
    this._later('end', end - t, () => this._plan());
    const warnAt = at - this.o.warnBeforeMs;
    if (t >= warnAt) {
      if (this._warned !== kind) {
        this._warned = kind;
        this._emit('warning', { kind, remainingMs: Math.round(at - t) });
      }
    } else {
      if (this._warned) {
        this._warned = null;
        this._emit('warningcleared', {});
      }
      this._later('warn', warnAt - t, () => this._plan());
    }
    if (!this.leader) return;
    if (this.idleAt != null && this.status) {
      // Keep the server's idle clock in step with activity when nothing else talks to it.
      const keepAt = this.idleAt - Math.min(MIN, this.status.idle_timeout_ms / 4);
      this._later('keep', keepAt - t, () => this.lastActivity > this.lastContact && this.check('keepalive'));
    }
    if (this.renewAt != null && this.expiresAt != null) {
      const r = Math.max(this.renewAt, this.expiresAt - this.o.refreshLeadMs);
      this._later('renew', r - t, () => now() - this.lastActivity < this._idleMs() && this.refresh());
    }
  }

  async _telemetry() {
    if (!this.leader || this.state !== 'active' || !this.o.telemetryMinMs) return;
    const body = { timestamp: Date.now(), operation_count: this.ops, client_entropy: this.entropy() };
    if (this._echo != null) body.echo_server_timestamp = this._echo;
    const r = await this.call('POST', '/telemetry', body, 'telemetry');
    const d = r?.data;
    if (r?.ok && d) {
      this.advice = d;
      this._echo = d.server_timestamp;
      this._emit('telemetry', { sent: body, advice: d });
      this._post({ t: 'tel', d: { sent: body, advice: d } });
      if (d.refresh) this.refresh();
      else if (d.refresh_in_ms != null) this._later('advice', d.refresh_in_ms, () => this.refresh());
      // Sample often while something is odd, less often when calm or idle.
      this._telMs = d.anomaly_score > 0.5 || d.refresh ? this.o.telemetryMinMs : Math.min(this.o.telemetryMaxMs, this._telMs * 1.5);
    }
    if (r?.status === 404 || r?.status === 405) return; // the server takes no telemetry
    if (r?.status === 429 || now() - this.lastActivity > this.o.telemetryMaxMs) this._telMs = this.o.telemetryMaxMs;
    this._save();
    if (this.state === 'active') this._later('tel', this._telMs, () => this._telemetry());
  }

  async _refresh() {
    if (this.state !== 'active') return null;
    // Requests in flight (any tab) land first: one may carry the live token
    // renewal needs. 409 token_not_live: retry soon.
    let tabs = 0, drained = 0, r;
    for (let i = 0; ; i++) {
      const mine = [...this._pending];
      drained += mine.length;
      tabs += await this._drainAll(mine);
      r = await this.call('POST', '/refresh', undefined, 'refresh');
      if (r?.data?.error !== 'token_not_live' || i > 6 || this.state !== 'active') break;
      await sleep(250 << i);
    }
    if (!r?.ok) {
      const wait = r?.data?.retry_after_ms;
      this._emit('refresh', { ok: false, status: r?.status, error: r?.data?.error, retryAfterMs: wait });
      this.renewAt = wait == null ? null : now() + Math.max(1000, wait); // no retry loop
      this._plan();
      return null;
    }
    // Earlier requests' answers carry older times.
    this._applied = this._seq;
    this._applyStatus(r.data, r.mid);
    // Confirm only validates the new cookie; old ones in flight keep their grace.
    const c = await this.call('POST', '/refresh/confirm', undefined, 'confirm');
    const result = { ok: true, confirmed: !!c?.ok, drained, tabs, status: r.data };
    if (!c?.ok) result.error = c?.data?.error;
    this._emit('refresh', result);
    return result;
  }

  // Waits for `mine` and other tabs' requests in flight; resolves to how many tabs were busy.
  async _drainAll(mine) {
    const d = (this._drain = { id: Math.random().toString(36).slice(2), left: 0, tabs: 0 });
    const others = new Promise((done) => (d.done = done));
    this._post({ t: 'drain', id: d.id });
    await sleep(50); // tabs with requests in flight answer 'busy' by now
    await Promise.race([Promise.allSettled([...mine, d.left > 0 && others]), sleep(this.o.drainTimeoutMs)]);
    this._drain = null;
    return d.tabs;
  }

  async _end(reason, source, remote) {
    if (this.state !== 'active' && !(reason === 'logout' && !remote)) return;
    this.state = 'ended';
    this._clear();
    this._warned = null;
    if (!remote) this._post({ t: 'end', reason, source });
    try { await Promise.race([this.o.onAutoSave?.(reason), sleep(this.o.autoSaveTimeoutMs)]); } catch {}
    if (!remote && this.o.logoutUrl) {
      await this._fetch(this.o.logoutUrl, { method: 'POST', credentials: 'same-origin' }).catch(() => {});
    }
    this.ops = 0;
    this._save();
    this._emit('expired', { reason, source, remote: !!remote });
  }

  _post(m) {
    try { this._bc?.postMessage(m); } catch {}
  }

  async _message(m) {
    switch (m.t) {
      case 'act': return this._activity(now());
      case 'ops': this.ops += m.n; return;
      case 'times': if (this.state === 'active') this._times(m.e, m.i, now(), false); return;
      case 'status': if (this.state === 'active') this._applyStatus(m.s, now(), true); return;
      case 'tel':
        this.advice = m.d.advice;
        this.ops = Math.max(this.ops, m.d.sent.operation_count);
        return this._emit('telemetry', m.d);
      case 'start':
        if (m.fresh) this.ops = 0;
        if (this.state !== 'active') this.start();
        return;
      case 'end': return this._end(m.reason, m.source, true);
      case 'drain':
        if (!this._pending.size) return;
        this._post({ t: 'busy', id: m.id });
        await Promise.allSettled([...this._pending]);
        return this._post({ t: 'drained', id: m.id });
      case 'busy': if (this._drain?.id === m.id) this._drain.left++, this._drain.tabs++; return;
      case 'drained': if (this._drain?.id === m.id && --this._drain.left <= 0) this._drain.done();
    }
  }

  _emit(type, detail) {
    const fn = this.o['on' + type[0].toUpperCase() + type.slice(1)];
    try { fn?.(detail); } catch (e) { console.error(e); }
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

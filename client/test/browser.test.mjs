// Browser tests: the client in Debian's headless Chromium (playwright-core)
// against the running demo. scripts/test-browser starts the demo and sets
// DEMO_URL; ARTIFACTS is where screenshots go (target/browser).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const URL_ = process.env.DEMO_URL;
const ARTIFACTS = process.env.ARTIFACTS || new URL('../../target/browser', import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const skip = URL_ ? false : 'DEMO_URL is not set (run scripts/test-browser)';

let browser;
const errors = [];

before(async () => {
  if (skip) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  // playwright-core gives the browser a fresh temporary --user-data-dir of its own.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
});

/** A fresh browser context: its own cookies, BroadcastChannel and locks. */
const context = () => browser.newContext({ viewport: { width: 1280, height: 1000 } });

async function open(ctx, query = '') {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  await page.goto(`${URL_}/${query ? '?' + query : ''}`);
  await page.waitForFunction(() => window.__rs?.log.some((e) => e.type === 'ready'));
  return page;
}

// Each test signs in its own user: the demo keeps at most five sessions per
// user, and /demo/revoke ends all of a user's sessions.
let users = 0;
const nextUser = () => `user${++users}-${process.pid}`;

async function login(page, user = nextUser()) {
  return page.evaluate(async (user) => {
    const r = await fetch('/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) });
    if (!r.ok) throw new Error(`login answered ${r.status} ${await r.text()}`);
    return window.__rs.client.start({ fresh: true });
  }, user);
}

/** fetch() inside the page: status, body and the session headers. */
const get = (page, path, method = 'GET') => page.evaluate(async ([path, method]) => {
  const r = await fetch(path, { method });
  return { status: r.status, body: await r.json().catch(() => null), expires: r.headers.get('x-session-expires-in-ms'), idle: r.headers.get('x-session-idle-expires-in-ms') };
}, [path, method]);

const logOf = (page) => page.evaluate(() => window.__rs.log);
const entry = (log, type) => log.find((e) => e.type === type);
const clientState = (page) => page.evaluate(() => window.__rs.client.state);
/** Fails clearly when the server has no telemetry route. */
async function telemetryRoute(page) {
  const r = await get(page, '/session/telemetry', 'POST');
  assert.notEqual(r.status, 404, 'POST /session/telemetry answered 404: the demo has no telemetry route');
  assert.notEqual(r.status, 405, 'POST /session/telemetry answered 405: the demo has no telemetry route');
}

/** Waits for onExpired (logged after auto-save and the logout request). */
const expiredIn = (page, timeout) => page.waitForFunction(() => window.__rs.log.some((e) => e.type === 'expired'), null, { timeout });
const noPageErrors = () => assert.deepEqual(errors.splice(0), []);

describe('rolling-session client in Chromium', { skip }, () => {
  test('login: the page signs in and the client starts from the server status', async () => {
    const ctx = await context();
    const page = await open(ctx);
    assert.equal(await clientState(page), 'inactive');
    assert.ok(await page.isVisible('#login'));
    await page.fill('#user', 'alice');
    await page.click('#login-btn');
    await page.waitForFunction(() => window.__rs.client.state === 'active');
    const status = await page.evaluate(() => window.__rs.client.status);
    assert.equal(status.user_id, 'alice');
    for (const k of ['expires_in_ms', 'idle_expires_in_ms', 'idle_timeout_ms', 'rotations', 'server_timestamp']) {
      assert.equal(typeof status[k], 'number', k);
    }
    await page.waitForFunction(() => document.getElementById('who').textContent.includes('alice'));
    const me = await get(page, '/me');
    assert.equal(me.status, 200);
    assert.equal(me.body.user, 'alice');
    assert.ok(Number(me.expires) > 0 && Number(me.idle) > 0, 'session headers readable by same-origin fetch');
    const [cookie] = (await ctx.cookies()).filter((c) => c.name === 'rs_session');
    assert.ok(cookie?.httpOnly, 'the session cookie is HttpOnly');
    assert.equal(cookie.expires, -1, 'without "remember me" the cookie ends with the browser');
    assert.equal(await page.evaluate(() => document.cookie.includes('rs_session')), false);
    noPageErrors();
    await ctx.close();
  });

  test('remember me: the login form box gives a persistent cookie with the remembered idle timeout', async () => {
    const ctx = await context();
    const page = await open(ctx);
    await page.fill('#user', 'carol');
    await page.check('#remember');
    await page.click('#login-btn');
    await page.waitForFunction(() => window.__rs.client.state === 'active');
    const [cookie] = (await ctx.cookies()).filter((c) => c.name === 'rs_session');
    const left = cookie.expires - Date.now() / 1000;
    assert.ok(left > 6.9 * 86400 && left <= 7 * 86400 + 5, `the cookie persists for the 7-day idle timeout (${left} s)`);
    const status = await page.evaluate(() => window.__rs.client.status);
    assert.equal(status.idle_timeout_ms, 7 * 86400 * 1000);
    noPageErrors();
    await ctx.close();
  });

  test('20 parallel fetches keep the session (three bursts)', async () => {
    const ctx = await context();
    const page = await open(ctx, 'live_ms=0');
    const { user_id: user } = await login(page);
    const before = (await get(page, '/session/status')).body.rotations;
    for (let round = 0; round < 3; round++) {
      const results = await page.evaluate(() => Promise.all(Array.from({ length: 20 }, () =>
        fetch('/me').then(async (r) => ({ status: r.status, user: (await r.json()).user })))));
      assert.deepEqual(results.map((r) => r.status), Array(20).fill(200), `round ${round}`);
      assert.ok(results.every((r) => r.user === user));
    }
    const after = await get(page, '/session/status');
    assert.equal(after.status, 200);
    assert.ok(after.body.rotations > before, `rotations ${before} -> ${after.body.rotations}`);
    assert.equal(await clientState(page), 'active');
    assert.equal(entry(await logOf(page), 'expired'), undefined);
    noPageErrors();
    await ctx.close();
  });

  test('overlapping requests (bursts while other requests start) are never taken for theft', async () => {
    // Chromium puts the cookie on a request when it gets one of its six
    // connections, so one burst carries several generations of the token.
    const ctx = await context();
    const page = await open(ctx, 'telemetry_ms=0&live_ms=0');
    await login(page);
    const out = await page.evaluate(async () => {
      const bad = [];
      const one = (path) => fetch(path).then(async (r) => r.ok || bad.push(`${path} ${r.status} ${(await r.json()).error}`));
      const ticker = setInterval(() => one('/session/status'), 150);
      for (let i = 0; i < 8; i++) {
        await Promise.all(Array.from({ length: 20 }, () => one('/me')));
        await new Promise((r) => setTimeout(r, 100));
      }
      clearInterval(ticker);
      return { bad, state: window.__rs.client.state };
    });
    assert.deepEqual(out.bad, [], 'legitimate concurrency was rejected');
    assert.equal(out.state, 'active');
    noPageErrors();
    await ctx.close();
  });

  test('rotation continues across navigations', async () => {
    const ctx = await context();
    const page = await open(ctx, 'live_ms=0');
    const { user_id: user } = await login(page);
    const cookies = new Set(), rotations = [];
    for (let i = 0; i < 5; i++) {
      await page.goto(`${URL_}/?live_ms=0&nav=${i}`);
      await page.waitForFunction(() => window.__rs?.client.state === 'active');
      const s = await page.evaluate(() => window.__rs.client.status);
      assert.equal(s.user_id, user);
      rotations.push(s.rotations);
      cookies.add((await ctx.cookies()).find((c) => c.name === 'rs_session').value);
    }
    for (let i = 1; i < rotations.length; i++) assert.ok(rotations[i] > rotations[i - 1], `rotations ${rotations}`);
    assert.equal(cookies.size, 5, 'the cookie changed on every navigation');
    assert.equal((await get(page, '/me')).body.user, user);
    noPageErrors();
    await ctx.close();
  });

  test('shortened idle timeout: activity postpones it, the warning fires first, then logout', async () => {
    const ctx = await context();
    const page = await open(ctx, 'idle_ms=3000&warn_ms=1000&telemetry_ms=0&live_ms=0');
    await login(page);
    // 4.5 s of mouse activity: longer than the idle timeout, no logout.
    for (let i = 0; i < 10; i++) {
      await page.waitForTimeout(500);
      await page.mouse.move(100 + i * 10, 200 + (i % 2) * 15);
    }
    const quietSince = await page.evaluate(() => performance.now());
    assert.equal(await clientState(page), 'active');
    assert.equal(entry(await logOf(page), 'warning'), undefined);
    await expiredIn(page, 8000);
    const log = await logOf(page);
    const warning = entry(log, 'warning'), save = entry(log, 'autosave'), expired = entry(log, 'expired');
    assert.ok(warning && expired, `warning and expired were logged: ${JSON.stringify(log)}`);
    assert.equal(warning.detail.kind, 'idle');
    assert.equal(expired.detail.reason, 'idle_timeout');
    assert.ok(warning.t < save.t && save.t <= expired.t, 'warning, then auto-save, then logout');
    const gap = expired.t - warning.t;
    assert.ok(gap > 700 && gap < 1500, `warning ${gap} ms before logout`);
    assert.ok(expired.t - quietSince > 2700, `logged out ${expired.t - quietSince} ms after the last activity`);
    assert.match(await page.textContent('#banner'), /Signed out: idle_timeout/);
    assert.equal((await get(page, '/me')).status, 401, 'the server session ended too');
    noPageErrors();
    await ctx.close();
  });

  test('a server-side revocation is caught by the backup check', async () => {
    const ctx = await context();
    const page = await open(ctx, 'check_ms=1500&telemetry_ms=0&live_ms=0');
    await login(page);
    const revoked = await get(page, '/demo/revoke', 'POST');
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(await clientState(page), 'active', 'nothing noticed yet');
    await expiredIn(page, 6000);
    const expired = entry(await logOf(page), 'expired');
    assert.equal(expired.detail.source, 'check');
    assert.ok(['session_not_found', 'session_revoked'].includes(expired.detail.reason), expired.detail.reason);
    noPageErrors();
    await ctx.close();
  });

  test('two pages of one browser: one leader; logout in one ends the other', async () => {
    const ctx = await context();
    const a = await open(ctx, 'live_ms=0');
    await login(a);
    const b = await open(ctx, 'live_ms=0');
    await b.waitForFunction(() => window.__rs.client.state === 'active');
    await a.waitForFunction(() => window.__rs.client.leader);
    assert.equal(await b.evaluate(() => window.__rs.client.leader), false, 'exactly one leader');
    await b.click('#logout');
    await expiredIn(a, 5000);
    const expired = entry(await logOf(a), 'expired');
    assert.deepEqual({ reason: expired.detail.reason, remote: expired.detail.remote }, { reason: 'logout', remote: true });
    assert.equal(await clientState(b), 'ended');
    assert.equal((await get(a, '/me')).status, 401);
    noPageErrors();
    await ctx.close();
  });

  test('activity in one tab keeps the other tab from idling out', async () => {
    const ctx = await context();
    const q = 'idle_ms=3000&warn_ms=1000&telemetry_ms=0&live_ms=0';
    const a = await open(ctx, q);
    await login(a);
    const b = await open(ctx, q);
    await b.waitForFunction(() => window.__rs.client.state === 'active');
    for (let i = 0; i < 10; i++) {
      await b.mouse.move(50 + i * 7, 60);
      await b.waitForTimeout(500);
    }
    assert.equal(await clientState(a), 'active');
    assert.equal(await clientState(b), 'active');
    await expiredIn(a, 8000);
    await expiredIn(b, 5000);
    noPageErrors();
    await ctx.close();
  });

  test('telemetry posts the contract fields and applies the advice', async () => {
    const ctx = await context();
    const page = await open(ctx, 'telemetry_ms=400&live_ms=0');
    const sent = [];
    page.on('request', (r) => r.url().endsWith('/session/telemetry') && r.postData() && sent.push({ at: Date.now(), body: JSON.parse(r.postData()) }));
    await login(page);
    await telemetryRoute(page);
    await page.waitForFunction(() => window.__rs.log.filter((e) => e.type === 'telemetry').length >= 4, null, { timeout: 10000 });
    await page.evaluate(() => Promise.all(Array.from({ length: 5 }, () => fetch('/me'))));
    await page.waitForFunction(() => window.__rs.log.filter((e) => e.type === 'telemetry').length >= 6, null, { timeout: 10000 });
    assert.ok(sent.length >= 6);
    for (const { at, body } of sent) {
      assert.ok(Math.abs(body.timestamp - at) < 5000, 'timestamp is the client clock');
      assert.ok(Number.isInteger(body.operation_count) && body.operation_count >= 0);
      assert.ok(body.client_entropy >= 0 && body.client_entropy <= 1);
    }
    for (let i = 1; i < sent.length; i++) {
      assert.ok(sent[i].body.operation_count >= sent[i - 1].body.operation_count, 'operation_count is monotone');
      assert.equal(typeof sent[i].body.echo_server_timestamp, 'number', 'the server timestamp is echoed');
    }
    assert.ok(sent.at(-1).body.operation_count - sent[0].body.operation_count >= 5, 'the five fetches were counted');
    const advice = await page.evaluate(() => window.__rs.client.advice);
    for (const k of ['server_timestamp', 'skew_ms', 'drift_ppm', 'rtt_ms', 'predicted_operation_count', 'horizon_ms', 'anomaly_score']) {
      assert.equal(typeof advice[k], 'number', k);
    }
    assert.equal(typeof advice.refresh, 'boolean');
    noPageErrors();
    await ctx.close();
  });

  test('a client clock one hour fast shifts no timer, and the server measures the skew', async () => {
    const ctx = await context();
    await ctx.addInitScript(() => {
      const real = Date.now;
      Date.now = () => real() + 3600e3;
    });
    const page = await open(ctx, 'telemetry_ms=300&live_ms=0');
    await login(page);
    await telemetryRoute(page);
    const { status, left } = await page.evaluate(async () => {
      const status = await window.__rs.client.check();
      return { status, left: window.__rs.client.remaining() };
    });
    assert.ok(Math.abs(left.expiresMs - status.expires_in_ms) < 1000, `expires ${left.expiresMs} vs ${status.expires_in_ms}`);
    assert.ok(Math.abs(left.serverIdleMs - status.idle_expires_in_ms) < 1000);
    await page.waitForFunction(() => window.__rs.log.filter((e) => e.type === 'telemetry').length >= 3, null, { timeout: 10000 });
    const skew = await page.evaluate(() => window.__rs.client.advice.skew_ms);
    // skew_ms is server minus client (docs/drift.md): a client one hour fast reads about -3 600 000.
    assert.ok(Math.abs(skew + 3600e3) < 5000, `skew_ms ${skew}`);
    noPageErrors();
    await ctx.close();
  });

  test('the expiry timer fires at the end the server announced, whatever the client clock says', async () => {
    const ctx = await context();
    await ctx.addInitScript(() => {
      const real = Date.now;
      Date.now = () => real() - 86400e3; // a day slow
    });
    const page = await open(ctx, 'warn_ms=1000&telemetry_ms=0&live_ms=0');
    const status = await login(page);
    // From here the status says the session ends 2.5 s from now (the demo's real lifetime is hours).
    await ctx.route('**/session/status', (route) => route.fulfill({
      json: { ...status, expires_in_ms: 2500, absolute_expires_in_ms: 2500, renewal_allowed_in_ms: null, server_timestamp: Date.now() },
    }));
    // The timers start when the status arrives, somewhere between these two.
    const [sentAt, checkedAt] = await page.evaluate(async () => {
      const sent = performance.now();
      await window.__rs.client.check();
      return [sent, performance.now()];
    });
    await expiredIn(page, 6000);
    const log = await logOf(page);
    const warning = entry(log, 'warning'), expired = entry(log, 'expired'), save = entry(log, 'autosave');
    assert.deepEqual(warning.detail.kind, 'expiry');
    assert.deepEqual({ reason: expired.detail.reason, source: expired.detail.source }, { reason: 'session_expired', source: 'timer' });
    const warnAt = [warning.t - checkedAt, warning.t - sentAt], endAt = [save.t - checkedAt, save.t - sentAt];
    assert.ok(warnAt[1] > 1300 && warnAt[0] < 1800, `warning ${warnAt} ms after the status`);
    assert.ok(endAt[1] > 2300 && endAt[0] < 2900, `expired ${endAt} ms after the status`);
    noPageErrors();
    await ctx.close();
  });

  test('refresh + confirm with requests in flight: nothing fails, the session continues under the new id', async () => {
    const ctx = await context();
    const page = await open(ctx, 'telemetry_ms=0&live_ms=0');
    const { user_id: user } = await login(page);
    // 300 ms of latency and Chromium's six connections per host keep requests in flight.
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 300, downloadThroughput: -1, uploadThroughput: -1 });
    const out = await page.evaluate(async () => {
      const { client } = window.__rs;
      // Test hook: learn when the refresh request leaves, to start requests
      // that carry the old cookie while the new one is on its way.
      const raw = client._fetch;
      let sent;
      const refreshSent = new Promise((r) => (sent = r));
      client._fetch = (input, init) => {
        const p = raw(input, init);
        if (String(input).endsWith('/session/refresh')) sent();
        return p;
      };
      const me = () => fetch('/me').then((r) => r.status);
      const before = Array.from({ length: 10 }, me);
      const refreshed = client.refresh();
      await refreshSent;
      const during = Array.from({ length: 10 }, me);
      const result = await refreshed;
      const after = Array.from({ length: 5 }, me);
      client._fetch = raw;
      return { statuses: await Promise.all([...before, ...during, ...after]), refreshed: result };
    });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    assert.ok(out.refreshed, 'the server refused the refresh: ' + JSON.stringify(entry(await logOf(page), 'refresh')?.detail));
    assert.deepEqual(out.statuses, Array(25).fill(200));
    assert.equal(out.refreshed.confirmed, true);
    assert.ok(out.refreshed.drained > 0, 'requests in flight were awaited before the refresh left');
    assert.equal(out.refreshed.status.pending_confirmation, true);
    const s = await get(page, '/session/status');
    assert.equal(s.status, 200);
    assert.equal(s.body.user_id, user);
    assert.ok(s.body.renewals >= 1, `renewals ${s.body.renewals}`);
    assert.equal(await clientState(page), 'active');
    const again = await get(page, '/session/refresh/confirm', 'POST');
    assert.equal(again.status, 200, 'confirming again is harmless (idempotent)');
    assert.equal(again.body?.confirmed, true);
    // A naive client that refreshes and confirms at once, with requests carrying
    // the old cookie still in flight: they land within the old cookie's grace,
    // are served, and change nothing (no drain needed any more).
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 300, downloadThroughput: -1, uploadThroughput: -1 });
    const naive = await page.evaluate(async () => {
      const raw = window.__rs.client._fetch; // bypasses the client
      const me = () => raw('/me').then((r) => r.status);
      const refresh = raw('/session/refresh', { method: 'POST' });
      await new Promise((r) => setTimeout(r, 20));
      const during = Array.from({ length: 10 }, me);
      const refreshed = await refresh;
      const confirmed = await raw('/session/refresh/confirm', { method: 'POST' });
      return { refresh: refreshed.status, confirm: confirmed.status, during: await Promise.all(during) };
    });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    assert.equal(naive.refresh, 200);
    assert.equal(naive.confirm, 200);
    assert.deepEqual(naive.during, Array(10).fill(200));
    assert.equal((await get(page, '/me')).status, 200);
    assert.equal(await clientState(page), 'active');
    noPageErrors();
    await ctx.close();
  });

  test('a lost response, then a pause longer than the grace window: served throughout, then recovered', async () => {
    const ctx = await context();
    const page = await open(ctx, 'telemetry_ms=0&live_ms=0');
    await login(page);
    await get(page, '/me');
    const jar = async () => (await ctx.cookies()).find((c) => c.name === 'rs_session');
    const cookie = async () => (await jar()).value;
    const held = await jar(), before = held.value;
    // The server handles the request (and rotates the token); its answer never
    // reaches the page. Chromium has stored the answer's cookie by the time the
    // response stage can fail it, so the jar is put back as it was: together,
    // a response lost on the way.
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*/me?lost', requestStage: 'Response' }] });
    cdp.on('Fetch.requestPaused', (e) => cdp.send('Fetch.failRequest', { requestId: e.requestId, errorReason: 'ConnectionReset' }).catch(() => {}));
    const lost = await page.evaluate(() => fetch('/me?lost').then((r) => `answered ${r.status}`, (e) => `lost: ${e}`));
    await cdp.send('Fetch.disable');
    assert.match(lost, /^lost/);
    assert.notEqual(await cookie(), before, 'the server did rotate the token');
    await ctx.addCookies([held]);
    assert.equal(await cookie(), before);
    // At once: served, the token issued for the lost answer may still be on its way.
    assert.equal((await get(page, '/me')).status, 200);
    assert.equal(await cookie(), before);
    // A pause longer than the grace window (10 s): served all along, and recovered
    // (a fresh cookie) once the lost token can no longer be on its way (2T).
    await page.waitForTimeout(11000);
    for (let i = 0; i < 8 && (await cookie()) === before; i++) {
      const r = await get(page, '/me');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      if ((await cookie()) === before) await page.waitForTimeout(2000);
    }
    assert.notEqual(await cookie(), before, 'recovered with a fresh cookie');
    assert.equal((await get(page, '/me')).status, 200);
    assert.equal(await clientState(page), 'active');
    noPageErrors();
    await ctx.close();
  });

  test('refresh in the leader tab waits for the requests in flight in another tab', async () => {
    const ctx = await context();
    const a = await open(ctx, 'telemetry_ms=0&live_ms=0');
    await login(a);
    const b = await open(ctx, 'telemetry_ms=0&live_ms=0');
    await b.waitForFunction(() => window.__rs.client.state === 'active');
    await a.waitForFunction(() => window.__rs.client.leader);
    const cdp = await ctx.newCDPSession(b); // only tab b is slow
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 400, downloadThroughput: -1, uploadThroughput: -1 });
    await b.evaluate(() => {
      window.__inflight = Promise.all(Array.from({ length: 10 }, () => fetch('/me').then((r) => r.status)));
    });
    const refreshed = await a.evaluate(() => window.__rs.client.refresh());
    const statuses = await b.evaluate(() => window.__inflight);
    assert.ok(refreshed, 'the server refused the refresh: ' + JSON.stringify(entry(await logOf(a), 'refresh')?.detail));
    assert.equal(refreshed.confirmed, true);
    assert.equal(refreshed.tabs, 1, 'the other tab reported requests in flight');
    assert.deepEqual(statuses, Array(10).fill(200));
    assert.equal(await clientState(b), 'active');
    noPageErrors();
    await ctx.close();
  });

  test('the page plots render (screenshot under target/browser)', async () => {
    const ctx = await context();
    const page = await open(ctx, 'telemetry_ms=300&live_ms=400');
    await login(page);
    await telemetryRoute(page);
    for (let i = 0; i < 4; i++) {
      await get(page, '/me');
      await page.waitForTimeout(300);
    }
    await page.waitForFunction(() => {
      const s = window.__rs.series;
      return s.skew.length >= 6 && s.rotations.length >= 4 && s.predicted.length >= 3 && s.idle.length >= 2;
    }, null, { timeout: 15000 });
    await page.waitForTimeout(1100); // one more redraw
    const charts = await page.evaluate(() => [...document.querySelectorAll('.chart svg')].map((svg) => ({
      id: svg.id,
      paths: [...svg.querySelectorAll('path.series')].map((p) => p.getAttribute('d').split(/[ML]/).length - 1),
      points: svg.querySelectorAll('circle.point').length,
    })));
    assert.equal(charts.length, 7);
    for (const c of charts) assert.ok(c.points >= 2, `${c.id} has ${c.points} points`);
    for (const id of ['c-rot', 'c-idle', 'c-life', 'c-skew', 'c-drift', 'c-anom']) {
      assert.ok(charts.find((c) => c.id === id).paths.some((n) => n >= 3), `${id} draws a line`);
    }
    const file = join(ARTIFACTS, 'demo.png');
    const png = await page.screenshot({ path: file, fullPage: true });
    assert.ok(statSync(file).size > 30_000, `screenshot is ${statSync(file).size} bytes`);
    // Look at the pixels of the chart area: many colours, much ink.
    const chartsPng = await page.locator('#charts').screenshot({ path: join(ARTIFACTS, 'charts.png') });
    const pixels = await page.evaluate(async (b64) => {
      const img = new Image();
      img.src = 'data:image/png;base64,' + b64;
      await img.decode();
      const c = new OffscreenCanvas(img.width, img.height), g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, img.width, img.height).data;
      const colours = new Set();
      let ink = 0;
      for (let i = 0; i < d.length; i += 4) {
        colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        if (d[i] + d[i + 1] + d[i + 2] < 600) ink++;
      }
      return { w: img.width, h: img.height, colours: colours.size, ink: ink / (d.length / 4) };
    }, chartsPng.toString('base64'));
    writeFileSync(join(ARTIFACTS, 'charts.json'), JSON.stringify({ charts, pixels, png: png.length }, null, 2));
    assert.ok(pixels.w > 600 && pixels.h > 300, `chart area ${pixels.w}x${pixels.h}`);
    assert.ok(pixels.colours > 100, `${pixels.colours} colours`);
    assert.ok(pixels.ink > 0.01, `ink ${pixels.ink}`);
    noPageErrors();
    await ctx.close();
  });

  test('the stolen-cookie button shows theft detection', async () => {
    const ctx = await context();
    const page = await open(ctx, 'telemetry_ms=0&live_ms=0');
    await login(page);
    await get(page, '/me');
    await get(page, '/me');
    await page.click('#steal');
    await page.waitForFunction(() => /Theft detected/.test(document.getElementById('banner').textContent) || window.__rs.client.state === 'ended', null, { timeout: 20000 });
    await expiredIn(page, 5000);
    const log = await logOf(page);
    assert.equal(log.filter((e) => e.type === 'replay').at(-1).detail.error, 'token_reused');
    assert.ok(['token_reused', 'session_revoked'].includes(entry(log, 'expired').detail.reason));
    await page.waitForFunction(() => /revoked/i.test(document.getElementById('banner').textContent));
    await page.screenshot({ path: join(ARTIFACTS, 'theft.png'), fullPage: true });
    assert.equal((await get(page, '/me')).status, 401);
    noPageErrors();
    await ctx.close();
  });
});

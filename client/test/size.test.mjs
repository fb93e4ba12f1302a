// The client stays small and its declarations cover what it exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';

const js = new URL('../rolling-session.js', import.meta.url);
const dts = new URL('../rolling-session.d.ts', import.meta.url);

test('the client is at most 16 KB unminified', () => {
  const size = statSync(js).size;
  assert.ok(size <= 16 * 1024, `rolling-session.js is ${size} bytes, the budget is 16384`);
});

test('the client has no imports (no dependencies)', () => {
  assert.doesNotMatch(readFileSync(js, 'utf8'), /^\s*import\s/m);
});

test('every export is declared in rolling-session.d.ts', async () => {
  const mod = await import(js);
  const decl = readFileSync(dts, 'utf8');
  for (const name of Object.keys(mod)) {
    assert.match(decl, new RegExp(`export declare (const|function|class) ${name}\\b`), `${name} is not declared`);
  }
  const methods = ['start', 'stop', 'fetch', 'check', 'refresh', 'logout', 'remaining', 'entropy', 'call'];
  const instance = new mod.RollingSession();
  for (const m of methods) {
    assert.equal(typeof instance[m], 'function', m);
    assert.match(decl, new RegExp(`\\n  ${m}\\(`), `${m} is not declared`);
  }
});

test('jitter entropy is 0 for no or constant jitter and grows with spread', async () => {
  const { jitterEntropy } = await import(js);
  assert.equal(jitterEntropy([]), 0);
  assert.equal(jitterEntropy([1, 1, 1, 1]), 0);
  const spread = jitterEntropy(Array.from({ length: 64 }, (_, i) => i * 0.1));
  assert.ok(spread > 0.9 && spread <= 1, `spread entropy ${spread}`);
});

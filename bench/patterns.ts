/**
 * What label matchers' regular expressions cost: sluice's RE2 patterns (re2js, through compilePattern and
 * selectSamples as the scalers use them) against the JavaScript RegExp they replaced, on typical and adversarial
 * input.
 *
 *   node --expose-gc bench/patterns.ts
 *
 * - compile: µs per pattern (typical selectors' patterns, each made unique so nothing is cached).
 * - typical: ns per match of short label values (`2..` against `503`, `api-.*-prod` against `api-checkout-prod`...).
 * - `(a+)+` against `a` × n + `!`: RE2 for n up to a million (linear); RegExp for n = 16, 18, ... until one match
 *   takes more than 250 ms (it doubles with each `a`: the 26 `a`s took 343 ms).
 * - DFA-hostile `[ab]*a[ab]{k}` against random `a`/`b` values as long as the limits allow (program size × (length
 *   + 1) ≤ MAX_MATCH_COST): the worst single match sluice lets a pattern cost, as the per-value bound in
 *   exposition.ts assumes.
 * - a selection: a body of 2 000 series, one `=~` matcher, the whole selectSamples.
 * - memory: heap retained by 1 000 compiled and used patterns (with --expose-gc).
 *
 * Numbers, not pass/fail; bounded to a few seconds. The native `re2` binding is not measured here: it cannot be
 * installed for Node 26 from the npm registry alone (see exposition.ts).
 */
import { performance } from 'node:perf_hooks';
import {
  MAX_MATCH_COST,
  compilePattern,
  parseExposition,
  parseSelector,
  selectSamples,
} from '../src/scalers/exposition.ts';

const REGEXP_LIMIT_MS = 250;

const typicalPatterns = [
  '2..',
  '5..|429',
  '(?i)error|warn(ing)?',
  'api-.*-prod',
  '/api/v[0-9]+/(users|orders)/.*',
  '[a-z0-9]+-(canary|stable)',
  'checkout|payments|cart|catalog|shipping',
  '.+',
];
const typicalValues = ['503', '200', 'Warning', 'api-checkout-prod', '/api/v1/orders/42', 'web-canary', 'cart', 'x'];

/** JavaScript's RegExp with PromQL's anchoring, as sluice had it (`(?i)` becomes a modifier group). */
function jsRegExp(source: string): (value: string) => boolean {
  const js = source.startsWith('(?i)') ? `(?i:${source.slice(4)})` : source;
  const re = new RegExp(`^(?:${js})$`, 's');
  return (value) => re.test(value);
}

function re2(source: string): (value: string) => boolean {
  const pattern = compilePattern(source);
  return (value) => pattern.matches(value);
}

function perCall(fn: (i: number) => void, n: number): number {
  const start = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return (performance.now() - start) / n;
}

function once(fn: () => unknown): { ms: number; result: unknown } {
  const start = performance.now();
  const result = fn();
  return { ms: performance.now() - start, result };
}

function fmt(ms: number): string {
  if (ms >= 1) return `${ms.toFixed(1)} ms`;
  if (ms >= 0.001) return `${(ms * 1000).toFixed(1)} µs`;
  return `${(ms * 1e6).toFixed(0)} ns`;
}

let seed = 12345;
function random(n: number, alphabet: string): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    s += alphabet.charAt((seed >> 8) % alphabet.length);
  }
  return s;
}

const engines = { 're2 (re2js)': re2, RegExp: jsRegExp } as const;
console.log(`node ${process.version}; per-value limit: program size × (length + 1) ≤ ${MAX_MATCH_COST}\n`);

for (const [name, compile] of Object.entries(engines)) {
  perCall((i) => compile(`${typicalPatterns[i % 8] ?? ''}|w${i}`), 500); // warm-up
  const compileMs = perCall((i) => compile(`${typicalPatterns[i % 8] ?? ''}|x${i}`), 3000);
  const matchers = typicalPatterns.map(compile);
  let hits = 0;
  const count = (i: number) => {
    if ((matchers[i % 8] as (v: string) => boolean)(typicalValues[(i >> 3) % 8] ?? '')) hits++;
  };
  perCall(count, 200_000);
  const matchMs = perCall(count, 1_000_000);
  console.log(`${name.padEnd(12)} compile ${fmt(compileMs)} per pattern; typical match ${fmt(matchMs)} (${hits} hits)`);
}

console.log('\n(a+)+ against a × n + "!" (no match):');
const catastrophicRe2 = re2('(a+)+');
for (const n of [26, 4096, 10_000, 1_000_000]) {
  const value = `${'a'.repeat(n)}!`;
  const first = once(() => catastrophicRe2(value));
  const later = Array.from({ length: 5 }, () => once(() => catastrophicRe2(value)).ms).sort((a, b) => a - b)[2] ?? 0;
  console.log(
    `  re2     n = ${String(n).padStart(7)}: ${fmt(later).padStart(9)}, first call ${fmt(first.ms)}  (${String(first.result)})`,
  );
}
const catastrophicJs = jsRegExp('(a+)+');
for (let n = 16; n <= 40; n += 2) {
  const { ms, result } = once(() => catastrophicJs(`${'a'.repeat(n)}!`));
  console.log(`  RegExp  n = ${String(n).padStart(7)}: ${fmt(ms).padStart(9)}  (${String(result)})`);
  if (ms > REGEXP_LIMIT_MS) {
    console.log(`  RegExp  stopped: each further "a" doubles that; n = 4096 would not finish`);
    break;
  }
}

console.log('\nDFA-hostile [ab]*a[ab]{k} against random a/b values of the longest length allowed (10 values each):');
for (const k of [20, 120, 500, 1000]) {
  const pattern = compilePattern(`[ab]*a[ab]{${k}}`);
  const length = pattern.maxValueLength;
  const times = Array.from({ length: 10 }, () => {
    const value = random(length, 'ab');
    return once(() => pattern.matches(value)).ms;
  });
  const [first = 0, ...rest] = times;
  console.log(
    `  k = ${String(k).padStart(4)}: program ${String(pattern.programSize).padStart(4)}, values of ` +
      `${String(length).padStart(4)} characters: worst ${fmt(Math.max(...rest))} (first ${fmt(first)})`,
  );
}

const body = Array.from(
  { length: 2000 },
  (_, i) =>
    `http_requests_total{pod="web-${(i * 7919).toString(36)}-${i % 7}",code="${[200, 404, 503][i % 3] ?? 200}"} ${i}`,
).join('\n');
const samples = parseExposition(body);
const selector = parseSelector('http_requests_total{pod=~"web-.*-[0-3]",code=~"2.."}', 'bench');
selectSamples(samples, selector);
const selectMs = perCall(() => selectSamples(samples, selector), 200);
console.log(`\nselectSamples, 2 000 series, two =~ matchers: ${fmt(selectMs)} per selection`);

const gc = (globalThis as { gc?: () => void }).gc;
if (gc) {
  gc();
  const before = process.memoryUsage().heapUsed;
  const keep = Array.from({ length: 1000 }, (_, i) => {
    const m = re2(`${typicalPatterns[i % 8] ?? ''}|y${i}`);
    m(typicalValues[i % 8] ?? '');
    return m;
  });
  gc();
  const after = process.memoryUsage().heapUsed;
  console.log(`heap for ${keep.length} compiled, used patterns: ${((after - before) / 1048576).toFixed(1)} MiB`);
} else {
  console.log('(run with --expose-gc for the memory line)');
}

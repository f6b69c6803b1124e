#!/usr/bin/env node
// record_roundtrip.js - records written by node's JSON.stringify, with the
// values the C decoder must find in them. Same output protocol as
// record_roundtrip.py (pairs of lines: the record, then "D k=v ...",
// "R <reason>" or "S <n>"); run by tests/unit/test_record.c via popen.
// Deterministic (seeded PRNG). JSON.stringify never escapes non-ASCII, but
// escapes lone surrogates as \udXXX (well-formed JSON.stringify), which the
// decoder must reject as bad_utf8.
'use strict';

const DEFAULT_SERVICE = 'default-svc';
const FIELDS = ['ts', 'service', 'model', 'provider', 'version', 'latency_ms', 'ttft_ms',
  'status', 'error_type', 'input_tokens', 'output_tokens', 'cost_usd',
  'metrics', 'labels', 'embedding', 'request_id'];
const BIT = {};
FIELDS.forEach((f, i) => { BIT[f] = 2 ** (i + 1); });

let seed = 0x9e3779b9;
function rand() { // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randint = (a, b) => a + Math.floor(rand() * (b - a + 1));
const choice = (xs) => xs[Math.floor(rand() * xs.length)];
const maybe = (p = 0.7) => rand() < p;

const hx = (s) => Buffer.from(s, 'utf8').toString('hex');
function dbits(v) {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(v);
  return b.toString('hex');
}
const bytecmp = (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

const ALPHABET = ['a', 'b', 'z', '0', '-', '_', ' ', '/', '"', '\\', '\n', '\t', '\u0001', '\u001f',
  '\u007f', 'é', 'ß', '€', '中', '\u2028', '\uffff', '😀', '𝄞', '\u{10ffff}', 'x', 'y', 'k', 'q'];

function rstr(maxlen) {
  const n = randint(0, maxlen);
  let out = '';
  while (Buffer.byteLength(out) < n) out += choice(ALPHABET);
  while (Buffer.byteLength(out) > maxlen) out = Array.from(out).slice(0, -1).join('');
  return out;
}

function rfloat() {
  switch (randint(0, 6)) {
    case 0: return randint(0, 100000);
    case 1: return rand();
    case 2: return rand() * 10 ** randint(-30, 30);
    case 3: return Math.round(rand() * 50000) / 10;
    case 4: return 5e-324 * randint(1, 10);
    case 5: return 1.7976931348623157e308 * rand();
    default: return randint(0, 2 ** 30) * 2 ** randint(0, 23);
  }
}

function rts() {
  const ms = randint(0, 4102444800000);
  if (maybe(0.5)) return [ms, ms];
  return [new Date(ms).toISOString(), ms]; // YYYY-MM-DDTHH:MM:SS.sssZ
}

function shuffled(obj) {
  const keys = Object.keys(obj);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [keys[i], keys[j]] = [keys[j], keys[i]];
  }
  const out = {};
  for (const k of keys) out[k] = obj[k];
  return out;
}

const lines = [];
function emit(rec, expect) {
  const space = maybe(0.5) ? undefined : choice([1, '\t']);
  // indent would break the one-line framing; use it only on the values' own
  // level by replacing newlines, which JSON.stringify never emits inside strings
  let text = JSON.stringify(shuffled(rec), null, space);
  if (space !== undefined) text = text.replace(/\n/g, ' ');
  lines.push(text, expect);
}

function goodRecord() {
  const rec = {};
  const exp = [];
  let present = 0;
  if (maybe()) {
    const [v, ms] = rts();
    rec.ts = v;
    present |= BIT.ts;
    exp.push(`ts=${ms}`);
  }
  let service = null;
  if (maybe(0.8)) {
    service = rstr(40) || 's';
    rec.service = service;
    present |= BIT.service;
  } else if (maybe(0.5)) {
    rec.service = choice([null, '']);
  }
  exp.push('service=' + hx(service !== null ? service : DEFAULT_SERVICE));
  for (const f of ['model', 'provider', 'version', 'error_type', 'request_id']) {
    if (maybe()) {
      const v = rstr(choice([8, 40, 256]));
      rec[f] = v;
      present |= BIT[f];
      exp.push(`${f}=${hx(v)}`);
    } else if (maybe(0.3)) rec[f] = null;
  }
  for (const f of ['latency_ms', 'ttft_ms', 'cost_usd']) {
    if (maybe()) {
      const v = rfloat();
      rec[f] = v;
      present |= BIT[f];
      exp.push(`${f}=${dbits(v)}`);
    }
  }
  if (maybe()) {
    const st = choice(['ok', 'error']);
    rec.status = st;
    present |= BIT.status;
    exp.push('status=' + st);
  }
  for (const f of ['input_tokens', 'output_tokens']) {
    if (maybe()) {
      const v = choice([0, randint(1, 5000), 2 ** 53, 1e19]);
      rec[f] = v;
      present |= BIT[f];
      exp.push(`${f}=${BigInt(v)}`);
    }
  }
  if (maybe()) {
    const m = {};
    for (let i = randint(0, 8); i > 0; i--) m[rstr(20)] = choice([rfloat(), -rfloat(), randint(-5, 5)]);
    if (maybe(0.3)) m.dropped_null = null;
    rec.metrics = m;
    present |= BIT.metrics;
    const kept = Object.entries(m).filter(([, v]) => v !== null).sort((a, b) => bytecmp(a[0], b[0]));
    // JSON.stringify(-0) is "0"
    exp.push('metrics=' + kept.map(([k, v]) => `${hx(k)}:${dbits(v === 0 ? 0 : v)}`).join(','));
  }
  if (maybe()) {
    const lab = {};
    for (let i = randint(0, 6); i > 0; i--) lab[rstr(64)] = rstr(choice([10, 256]));
    if (maybe(0.3)) lab.n = choice([3, -7, 2.5, 1e21, true, false]);
    if (maybe(0.3)) lab.gone = null;
    rec.labels = lab;
    present |= BIT.labels;
    const kept = Object.entries(lab).filter(([, v]) => v !== null)
      .map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])
      .sort((a, b) => bytecmp(a[0], b[0]));
    exp.push('labels=' + kept.map(([k, v]) => `${hx(k)}:${hx(v)}`).join(','));
  }
  if (maybe()) {
    const e = [];
    for (let i = choice([0, 1, 3, 16, 100]); i > 0; i--) e.push((rand() - 0.5) * 0.6);
    rec.embedding = e;
    present |= BIT.embedding;
    exp.push('embedding=' + e.map(dbits).join(','));
  }
  if (maybe(0.3)) rec.x_unknown = choice([null, 1, 's', [1, { a: [null, true] }], { k: { k: [] } }]);
  return [rec, `D present=${present} ${exp.join(' ')}`];
}

for (let i = 0; i < 1000; i++) emit(...goodRecord());
for (const n of [0, 7, 2 ** 53]) emit({ sync: n }, `S ${n}`);
const base = { service: 'svc', latency_ms: 1.5 };
const bad = [
  [{ ...base, latency_ms: '812' }, 'bad_type'],
  [{ ...base, labels: ['a'] }, 'bad_type'],
  [{ ...base, embedding: [1, null] }, 'bad_type'],
  [{ ...base, status: 'maybe' }, 'bad_status'],
  [{ ...base, ts: 'yesterday' }, 'bad_timestamp'],
  [{ ...base, model: 'x\ud800y' }, 'bad_utf8'],
  [{ ...base, request_id: '\udfff' }, 'bad_utf8'],
  [{ ...base, labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }, 'too_many_labels'],
  [{ ...base, labels: { ['k'.repeat(65)]: 'v' } }, 'field_too_long'],
  [{ ...base, metrics: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, i])) }, 'too_many_metrics'],
  [{ ...base, embedding: new Array(4097).fill(0.5) }, 'embedding_too_long'],
  [{ ...base, latency_ms: -1 }, 'out_of_range'],
  [{ ...base, input_tokens: 1.5 }, 'out_of_range'],
  [{ ...base, output_tokens: 1e20 }, 'out_of_range'],
  [{ sync: -1 }, 'bad_type'],
];
for (const [rec, reason] of bad) {
  emit(rec, 'R ' + reason);
  emit(...goodRecord());
}
process.stdout.write(lines.join('\n') + '\n');

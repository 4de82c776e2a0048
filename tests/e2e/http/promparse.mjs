// A strict parser of the Prometheus text exposition format 0.0.4, for aoqd's /metrics.
// Reads the exposition on stdin; exits 1 naming the first violation, or prints a JSON object
// {"name{label=\"v\",...}": value} of every sample (labels in the order given) on stdout.
// Checked: line grammar (metric and label names, label value escapes, float values), HELP/TYPE
// at most once per family and before its samples, families contiguous, every sample of a
// declared family, no repeated series, counters >= 0, histogram buckets with increasing le,
// cumulative counts, a +Inf bucket equal to _count, and a _sum.
import { readFileSync } from 'node:fs';

const text = readFileSync(0, 'utf8');
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
function die(line, msg) {
  console.error(`promparse: line ${line}: ${msg}`);
  process.exit(1);
}
function parseValue(s, ln) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) die(ln, `bad value '${s}'`);
  return Number(s);
}

const types = new Map(), helps = new Set(), done = new Set(), series = new Map(), out = {};
let current = null;
if (!text.endsWith('\n')) die(0, 'the exposition must end with a newline');
const lines = text.slice(0, -1).split('\n');
function familyOf(name) {
  for (const suf of ['_bucket', '_sum', '_count']) {
    const base = name.endsWith(suf) ? name.slice(0, -suf.length) : null;
    if (base && types.get(base) === 'histogram') return base;
  }
  return name;
}
function enter(fam, ln) {
  if (fam === current) return;
  if (done.has(fam)) die(ln, `family ${fam} is not contiguous`);
  if (current) done.add(current);
  current = fam;
}
lines.forEach((line, i) => {
  const ln = i + 1;
  if (line === '') return;
  if (line.startsWith('#')) {
    const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (!m) return; // a plain comment
    const [, kw, name, rest] = m;
    if (!NAME.test(name)) die(ln, `bad metric name '${name}'`);
    enter(name, ln);
    if (kw === 'HELP') {
      if (helps.has(name)) die(ln, `second HELP for ${name}`);
      if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) die(ln, 'bad escape in HELP');
      helps.add(name);
    } else {
      if (types.has(name)) die(ln, `second TYPE for ${name}`);
      if (!TYPES.has(rest)) die(ln, `unknown type '${rest}'`);
      if (series.has(name)) die(ln, `TYPE for ${name} after its samples`);
      types.set(name, rest);
    }
    return;
  }
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
  if (!m) die(ln, `not a sample line: '${line}'`);
  const [, name, , lbody, vstr] = m;
  const labels = [];
  if (lbody !== undefined && lbody !== '') {
    let s = lbody;
    for (;;) {
      const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/.exec(s);
      if (!lm) die(ln, `bad label syntax in '${lbody}'`);
      if (!LABEL.test(lm[1]) || lm[1].startsWith('__')) die(ln, `bad label name '${lm[1]}'`);
      if (labels.some(([k]) => k === lm[1])) die(ln, `repeated label '${lm[1]}'`);
      labels.push([lm[1], lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c))]);
      s = s.slice(lm[0].length);
      if (s === '') break;
      if (s[0] !== ',') die(ln, `expected ',' in labels '${lbody}'`);
      s = s.slice(1);
      if (s === '') break; // a trailing comma is allowed
    }
  }
  const v = parseValue(vstr, ln);
  const fam = familyOf(name);
  if (!types.has(fam)) die(ln, `sample ${name} without a TYPE line`);
  enter(fam, ln);
  const type = types.get(fam);
  if (type === 'counter' && !(v >= 0)) die(ln, `counter ${name} is ${v}`);
  if (type === 'histogram' && name === fam) die(ln, `histogram ${fam} sample without a suffix`);
  const key = name + '{' + labels.map(([k, x]) => `${k}=${JSON.stringify(x)}`).join(',') + '}';
  if (Object.prototype.hasOwnProperty.call(out, key)) die(ln, `repeated series ${key}`);
  out[key] = v;
  if (!series.has(fam)) series.set(fam, []);
  series.get(fam).push({ name, labels, v, ln });
});

for (const [fam, type] of types) {
  if (type !== 'histogram') continue;
  const ss = series.get(fam) || [];
  const groups = new Map();
  for (const s of ss) {
    const rest = s.labels.filter(([k]) => k !== 'le');
    const g = JSON.stringify(rest);
    if (!groups.has(g)) groups.set(g, { buckets: [], sum: null, count: null });
    const G = groups.get(g);
    if (s.name === fam + '_bucket') {
      const le = s.labels.find(([k]) => k === 'le');
      if (!le) die(s.ln, `${fam}_bucket without le`);
      G.buckets.push([parseValue(le[1], s.ln), s.v, s.ln]);
    } else if (s.name === fam + '_sum') G.sum = s.v;
    else G.count = s.v;
  }
  for (const G of groups.values()) {
    if (G.sum === null || G.count === null) die(0, `histogram ${fam} lacks _sum or _count`);
    const b = G.buckets;
    if (!b.length || b[b.length - 1][0] !== Infinity) die(0, `histogram ${fam} lacks le="+Inf"`);
    for (let k = 1; k < b.length; k++) {
      if (!(b[k][0] > b[k - 1][0])) die(b[k][2], `${fam}: le not increasing`);
      if (b[k][1] < b[k - 1][1]) die(b[k][2], `${fam}: bucket counts not cumulative`);
    }
    if (b[b.length - 1][1] !== G.count) die(0, `${fam}: +Inf bucket ${b[b.length - 1][1]} != _count ${G.count}`);
  }
}
console.log(JSON.stringify(out));

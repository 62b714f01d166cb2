import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import {
  ExpositionError,
  parseExposition,
  parseSampleValue,
  parseSelector,
  selectSamples,
} from '../../../src/scalers/exposition.ts';

const FIELD = 'spec.triggers[0].metadata.valueLocation';

const text = [
  '# HELP http_requests_total The total number of HTTP requests.',
  '# TYPE http_requests_total counter',
  'http_requests_total{method="post",code="200"} 1027 1395066363000',
  'http_requests_total{method="post",code="400"}    3 1395066363000',
  'http_requests_total{method="get",code="200",} 5',
  '',
  '  # indented comment',
  'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9',
  'metric_without_timestamp_and_labels 12.47',
  'something_weird{problem="division by zero"} +Inf -3982045',
  'go_gc_duration_seconds{quantile="0.5"} NaN',
  'negative -Inf',
  'ws_around {a="b"} 2',
  'with_exemplar_total{a="x"} 4 # {trace_id="abc"} 1.0',
  '{"my.dotted.metric", "some.label"="v"} 7',
  'crlf 9\r',
  '# EOF',
].join('\n');

describe('parseExposition', () => {
  const samples = parseExposition(text);

  it('reads every sample line, in order', () => {
    expect(samples.map((s) => s.name)).toEqual([
      'http_requests_total',
      'http_requests_total',
      'http_requests_total',
      'msdos_file_access_time_seconds',
      'metric_without_timestamp_and_labels',
      'something_weird',
      'go_gc_duration_seconds',
      'negative',
      'ws_around',
      'with_exemplar_total',
      'my.dotted.metric',
      'crlf',
    ]);
  });

  it('reads labels, values and timestamps', () => {
    expect(samples[0]).toEqual({
      name: 'http_requests_total',
      labels: { method: 'post', code: '200' },
      value: 1027,
      timestamp: 1395066363000,
    });
    expect(samples[1]?.value).toBe(3);
    expect(samples[2]).toEqual({ name: 'http_requests_total', labels: { method: 'get', code: '200' }, value: 5 });
    expect(samples[3]?.labels).toEqual({ path: 'C:\\DIR\\FILE.TXT', error: 'Cannot find file:\n"FILE.TXT"' });
    expect(samples[3]?.value).toBe(1.458255915e9);
    expect(samples[4]).toEqual({ name: 'metric_without_timestamp_and_labels', labels: {}, value: 12.47 });
    expect(samples[5]?.value).toBe(Infinity);
    expect(samples[5]?.timestamp).toBe(-3982045);
    expect(samples[6]?.value).toBeNaN();
    expect(samples[7]?.value).toBe(-Infinity);
    expect(samples[8]).toEqual({ name: 'ws_around', labels: { a: 'b' }, value: 2 });
    expect(samples[9]).toEqual({ name: 'with_exemplar_total', labels: { a: 'x' }, value: 4 });
    expect(samples[10]).toEqual({ name: 'my.dotted.metric', labels: { 'some.label': 'v' }, value: 7 });
    expect(samples[11]?.value).toBe(9);
  });

  it('accepts an empty body (no samples)', () => {
    expect(parseExposition('')).toEqual([]);
    expect(parseExposition('# only comments\n\n')).toEqual([]);
  });

  it('labels are plain data: __proto__ is an ordinary label', () => {
    const [s] = parseExposition('m{__proto__="x"} 1');
    expect(s?.labels['__proto__']).toBe('x');
    expect(Object.getPrototypeOf(s?.labels)).toBeNull();
  });

  const rejected = [
    { comment: 'no value', line: 'tok3n_metric' },
    { comment: 'no value after labels', line: 'tok3n_metric{a="tok3n_b"}' },
    { comment: 'value glued to labels', line: 'tok3n_metric{a="tok3n_b"}1' },
    { comment: 'non-numeric value', line: 'tok3n_metric 12abc' },
    { comment: 'value "1,5"', line: 'tok3n_metric 1,5' },
    { comment: 'unquoted label value', line: 'tok3n_metric{a=b} 1' },
    { comment: 'unterminated label value', line: 'tok3n_metric{a="tok3n_b} 1' },
    { comment: 'unterminated label set', line: 'tok3n_metric{a="tok3n_b" 1' },
    { comment: 'bad escape', line: 'tok3n_metric{a="tok3n\\x"} 1' },
    { comment: 'repeated label', line: 'tok3n_metric{a="1",a="2"} 1' },
    { comment: 'label name starting with a digit', line: 'tok3n_metric{1a="1"} 1' },
    { comment: 'name starting with a digit', line: '1tok3n_metric 1' },
    { comment: 'invalid timestamp', line: 'tok3n_metric 1 abc' },
    { comment: 'text after the timestamp', line: 'tok3n_metric 1 2 3' },
    { comment: 'HTML', line: '<html><body>502 Bad Gateway</body></html>' },
    { comment: 'JSON', line: '{"value": 3}' },
    { comment: 'labels without a name', line: '{a="tok3n_b"} 1' },
  ];
  it.each(rejected)('rejects: $comment', ({ line }) => {
    expect(() => parseExposition(`ok 1\n${line}\n`)).toThrow(ExpositionError);
    try {
      parseExposition(`ok 1\n${line}\n`);
    } catch (err) {
      expect((err as ExpositionError).line).toBe(2);
      expect((err as ExpositionError).message).toMatch(/^line 2: /);
      // The server wrote the line: nothing of it is quoted (the metric name, label names and values, the value).
      expect((err as ExpositionError).message).not.toMatch(/tok3n|12abc|1,5|abc|Bad Gateway|"value"/);
    }
  });
});

describe('parseSampleValue', () => {
  it.each([
    ['1', 1],
    ['-1.5', -1.5],
    ['+2', 2],
    ['1e3', 1000],
    ['.5', 0.5],
    ['5.', 5],
    ['0x10', 16],
    ['+Inf', Infinity],
    ['-Inf', -Infinity],
    ['inf', Infinity],
  ])('%s → %d', (token, value) => {
    expect(parseSampleValue(token)).toBe(value);
  });
  it('NaN', () => {
    expect(parseSampleValue('NaN')).toBeNaN();
  });
  it.each(['', 'abc', '1,5', '1e', '--1', '1.2.3', 'Infinit'])('rejects %j', (token) => {
    expect(parseSampleValue(token)).toBeUndefined();
  });
});

describe('parseSelector', () => {
  const accepted = [
    { comment: 'name only', text: 'up', expect: { name: 'up', matchers: [] } },
    {
      comment: 'equality matchers',
      text: 'http_requests_total{code="200", method="get"}',
      expect: {
        name: 'http_requests_total',
        matchers: [
          { label: 'code', op: '=', value: '200' },
          { label: 'method', op: '=', value: 'get' },
        ],
      },
    },
    {
      comment: 'every operator, trailing comma, spaces',
      text: ' m { a = "1", b != "2", c =~ "3.*", d !~ "4|5", } ',
      expect: {
        name: 'm',
        matchers: [
          { label: 'a', op: '=', value: '1' },
          { label: 'b', op: '!=', value: '2' },
          { label: 'c', op: '=~', value: '3.*' },
          { label: 'd', op: '!~', value: '4|5' },
        ],
      },
    },
    {
      comment: '__name__ matcher gives the name',
      text: '{__name__="m",a="1"}',
      expect: { name: 'm', matchers: [{ label: 'a', op: '=', value: '1' }] },
    },
    {
      comment: 'no name but a matcher that rejects the empty string',
      text: '{job="api"}',
      expect: { name: undefined, matchers: [{ label: 'job', op: '=', value: 'api' }] },
    },
    {
      comment: 'quoted (UTF-8) name',
      text: '{"my.metric", code="200"}',
      expect: { name: 'my.metric', matchers: [{ label: 'code', op: '=', value: '200' }] },
    },
    { comment: 'empty braces', text: 'm{}', expect: { name: 'm', matchers: [] } },
  ];
  it.each(accepted)('accepts: $comment', ({ text: selector, expect: want }) => {
    const parsed = parseSelector(selector, FIELD);
    expect(parsed.name).toBe(want.name);
    expect(parsed.matchers.map(({ label, op, value }) => ({ label, op, value }))).toEqual(want.matchers);
    for (const m of parsed.matchers) {
      // Regular expressions are compiled once, here.
      expect('pattern' in m).toBe(m.op === '=~' || m.op === '!~');
    }
    expect(parsed.text).toBe(selector.trim());
  });

  const rejected = [
    { comment: 'empty', text: '' },
    { comment: 'unterminated braces', text: 'm{a="1"' },
    { comment: 'unquoted value', text: 'm{a=1}' },
    { comment: 'unknown operator', text: 'm{a=="1"}' },
    { comment: 'bad regex', text: 'm{a=~"("}' },
    { comment: 'text after the selector', text: 'm{a="1"} 5' },
    { comment: 'range selector', text: 'm[5m]' },
    { comment: 'function call', text: 'rate(m[5m])' },
    { comment: 'matches everything', text: '{a=~".*"}' },
    { comment: 'name given twice', text: 'm{__name__="n"}' },
    { comment: 'name starting with a digit', text: '1m' },
    { comment: 'JSON path', text: 'metric.test' },
  ];
  it.each(rejected)('rejects: $comment', ({ text: selector }) => {
    expect(() => parseSelector(selector, FIELD)).toThrow(ValidationError);
    try {
      parseSelector(selector, FIELD);
    } catch (err) {
      expect((err as ValidationError).field).toBe(FIELD);
    }
  });
});

describe('selectSamples', () => {
  const samples = parseExposition(
    [
      'req_total{code="200",method="get"} 1',
      'req_total{code="200",method="post"} 2',
      'req_total{code="500",method="get"} 4',
      'req_total 8',
      'other_total{code="200"} 16',
    ].join('\n'),
  );
  const sum = (selector: string): number =>
    selectSamples(samples, parseSelector(selector, FIELD)).reduce((acc, s) => acc + s.value, 0);

  it.each([
    { selector: 'req_total', sum: 15 },
    { selector: 'req_total{code="200"}', sum: 3 },
    { selector: 'req_total{code!="200"}', sum: 12, comment: 'a missing label is "" and differs from 200' },
    { selector: 'req_total{code=""}', sum: 8, comment: 'a missing label matches the empty string' },
    { selector: 'req_total{code!=""}', sum: 7 },
    { selector: 'req_total{code=~"2.."}', sum: 3 },
    { selector: 'req_total{code=~"2"}', sum: 0, comment: 'regexes are anchored' },
    { selector: 'req_total{code!~"5.*"}', sum: 11 },
    { selector: 'req_total{code="200",method="post"}', sum: 2 },
    { selector: '{code="200"}', sum: 19 },
    { selector: '{__name__=~"req_.*",code="200"}', sum: 3 },
    { selector: 'missing_total', sum: 0 },
  ])('$selector → $sum', ({ selector, sum: want }) => {
    expect(sum(selector)).toBe(want);
  });
});

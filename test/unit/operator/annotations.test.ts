// Proves parseAnnotations: every key under KEDA's prefix and sluice's (sluice's wins when both are set), Go's
// strconv.ParseBool spellings, paused-replicas bounds (a whole number 0 … int32 max, implying paused), the
// hpa-excluded-labels list, and a ValidationError naming `metadata.annotations["<key>"]` for a value that does not
// parse; and anyPause.
import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import {
  KEDA_AUTOSCALING,
  KEDA_SCALEDOBJECT,
  SLUICE_AUTOSCALING,
  SLUICE_SCALEDOBJECT,
  anyPause,
  parseAnnotations,
  type ObjectAnnotations,
} from '../../../src/operator/annotations.ts';

const NONE: ObjectAnnotations = {
  pausedReplicas: undefined,
  paused: false,
  pausedScaleIn: false,
  pausedScaleOut: false,
  forceActivation: false,
  transferHpaOwnership: false,
  hpaExcludedLabels: [],
};

describe('prefixes', () => {
  test('the four prefixes', () => {
    expect([KEDA_AUTOSCALING, SLUICE_AUTOSCALING, KEDA_SCALEDOBJECT, SLUICE_SCALEDOBJECT]).toStrictEqual([
      'autoscaling.keda.sh/',
      'autoscaling.sluice.dev/',
      'scaledobject.keda.sh/',
      'scaledobject.sluice.dev/',
    ]);
  });
});

describe('parseAnnotations: accepted', () => {
  const booleans: { key: string; field: keyof ObjectAnnotations; prefixes: readonly [string, string] }[] = [
    { key: 'paused', field: 'paused', prefixes: ['autoscaling.keda.sh/', 'autoscaling.sluice.dev/'] },
    { key: 'paused-scale-in', field: 'pausedScaleIn', prefixes: ['autoscaling.keda.sh/', 'autoscaling.sluice.dev/'] },
    { key: 'paused-scale-out', field: 'pausedScaleOut', prefixes: ['autoscaling.keda.sh/', 'autoscaling.sluice.dev/'] },
    {
      key: 'force-activation',
      field: 'forceActivation',
      prefixes: ['autoscaling.keda.sh/', 'autoscaling.sluice.dev/'],
    },
    {
      key: 'transfer-hpa-ownership',
      field: 'transferHpaOwnership',
      prefixes: ['scaledobject.keda.sh/', 'scaledobject.sluice.dev/'],
    },
  ];
  const rows: { comment: string; annotations: Record<string, string> | undefined; want: Partial<ObjectAnnotations> }[] =
    [
      { comment: 'no annotations at all', annotations: undefined, want: {} },
      { comment: 'only unrelated annotations', annotations: { 'example.com/paused': 'true' }, want: {} },
      {
        comment: "a boolean under the wrong prefix is not read (paused is autoscaling's, not scaledobject's)",
        annotations: { 'scaledobject.keda.sh/paused': 'true', 'autoscaling.keda.sh/transfer-hpa-ownership': 'true' },
        want: {},
      },
      // every boolean key under both prefixes
      ...booleans.flatMap(({ key, field, prefixes }) =>
        prefixes.map((prefix) => ({
          comment: `${prefix}${key}: "true"`,
          annotations: { [`${prefix}${key}`]: 'true' },
          want: { [field]: true },
        })),
      ),
      // Go's strconv.ParseBool spellings
      ...['1', 't', 'T', 'TRUE', 'true', 'True'].map((value) => ({
        comment: `ParseBool true spelling "${value}"`,
        annotations: { 'autoscaling.keda.sh/paused-scale-in': value },
        want: { pausedScaleIn: true },
      })),
      ...['0', 'f', 'F', 'FALSE', 'false', 'False'].map((value) => ({
        comment: `ParseBool false spelling "${value}"`,
        annotations: { 'autoscaling.keda.sh/force-activation': value },
        want: { forceActivation: false },
      })),
      // sluice's prefix wins
      {
        comment: 'both prefixes, sluice says false: false',
        annotations: { 'autoscaling.keda.sh/paused': 'true', 'autoscaling.sluice.dev/paused': 'false' },
        want: { paused: false },
      },
      {
        comment: 'both prefixes, sluice says true: true',
        annotations: {
          'autoscaling.keda.sh/paused-scale-out': 'false',
          'autoscaling.sluice.dev/paused-scale-out': 'T',
        },
        want: { pausedScaleOut: true },
      },
      {
        comment: 'both prefixes, KEDA unparsable but sluice valid: sluice decides, no error',
        annotations: { 'autoscaling.keda.sh/force-activation': 'yes', 'autoscaling.sluice.dev/force-activation': '1' },
        want: { forceActivation: true },
      },
      {
        comment: 'paused-replicas under both prefixes: sluice wins',
        annotations: { 'autoscaling.keda.sh/paused-replicas': '5', 'autoscaling.sluice.dev/paused-replicas': '2' },
        want: { pausedReplicas: 2, paused: true },
      },
      {
        comment: 'hpa-excluded-labels under both prefixes: sluice wins (no merge)',
        annotations: {
          'scaledobject.keda.sh/hpa-excluded-labels': 'a,b',
          'scaledobject.sluice.dev/hpa-excluded-labels': 'c',
        },
        want: { hpaExcludedLabels: ['c'] },
      },
      // paused-replicas
      {
        comment: 'paused-replicas "3" (KEDA prefix): held at 3, implies paused',
        annotations: { 'autoscaling.keda.sh/paused-replicas': '3' },
        want: { pausedReplicas: 3, paused: true },
      },
      {
        comment: 'paused-replicas "3" (sluice prefix)',
        annotations: { 'autoscaling.sluice.dev/paused-replicas': '3' },
        want: { pausedReplicas: 3, paused: true },
      },
      {
        comment: 'paused-replicas "0" is a real 0 (not "unset")',
        annotations: { 'autoscaling.keda.sh/paused-replicas': '0' },
        want: { pausedReplicas: 0, paused: true },
      },
      {
        comment: 'paused-replicas at int32 max',
        annotations: { 'autoscaling.keda.sh/paused-replicas': '2147483647' },
        want: { pausedReplicas: 2_147_483_647, paused: true },
      },
      {
        comment: 'paused-replicas with leading zeros',
        annotations: { 'autoscaling.keda.sh/paused-replicas': '007' },
        want: { pausedReplicas: 7, paused: true },
      },
      {
        comment: 'paused-replicas wins over paused "false": still paused',
        annotations: { 'autoscaling.keda.sh/paused-replicas': '1', 'autoscaling.keda.sh/paused': 'false' },
        want: { pausedReplicas: 1, paused: true },
      },
      // hpa-excluded-labels
      {
        comment: 'hpa-excluded-labels: a comma list, trimmed',
        annotations: { 'scaledobject.keda.sh/hpa-excluded-labels': ' team , app.kubernetes.io/version,cost' },
        want: { hpaExcludedLabels: ['team', 'app.kubernetes.io/version', 'cost'] },
      },
      {
        comment: 'hpa-excluded-labels: empty items dropped',
        annotations: { 'scaledobject.sluice.dev/hpa-excluded-labels': ',a,, ,b,' },
        want: { hpaExcludedLabels: ['a', 'b'] },
      },
      {
        comment: 'hpa-excluded-labels: empty value, nothing excluded',
        annotations: { 'scaledobject.keda.sh/hpa-excluded-labels': '' },
        want: { hpaExcludedLabels: [] },
      },
      {
        comment: 'everything at once',
        annotations: {
          'autoscaling.keda.sh/paused-scale-in': 'true',
          'autoscaling.sluice.dev/paused-scale-out': 'true',
          'autoscaling.keda.sh/force-activation': 'true',
          'scaledobject.keda.sh/transfer-hpa-ownership': 'true',
          'scaledobject.keda.sh/hpa-excluded-labels': 'x',
        },
        want: {
          pausedScaleIn: true,
          pausedScaleOut: true,
          forceActivation: true,
          transferHpaOwnership: true,
          hpaExcludedLabels: ['x'],
        },
      },
    ];
  test.each(rows)('$comment', ({ annotations, want }) => {
    expect(parseAnnotations(annotations)).toStrictEqual({ ...NONE, ...want });
  });
});

describe('parseAnnotations: rejected, naming the annotation', () => {
  const rows: { comment: string; annotations: Record<string, string>; field: string; message: string }[] = [
    {
      comment: 'paused "yes" (KEDA would read it as true)',
      annotations: { 'autoscaling.keda.sh/paused': 'yes' },
      field: 'metadata.annotations["autoscaling.keda.sh/paused"]',
      message: 'must be "true" or "false", got "yes"',
    },
    {
      comment: 'paused-scale-in "" (empty is not a boolean)',
      annotations: { 'autoscaling.sluice.dev/paused-scale-in': '' },
      field: 'metadata.annotations["autoscaling.sluice.dev/paused-scale-in"]',
      message: 'must be "true" or "false", got ""',
    },
    {
      comment: 'paused-scale-out " true" (no trimming, as ParseBool)',
      annotations: { 'autoscaling.keda.sh/paused-scale-out': ' true' },
      field: 'metadata.annotations["autoscaling.keda.sh/paused-scale-out"]',
      message: 'got " true"',
    },
    {
      comment: 'force-activation "tRUE" (mixed case is not a ParseBool spelling)',
      annotations: { 'autoscaling.keda.sh/force-activation': 'tRUE' },
      field: 'metadata.annotations["autoscaling.keda.sh/force-activation"]',
      message: 'got "tRUE"',
    },
    {
      comment: 'transfer-hpa-ownership "on"',
      annotations: { 'scaledobject.keda.sh/transfer-hpa-ownership': 'on' },
      field: 'metadata.annotations["scaledobject.keda.sh/transfer-hpa-ownership"]',
      message: 'must be "true" or "false", got "on"',
    },
    {
      comment: 'sluice prefix unparsable, KEDA valid: the sluice one is read and named',
      annotations: { 'autoscaling.keda.sh/paused': 'true', 'autoscaling.sluice.dev/paused': 'maybe' },
      field: 'metadata.annotations["autoscaling.sluice.dev/paused"]',
      message: 'got "maybe"',
    },
    {
      comment: 'a long value is quoted to 40 characters',
      annotations: { 'autoscaling.keda.sh/paused': 'x'.repeat(100) },
      field: 'metadata.annotations["autoscaling.keda.sh/paused"]',
      message: `got "${'x'.repeat(40)}"`,
    },
    {
      comment: 'paused-replicas negative',
      annotations: { 'autoscaling.keda.sh/paused-replicas': '-1' },
      field: 'metadata.annotations["autoscaling.keda.sh/paused-replicas"]',
      message: 'must be a whole number of replicas (0 to 2147483647), got "-1"',
    },
    {
      comment: 'paused-replicas non-integer',
      annotations: { 'autoscaling.keda.sh/paused-replicas': '1.5' },
      field: 'metadata.annotations["autoscaling.keda.sh/paused-replicas"]',
      message: 'got "1.5"',
    },
    {
      comment: 'paused-replicas above int32 max',
      annotations: { 'autoscaling.sluice.dev/paused-replicas': '2147483648' },
      field: 'metadata.annotations["autoscaling.sluice.dev/paused-replicas"]',
      message: 'got "2147483648"',
    },
    {
      comment: 'paused-replicas empty',
      annotations: { 'autoscaling.keda.sh/paused-replicas': '' },
      field: 'metadata.annotations["autoscaling.keda.sh/paused-replicas"]',
      message: 'got ""',
    },
    {
      comment: 'paused-replicas with spaces',
      annotations: { 'autoscaling.keda.sh/paused-replicas': ' 2' },
      field: 'metadata.annotations["autoscaling.keda.sh/paused-replicas"]',
      message: 'got " 2"',
    },
    {
      comment: 'paused-replicas in exponent notation',
      annotations: { 'autoscaling.keda.sh/paused-replicas': '1e3' },
      field: 'metadata.annotations["autoscaling.keda.sh/paused-replicas"]',
      message: 'got "1e3"',
    },
    {
      comment: 'paused-replicas "true"',
      annotations: { 'autoscaling.keda.sh/paused-replicas': 'true' },
      field: 'metadata.annotations["autoscaling.keda.sh/paused-replicas"]',
      message: 'got "true"',
    },
  ];
  test.each(rows)('$comment', ({ annotations, field, message }) => {
    let caught: unknown;
    try {
      parseAnnotations(annotations);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const error = caught as ValidationError;
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`${field}: `)).toBe(true);
    expect(error.message).toContain(message);
  });
});

describe('anyPause', () => {
  const rows: { comment: string; annotations: Partial<ObjectAnnotations>; want: boolean }[] = [
    { comment: 'nothing', annotations: {}, want: false },
    { comment: 'paused', annotations: { paused: true }, want: true },
    { comment: 'paused-replicas (paused with a count)', annotations: { paused: true, pausedReplicas: 0 }, want: true },
    { comment: 'paused-scale-in', annotations: { pausedScaleIn: true }, want: true },
    { comment: 'paused-scale-out', annotations: { pausedScaleOut: true }, want: true },
    { comment: 'force-activation is not a pause', annotations: { forceActivation: true }, want: false },
    { comment: 'transfer-hpa-ownership is not a pause', annotations: { transferHpaOwnership: true }, want: false },
  ];
  test.each(rows)('$comment', ({ annotations, want }) => {
    expect(anyPause({ ...NONE, ...annotations })).toBe(want);
  });

  test('from parsed annotations: paused-replicas alone counts', () => {
    expect(anyPause(parseAnnotations({ 'autoscaling.keda.sh/paused-replicas': '0' }))).toBe(true);
  });
});

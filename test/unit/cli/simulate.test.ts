// Proves `sluice simulate`: the trace format (parseTrace), the replay (simulate) through the operator's decisions
// (activation, cooldown, idle, errors and fallback) and the HPA algorithm with the object's behavior, and the real CLI
// (spawned): the operator's validation first, `-o json` with one and with several triggers, and the charts.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { modelOf, parseTrace, simulate, type SimStep } from '../../../src/cli/simulate.ts';
import { validateScaledObject } from '../../../src/cli/validate.ts';
import { run } from '../../support/command.ts';

const EPOCH = new Date(0);

/** A ScaledObject with one prometheus trigger (target 10 per replica, activation 0) and `spec` merged in. */
function scaledObject(spec: Record<string, unknown> = {}, annotations?: Record<string, string>) {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'worker', ...(annotations === undefined ? {} : { annotations }) },
    spec: {
      scaleTargetRef: { name: 'worker' },
      minReplicaCount: 0,
      maxReplicaCount: 10,
      pollingInterval: 2,
      cooldownPeriod: 20,
      triggers: [
        {
          type: 'prometheus',
          name: 'load',
          metadata: { serverAddress: 'http://prom:9090', query: 'up', threshold: '10', activationThreshold: '0' },
        },
      ],
      ...spec,
    },
  };
}

/** The replay of `rows` ("t,value" with empty = failed) as [t, replicas] at every recorded step. */
function replay(raw: unknown, rows: string, hpaSyncS = 15, initialReplicas?: number): [number, number][] {
  const model = modelOf(raw, EPOCH);
  const trace = parseTrace(`t,load\n${rows}`, model.triggers);
  return simulate(model, trace, { hpaSyncS, initialReplicas }).map((s) => [s.t, s.replicas]);
}

function at(steps: [number, number][], t: number): number | undefined {
  return steps.filter(([s]) => s <= t).at(-1)?.[1];
}

describe('parseTrace', () => {
  const triggers = [
    { column: 'queue', index: 0 },
    { column: '1', index: 1 },
  ];
  test('columns by name or index, in any order; empty cells are failed reads; comments and blank lines skipped', () => {
    expect(parseTrace('# a burst\nt,1,queue\n\n0,5,1\n2.5,,7\n', triggers)).toEqual([
      { t: 0, values: [1, 5] },
      { t: 2.5, values: [7, undefined] },
    ]);
    expect(parseTrace('t,0,1\n0,3,4\n', triggers)).toEqual([{ t: 0, values: [3, 4] }]);
  });
  const bad: { comment: string; text: string; message: RegExp }[] = [
    { comment: 'empty', text: '', message: /^trace: is empty/ },
    { comment: 'first column not t', text: 'time,queue,1\n', message: /^trace line 1: the first column must be "t"/ },
    { comment: 'a trigger without column', text: 't,queue\n0,1\n', message: /no column for spec\.triggers\[1\]/ },
    { comment: 'a column naming no trigger', text: 't,queue,1,other\n', message: /column "other" names no trigger/ },
    { comment: 'no rows', text: 't,queue,1\n', message: /^trace: has a header but no rows/ },
    { comment: 't not increasing', text: 't,queue,1\n5,1,1\n5,2,2\n', message: /^trace line 3: t must increase/ },
    { comment: 'not a number', text: 't,queue,1\n0,abc,1\n', message: /"abc" in column "queue" is not a number/ },
  ];
  test.each(bad)('refused: $comment', ({ text, message }) => {
    expect(() => parseTrace(text, triggers)).toThrow(message);
  });
});

describe('simulate: the operator’s decisions', () => {
  test('activation from zero by sluice, then the HPA (no behavior: max(2 × replicas, 4) per sync)', () => {
    const steps = replay(scaledObject(), '0,0\n5,100\n45,100');
    expect(at(steps, 4)).toBe(0);
    expect(at(steps, 5)).toBe(1); // scale-from-zero, at the read that saw the work
    expect(at(steps, 15)).toBe(4); // first HPA sync after: 1 → 4
    expect(at(steps, 30)).toBe(8);
    expect(at(steps, 45)).toBe(10); // ceil(100 / 10), within max 10
  });

  test('back to zero after the cooldown (strictly after 20 s), whatever the HPA’s window', () => {
    const steps = replay(scaledObject(), '0,50\n10,0\n40,0', 15, 5);
    expect(at(steps, 30)).toBe(5);
    expect(at(steps, 31)).toBe(0);
  });

  test('idleReplicaCount: inactive goes to idle after the cooldown', () => {
    const steps = replay(scaledObject({ idleReplicaCount: 0, minReplicaCount: 2 }), '0,50\n10,0\n40,0', 15, 5);
    expect(at(steps, 30)).toBe(5);
    expect(at(steps, 31)).toBe(0);
  });

  test('idleReplicaCount above 0 flaps: the HPA scales back to min at each sync (why KEDA supports only 0)', () => {
    const steps = replay(scaledObject({ idleReplicaCount: 1, minReplicaCount: 3 }), '0,0\n31,0', 15, 5);
    expect([0, 1, 14, 15, 16, 29, 30].map((t) => at(steps, t))).toEqual([5, 1, 1, 3, 1, 1, 3]);
  });

  test('an empty cell is an error, never 0: at zero it holds, above zero the HPA holds', () => {
    const steps = replay(scaledObject(), '0,\n60,', 15, 0);
    expect(steps.every(([, r]) => r === 0)).toBe(true);
    const model = modelOf(scaledObject(), EPOCH);
    const held = simulate(model, parseTrace('t,load\n0,\n60,', model.triggers), { hpaSyncS: 15, initialReplicas: 6 });
    expect(held.every((s) => s.replicas === 6)).toBe(true); // read as 0 it would go to 0 after the cooldown
    expect(held.at(-1)?.reason).toMatch(/invalid metrics/);
  });

  test('fallback engages after failureThreshold × pollingInterval and activates to fallback.replicas', () => {
    const raw = scaledObject({ fallback: { failureThreshold: 3, replicas: 6 } });
    const steps = replay(raw, '0,\n30,', 15, 0);
    expect(at(steps, 5)).toBe(0); // 3 × 2 s not yet passed
    expect(at(steps, 6)).toBe(6); // the executor activates straight to the fallback count
    expect(at(steps, 30)).toBe(6); // the HPA reads the synthetic value: stays at 6
  });

  test('the object’s behavior: scale up 100 % per 5 s, scale down after 30 s (sync 5 s)', () => {
    const raw = scaledObject({
      minReplicaCount: 1,
      advanced: {
        horizontalPodAutoscalerConfig: {
          behavior: {
            scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Percent', value: 100, periodSeconds: 5 }] },
            scaleDown: { stabilizationWindowSeconds: 30 },
          },
        },
      },
    });
    const steps = replay(raw, '0,80\n20,10\n70,10', 5, 1);
    // Up: 1 → 2 → 4 → 8 (ceil 80 / 10); down: the last recommendation of 8 (at 15 s) leaves the window at 45 s.
    expect([0, 5, 10, 15, 40, 45].map((t) => at(steps, t))).toEqual([2, 4, 8, 8, 8, 1]);
  });

  test('the controller’s flags: a downscale window of 30 s instead of 300 s, a tolerance of 0.5', () => {
    const model = modelOf(scaledObject({ minReplicaCount: 1 }), EPOCH);
    const trace = parseTrace('t,load\n0,100\n15,10\n90,10', model.triggers);
    const last = (flags?: { downscaleStabilizationS?: number; tolerance?: number }) =>
      simulate(model, trace, { hpaSyncS: 15, initialReplicas: 10, flags }).at(-1)?.replicas;
    expect(last()).toBe(10); // the 300 s window still holds the 10 of t = 0
    expect(last({ downscaleStabilizationS: 30 })).toBe(1);
    // 14 at 1 replica with target 10: the ratio 1.4 leaves a tolerance of 0.1 (→ 2), not one of 0.5 (→ 1)
    const ten = parseTrace('t,load\n0,14\n15,14', model.triggers);
    expect(simulate(model, ten, { hpaSyncS: 15, initialReplicas: 1 }).at(-1)?.replicas).toBe(2);
    expect(simulate(model, ten, { hpaSyncS: 15, initialReplicas: 1, flags: { tolerance: 0.5 } }).at(-1)?.replicas).toBe(
      1,
    );
  });

  test('paused-scale-out: the HPA’s scaleUp is Disabled (as the operator writes it)', () => {
    const raw = scaledObject({ minReplicaCount: 1 }, { 'autoscaling.sluice.dev/paused-scale-out': 'true' });
    const steps = replay(raw, '0,100\n60,100', 15, 2);
    expect(steps.every(([, r]) => r === 2)).toBe(true);
  });

  test('what simulate does not model is refused naming the field', () => {
    expect(() => modelOf(scaledObject({}, { 'autoscaling.sluice.dev/paused': 'true' }), EPOCH)).toThrow(
      /^metadata\.annotations: the object is paused/,
    );
    const cpu = scaledObject({
      minReplicaCount: 1,
      triggers: [{ type: 'cpu', metricType: 'Utilization', metadata: { value: '50' } }],
    });
    expect(() => modelOf(cpu, EPOCH)).toThrow(/^spec\.triggers\[0\]\.type: cpu triggers cannot be simulated/);
  });
});

describe('sluice simulate (the real CLI)', { timeout: 30_000 }, () => {
  let dir: string;
  const file = (name: string): string => path.join(dir, name);
  const simulateCli = (args: string[]) => run(process.execPath, ['src/main.ts', 'simulate', ...args]);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-simulate-'));
    await writeFile(file('so.yaml'), JSON.stringify(scaledObject()));
    const two = scaledObject();
    two.spec.triggers.push({
      type: 'prometheus',
      name: 'other',
      metadata: { serverAddress: 'http://prom:9090', query: 'up', threshold: '5', activationThreshold: '0' },
    });
    await writeFile(file('two.yaml'), JSON.stringify(two));
    await writeFile(file('invalid.yaml'), JSON.stringify(scaledObject({ minReplicaCount: 20 })));
    await writeFile(file('trace.csv'), 't,load\n0,0\n5,100\n20,\n30,100\n');
    await writeFile(file('two.csv'), 't,load,other\n0,0,\n5,100,20\n');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('an invalid ScaledObject: the operator’s message (as validate prints it), exit 1', async () => {
    const r = await simulateCli(['-f', file('invalid.yaml'), '--trace', file('trace.csv')]);
    expect(r.code).toBe(1);
    const [message] = validateScaledObject(scaledObject({ minReplicaCount: 20 })).errors;
    expect(r.stdout).toBe(`${file('invalid.yaml')}: ScaledObject/worker: ${message ?? ''}\n`);
  });

  test('-o json: value is a number (null for a failed read) with one trigger', async () => {
    const r = await simulateCli(['-f', file('so.yaml'), '--trace', file('trace.csv'), '-o', 'json']);
    expect(r.code).toBe(0);
    const steps = JSON.parse(r.stdout) as (Omit<SimStep, 'values'> & { value: unknown })[];
    expect(Object.keys(steps[0] ?? {})).toEqual(['t', 'value', 'desiredReplicas', 'replicas', 'reason']);
    expect(steps.find((s) => s.t === 5)).toMatchObject({ value: 100, replicas: 1 });
    expect(steps.find((s) => s.t === 20)).toMatchObject({ value: null });
  });

  test('-o json: an object by column with several triggers', async () => {
    const r = await simulateCli(['-f', file('two.yaml'), '--trace', file('two.csv'), '-o', 'json']);
    expect(r.code).toBe(0);
    const steps = JSON.parse(r.stdout) as { t: number; value: unknown }[];
    expect(steps[0]?.value).toEqual({ load: 0, other: null });
    expect(steps.find((s) => s.t === 5)?.value).toEqual({ load: 100, other: 20 });
  });

  test('--out: an SVG and a PNG chart', async () => {
    const svg = await simulateCli(['-f', file('so.yaml'), '--trace', file('trace.csv'), '--out', file('c.svg')]);
    expect(svg.code).toBe(0);
    expect(svg.stdout).toMatch(/^t +load +desired +replicas +reason\n/);
    const text = await readFile(file('c.svg'), 'utf8');
    expect(text).toMatch(/^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(text).toContain('metric value');
    const png = await simulateCli(['-f', file('so.yaml'), '--trace', file('trace.csv'), '--out', file('c.png')]);
    expect(png.code).toBe(0);
    expect((await readFile(file('c.png'))).subarray(0, 8)).toEqual(
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    );
  });

  test('usage errors exit 2', async () => {
    const r = await simulateCli(['-f', file('so.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/-f and --trace are required/);
  });
});

// `sluice simulate` against the real HPA controller: one trace, replayed offline by simulate (`--hpa-sync 1`, the test
// environment's kube-controller-manager syncs every second) and driven for real into a RabbitMQ queue (publish and
// purge at the trace's moments) under a real ScaledObject, with the real kube-controller-manager scaling a Deployment
// (no kubelet: its pods stay Pending, which AverageValue targets do not mind). The ScaledObject sets an explicit
// behavior (scale up 2 pods per 3 s, scale down after a 5 s window by 50 % per 3 s), so the controller's flags do not
// matter. The Deployment's replicas, sampled five times a second, must go through the same counts as simulate's, each
// change within one HPA sync period plus the metric's own propagation (sluice reads the queue about once a second)
// of simulate's.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../support/command.ts';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

/** The trace: seconds and queue depth. Rate-limited scale up, a plateau, a held then rate-limited scale down. */
const TRACE: readonly (readonly [number, number])[] = [
  [0, 0],
  [3, 50],
  [18, 80],
  [30, 20],
  [45, 0],
  [55, 0],
];
const HPA_SYNC_S = 1;
/**
 * How far after simulate the real controller may change the count: one sync period, sluice's read of the queue
 * (about a second), the controller's request for the metric through the aggregator, and this test's 200 ms sampling.
 */
const LAG_S = HPA_SYNC_S + 1 + 1.5;
/** How far before simulate it may: only the sampling and the moment the trace's t = 0 was taken. */
const LEAD_S = 0.5;

interface Change {
  readonly t: number;
  readonly replicas: number;
}

/** The moments the count changes (the first entry is the starting count). */
function changes(samples: readonly Change[]): Change[] {
  return samples.filter((s, i) => i === 0 || s.replicas !== samples[i - 1]?.replicas);
}

describe('simulate e2e: the same trace through simulate and through the real HPA controller', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  let dir: string;
  const queue = uniqueName('e2e-sim');

  beforeAll(async () => {
    const kc = kubeConfig();
    sluice = await startSluice({ logName: 'sluice-simulate-e2e.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'simulate-e2e'));
    connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    channel = await connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: false });
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-simulate-e2e-'));
  });

  afterAll(async () => {
    await channel.deleteQueue(queue).catch(() => undefined);
    await connection.close().catch(() => undefined);
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('the Deployment goes through simulate’s replica counts, each change within a sync period and a read of simulate’s', async () => {
    const spec = {
      scaleTargetRef: { name: 'consumer' },
      minReplicaCount: 1,
      maxReplicaCount: 8,
      pollingInterval: 1,
      advanced: {
        horizontalPodAutoscalerConfig: {
          behavior: {
            scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Pods', value: 2, periodSeconds: 3 }] },
            scaleDown: { stabilizationWindowSeconds: 5, policies: [{ type: 'Percent', value: 50, periodSeconds: 3 }] },
          },
        },
      },
      triggers: [
        {
          type: 'rabbitmq',
          name: 'queue',
          // AMQP: a passive declare counts the queue's ready messages at once (the management API's statistics lag).
          metadata: { host: loadTestEnv().rabbitmq.amqpUrl, queueName: queue, mode: 'QueueLength', value: '10' },
        },
      ],
    };

    // simulate, offline, through the real CLI (JSON is YAML).
    const soFile = path.join(dir, 'scaledobject.yaml');
    const traceFile = path.join(dir, 'trace.csv');
    await writeFile(
      soFile,
      JSON.stringify({ apiVersion: 'sluice.dev/v1alpha1', kind: 'ScaledObject', metadata: { name: 'sim' }, spec }),
    );
    await writeFile(traceFile, `t,queue\n${TRACE.map(([t, v]) => `${t},${v}`).join('\n')}\n`);
    const simulated = await run(process.execPath, [
      'src/main.ts',
      'simulate',
      '-f',
      soFile,
      '--trace',
      traceFile,
      '--hpa-sync',
      String(HPA_SYNC_S),
      '-o',
      'json',
    ]);
    expect(simulated.stderr).toBe('');
    expect(simulated.code).toBe(0);
    const steps = JSON.parse(simulated.stdout) as { t: number; value: number; replicas: number }[];
    const expected = changes(steps.map((s) => ({ t: s.t, replicas: s.replicas })));
    // The trace makes the behavior show: 1 → 3 → 5 (2 pods per 3 s), → 7 → 8, then down 8 → 4 → 2 → 1.
    expect(expected.map((c) => c.replicas)).toEqual([1, 3, 5, 7, 8, 4, 2, 1]);

    // The real thing.
    await kit.createDeployment('consumer', 1);
    await kit.createScaledObject('sim', spec);
    // The HPA exists and has read the metric (0) once: from here the controller decides every second.
    await waitFor(
      async () => {
        const hpa = await kit.autoscaling.readNamespacedHorizontalPodAutoscaler({
          name: 'sluice-hpa-sim',
          namespace: kit.namespace,
        });
        return hpa.status?.conditions?.some((c) => c.type === 'ScalingActive' && c.status === 'True') === true;
      },
      { timeoutMs: 30_000, message: 'the HPA to read its metric (ScalingActive)' },
    );

    // Each rise of the trace is staged before t = 0: its messages published and taken (unacknowledged) by a channel
    // of their own, so they are not ready; at the rise, one nack of them all requeues them at once. Published at the
    // rise instead, a read in the middle of the publishing could show the HPA a count between the two.
    const rises = new Map<number, amqp.Channel>();
    let staged = 0;
    for (const [i, [t, value]] of TRACE.entries()) {
      const before = i === 0 ? 0 : (TRACE[i - 1]?.[1] ?? 0);
      if (value <= before) continue;
      const hold = await connection.createChannel();
      for (let n = 0; n < value - before; n++) channel.sendToQueue(queue, Buffer.from(`m${staged++}`));
      await channel.waitForConfirms();
      for (let n = 0; n < value - before; n++) expect(await hold.get(queue, { noAck: false })).not.toBe(false);
      rises.set(t, hold);
    }

    const t0 = Date.now();
    const last = TRACE.at(-1)?.[0] ?? 0;
    const samples: Change[] = [];
    const done = new AbortController();
    const recorder = (async () => {
      while (!done.signal.aborted) {
        samples.push({ t: (Date.now() - t0) / 1000, replicas: await kit.replicas('consumer') });
        await sleep(200);
      }
    })();
    let depth = 0;
    for (const [t, value] of TRACE) {
      await sleep(Math.max(0, t0 + t * 1000 - Date.now()));
      const hold = rises.get(t);
      if (hold !== undefined) {
        hold.nackAll(true);
      } else if (value < depth) {
        // A fall: purge, then publish what stays (a read in between shows less, which the scale-down window absorbs).
        await channel.purgeQueue(queue);
        for (let n = 0; n < value; n++) channel.sendToQueue(queue, Buffer.from(`r${n}`));
        await channel.waitForConfirms();
      }
      depth = value;
    }
    await sleep(Math.max(0, t0 + last * 1000 - Date.now()));
    done.abort();
    await recorder;

    const observed = changes(samples);
    expect(observed.map((c) => c.replicas)).toEqual(expected.map((c) => c.replicas));
    for (const [i, real] of observed.entries()) {
      if (i === 0) continue;
      const sim = expected[i];
      const lag = real.t - (sim?.t ?? NaN);
      expect(
        lag >= -LEAD_S && lag <= LAG_S,
        `change ${i} to ${real.replicas} at ${real.t.toFixed(1)} s, simulate at ${sim?.t ?? '?'} s`,
      ).toBe(true);
    }
  });
});

// `sluice explain` against the real control plane, broker and metrics API: one ScaledObject taken idle → active →
// cooling down, one whose broker does not answer (erroring: Ready=False, the breaker open, no value), and one in
// fallback; each explained as JSON and as text by the real CLI, and a missing object exits 1.
import { createServer } from 'node:net';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../support/command.ts';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

interface Report {
  currentReplicas?: number;
  desiredReplicas?: number;
  ready?: { status: string; reason?: string };
  active?: { status: string; reason?: string };
  fallback: { configured: boolean; engaged?: boolean };
  triggers: {
    metricName: string;
    value?: number;
    error?: string;
    active?: boolean;
    target?: number;
    activationThreshold?: number;
    breaker?: string;
    fallbackValue?: boolean;
  }[];
  hpa?: { name: string; computation: string[] };
  cooldown: { cooldownPeriodSeconds: number; remainingSeconds?: number; lastActiveTime?: string };
  decision?: { rule: string; reason: string };
  lastScale?: { reason: string };
  whatWouldChange: string[];
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('sluice explain', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  const queue = uniqueName('explain');

  beforeAll(async () => {
    const kc = kubeConfig();
    sluice = await startSluice({ logName: 'sluice-explain-e2e.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'explain'));
    connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    channel = await connection.createChannel();
    await channel.assertQueue(queue, { durable: false });
  });

  afterAll(async () => {
    await channel.deleteQueue(queue).catch(() => undefined);
    await connection.close().catch(() => undefined);
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
  });

  /** The real CLI, as a user runs it. */
  function sluiceExplain(name: string, ...extra: string[]) {
    const kubeconfig = loadTestEnv().kubeconfig;
    return run('node', ['src/main.ts', 'explain', name, '-n', kit.namespace, '--kubeconfig', kubeconfig, ...extra]);
  }

  async function explainJson(name: string): Promise<Report> {
    const result = await sluiceExplain(name, '-o', 'json');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout) as Report;
  }

  async function explainText(name: string): Promise<string> {
    const result = await sluiceExplain(name);
    expect(result.code).toBe(0);
    return result.stdout;
  }

  async function explainUntil(name: string, what: string, done: (r: Report) => boolean): Promise<Report> {
    let last: Report | undefined;
    try {
      return await waitFor(
        async () => {
          last = await explainJson(name);
          return done(last) ? last : undefined;
        },
        { timeoutMs: 45_000, intervalMs: 500, message: `${name}: ${what}` },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; last report: ${JSON.stringify(last)}`, { cause: err });
    }
  }

  async function messages(count: number): Promise<void> {
    await channel.purgeQueue(queue);
    for (let i = 0; i < count; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
    await waitFor(async () => (await channel.checkQueue(queue)).messageCount === count, {
      message: `${count} messages on ${queue}`,
    });
  }

  it('idle, active and cooling down: value, activation, target, the HPA computation, the cooldown clock', async () => {
    await kit.createDeployment('worker', 0);
    await kit.createScaledObject('worker', {
      scaleTargetRef: { name: 'worker' },
      minReplicaCount: 0,
      maxReplicaCount: 10,
      pollingInterval: 1,
      cooldownPeriod: 30,
      triggers: [
        {
          type: 'rabbitmq',
          metadata: {
            host: loadTestEnv().rabbitmq.amqpUrl,
            queueName: queue,
            mode: 'QueueLength',
            value: '10',
            activationValue: '2',
          },
        },
      ],
    });

    // Idle: nothing on the queue, the target at 0.
    const idle = await explainUntil('worker', 'idle with a value', (r) => r.triggers[0]?.value === 0);
    expect(idle).toMatchObject({ currentReplicas: 0, desiredReplicas: 0, decision: { rule: 'steady' } });
    expect(idle.triggers[0]).toMatchObject({ target: 10, activationThreshold: 2, active: false });
    expect(idle.whatWouldChange).toContain(`${idle.triggers[0]?.metricName ?? ''} above 2 (now 0) → 0 → 1 replicas`);
    const idleText = await explainText('worker');
    expect(idleText).toContain(`ScaledObject ${kit.namespace}/worker → Deployment worker`);
    expect(idleText).toMatch(/value 0, activation > 2, target 10 per replica, not active/);

    // Active: 45 messages → the executor activates, the HPA wants ceil(45 / 10) = 5.
    await messages(45);
    const active = await explainUntil(
      'worker',
      'active, the HPA at 5',
      // The Event is written after the scale (Events are sent in the background).
      (r) => r.triggers[0]?.value === 45 && r.currentReplicas === 5 && r.lastScale !== undefined,
    );
    expect(active).toMatchObject({ desiredReplicas: 5, decision: { rule: 'active' }, active: { status: 'True' } });
    expect(active.triggers[0]).toMatchObject({ active: true });
    expect(active.hpa?.computation[0]).toContain('ceil(45 / 10) = 5');
    expect(active.lastScale?.reason).toBe('KEDAScaleTargetActivated');
    expect(active.whatWouldChange[0]).toMatch(/above 55 \(now 45\) → 6 replicas/);
    const activeText = await explainText('worker');
    expect(activeText).toContain('ceil(45 / 10) = 5');
    expect(activeText).toContain('What would change it');

    // Cooling down: the queue empties; still above 0, the clock runs from lastActiveTime.
    await messages(0);
    const cooling = await explainUntil(
      'worker',
      'cooling down',
      (r) => r.triggers[0]?.value === 0 && r.decision?.rule === 'cooldown',
    );
    expect(cooling.currentReplicas).toBeGreaterThan(0);
    expect(cooling.cooldown.remainingSeconds).toBeGreaterThan(0);
    expect(cooling.cooldown.remainingSeconds).toBeLessThanOrEqual(30);
    expect(cooling.whatWouldChange.some((w) => w.startsWith('no trigger active for '))).toBe(true);
  });

  it('erroring: the error and the open breaker, no value, Ready=False; fallback: the fallback value, engaged', async () => {
    const port = await closedPort();
    const dead = `amqp://guest:guest@127.0.0.1:${port}/`;
    const trigger = {
      type: 'rabbitmq',
      metadata: { host: dead, queueName: 'nowhere', mode: 'QueueLength', value: '5' },
    };
    await kit.createDeployment('broken', 2);
    await kit.createDeployment('fallback', 1);
    await kit.createScaledObject('broken', {
      scaleTargetRef: { name: 'broken' },
      pollingInterval: 1,
      triggers: [trigger],
    });
    await kit.createScaledObject('fallback', {
      scaleTargetRef: { name: 'fallback' },
      pollingInterval: 1,
      fallback: { failureThreshold: 2, replicas: 4 },
      triggers: [trigger],
    });

    const broken = await explainUntil(
      'broken',
      'erroring with the breaker open',
      (r) => r.triggers[0]?.breaker === 'open' && r.ready?.status === 'False',
    );
    expect(broken.triggers[0]).not.toHaveProperty('value');
    expect(broken.triggers[0]?.error).toMatch(/ECONNREFUSED|refused/);
    expect(broken.ready).toMatchObject({ reason: 'TriggerError' });
    expect(broken).toMatchObject({ currentReplicas: 2, desiredReplicas: 2, decision: { rule: 'error-hold' } });
    expect(broken.whatWouldChange[0]).toContain('answers again');
    const brokenText = await explainText('broken');
    expect(brokenText).toContain('ERROR ');
    expect(brokenText).toContain('circuit breaker open');

    const fallback = await explainUntil(
      'fallback',
      'fallback engaged',
      (r) => r.fallback.engaged === true && r.triggers[0]?.fallbackValue === true,
    );
    expect(fallback.fallback).toMatchObject({ configured: true, engaged: true });
    // The value served is the one that lands the HPA on 4 replicas: 4 × the target 5.
    expect(fallback.triggers[0]?.value).toBe(20);
    expect(await explainText('fallback')).toContain('Fallback  ENGAGED');
  });

  it('a missing object: exit 1 and a message naming it', async () => {
    const result = await sluiceExplain('nope');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`ScaledObject ${kit.namespace}/nope not found`);
  });
});

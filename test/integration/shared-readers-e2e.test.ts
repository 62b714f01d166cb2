// Shared readers end to end: 200 ScaledObjects on one RabbitMQ host (20 queues, 10 objects each), counted from the
// broker's side:
// - over AMQP: exactly one connection for all 200, and about one passive declare per queue per second (the bytes the
//   broker received on that connection, divided by the size of one queue.declare frame);
// - over the management API: about one request per second for all 20 queues of the vhost (one batched list; counted
//   in the broker's HTTP access log);
// - with the host down (a port that accepts and drops every connection): at most one connection attempt per second
//   for all 200;
// - zero connections within 10 s of the last object reading the broker being deleted.
import { createServer, type Server, type Socket } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNamespace,
  deleteNamespace,
  kubeConfig,
  loadTestEnv,
  rabbitmqApi,
  uniqueName,
  waitFor,
} from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

const OBJECTS = 200;
const QUEUES = 20;

interface Connection {
  name: string;
  client_properties?: { connection_name?: string };
  recv_oct?: number;
}

async function sluiceConnections(): Promise<Connection[]> {
  const response = await rabbitmqApi('/api/connections');
  const all = (await response.json()) as Connection[];
  return all.filter((c) => c.client_properties?.connection_name === 'sluice');
}

/** Lines of the broker's management HTTP access log (scripts/env/up.sh sets management.http_log_dir). */
function accessLogLines(): string[] {
  const dir = path.join(loadTestEnv().logsDir, 'rabbitmq-http');
  return readdirSync(dir).flatMap((file) => readFileSync(path.join(dir, file), 'utf8').split('\n').filter(Boolean));
}

/** Runs `fn` over `items`, `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

describe(`${OBJECTS} ScaledObjects on one RabbitMQ host share one reader per queue`, () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let dead: Server;
  let deadPort = 0;
  const attempts: number[] = [];
  const open = new Set<Socket>();
  const prefix = uniqueName('shared');
  const queues = Array.from({ length: QUEUES }, (_, i) => `${prefix}-q${String(i).padStart(2, '0')}`);
  const names = Array.from({ length: OBJECTS }, (_, i) => `so-${String(i).padStart(3, '0')}`);
  const env = loadTestEnv();

  beforeAll(async () => {
    // The "host down" of the last phase: accepts every connection and drops it at once, counting attempts.
    dead = createServer((socket) => {
      attempts.push(Date.now());
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.destroy();
    });
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    deadPort = (dead.address() as { port: number }).port;

    const connection = await amqp.connect(env.rabbitmq.amqpUrl);
    const channel = await connection.createChannel();
    for (const queue of queues) await channel.assertQueue(queue, { durable: false });
    await connection.close();
    sluice = await startSluice({ logName: 'sluice-shared-readers-e2e.log' });
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'shared'));
  });

  afterAll(async () => {
    const connection = await amqp.connect(env.rabbitmq.amqpUrl);
    const channel = await connection.createChannel();
    for (const queue of queues) await channel.deleteQueue(queue).catch(() => undefined);
    await connection.close();
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace, 180_000);
    await sluice.stop();
    for (const socket of open) socket.destroy();
    await new Promise((resolve) => dead.close(resolve));
  });

  const trigger = (host: string, i: number) => ({
    type: 'rabbitmq',
    // Never active (activation far above the empty queues): the test counts reads, not scaling.
    metadata: { host, queueName: queues[i % QUEUES] ?? '', mode: 'QueueLength', value: '10', activationValue: '1000' },
  });
  const setHost = (host: (i: number) => string) =>
    pool(names, 10, (name) =>
      kit.patchScaledObject(name, { spec: { triggers: [trigger(host(names.indexOf(name)), names.indexOf(name))] } }),
    );

  /** Every object's status reports a read of its trigger with `host`'s outcome. */
  async function allRead(predicate: (ready: { status?: string; reason?: string } | undefined) => boolean) {
    await waitFor(
      async () => {
        const list = (await kit.custom.listNamespacedCustomObject({
          group: 'sluice.dev',
          version: 'v1alpha1',
          namespace: kit.namespace,
          plural: 'scaledobjects',
        })) as { items: { status?: { conditions?: { type: string; status?: string; reason?: string }[] } }[] };
        const done = list.items.filter((so) => predicate(so.status?.conditions?.find((c) => c.type === 'Ready')));
        return done.length === OBJECTS;
      },
      { timeoutMs: 120_000, intervalMs: 1000, message: `all ${OBJECTS} ScaledObjects to report their reads` },
    );
  }

  it('AMQP: one connection and ~1 read per queue per second; management API: one batched list per second; host down: ≤ 1 attempt per second; none left after deletion', async () => {
    await pool(names, 10, (name) => kit.createDeployment(name, 0));
    await pool(names, 10, (name) =>
      kit.createScaledObject(name, {
        scaleTargetRef: { name },
        minReplicaCount: 0,
        maxReplicaCount: 2,
        triggers: [trigger(env.rabbitmq.amqpUrl, names.indexOf(name))],
      }),
    );
    await allRead((ready) => ready?.status === 'True');

    // AMQP: one connection for 200 objects; count what the broker received on it over 10 s.
    const connections = await sluiceConnections();
    expect(connections).toHaveLength(1);
    const before = connections[0]?.recv_oct ?? 0;
    const t0 = Date.now();
    await sleep(10_000);
    const after = (await sluiceConnections())[0]?.recv_oct ?? 0;
    // queue.declare: frame header 7 + class/method 4 + reserved 2 + queue name (1 + length) + flags 1 + arguments 4
    // + frame end 1.
    const frame = 20 + (queues[0]?.length ?? 0);
    const declaresPerQueuePerSecond = (after - before) / frame / QUEUES / ((Date.now() - t0) / 1000);
    console.log(
      `[measure] AMQP, ${OBJECTS} objects on ${QUEUES} queues: 1 connection, ${declaresPerQueuePerSecond.toFixed(2)} declares per queue per second`,
    );
    expect(declaresPerQueuePerSecond).toBeGreaterThan(0.5);
    expect(declaresPerQueuePerSecond).toBeLessThan(1.5);

    // Management API: the same objects, now over HTTP. The AMQP connection goes with its last reader.
    await setHost(() => env.rabbitmq.managementUrl);
    await waitFor(async () => (await sluiceConnections()).length === 0, {
      timeoutMs: 30_000,
      message: 'the AMQP connection to close once no object reads over AMQP',
    });
    await sleep(3000);
    const logBefore = accessLogLines().length;
    const t1 = Date.now();
    await sleep(10_000);
    const requests = accessLogLines().slice(logBefore);
    const seconds = (Date.now() - t1) / 1000;
    // The access log shows paths without their query strings.
    const lists = requests.filter((line) => line.includes('"GET /api/queues/%2F HTTP')).length;
    const single = requests.filter((line) => line.includes('"GET /api/queues/%2F/')).length;
    console.log(
      `[measure] management API, ${OBJECTS} objects on ${QUEUES} queues: ${(requests.length / seconds).toFixed(2)} requests/s (${lists} lists, ${single} single-queue reads in ${seconds.toFixed(1)} s)`,
    );
    expect(lists / seconds).toBeGreaterThan(0.5);
    expect(lists / seconds).toBeLessThan(1.5);
    expect(single).toBe(0);

    // The host goes down: all 200 objects read a broker that drops every connection.
    await setHost(() => `amqp://guest:guest@127.0.0.1:${deadPort}`);
    await allRead((ready) => ready?.reason === 'TriggerError');
    const countFrom = Date.now();
    await sleep(10_000);
    const tried = attempts.filter((t) => t >= countFrom).length;
    console.log(`[measure] host down, ${OBJECTS} objects: ${tried} connection attempts in 10 s`);
    expect(tried).toBeGreaterThan(0);
    expect(tried).toBeLessThanOrEqual(12);

    // Back to the real broker over AMQP, then every object deleted: no connection left within 10 s.
    await setHost(() => env.rabbitmq.amqpUrl);
    await waitFor(async () => (await sluiceConnections()).length === 1, {
      timeoutMs: 30_000,
      message: 'one AMQP connection again',
    });
    await pool(names, 10, (name) => kit.deleteScaledObject(name));
    const deletedAt = Date.now();
    await waitFor(async () => (await sluiceConnections()).length === 0, {
      timeoutMs: 10_000,
      intervalMs: 250,
      message: 'no AMQP connection 10 s after every object was deleted',
    });
    console.log(`[measure] AMQP connection closed ${Date.now() - deletedAt} ms after the last deletion was sent`);
  });
});

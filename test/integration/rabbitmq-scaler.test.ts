// The rabbitmq scaler against the real broker of the test environment: counts over the management API and over
// AMQP, and every way of not knowing the count is an error, never 0.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScalerError } from '../../src/errors.ts';
import { createRabbitMqScaler } from '../../src/scalers/rabbitmq.ts';
import type { Scaler } from '../../src/scalers/scaler.ts';
import { triggerInput } from '../support/trigger.ts';
import { loadTestEnv, rabbitmqApi, uniqueName, waitFor } from '../support/env.ts';

const signal = () => AbortSignal.timeout(5000);

function scaler(metadata: Record<string, string>): Scaler {
  return createRabbitMqScaler(triggerInput({ type: 'rabbitmq', metadata, owner: 'test/rabbitmq' }));
}

async function sampleError(s: Scaler): Promise<ScalerError> {
  try {
    const sample = await s.sample(signal());
    throw new Error(`expected an error, got the value ${sample.value}`);
  } catch (err) {
    expect(err).toBeInstanceOf(ScalerError);
    return err as ScalerError;
  }
}

describe('rabbitmq scaler against a real broker', () => {
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  let queue: string;
  const scalers: Scaler[] = [];
  const track = (s: Scaler) => (scalers.push(s), s);

  beforeAll(async () => {
    const env = loadTestEnv();
    connection = await amqp.connect(env.rabbitmq.amqpUrl);
    channel = await connection.createChannel();
    queue = uniqueName('scaler');
    await channel.assertQueue(queue, { durable: false });
    for (let i = 0; i < 7; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
    // The management API's statistics lag the broker by about a second.
    await waitFor(
      async () =>
        ((await (await rabbitmqApi(`/api/queues/%2F/${queue}`)).json()) as { messages?: number }).messages === 7,
      { timeoutMs: 15_000, message: 'the management API to count 7 messages' },
    );
  });

  afterAll(async () => {
    await Promise.all(scalers.map((s) => s.close()));
    await channel.deleteQueue(queue).catch(() => undefined);
    await connection.close().catch(() => undefined);
  });

  it('reads the queue length over the management API, with activation', async () => {
    const { managementUrl } = loadTestEnv().rabbitmq;
    const s = track(
      scaler({ host: managementUrl, queueName: queue, mode: 'QueueLength', value: '5', activationValue: '6' }),
    );
    expect(await s.sample(signal())).toEqual({ value: 7, active: true });
    const idle = track(
      scaler({ host: managementUrl, queueName: queue, mode: 'QueueLength', value: '5', activationValue: '7' }),
    );
    expect(await idle.sample(signal())).toEqual({ value: 7, active: false }); // strict >
  });

  it('reads the queue length over AMQP (passive declare), and reuses its connection', async () => {
    const s = track(scaler({ host: loadTestEnv().rabbitmq.amqpUrl, queueName: queue }));
    expect(await s.sample(signal())).toEqual({ value: 7, active: true });
    channel.sendToQueue(queue, Buffer.from('one more'));
    await waitFor(async () => (await s.sample(signal())).value === 8, { message: 'AMQP count 8' });
    const names = await waitFor(
      async () => {
        const list = (await (await rabbitmqApi('/api/connections?columns=client_properties')).json()) as {
          client_properties?: { connection_name?: string };
        }[];
        const ours = list.filter((c) => c.client_properties?.connection_name === 'sluice-test-rabbitmq');
        return ours.length > 0 ? ours : undefined;
      },
      { timeoutMs: 15_000, message: 'the named AMQP connection' },
    );
    expect(names).toHaveLength(1);
    await channel.get(queue, { noAck: true });
  });

  it('treats a missing queue as an error, over both protocols (and keeps working afterwards)', async () => {
    const env = loadTestEnv();
    const http = track(scaler({ host: env.rabbitmq.managementUrl, queueName: 'does-not-exist' }));
    expect((await sampleError(http)).message).toMatch(/does not exist/);
    const overAmqp = track(scaler({ host: env.rabbitmq.amqpUrl, queueName: 'does-not-exist' }));
    expect((await sampleError(overAmqp)).message).toMatch(/does not exist/);
    const good = track(scaler({ host: env.rabbitmq.amqpUrl, queueName: queue }));
    expect((await good.sample(signal())).value).toBeGreaterThan(0);
  });

  it('treats wrong credentials as an error and never echoes them', async () => {
    const env = loadTestEnv();
    const badHttp = new URL(env.rabbitmq.managementUrl);
    badHttp.password = 'wrong-pass-123';
    const e1 = await sampleError(track(scaler({ host: badHttp.href, queueName: queue })));
    expect(e1.message).toMatch(/refused the credentials/);
    const badAmqp = new URL(env.rabbitmq.amqpUrl);
    badAmqp.password = 'wrong-pass-123';
    const e2 = await sampleError(track(scaler({ host: badAmqp.href, queueName: queue })));
    for (const e of [e1, e2])
      expect(JSON.stringify({ m: e.message, c: String(e.cause) })).not.toContain('wrong-pass-123');
  });

  it('treats connection refused as an error', async () => {
    const e1 = await sampleError(track(scaler({ host: 'http://guest:guest@127.0.0.1:1/', queueName: queue })));
    expect(e1.message).toMatch(/cannot reach/);
    const e2 = await sampleError(track(scaler({ host: 'amqp://guest:guest@127.0.0.1:1/', queueName: queue })));
    expect(e2.message).toMatch(/cannot read/);
  });

  describe('a management API that misbehaves', () => {
    let server: Server;
    let base: string;
    let reply: (res: import('node:http').ServerResponse) => void = () => undefined;

    beforeAll(async () => {
      server = createServer((_req, res) => {
        reply(res);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://guest:guest@127.0.0.1:${(server.address() as AddressInfo).port}/`;
    });
    afterAll(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => {
            resolve();
          });
        }),
    );

    const cases = [
      { comment: '500', status: 500, body: '{}', expected: /answered 500/ },
      {
        comment: 'no statistics yet (messages missing, as right after a queue is created)',
        status: 200,
        body: '{"name":"q"}',
        expected: /no message count/,
      },
      { comment: 'malformed body', status: 200, body: '<html>', expected: /not JSON/ },
      { comment: 'negative count', status: 200, body: '{"messages":-1}', expected: /no message count/ },
    ];
    it.each(cases)('$comment is an error, not 0', async ({ status, body, expected }) => {
      reply = (res) => res.writeHead(status, { 'content-type': 'application/json' }).end(body);
      expect((await sampleError(track(scaler({ host: base, queueName: 'q' })))).message).toMatch(expected);
    });

    it('a timeout is an error', async () => {
      reply = () => undefined; // never answers
      const s = track(scaler({ host: base, queueName: 'q', timeout: '300' }));
      const started = Date.now();
      await sampleError(s);
      expect(Date.now() - started).toBeLessThan(3000);
    });
  });
});

// Each HTTP scaler reads at most a body sized to what it reads (1–8 MiB), so that the hub's concurrent reads fit in
// the process: a table of the limits, each checked against a server on 127.0.0.1 with a body of exactly the limit
// (read, then refused for what it holds) and one byte more (refused for its size), declared and streamed.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpRateScaler } from '../../../src/scalers/http-rate.ts';
import { createMetricsApiScaler } from '../../../src/scalers/metrics-api.ts';
import { createPrometheusScaler } from '../../../src/scalers/prometheus.ts';
import { createRabbitMqScaler } from '../../../src/scalers/rabbitmq.ts';
import type { ScalerFactory } from '../../../src/scalers/scaler.ts';
import { expectSampleError, standalone, triggerInput } from '../../support/trigger.ts';

const MiB = 1024 * 1024;
let size = 0;
let declare = true;
let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((_req, res) => {
    const body = Buffer.alloc(size, 'a');
    if (declare) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(size) });
      res.end(body);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    for (let at = 0; at < size; at += 64 * 1024) res.write(body.subarray(at, at + 64 * 1024));
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const scalers: ReadonlyArray<{
  type: string;
  limit: number;
  factory: ScalerFactory;
  metadata: () => Record<string, string>;
}> = [
  {
    type: 'prometheus',
    limit: MiB,
    factory: createPrometheusScaler,
    metadata: () => ({ serverAddress: base, query: 'up', threshold: '1' }),
  },
  {
    type: 'metrics-api',
    limit: 4 * MiB,
    factory: createMetricsApiScaler,
    metadata: () => ({ url: `${base}/value`, valueLocation: 'v', targetValue: '1' }),
  },
  {
    type: 'http-rate',
    limit: 4 * MiB,
    factory: createHttpRateScaler,
    metadata: () => ({ url: `${base}/metrics`, counter: 'requests_total', targetRate: '1' }),
  },
  {
    type: 'rabbitmq',
    limit: 8 * MiB,
    factory: createRabbitMqScaler,
    metadata: () => ({ host: `${base}/`, protocol: 'http', queueName: 'jobs', mode: 'QueueLength', value: '5' }),
  },
];

describe.each(scalers)('$type reads at most $limit bytes', ({ type, limit, factory, metadata }) => {
  const sampleWith = async (bytes: number, declared: boolean): Promise<string> => {
    size = bytes;
    declare = declared;
    const scaler = standalone(factory(triggerInput({ type, metadata: metadata() })));
    try {
      return await expectSampleError(scaler);
    } finally {
      await scaler.close();
    }
  };

  it.each([true, false])('a body of the limit is read (content-length declared: %s)', async (declared) => {
    const message = await sampleWith(limit, declared);
    // Read and refused for what it holds ('aaa…' is no answer), not for its size.
    expect(message).not.toMatch(/bytes/);
  });

  it('one byte more, declared, is refused before it is read', async () => {
    expect(await sampleWith(limit + 1, true)).toContain(`sent a body of ${limit + 1} bytes (the limit is ${limit})`);
  });

  it('one byte more, streamed, is refused when it arrives', async () => {
    expect(await sampleWith(limit + 1, false)).toContain(`sent a body over ${limit} bytes`);
  });
});

// The rabbitmq scaler against the real broker of the test environment: counts over the management API and over
// AMQP, the rate modes (rates are smoothed averages: assert > 0, never exact values), useRegex with every operation
// and with pagination, excludeUnacknowledged, credentials from a TriggerAuthentication; the https path against a
// local HTTPS server answering like the management API (the shared broker has no TLS listener); and every way of not
// knowing the value being an error, never 0.
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import amqp from 'amqplib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BackendError, ScalerError, describeError } from '../../src/errors.ts';
import { AmqpBroker, CONNECTION_NAME, MAX_CHANNELS } from '../../src/scalers/rabbitmq-amqp.ts';
import { createRabbitMqScaler } from '../../src/scalers/rabbitmq.ts';
import type { Sample, SharedResources } from '../../src/scalers/scaler.ts';
import { SharedPool } from '../../src/scalers/shared.ts';
import { makeTestPki, type TestPki } from '../support/pki.ts';
import { standalone, triggerInput, type StandaloneScaler } from '../support/trigger.ts';
import { pinnedAddress } from '../support/pinned-address.ts';
import { loadTestEnv, rabbitmqApi, uniqueName, waitFor } from '../support/env.ts';

const signal = () => AbortSignal.timeout(5000);

const scalers: StandaloneScaler[] = [];
/** A trigger with a private reader: of its own SharedPool, or of `shared` (triggers sharing connections). */
function scaler(
  metadata: Record<string, string>,
  authParams: Record<string, string> = {},
  shared?: SharedResources,
): StandaloneScaler {
  // The host is the TriggerAuthentication's when it supplies anything (test/support/pinned-address.ts).
  const s = standalone(
    createRabbitMqScaler(triggerInput({ type: 'rabbitmq', ...pinnedAddress('host', 'move', metadata, authParams) })),
    shared,
  );
  scalers.push(s);
  return s;
}

/** The AmqpBroker (the shared connection) `pool` holds, for its connection-attempt count. */
function leasedBroker(pool: SharedPool): AmqpBroker {
  const keys = [...pool.held().keys()].filter((k) => k.startsWith('amqp|'));
  expect(keys).toHaveLength(1);
  const lease = pool.lease<AmqpBroker>(
    keys[0] ?? '',
    () => {
      throw new Error('the pool holds no AMQP connection');
    },
    () => undefined,
  );
  lease.release();
  return lease.value;
}

async function sampleError(s: StandaloneScaler): Promise<ScalerError> {
  try {
    const sample = await s.sample(signal());
    throw new Error(`expected an error, got the value ${sample.value}`);
  } catch (err) {
    expect(err).toBeInstanceOf(ScalerError);
    return err as ScalerError;
  }
}

/** Polls until the scaler answers (the management API has no statistics for a new queue for about a second). */
function sampleWhen(s: StandaloneScaler, ok: (sample: Sample) => boolean, message: string, timeoutMs = 20_000) {
  return waitFor(
    async () => {
      const got = await s.sample(signal());
      return ok(got) ? got : undefined;
    },
    { timeoutMs, intervalMs: 250, message },
  );
}

/** The management URL without its credentials, and those credentials. */
function managementWithoutCredentials(): { host: string; username: string; password: string } {
  const url = new URL(loadTestEnv().rabbitmq.managementUrl);
  const out = { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
  url.username = '';
  url.password = '';
  return { host: url.href, ...out };
}

afterAll(async () => {
  await Promise.all(scalers.map((s) => s.close()));
});

describe('rabbitmq scaler against a real broker', () => {
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  const queues: string[] = [];

  async function newQueue(prefix: string, messages = 0, name = uniqueName(prefix)): Promise<string> {
    await channel.assertQueue(name, { durable: false });
    queues.push(name);
    for (let i = 0; i < messages; i++) channel.sendToQueue(name, Buffer.from(`m${i}`));
    return name;
  }

  /** Waits until the management API counts `messages` in `queue`. */
  async function settled(queue: string, messages: number): Promise<void> {
    await waitFor(
      async () =>
        ((await (await rabbitmqApi(`/api/queues/%2F/${encodeURIComponent(queue)}`)).json()) as { messages?: number })
          .messages === messages,
      { timeoutMs: 15_000, message: `the management API to count ${messages} messages in ${queue}` },
    );
  }

  /** Publishes `perSecond` messages a second to `queue` until the returned function is called. */
  function publishSteadily(queue: string, perSecond: number): () => void {
    const timer = setInterval(() => channel.sendToQueue(queue, Buffer.from('tick')), 1000 / perSecond);
    return () => {
      clearInterval(timer);
    };
  }

  let queue: string;
  beforeAll(async () => {
    connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    channel = await connection.createChannel();
    queue = await newQueue('scaler', 7);
    await settled(queue, 7);
  });

  afterAll(async () => {
    for (const q of queues) await channel.deleteQueue(q).catch(() => undefined);
    await connection.close().catch(() => undefined);
  });

  it('reads the queue length over the management API, with activation', async () => {
    const { managementUrl } = loadTestEnv().rabbitmq;
    const s = scaler({ host: managementUrl, queueName: queue, mode: 'QueueLength', value: '5', activationValue: '6' });
    expect(await s.sample(signal())).toEqual({ value: 7, active: true });
    const idle = scaler({
      host: managementUrl,
      queueName: queue,
      mode: 'QueueLength',
      value: '5',
      activationValue: '7',
    });
    expect(await idle.sample(signal())).toEqual({ value: 7, active: false }); // strict >
  });

  it('reads the queue length over AMQP (passive declare), and reuses its connection', async () => {
    const pool = new SharedPool();
    const s = scaler({ host: loadTestEnv().rabbitmq.amqpUrl, queueName: queue }, {}, pool);
    expect(await s.sample(signal())).toEqual({ value: 7, active: true });
    channel.sendToQueue(queue, Buffer.from('one more'));
    await waitFor(async () => (await s.sample(signal())).value === 8, { message: 'AMQP count 8' });
    // Every read went over the one connection made by the first (the reader keeps its lease between reads).
    expect(leasedBroker(pool).connects).toBe(1);
    // The broker shows it by name. (Other sluice processes may be connected to vhost "/" too: that there is exactly
    // one per broker is proven in a vhost of its own, below.)
    await waitFor(
      async () => {
        const list = (await (await rabbitmqApi('/api/connections?columns=vhost,client_properties')).json()) as {
          vhost?: string;
          client_properties?: { connection_name?: string };
        }[];
        return list.some((c) => c.vhost === '/' && c.client_properties?.connection_name === CONNECTION_NAME);
      },
      { timeoutMs: 15_000, message: 'the named AMQP connection' },
    );
    await channel.get(queue, { noAck: true });
    await settled(queue, 7);
  });

  describe('rate modes', () => {
    it('MessageRate: an idle queue that never had traffic reads 0 (a fact, not unknown); publishing makes it > 0', async () => {
      const q = await newQueue('rate-pub');
      const s = scaler({ host: loadTestEnv().rabbitmq.managementUrl, queueName: q, mode: 'MessageRate', value: '5' });
      // No message_stats at all: the broker (rates_mode basic) vouches that nothing was ever published.
      const idle = await sampleWhen(s, () => true, 'statistics for the new queue');
      expect(idle).toEqual({ value: 0, active: false });

      const stop = publishSteadily(q, 20);
      try {
        const busy = await sampleWhen(s, (x) => x.value > 0, 'a publish rate above 0');
        expect(busy.active).toBe(true);
        console.log(`[measure] MessageRate at 20 msg/s: ${busy.value} msg/s`);
      } finally {
        stop();
      }
    });

    it('DeliverGetRate: published but never consumed reads 0; a steady consumer makes it > 0', async () => {
      const q = await newQueue('rate-deliver', 3);
      await settled(q, 3);
      const s = scaler({
        host: loadTestEnv().rabbitmq.managementUrl,
        queueName: q,
        mode: 'DeliverGetRate',
        value: '2',
      });
      // message_stats has publish but no deliver_get: nothing was ever delivered.
      expect(await s.sample(signal())).toEqual({ value: 0, active: false });

      const consumer = await connection.createChannel();
      await consumer.consume(q, () => undefined, { noAck: true });
      const stop = publishSteadily(q, 20);
      try {
        const busy = await sampleWhen(s, (x) => x.value > 0, 'a deliver_get rate above 0');
        expect(busy.active).toBe(true);
        console.log(`[measure] DeliverGetRate at 20 msg/s: ${busy.value} msg/s`);
      } finally {
        stop();
        await consumer.close();
      }
    });
  });

  describe('useRegex', () => {
    let prefix: string;
    beforeAll(async () => {
      prefix = uniqueName('rx');
      const counts = { a: 1, b: 2, c: 6 };
      for (const [suffix, n] of Object.entries(counts)) await newQueue('', n, `${prefix}-${suffix}`);
      await Promise.all(Object.entries(counts).map(([suffix, n]) => settled(`${prefix}-${suffix}`, n)));
    });

    it.each([
      { operation: 'sum', expected: 9 },
      { operation: 'avg', expected: 3 },
      { operation: 'max', expected: 6 },
    ])('$operation over 3 queues → $expected', async ({ operation, expected }) => {
      const s = scaler({
        host: loadTestEnv().rabbitmq.managementUrl,
        queueName: `^${prefix}-`,
        useRegex: 'true',
        operation,
      });
      expect((await s.sample(signal())).value).toBe(expected);
    });

    it('follows every page: pageSize 2 over 5 queues (KEDA fails beyond one page)', async () => {
      const pages = uniqueName('pg');
      for (let i = 1; i <= 5; i++) await newQueue('', i, `${pages}-${i}`);
      await Promise.all([1, 2, 3, 4, 5].map((i) => settled(`${pages}-${i}`, i)));
      const s = scaler({
        host: loadTestEnv().rabbitmq.managementUrl,
        queueName: `^${pages}-`,
        useRegex: 'true',
        pageSize: '2',
      });
      expect(await s.sample(signal())).toEqual({ value: 15, active: true });
    });

    it('no matching queue, or an expression the broker rejects, is an error', async () => {
      const { managementUrl } = loadTestEnv().rabbitmq;
      const none = scaler({ host: managementUrl, queueName: `^${uniqueName('nothing')}$`, useRegex: 'true' });
      expect((await sampleError(none)).message).toMatch(/no queue matches/);
      const bad = scaler({ host: managementUrl, queueName: '(', useRegex: 'true' });
      expect((await sampleError(bad)).message).toMatch(/answered 400/);
    });
  });

  it('excludeUnacknowledged counts ready messages only (consumer with prefetch 3, no ack)', async () => {
    const q = await newQueue('unacked', 10);
    await settled(q, 10);
    const consumer = await connection.createChannel();
    await consumer.prefetch(3);
    await consumer.consume(q, () => undefined, { noAck: false });
    try {
      const { managementUrl, amqpUrl } = loadTestEnv().rabbitmq;
      const ready = scaler({ host: managementUrl, queueName: q, excludeUnacknowledged: 'true' });
      expect((await sampleWhen(ready, (x) => x.value === 7, 'messages_ready 7')).value).toBe(7);
      expect((await scaler({ host: managementUrl, queueName: q }).sample(signal())).value).toBe(10);
      // AMQP counts ready messages only, always.
      expect((await scaler({ host: amqpUrl, queueName: q }).sample(signal())).value).toBe(7);
    } finally {
      await consumer.close();
    }
  });

  it('takes username/password from the TriggerAuthentication over both protocols; a wrong password is an error that never echoes it', async () => {
    const { host, username, password } = managementWithoutCredentials();
    const amqpHost = new URL(loadTestEnv().rabbitmq.amqpUrl);
    amqpHost.username = 'nobody';
    amqpHost.password = 'overridden';
    for (const h of [host, amqpHost.href]) {
      expect((await scaler({ host: h, queueName: queue }, { username, password }).sample(signal())).value).toBe(7);
      const wrong = await sampleError(scaler({ host: h, queueName: queue }, { username, password: 'wrong-pass-123' }));
      expect(wrong.message).toMatch(/refused the credentials/);
      expect(wrong).toBeInstanceOf(BackendError); // counted by the broker's circuit breaker
      expect(describeError(wrong)).not.toContain('wrong-pass-123');
      expect(JSON.stringify(wrong)).not.toContain('wrong-pass-123');
    }
    // Without any credentials the management API answers 401.
    expect((await sampleError(scaler({ host, queueName: queue }))).message).toMatch(/refused the credentials .*401/);
  });

  it('treats a missing queue as an error, over both protocols (and keeps working afterwards)', async () => {
    const env = loadTestEnv();
    const http = scaler({ host: env.rabbitmq.managementUrl, queueName: 'does-not-exist' });
    const missing = await sampleError(http);
    expect(missing.message).toMatch(/does not exist/);
    expect(missing).not.toBeInstanceOf(BackendError); // the broker answered
    const rate = scaler({
      host: env.rabbitmq.managementUrl,
      queueName: 'does-not-exist',
      mode: 'MessageRate',
      value: '1',
    });
    expect((await sampleError(rate)).message).toMatch(/does not exist/);
    const overAmqp = scaler({ host: env.rabbitmq.amqpUrl, queueName: 'does-not-exist' });
    const missingOverAmqp = await sampleError(overAmqp);
    expect(missingOverAmqp.message).toMatch(/does not exist/);
    expect(missingOverAmqp).not.toBeInstanceOf(BackendError);
    const good = scaler({ host: env.rabbitmq.amqpUrl, queueName: queue });
    expect((await good.sample(signal())).value).toBeGreaterThan(0);
  });

  it('treats wrong URL credentials as an error and never echoes them', async () => {
    const env = loadTestEnv();
    const badHttp = new URL(env.rabbitmq.managementUrl);
    badHttp.password = 'wrong-pass-123';
    const e1 = await sampleError(scaler({ host: badHttp.href, queueName: queue }));
    expect(e1.message).toMatch(/refused the credentials/);
    const badAmqp = new URL(env.rabbitmq.amqpUrl);
    badAmqp.password = 'wrong-pass-123';
    const e2 = await sampleError(scaler({ host: badAmqp.href, queueName: queue }));
    for (const e of [e1, e2]) expect(describeError(e)).not.toContain('wrong-pass-123');
  });

  it('treats connection refused as an error', async () => {
    const e1 = await sampleError(scaler({ host: 'http://guest:guest@127.0.0.1:1/', queueName: queue }));
    expect(e1.message).toMatch(/cannot reach/);
    const e2 = await sampleError(scaler({ host: 'amqp://guest:guest@127.0.0.1:1/', queueName: queue }));
    expect(e2.message).toMatch(/cannot connect to amqp:\/\/127\.0\.0\.1:1\/%2F over AMQP/);
    for (const e of [e1, e2]) expect(e).toBeInstanceOf(BackendError);
  });

  // The shared broker has no OAuth2 plugin configured: a local token endpoint issues tokens, and a proxy in front of
  // the real management API lets through only requests carrying one of them (unexpired, not revoked), forwarding them
  // with the broker's own credentials. So the value read is the broker's, and the bearer token is proven to be sent.
  describe('OAuth2 client credentials, through a bearer-checking proxy in front of the real management API', () => {
    const clientSecret = 'oauth-Cl1ent-secret-never-shown';
    const scope = 'rabbitmq.read:*/* rabbitmq.tag:monitoring';
    let idp: Server;
    let proxy: Server;
    let tokenUri: string;
    let proxyHost: string;
    /** Lifetime of the next tokens, in seconds. */
    let expiresIn = 3600;
    const issued = new Map<string, { expiresAt: number; revoked: boolean }>();
    const tokenRequests: URLSearchParams[] = [];
    const forwarded: string[] = [];
    let refused = 0;

    beforeAll(async () => {
      idp = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const form = new URLSearchParams(Buffer.concat(chunks).toString());
          tokenRequests.push(form);
          const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
          const ok =
            req.method === 'POST' &&
            basic === `sluice-scaler:${encodeURIComponent(clientSecret)}` &&
            form.get('grant_type') === 'client_credentials' &&
            form.get('scope') === scope;
          if (!ok) {
            res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}');
            return;
          }
          const token = `bearer-${issued.size + 1}-${uniqueName('t')}`;
          issued.set(token, { expiresAt: Date.now() + expiresIn * 1000, revoked: false });
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: expiresIn }));
        });
      });
      const { host, username, password } = managementWithoutCredentials();
      const upstream = new URL(host);
      const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
      proxy = createServer((req, res) => {
        const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const grant = token === undefined ? undefined : issued.get(token);
        if (token === undefined || grant === undefined || grant.revoked || Date.now() >= grant.expiresAt) {
          refused++;
          res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"not_authorized"}');
          return;
        }
        forwarded.push(token);
        void fetch(new URL(req.url ?? '/', upstream), { headers: { authorization: basic, accept: 'application/json' } })
          .then(async (answer) => {
            const body = await answer.text();
            res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? '' }).end(body);
          })
          .catch(() => res.writeHead(502).end());
      });
      for (const server of [idp, proxy]) {
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      }
      tokenUri = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/oauth2/token`;
      proxyHost = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/`;
    });
    afterAll(async () => {
      for (const server of [idp, proxy]) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });
    beforeEach(() => {
      expiresIn = 3600;
      tokenRequests.length = 0;
      forwarded.length = 0;
      refused = 0;
    });

    const oauth = {
      oauthTokenURI: '',
      clientID: 'sluice-scaler',
      clientSecret,
      scopes: 'rabbitmq.read:*/*, rabbitmq.tag:monitoring',
    };
    const oauthScaler = (metadata: Record<string, string> = {}, shared?: SharedResources) =>
      scaler({ host: proxyHost, queueName: queue, ...metadata }, { ...oauth, oauthTokenURI: tokenUri }, shared);

    it('the control: the proxy refuses a request without a token it issued', async () => {
      const err = await sampleError(scaler({ host: proxyHost, queueName: queue }));
      expect(err.message).toMatch(/refused the credentials \(401\)/);
      expect(forwarded).toEqual([]);
    });

    it('reads the real queue with the bearer token, one token for every reader of the client', async () => {
      const shared = new SharedPool();
      const one = oauthScaler({}, shared);
      const regex = oauthScaler({ queueName: `^${queue}$`, useRegex: 'true' }, shared);
      expect(await one.sample(signal())).toEqual({ value: 7, active: true });
      expect(await regex.sample(signal())).toEqual({ value: 7, active: true });
      expect(tokenRequests).toHaveLength(1);
      expect(forwarded).toHaveLength(2);
      expect(new Set(forwarded).size).toBe(1);
      expect(refused).toBe(0);
    });

    it('renews the token before it expires: the proxy never sees an expired one', async () => {
      expiresIn = 1; // used for 0.9 s
      const s = oauthScaler();
      expect((await s.sample(signal())).value).toBe(7);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect((await s.sample(signal())).value).toBe(7);
      expect(tokenRequests).toHaveLength(2);
      expect(new Set(forwarded).size).toBe(2);
      expect(refused).toBe(0);
    });

    it('a revoked token: the 401 drops it once, a new one is fetched and the read succeeds', async () => {
      const s = oauthScaler();
      expect((await s.sample(signal())).value).toBe(7);
      const first = forwarded[0] ?? '';
      const grant = issued.get(first);
      if (grant) grant.revoked = true;
      expect((await s.sample(signal())).value).toBe(7);
      expect(refused).toBe(1);
      expect(tokenRequests).toHaveLength(2);
      expect(forwarded.at(-1)).not.toBe(first);
    });

    it('a wrong client secret: a BackendError naming the token endpoint, never the secret; the API is not asked', async () => {
      const s = scaler(
        { host: proxyHost, queueName: queue },
        { ...oauth, oauthTokenURI: `${tokenUri}?tenant=x`, clientSecret: 'wrong-secret-value-1234' },
      );
      const err = await sampleError(s);
      expect(err).toBeInstanceOf(BackendError);
      expect(err.message).toBe(`the OAuth2 token endpoint ${tokenUri} answered 401 (invalid_client)`);
      expect(describeError(err)).not.toContain('wrong-secret-value-1234');
      expect(forwarded).toEqual([]);
      expect(refused).toBe(0);
    });
  });
});

describe('AMQP: one connection per broker, shared by every trigger through one SharedPool', () => {
  // A vhost of its own, so that what the broker shows for it is this test's alone (other sluice processes may be
  // connected to "/").
  const vhost = uniqueName('sluice-share');
  const queueNames = Array.from({ length: 20 }, (_, i) => `share-${i}`);
  let admin: amqp.ChannelModel;
  let host: string;

  interface ConnectionView {
    name: string;
    vhost?: string;
    client_properties?: { connection_name?: string };
  }
  interface ChannelView {
    connection_details?: { name?: string };
  }
  const json = async <T>(apiPath: string): Promise<T> => (await (await rabbitmqApi(apiPath)).json()) as T;

  /** The broker's view of sluice in this vhost: its connections, and the channels on them. */
  async function brokerView(): Promise<{ connections: number; channels: number }> {
    const connections = (await json<ConnectionView[]>('/api/connections?columns=name,vhost,client_properties')).filter(
      (c) => c.vhost === vhost && c.client_properties?.connection_name === CONNECTION_NAME,
    );
    const names = new Set(connections.map((c) => c.name));
    const channels = (
      await json<ChannelView[]>(`/api/vhosts/${encodeURIComponent(vhost)}/channels?columns=connection_details`)
    ).filter((c) => names.has(c.connection_details?.name ?? ''));
    return { connections: connections.length, channels: channels.length };
  }

  /** The broker's view once it has caught up: the same twice in a row (its statistics lag by a moment). */
  async function settledView(expected: (view: { connections: number; channels: number }) => boolean, what: string) {
    let previous = '';
    return waitFor(
      async () => {
        const view = await brokerView();
        const key = JSON.stringify(view);
        const stable = key === previous;
        previous = key;
        return stable && expected(view) ? view : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 500, message: what },
    );
  }

  beforeAll(async () => {
    const { amqpUrl, managementUrl } = loadTestEnv().rabbitmq;
    const user = decodeURIComponent(new URL(managementUrl).username);
    const put = async (apiPath: string, body: unknown) => {
      const response = await rabbitmqApi(apiPath, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.ok, `PUT ${apiPath}: ${response.status}`).toBe(true);
    };
    await put(`/api/vhosts/${encodeURIComponent(vhost)}`, {});
    await put(`/api/permissions/${encodeURIComponent(vhost)}/${encodeURIComponent(user)}`, {
      configure: '.*',
      write: '.*',
      read: '.*',
    });
    host = `${amqpUrl.replace(/\/$/, '')}/${encodeURIComponent(vhost)}`;
    admin = await amqp.connect(host);
    const publisher = await admin.createConfirmChannel();
    // Queue share-<i> holds i messages, so every trigger's count is its own.
    for (const [i, name] of queueNames.entries()) {
      await publisher.assertQueue(name, { durable: false });
      for (let m = 0; m < i; m++) publisher.sendToQueue(name, Buffer.from(`m${m}`));
    }
    await publisher.waitForConfirms();
    await publisher.close();
  });

  afterAll(async () => {
    await admin.close().catch(() => undefined);
    // Deleting the vhost deletes its queues (and would close any connection left to it).
    await rabbitmqApi(`/api/vhosts/${encodeURIComponent(vhost)}`, { method: 'DELETE' });
  });

  /** Closes every reader (each releases its lease) and waits until the broker shows no sluice connection here. */
  async function closeAll(triggers: readonly StandaloneScaler[], pool: SharedPool): Promise<void> {
    await Promise.all(triggers.map((t) => t.close()));
    expect(pool.held().size).toBe(0);
    await waitFor(async () => (await brokerView()).connections === 0, {
      timeoutMs: 10_000,
      message: 'the shared AMQP connection to be closed once its last reader closed',
    });
  }

  it(`20 triggers on 20 queues: ONE connection, at most ${MAX_CHANNELS} channels, each trigger its own count`, async () => {
    const pool = new SharedPool();
    const triggers = queueNames.map((queueName) => scaler({ host, queueName }, {}, pool));
    const counts = queueNames.map((_, i) => ({ value: i, active: i > 0 }));
    // All read in the same turn (as the hub reads the sources of one backend), twice: the second round reuses it all.
    for (let round = 0; round < 2; round++) {
      expect(await Promise.all(triggers.map((t) => t.sample(signal())))).toEqual(counts);
    }
    expect(leasedBroker(pool).connects).toBe(1);
    expect([...pool.held().values()]).toEqual([20]); // one lease per reader, of one shared connection
    const view = await settledView((v) => v.connections > 0, 'the broker to show the connection and its channels');
    expect(view.connections).toBe(1);
    expect(view.channels).toBeGreaterThan(0);
    expect(view.channels).toBeLessThanOrEqual(MAX_CHANNELS);

    await closeAll(triggers, pool);
  });

  it('a missing queue among them fails only itself: the checks queued behind it on its channel still count', async () => {
    const pool = new SharedPool();
    // The missing queue is checked first: with 21 checks on at most 4 channels, others wait behind it on its channel
    // when the broker closes that channel (404), and must be retried on another one, not failed.
    const missing = scaler({ host, queueName: 'share-missing' }, {}, pool);
    const triggers = queueNames.map((queueName) => scaler({ host, queueName }, {}, pool));
    const [gone, ...results] = await Promise.allSettled([missing, ...triggers].map((t) => t.sample(signal())));
    expect(results).toEqual(queueNames.map((_, i) => ({ status: 'fulfilled', value: { value: i, active: i > 0 } })));
    expect(gone?.status).toBe('rejected');
    const err: unknown = gone?.status === 'rejected' ? gone.reason : undefined;
    expect(err).toBeInstanceOf(ScalerError);
    expect(err).not.toBeInstanceOf(BackendError); // the broker answered: not a failure of the broker
    expect(describeError(err)).toMatch(/queue "share-missing" at amqp:\/\/127\.0\.0\.1:\d+\/.* does not exist/);
    // A missing queue costs a channel, never the connection.
    expect(leasedBroker(pool).connects).toBe(1);
    const view = await settledView((v) => v.connections > 0, 'the broker to show the connection');
    expect(view.connections).toBe(1);
    expect(view.channels).toBeLessThanOrEqual(MAX_CHANNELS);

    await closeAll([missing, ...triggers], pool);
  });
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
    { comment: '500', status: 500, body: '{}', expected: /answered 500/, backend: true },
    { comment: '404', status: 404, body: '{}', expected: /does not exist/ },
    {
      comment: 'no statistics yet (messages missing, as right after a queue is created)',
      status: 200,
      body: '{"name":"q"}',
      expected: /no messages count/,
    },
    { comment: 'malformed body', status: 200, body: '<html>', expected: /not JSON/ },
    { comment: 'empty body', status: 200, body: '', expected: /not JSON/ },
    { comment: 'negative count', status: 200, body: '{"messages":-1}', expected: /no messages count/ },
    {
      comment: 'a rate that is not a number',
      status: 200,
      body: '{"name":"q","messages":1,"message_stats":{"publish":1,"publish_details":{"rate":null}}}',
      expected: /no publish rate/,
      mode: 'MessageRate',
    },
  ];
  it.each(cases)('$comment is an error, not 0', async ({ status, body, expected, mode, backend = false }) => {
    reply = (res) => res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    const metadata = { host: base, queueName: 'q', ...(mode ? { mode, value: '1' } : {}) };
    const err = await sampleError(scaler(metadata));
    expect(err.message).toMatch(expected);
    // Only a failure of the API itself counts against its circuit breaker; an unusable answer does not.
    expect(err instanceof BackendError).toBe(backend);
  });

  it('a timeout is an error', async () => {
    reply = () => undefined; // never answers
    const s = scaler({ host: base, queueName: 'q', timeout: '300' });
    const started = Date.now();
    const err = await sampleError(s);
    expect(describeError(err)).toMatch(/timeout/);
    expect(err).toBeInstanceOf(BackendError);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

describe('https: TLS from the TriggerAuthentication, against a local HTTPS server that answers like the management API', () => {
  let pki: TestPki;
  let server: HttpsServer;
  let host: string;
  const seen: { authorized: boolean; authorization: string | undefined }[] = [];

  beforeAll(async () => {
    pki = makeTestPki();
    server = createHttpsServer(
      { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, requestCert: true, rejectUnauthorized: false },
      (req, res) => {
        const authorized = (req.socket as TLSSocket).authorized;
        seen.push({ authorized, authorization: req.headers.authorization });
        // "/mtls/…" requires a client certificate signed by the test CA.
        if (req.url?.startsWith('/mtls/') && !authorized) {
          res.writeHead(403, { 'content-type': 'application/json' }).end('{"error":"no client certificate"}');
          return;
        }
        const body = {
          name: 'q',
          messages: 5,
          messages_ready: 4,
          message_stats: { publish: 40, publish_details: { rate: 2.5 } },
        };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
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

  it('verifies the server with the given CA and presents the client certificate', async () => {
    const s = scaler(
      { host: `${host}/mtls/%2F`, queueName: 'q', mode: 'MessageRate', value: '1' },
      { tls: 'enable', ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, username: 'u', password: 'p' },
    );
    expect(await s.sample(signal())).toEqual({ value: 2.5, active: true });
    expect(seen.at(-1)).toEqual({ authorized: true, authorization: `Basic ${Buffer.from('u:p').toString('base64')}` });
  });

  it('an encrypted client key works with keyPassword', async () => {
    const s = scaler(
      { host: `${host}/mtls/%2F`, queueName: 'q' },
      {
        tls: 'enable',
        ca: pki.caCert,
        cert: pki.clientCert,
        key: pki.clientKeyEncrypted,
        keyPassword: pki.clientKeyPassword,
      },
    );
    expect((await s.sample(signal())).value).toBe(5);
    expect(seen.at(-1)?.authorized).toBe(true);
  });

  it('a server the system trust store does not know is an error (without ca), unless unsafeSsl', async () => {
    const untrusted = await sampleError(scaler({ host: `${host}/`, queueName: 'q' }));
    expect(describeError(untrusted)).toMatch(/cannot reach/);
    const wrongCa = await sampleError(
      scaler({ host: `${host}/`, queueName: 'q' }, { tls: 'enable', ca: pki.otherCaCert }),
    );
    expect(describeError(wrongCa)).toMatch(/cannot reach/);
    const unsafe = scaler({ host: `${host}/`, queueName: 'q', unsafeSsl: 'true' });
    expect((await unsafe.sample(signal())).value).toBe(5);
  });

  it('without the client certificate the mTLS endpoint refuses: an error, not 0', async () => {
    const s = scaler({ host: `${host}/mtls/%2F`, queueName: 'q' }, { tls: 'enable', ca: pki.caCert });
    expect((await sampleError(s)).message).toMatch(/refused the credentials .*403/);
  });

  it('a slow TLS server times out as an error', async () => {
    // A TCP server that accepts and never completes the TLS handshake.
    const silent = createTcpServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as AddressInfo).port;
      const s = scaler(
        { host: `https://127.0.0.1:${port}/`, queueName: 'q', timeout: '300ms' },
        { tls: 'enable', ca: pki.caCert },
      );
      const started = Date.now();
      expect(describeError(await sampleError(s))).toMatch(/timeout/);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      silent.close();
    }
  });
});

// The rabbitmq scaler over the management API, against an in-process HTTP server that answers like RabbitMQ 3.10
// (the shapes were taken from the real broker; test/integration/rabbitmq-scaler.test.ts runs the same paths against
// it): decoding and activity per mode (KEDA's testQueueInfoTestData), when an absent rate is a fact and when it is
// unknown, regex aggregation and pagination, batching of the queues read in one turn into one list request, and every
// way of not knowing the value being an error.
import { getEventListeners } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackendError, ScalerError, describeError } from '../../../src/errors.ts';
import { createRabbitMqScaler } from '../../../src/scalers/rabbitmq.ts';
import { ManagementClient, listTimeoutMs } from '../../../src/scalers/rabbitmq-management.ts';
import type { Sample, SharedResources } from '../../../src/scalers/scaler.ts';
import { SharedPool } from '../../../src/scalers/shared.ts';
import { standalone, triggerInput, type StandaloneScaler } from '../../support/trigger.ts';
import { pinnedAddress } from '../../support/pinned-address.ts';

type Queue = Record<string, unknown> & { name: string };
type Handler = (req: IncomingMessage, url: URL, res: ServerResponse) => boolean;

interface Fake {
  /** The queues the list and single-queue endpoints serve (vhost "/"). */
  queues: Queue[];
  ratesMode: string;
  disableStats: boolean;
  /** Runs first; returns true when it answered. */
  override: Handler | undefined;
  requests: { path: string; query: URLSearchParams; authorization: string | undefined }[];
}

const fake: Fake = { queues: [], ratesMode: 'basic', disableStats: false, override: undefined, requests: [] };
let server: Server;
let port: number;

function json(res: ServerResponse, status: number, body: unknown): true {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  return true;
}

function route(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  fake.requests.push({ path: url.pathname, query: url.searchParams, authorization: req.headers.authorization });
  if (fake.override?.(req, url, res)) return;
  const parts = url.pathname.split('/').slice(1).map(decodeURIComponent); // ['api', 'queues', vhost, name?]
  if (url.pathname === '/api/overview') {
    json(res, 200, { rates_mode: fake.ratesMode, disable_stats: fake.disableStats });
  } else if (parts[0] === 'api' && parts[1] === 'queues' && parts[2] === '/' && parts.length === 4) {
    const queue = fake.queues.find((q) => q.name === parts[3]);
    if (queue) json(res, 200, queue);
    else json(res, 404, { error: 'Object Not Found', reason: 'Not Found' });
  } else if (parts[0] === 'api' && parts[1] === 'queues' && parts[2] === '/' && parts.length === 3) {
    // Without pagination parameters the broker lists every queue of the vhost as a plain array.
    if (!url.searchParams.has('page')) {
      json(res, 200, fake.queues);
      return;
    }
    const matching = fake.queues
      .filter((q) => new RegExp(url.searchParams.get('name') ?? '').test(q.name))
      .sort((a, b) => a.name.localeCompare(b.name));
    const size = Number(url.searchParams.get('page_size'));
    const page = Number(url.searchParams.get('page'));
    const pageCount = Math.ceil(matching.length / size);
    if (page > Math.max(pageCount, 1)) {
      json(res, 400, { error: 'page_out_of_range', reason: `Page out of range, page: ${page}` });
      return;
    }
    const items = matching.slice((page - 1) * size, page * size);
    json(res, 200, {
      filtered_count: matching.length,
      item_count: items.length,
      items,
      page,
      page_count: pageCount,
      page_size: size,
      total_count: fake.queues.length,
    });
  } else {
    json(res, 404, { error: 'Object Not Found', reason: 'Not Found' });
  }
}

beforeAll(async () => {
  server = createServer(route);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  fake.queues = [];
  fake.ratesMode = 'basic';
  fake.disableStats = false;
  fake.override = undefined;
  fake.requests = [];
});

const scalers: StandaloneScaler[] = [];
afterAll(async () => {
  await Promise.all(scalers.map((s) => s.close()));
});
/** A trigger on the fake broker with a private reader (its own SharedPool unless `shared` is given). */
function scaler(
  metadata: Record<string, string>,
  authParams: Record<string, string> = {},
  shared?: SharedResources,
): StandaloneScaler {
  const s = standalone(
    createRabbitMqScaler(
      triggerInput({
        type: 'rabbitmq',
        // The host is the TriggerAuthentication's when it supplies credentials (test/support/pinned-address.ts).
        ...pinnedAddress(
          'host',
          'move',
          { host: `http://guest:guest@127.0.0.1:${port}/`, queueName: 'q', ...metadata },
          authParams,
        ),
      }),
    ),
    shared,
  );
  scalers.push(s);
  return s;
}
const sample = (s: StandaloneScaler): Promise<Sample> => s.sample(AbortSignal.timeout(5000));
async function sampleError(s: StandaloneScaler): Promise<ScalerError> {
  try {
    const got = await sample(s);
    throw new Error(`expected an error, got the value ${got.value}`);
  } catch (err) {
    expect(err).toBeInstanceOf(ScalerError);
    return err as ScalerError;
  }
}

function stats(publish: number | undefined, deliverGet: number | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (publish !== undefined) Object.assign(out, { publish: 10, publish_details: { rate: publish } });
  if (deliverGet !== undefined) Object.assign(out, { deliver_get: 10, deliver_get_details: { rate: deliverGet } });
  return out;
}

describe('decoding and activity per mode (KEDA testQueueInfoTestData rows)', () => {
  const rows = [
    { mode: 'QueueLength', value: '100', messages: 4, ready: 3, publish: 0, deliver: 1.3, expect: 4, active: true },
    { mode: 'QueueLength', value: '100', messages: 0, ready: 0, publish: 1.4, deliver: 0, expect: 0, active: false },
    { mode: 'MessageRate', value: '100', messages: 4, ready: 3, publish: 0, deliver: 1.3, expect: 0, active: true },
    { mode: 'MessageRate', value: '100', messages: 0, ready: 0, publish: 1.4, deliver: 0, expect: 1.4, active: true },
    { mode: 'MessageRate', value: '100', messages: 0, ready: 0, publish: 0, deliver: 0, expect: 0, active: false },
    { mode: 'DeliverGetRate', value: '100', messages: 30, ready: 20, publish: 5, deliver: 1, expect: 1, active: true },
    { mode: 'DeliverGetRate', value: '100', messages: 20, ready: 20, publish: 0, deliver: 0, expect: 0, active: false },
  ];
  it.each(rows)('$mode: messages $messages publish $publish deliver_get $deliver → $expect', async (r) => {
    fake.queues = [
      { name: 'q', messages: r.messages, messages_ready: r.ready, message_stats: stats(r.publish, r.deliver) },
    ];
    expect(await sample(scaler({ mode: r.mode, value: r.value }))).toEqual({ value: r.expect, active: r.active });
  });

  it('excludeUnacknowledged counts messages_ready (and MessageRate activation uses it too)', async () => {
    fake.queues = [{ name: 'q', messages: 7, messages_ready: 2, message_stats: stats(0, 0) }];
    expect(await sample(scaler({ excludeUnacknowledged: 'true' }))).toEqual({ value: 2, active: true });
    expect(
      await sample(scaler({ excludeUnacknowledged: 'true', mode: 'MessageRate', value: '5', activationValue: '2' })),
    ).toEqual({
      value: 0,
      active: false,
    });
  });

  it('asks for one queue with the columns it needs, in the vhost and path prefix of the host URL', async () => {
    fake.override = (_req, url, res) =>
      url.pathname === '/rabbit/api/queues/my%2Fvhost/a%20q%2F1' && json(res, 200, { name: 'a q/1', messages: 1 });
    const s = standalone(
      createRabbitMqScaler(
        triggerInput({
          type: 'rabbitmq',
          metadata: { host: `http://127.0.0.1:${port}/rabbit/my%2Fvhost`, queueName: 'a q/1' },
        }),
      ),
    );
    scalers.push(s);
    expect((await sample(s)).value).toBe(1);
    expect(fake.requests[0]?.query.get('columns')).toBe('name,messages,messages_ready,message_stats');
    expect(fake.requests[0]?.authorization).toBeUndefined();
  });

  it('sends username/password from the TriggerAuthentication instead of the URL credentials', async () => {
    fake.queues = [{ name: 'q', messages: 1 }];
    await sample(scaler({}, { username: 'ta-user', password: 'ta-pass' }));
    expect(fake.requests[0]?.authorization).toBe(`Basic ${Buffer.from('ta-user:ta-pass').toString('base64')}`);
    await sample(scaler({}));
    expect(fake.requests[1]?.authorization).toBe(`Basic ${Buffer.from('guest:guest').toString('base64')}`);
  });
});

describe('absent statistics', () => {
  it('a queue without its count (no statistics yet) is an error in every mode', async () => {
    fake.queues = [{ name: 'q' }];
    for (const mode of ['QueueLength', 'MessageRate', 'DeliverGetRate']) {
      expect((await sampleError(scaler({ mode, value: '1' }))).message).toMatch(/no messages count for queue "q"/);
    }
    fake.queues = [{ name: 'q', messages: 3 }];
    expect((await sampleError(scaler({ excludeUnacknowledged: 'true' }))).message).toMatch(/no messages_ready count/);
  });

  it('QueueLength needs no message_stats and never asks for the overview', async () => {
    fake.queues = [{ name: 'q', messages: 3, messages_ready: 3 }];
    expect(await sample(scaler({}))).toEqual({ value: 3, active: true });
    expect(fake.requests.map((r) => r.path)).toEqual(['/api/queues/%2F/q']);
  });

  it('no message_stats on a queue that never had traffic: rate 0 is a fact once the broker says it collects rates', async () => {
    fake.queues = [{ name: 'q', messages: 0, messages_ready: 0 }];
    const s = scaler({ mode: 'MessageRate', value: '10' });
    expect(await sample(s)).toEqual({ value: 0, active: false });
    expect(fake.requests.map((r) => r.path)).toEqual(['/api/queues/%2F/q', '/api/overview']);
    expect(fake.requests[1]?.query.get('columns')).toBe('rates_mode,disable_stats');
    // The answer is remembered: the next sample asks for the queue only.
    await sample(s);
    expect(fake.requests.map((r) => r.path)).toEqual(['/api/queues/%2F/q', '/api/overview', '/api/queues/%2F/q']);
    // An idle queue with messages activates MessageRate (messages > activation).
    fake.queues = [{ name: 'q', messages: 4, messages_ready: 4 }];
    expect(await sample(scaler({ mode: 'MessageRate', value: '10', activationValue: '3' }))).toEqual({
      value: 0,
      active: true,
    });
  });

  it('DeliverGetRate: published but never consumed (no deliver_get counter) is 0', async () => {
    fake.queues = [{ name: 'q', messages: 5, message_stats: stats(2, undefined) }];
    expect(await sample(scaler({ mode: 'DeliverGetRate', value: '1' }))).toEqual({ value: 0, active: false });
  });

  it('with rates_mode none (or statistics disabled) an absent rate is unknown: an error, never 0', async () => {
    fake.queues = [{ name: 'q', messages: 9, messages_ready: 9 }];
    fake.ratesMode = 'none';
    expect((await sampleError(scaler({ mode: 'MessageRate', value: '1' }))).message).toMatch(
      /does not collect message rates \(rates_mode none\)/,
    );
    fake.ratesMode = 'basic';
    fake.disableStats = true;
    expect((await sampleError(scaler({ mode: 'DeliverGetRate', value: '1' }))).message).toMatch(/statistics disabled/);
  });

  it('an overview that fails or lacks rates_mode leaves the rate unknown', async () => {
    fake.queues = [{ name: 'q', messages: 1 }];
    fake.override = (_req, url, res) => url.pathname === '/api/overview' && json(res, 500, { error: 'boom' });
    expect((await sampleError(scaler({ mode: 'MessageRate', value: '1' }))).message).toMatch(/answered 500/);
    fake.override = (_req, url, res) => url.pathname === '/api/overview' && json(res, 200, {});
    expect((await sampleError(scaler({ mode: 'MessageRate', value: '1' }))).message).toMatch(/rates_mode unknown/);
  });

  const malformed = [
    { comment: 'a counter without its details', stats: { publish: 3 }, expected: /reports no publish rate/ },
    { comment: 'details without a rate', stats: { publish: 3, publish_details: {} }, expected: /no publish rate/ },
    { comment: 'a rate that is a string', stats: { publish_details: { rate: '1.0' } }, expected: /no publish rate/ },
    { comment: 'a negative rate', stats: { publish: 1, publish_details: { rate: -1 } }, expected: /no publish rate/ },
    { comment: 'message_stats that is not an object', stats: 'lots', expected: /malformed message_stats/ },
  ];
  it.each(malformed)('$comment is an error, not 0', async ({ stats: messageStats, expected }) => {
    fake.queues = [{ name: 'q', messages: 1, message_stats: messageStats }];
    expect((await sampleError(scaler({ mode: 'MessageRate', value: '1' }))).message).toMatch(expected);
  });
});

describe('useRegex', () => {
  const three = (): Queue[] => [
    { name: 'jobs-a', messages: 1, messages_ready: 1, message_stats: stats(1, 0.5) },
    { name: 'jobs-b', messages: 4, messages_ready: 2, message_stats: stats(2, 1.5) },
    { name: 'jobs-c', messages: 10, messages_ready: 10, message_stats: stats(6, 1) },
    { name: 'other', messages: 100, messages_ready: 100, message_stats: stats(100, 100) },
  ];
  const rows = [
    { operation: 'sum', mode: 'QueueLength', expect: 15 },
    { operation: 'avg', mode: 'QueueLength', expect: 5 },
    { operation: 'max', mode: 'QueueLength', expect: 10 },
    { operation: 'sum', mode: 'MessageRate', expect: 9 },
    { operation: 'avg', mode: 'MessageRate', expect: 3 },
    { operation: 'max', mode: 'DeliverGetRate', expect: 1.5 },
    { operation: 'avg', mode: 'DeliverGetRate', expect: 1 },
  ];
  it.each(rows)('$operation of $mode over 3 matching queues → $expect', async (r) => {
    fake.queues = three();
    const got = await sample(
      scaler({ queueName: '^jobs-', useRegex: 'true', operation: r.operation, mode: r.mode, value: '5' }),
    );
    expect(got.value).toBeCloseTo(r.expect, 10);
    expect(fake.requests[0]?.path).toBe('/api/queues/%2F');
    expect(Object.fromEntries(fake.requests[0]?.query ?? [])).toMatchObject({
      use_regex: 'true',
      name: '^jobs-',
      page: '1',
      page_size: '100',
      sort: 'name',
      columns: 'name,messages,messages_ready,message_stats',
    });
  });

  it('avg is the exact mean (KEDA divides counts as integers)', async () => {
    fake.queues = [
      { name: 'x1', messages: 1 },
      { name: 'x2', messages: 2 },
    ];
    expect((await sample(scaler({ queueName: '^x', useRegex: 'true', operation: 'avg' }))).value).toBe(1.5);
  });

  it('excludeUnacknowledged sums messages_ready', async () => {
    fake.queues = three();
    expect((await sample(scaler({ queueName: '^jobs-', useRegex: 'true', excludeUnacknowledged: 'true' }))).value).toBe(
      13,
    );
  });

  it('follows every page: pageSize 2 over 5 queues reads pages 1, 2 and 3', async () => {
    fake.queues = [1, 2, 3, 4, 5].map((i) => ({ name: `p-${i}`, messages: i }));
    expect((await sample(scaler({ queueName: '^p-', useRegex: 'true', pageSize: '2' }))).value).toBe(15);
    expect(fake.requests.map((r) => `${r.query.get('page')}/${r.query.get('page_size')}`)).toEqual([
      '1/2',
      '2/2',
      '3/2',
    ]);
  });

  it('no matching queue is an error (KEDA: 0)', async () => {
    fake.queues = three();
    expect((await sampleError(scaler({ queueName: '^nothing', useRegex: 'true' }))).message).toMatch(
      /no queue matches "\^nothing" in vhost "\/"/,
    );
  });

  it('one matching queue without statistics makes the whole reading unknown', async () => {
    fake.queues = [...three(), { name: 'jobs-new' }];
    const { message } = await sampleError(scaler({ queueName: '^jobs-', useRegex: 'true' }));
    expect(message).toMatch(/no messages count for queue 4 of 4 matching "\^jobs-" \(by name; names are not shown\)/);
    // The broker chose it: its name is not quoted.
    expect(message).not.toContain('jobs-new');
  });

  it('an absent rate in one matching queue asks the overview once, and counts as 0', async () => {
    fake.queues = [
      { name: 'r-1', messages: 0, message_stats: stats(3, 1) },
      { name: 'r-2', messages: 0 },
    ];
    expect((await sample(scaler({ queueName: '^r-', useRegex: 'true', mode: 'MessageRate', value: '1' }))).value).toBe(
      3,
    );
    expect(fake.requests.filter((r) => r.path === '/api/overview')).toHaveLength(1);
  });

  it('queues appearing while paging: retried once, then an error (never a partial sum)', async () => {
    fake.queues = [1, 2, 3].map((i) => ({ name: `c-${i}`, messages: i }));
    let listCalls = 0;
    let churn = 2; // the first two page-2 answers see one more queue
    fake.override = (_req, url, res) => {
      if (url.pathname !== '/api/queues/%2F') return false;
      listCalls++;
      if (url.searchParams.get('page') === '2' && churn > 0) {
        churn--;
        return json(res, 200, {
          filtered_count: 4,
          items: [{ name: 'c-3', messages: 3 }],
          page: 2,
          page_count: 2,
          page_size: 2,
        });
      }
      return false;
    };
    const s = scaler({ queueName: '^c-', useRegex: 'true', pageSize: '2' });
    expect((await sampleError(s)).message).toMatch(/changed while sluice was paging/);
    expect(listCalls).toBe(4);
    // Once the list is stable again the reading works.
    expect((await sample(s)).value).toBe(6);
  });

  it('queues disappearing while paging (page out of range) is retried', async () => {
    fake.queues = [1, 2, 3].map((i) => ({ name: `d-${i}`, messages: i }));
    let once = true;
    fake.override = (_req, url, res) => {
      if (url.pathname === '/api/queues/%2F' && url.searchParams.get('page') === '2' && once) {
        once = false;
        return json(res, 400, { error: 'page_out_of_range', reason: 'Page out of range, page: 2' });
      }
      return false;
    };
    expect((await sample(scaler({ queueName: '^d-', useRegex: 'true', pageSize: '2' }))).value).toBe(6);
  });

  it("the broker's 400 on the first page (e.g. a bad regular expression) is the error, without its reason", async () => {
    fake.override = (_req, url, res) =>
      url.pathname === '/api/queues/%2F' &&
      json(res, 400, { error: 'bad_request', reason: 'Pagination parameters are invalid' });
    const message = describeError(await sampleError(scaler({ queueName: '(', useRegex: 'true' })));
    expect(message).toMatch(
      /answered 400 for the queues matching "\(" .* \(the broker refused the request: with useRegex, check that queueName is a valid PCRE expression; the broker's reason is not shown\)$/,
    );
    expect(message).not.toContain('Pagination');
  });

  it('a list without pagination fields, or a vhost that does not exist, is an error', async () => {
    fake.override = (_req, url, res) =>
      url.pathname === '/api/queues/%2F' && json(res, 200, [{ name: 'q', messages: 1 }]);
    expect((await sampleError(scaler({ queueName: 'q', useRegex: 'true' }))).message).toMatch(
      /without pagination fields/,
    );
    fake.override = undefined;
    const s = scaler({ queueName: 'q', useRegex: 'true', vhostName: 'nope' });
    expect((await sampleError(s)).message).toMatch(/vhost "nope" does not exist/);
  });
});

describe('HTTP failures are errors, never 0', () => {
  const cases = [
    {
      comment: '404: the queue does not exist',
      status: 404,
      body: '{"error":"Object Not Found"}',
      expected: /queue "q" in vhost "\/" at http:\/\/127\.0\.0\.1:\d+ does not exist/,
      backend: false,
    },
    {
      comment: '401: credentials refused',
      status: 401,
      body: '{"error":"not_authorized"}',
      expected: /refused the credentials .*\(401\)/,
      backend: true,
    },
    {
      comment: '403: credentials refused',
      status: 403,
      body: '',
      expected: /refused the credentials .*\(403\)/,
      backend: true,
    },
    { comment: '500', status: 500, body: '{}', expected: /answered 500/, backend: true },
    { comment: '429', status: 429, body: '{}', expected: /answered 429/, backend: true },
    {
      // A failure of the API names the API only (every reader of it reports the same), and quotes nothing it sent.
      comment: '503 with a reason',
      status: 503,
      body: '{"reason":"node down"}',
      expected: /^the RabbitMQ management API at http:\/\/127\.0\.0\.1:\d+ answered 503$/,
      backend: true,
    },
    {
      comment: 'a 400',
      status: 400,
      body: '{"reason":"AKIAIOSFODNN7EXAMPLE"}',
      expected: /answered 400 .*\(the broker refused the request: .*\)$/,
      backend: false,
    },
    { comment: 'a body that is not JSON', status: 200, body: '<html>', expected: /not JSON/, backend: false },
    { comment: 'an empty body', status: 200, body: '', expected: /not JSON/, backend: false },
    { comment: 'JSON that is not a queue', status: 200, body: '[1,2]', expected: /not a queue/, backend: false },
    {
      comment: 'a negative count',
      status: 200,
      body: '{"name":"q","messages":-1}',
      expected: /no messages count/,
      backend: false,
    },
    {
      comment: 'a count that is a string',
      status: 200,
      body: '{"name":"q","messages":"7"}',
      expected: /no messages count/,
      backend: false,
    },
  ];
  // A BackendError counts against the backend's circuit breaker; an answer without a usable value must not.
  it.each(cases)('$comment (a backend failure: $backend)', async ({ status, body, expected, backend }) => {
    fake.override = (_req, _url, res) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
      return true;
    };
    const err = await sampleError(scaler({}));
    expect(err.message).toMatch(expected);
    expect(err.message).not.toContain('guest:guest');
    expect(err instanceof BackendError).toBe(backend);
  });

  it('a redirect is an error saying where it points, never quoting it (credentials never follow it)', async () => {
    fake.override = (_req, _url, res) => {
      res.writeHead(302, { location: 'http://elsewhere.example/api' }).end();
      return true;
    };
    const err = await sampleError(scaler({}));
    expect(describeError(err)).toMatch(/a redirect to http on another host/);
    expect(describeError(err)).not.toContain('elsewhere');
    // The API answered (somewhere else): the backend did not fail.
    expect(err).not.toBeInstanceOf(BackendError);
  });

  it('a timeout is an error, within the timeout', async () => {
    fake.override = () => true; // never answers
    const started = Date.now();
    const err = await sampleError(scaler({ timeout: '300ms' }));
    expect(Date.now() - started).toBeLessThan(2500);
    // The trigger's timeout bounds the read: the asker gives up at 300 ms, whoever is still waiting for the answer.
    expect(describeError(err)).toMatch(/^reading the RabbitMQ management API at http:\/\/127\.0\.0\.1:\d+ timed out/);
    expect(err).toBeInstanceOf(BackendError);
  });
});

describe('batching: the queues of one vhost read in one turn through one shared client', () => {
  const COLUMNS = 'name,messages,messages_ready,message_stats';
  /** One trigger per queue, all through one SharedPool (so one shared ManagementClient). */
  function triggers(names: readonly string[], pool = new SharedPool()) {
    return names.map((queueName) => scaler({ queueName }, {}, pool));
  }
  /** Samples every trigger in the same event-loop turn (what the hub does for the readers of one backend). */
  const together = (ss: readonly StandaloneScaler[]) => Promise.allSettled(ss.map((s) => sample(s)));
  const values = (results: PromiseSettledResult<Sample>[]) =>
    results.map((r) => (r.status === 'fulfilled' ? r.value.value : describeError(r.reason)));
  const paths = () => fake.requests.map((r) => `${r.path}?${r.query.toString()}`);

  it('three queues asked in one turn: exactly one list request, and each trigger gets its own count', async () => {
    fake.queues = [
      { name: 'b-1', messages: 1 },
      { name: 'b-2', messages: 2 },
      { name: 'b-3', messages: 3 },
      { name: 'other', messages: 100 },
    ];
    const results = await together(triggers(['b-1', 'b-2', 'b-3']));
    expect(values(results)).toEqual([1, 2, 3]);
    expect(paths()).toEqual([`/api/queues/%2F?columns=${encodeURIComponent(COLUMNS)}`]);
  });

  it('two queues: one GET per queue (a list would cost more than it saves)', async () => {
    fake.queues = [
      { name: 'b-1', messages: 1 },
      { name: 'b-2', messages: 2 },
    ];
    expect(values(await together(triggers(['b-1', 'b-2'])))).toEqual([1, 2]);
    expect(fake.requests.map((r) => r.path).sort()).toEqual(['/api/queues/%2F/b-1', '/api/queues/%2F/b-2']);
  });

  it('a queue absent from the list "does not exist" for its own trigger only', async () => {
    fake.queues = [
      { name: 'b-1', messages: 1 },
      { name: 'b-3', messages: 3 },
    ];
    const results = await together(triggers(['b-1', 'b-2', 'b-3']));
    expect(results[0]).toEqual({ status: 'fulfilled', value: { value: 1, active: true } });
    expect(results[2]).toEqual({ status: 'fulfilled', value: { value: 3, active: true } });
    const missing = results[1];
    expect(missing?.status).toBe('rejected');
    const reason: unknown = missing?.status === 'rejected' ? missing.reason : undefined;
    expect(reason).toBeInstanceOf(ScalerError);
    expect(reason).not.toBeInstanceOf(BackendError); // the broker answered: its breaker must not count this
    expect(describeError(reason)).toMatch(/queue "b-2" in vhost "\/" at .* does not exist/);
    expect(fake.requests).toHaveLength(1);
  });

  it('a vhost listing more than 10× the queues asked for is read queue by queue from the next turn on', async () => {
    const filler = (n: number): Queue[] => Array.from({ length: n }, (_, i) => ({ name: `z-${i}`, messages: 0 }));
    const asked = [
      { name: 'b-1', messages: 1 },
      { name: 'b-2', messages: 2 },
      { name: 'b-3', messages: 3 },
    ];
    // 30 queues for 3 asked is exactly 10×: still worth a list, turn after turn.
    fake.queues = [...asked, ...filler(27)];
    const dense = triggers(['b-1', 'b-2', 'b-3']);
    for (let turn = 0; turn < 2; turn++) expect(values(await together(dense))).toEqual([1, 2, 3]);
    expect(fake.requests.map((r) => r.path)).toEqual(['/api/queues/%2F', '/api/queues/%2F']);

    // 31 queues for 3 asked: the first turn's list is answered from, and marks the vhost as sparse…
    fake.requests = [];
    fake.queues = [...asked, ...filler(28)];
    const pool = new SharedPool();
    const sparse = triggers(['b-1', 'b-2', 'b-3'], pool);
    expect(values(await together(sparse))).toEqual([1, 2, 3]);
    expect(fake.requests.map((r) => r.path)).toEqual(['/api/queues/%2F']);
    // …so the next turn asks for each queue instead.
    fake.requests = [];
    expect(values(await together(sparse))).toEqual([1, 2, 3]);
    expect(fake.requests.map((r) => r.path).sort()).toEqual([
      '/api/queues/%2F/b-1',
      '/api/queues/%2F/b-2',
      '/api/queues/%2F/b-3',
    ]);

    // Objects created one by one after start: once a turn asks for a tenth of what the vhost listed, it is listed
    // again (not a request per queue per second for five minutes).
    fake.requests = [];
    const more = filler(28).map((q) => q.name);
    // The same client (one pool) as the sparse turns: it remembers the vhost as sparse.
    const many = [...sparse, ...triggers(more.slice(0, 1), pool)];
    expect(values(await together(many))).toEqual([1, 2, 3, 0]);
    expect(fake.requests.map((r) => r.path)).toEqual(['/api/queues/%2F']);
  });

  it('a list request that fails (500) fails every asker with a BackendError, and none reads 0', async () => {
    fake.queues = [
      { name: 'b-1', messages: 1 },
      { name: 'b-2', messages: 2 },
      { name: 'b-3', messages: 3 },
    ];
    fake.override = (_req, url, res) => url.pathname === '/api/queues/%2F' && json(res, 500, { reason: 'boom' });
    const results = await together(triggers(['b-1', 'b-2', 'b-3']));
    expect(fake.requests).toHaveLength(1);
    for (const result of results) {
      expect(result.status).toBe('rejected');
      const reason: unknown = result.status === 'rejected' ? result.reason : undefined;
      expect(reason).toBeInstanceOf(BackendError);
      expect(describeError(reason)).toMatch(/^the RabbitMQ management API at http:\/\/127\.0\.0\.1:\d+ answered 500$/);
    }
  });
});

describe('ManagementClient: many askers under one signal', () => {
  it('holds one abort listener per signal however many queues a turn asks for, and an abort rejects them all', async () => {
    const client = new ManagementClient({
      base: new URL('http://127.0.0.1:1'),
      timeoutMs: 60_000,
      // The list request never answers before the abort (as a broker that hangs).
      get: (_url, signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            reject(new Error('aborted'));
          });
        }),
    });
    const controller = new AbortController();
    const asks = Array.from({ length: 200 }, (_, i) => client.queue('/', `q${i}`, controller.signal));
    const settled = Promise.allSettled(asks);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    controller.abort(new Error('turn over'));
    const results = await settled;
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(describeError((results[0] as PromiseRejectedResult).reason)).toMatch(/RabbitMQ management API/);
  });
});

describe('the time limit of a list grows with the list', () => {
  it.each([
    // [trigger timeout, queues listed, limit]: whole steps of 1,000 queues, so the limit (and its message) stays put
    [3000, 0, 3000],
    [3000, 3, 4000],
    [3000, 1000, 4000],
    [3000, 1001, 5000],
    [3000, 10_000, 13_000],
    [3000, 100_000, 60_000], // at most a minute
    [60_000, 10_000, 60_000], // never below the trigger's own timeout
    [300, 2.5, 1300],
  ])('timeout %i ms, %d queues → %i ms', (timeoutMs, queues, expected) => {
    expect(listTimeoutMs(timeoutMs, queues)).toBe(expected);
  });

  it("a list request is sent with the limit of the vhost's size, which the hub reads back for the turn", async () => {
    const listed = Array.from({ length: 2000 }, (_, i) => ({ name: `q${i}`, messages: i }));
    const sent: (number | undefined)[] = [];
    const client = new ManagementClient({
      base: new URL('http://127.0.0.1:1'),
      timeoutMs: 3000,
      get: (_url, _signal, timeoutMs) => {
        sent.push(timeoutMs);
        return Promise.resolve({ status: 200, body: JSON.stringify(listed) });
      },
    });
    const turn = (n: number) =>
      Promise.all(Array.from({ length: n }, (_, i) => client.queue('/', `q${i}`, new AbortController().signal)));
    // Before any list the vhost's size is unknown: the hub waits as long as a list may take (the askers of several of
    // its reads may be gathered into one list), and the list itself is bounded by the queues asked for.
    expect(client.timeoutFor('/', 1)).toBe(60_000);
    await turn(1500);
    expect(sent).toStrictEqual([5000]);
    // The vhost listed 2,000: the next list of it, and the hub's limit for any read of it, allow for 2,000.
    expect(client.timeoutFor('/', 1)).toBe(5000);
    expect(client.timeoutFor('/', 3000)).toBe(6000);
    await turn(1500);
    expect(sent).toStrictEqual([5000, 5000]);
  });

  it('a list that runs out of time doubles the allowance of the next, until it fits', async () => {
    vi.useFakeTimers();
    try {
      const sent: (number | undefined)[] = [];
      // Listing takes 9 s: longer than the first limits allow. (AbortSignal.timeout is not on the fake clock: the
      // fake API runs out of time itself, at the limit it was given.)
      const client = new ManagementClient({
        base: new URL('http://127.0.0.1:1'),
        timeoutMs: 3000,
        get: (_url, _signal, timeoutMs) => {
          sent.push(timeoutMs);
          return new Promise((resolve, reject) => {
            const answer = setTimeout(() => {
              clearTimeout(late);
              resolve({ status: 200, body: JSON.stringify(['q0', 'q1', 'q2'].map((name) => ({ name, messages: 1 }))) });
            }, 9000);
            const late = setTimeout(() => {
              clearTimeout(answer);
              reject(new Error('timed out'));
            }, timeoutMs);
          });
        },
      });
      const turn = async () => {
        const asks = ['q0', 'q1', 'q2'].map((name) => client.queue('/', name, new AbortController().signal));
        const settled = Promise.allSettled(asks);
        await vi.advanceTimersByTimeAsync(10_000);
        return (await settled).map((r) => r.status);
      };
      for (let i = 0; i < 3; i++) expect(await turn()).toStrictEqual(['rejected', 'rejected', 'rejected']);
      expect(await turn()).toStrictEqual(['fulfilled', 'fulfilled', 'fulfilled']);
      // 3 s + an allowance for 1,000 queues, then 2,000, 4,000 and 8,000: the list of 9 s fits in 11 s.
      expect(sent).toStrictEqual([4000, 5000, 7000, 11_000]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('a list the same as the last is not decoded again', () => {
  it('gives each queue the same reading object while the body is unchanged, and new ones when it changes', async () => {
    let listed = [
      { name: 'q0', messages: 0, messages_ready: 0 },
      { name: 'q1', messages: 4, messages_ready: 3 },
      { name: 'q2', messages: 0, messages_ready: 0 },
    ];
    const client = new ManagementClient({
      base: new URL('http://127.0.0.1:1'),
      timeoutMs: 3000,
      get: () => Promise.resolve({ status: 200, body: JSON.stringify(listed) }),
    });
    const turn = () =>
      Promise.all(['q0', 'q1', 'q2'].map((name) => client.queue('/', name, new AbortController().signal)));
    const first = await turn();
    const second = await turn();
    expect(client.requests).toBe(2);
    // The hub compares readings by identity first: an idle vhost costs it nothing to compare.
    second.forEach((stats, i) => {
      expect(stats).toBe(first[i]);
    });
    expect(second[1]).toMatchObject({ messages: 4, messagesReady: 3 });

    listed = [...listed.slice(0, 1), { name: 'q1', messages: 5, messages_ready: 4 }, ...listed.slice(2)];
    const third = await turn();
    expect(third[1]).toMatchObject({ messages: 5, messagesReady: 4 });
    expect(third[1]).not.toBe(first[1]);
    expect(third[0]).toStrictEqual(first[0]);
  });

  it('a queue gone from an unchanged-looking vhost is still an error, not the last reading', async () => {
    let body = JSON.stringify([
      { name: 'q0', messages: 1 },
      { name: 'q1', messages: 1 },
      { name: 'q2', messages: 1 },
    ]);
    const client = new ManagementClient({
      base: new URL('http://127.0.0.1:1'),
      timeoutMs: 3000,
      get: () => Promise.resolve({ status: 200, body }),
    });
    const turn = () =>
      Promise.allSettled(['q0', 'q1', 'q2'].map((name) => client.queue('/', name, new AbortController().signal)));
    expect((await turn()).map((r) => r.status)).toStrictEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    body = JSON.stringify([
      { name: 'q0', messages: 1 },
      { name: 'q2', messages: 1 },
    ]);
    const after = await turn();
    expect(after.map((r) => r.status)).toStrictEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(describeError((after[1] as PromiseRejectedResult).reason)).toMatch(/queue "q1" .* does not exist/);
  });
});

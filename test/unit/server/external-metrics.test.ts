import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { formatSelector } from '../../../src/labels.ts';
import type { DemandAnswer, MetricDemand } from '../../../src/metric-demand.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import { buildServer } from '../../../src/server/app.ts';
import type {
  Authenticate,
  AuthorizationDecision,
  Authorize,
  ResourceAttributes,
  UserInfo,
} from '../../../src/server/identity.ts';
import { captureLogger, series } from './support.ts';

const HPA: UserInfo = {
  username: 'system:serviceaccount:kube-system:horizontal-pod-autoscaler',
  uid: 'a1b2',
  groups: ['system:serviceaccounts', 'system:authenticated'],
  extra: {},
};
const BASE = '/apis/external.metrics.k8s.io/v1beta1';
const SO_LABEL = 'scaledobject.sluice.dev/name';
const HPA_ACCEPT = 'application/vnd.kubernetes.protobuf, */*';

interface Harness {
  app: FastifyInstance;
  store: MetricStore;
  authenticate: ReturnType<typeof vi.fn<Authenticate>>;
  authorize: ReturnType<typeof vi.fn<Authorize>>;
  logger: ReturnType<typeof captureLogger>;
  setReady: (ready: boolean) => void;
}

let current: FastifyInstance | undefined;
afterEach(async () => {
  await current?.close();
  current = undefined;
});

function harness(
  options: { user?: UserInfo | undefined; decision?: AuthorizationDecision | Error } = { user: HPA },
): Harness {
  const store = new MetricStore();
  const user = 'user' in options ? options.user : HPA;
  const decision = options.decision ?? { allowed: true, reason: '' };
  const authenticate = vi.fn<Authenticate>(() => user);
  const authorize = vi.fn<Authorize>(() =>
    decision instanceof Error ? Promise.reject(decision) : Promise.resolve(decision),
  );
  const logger = captureLogger();
  let ready = false;
  const app = buildServer({ store, authenticate, authorize, logger, ready: () => ready });
  current = app;
  return {
    app,
    store,
    authenticate,
    authorize,
    logger,
    setReady: (value) => {
      ready = value;
    },
  };
}

async function get(app: FastifyInstance, url: string) {
  const response = await app.inject({ method: 'GET', url, headers: { accept: HPA_ACCEPT } });
  return { status: response.statusCode, type: response.headers['content-type'], body: response.json<unknown>() };
}

describe('discovery', () => {
  it('GET /apis answers the legacy APIGroupList', async () => {
    const { app, authorize } = harness();
    const response = await get(app, '/apis');
    expect(response.status).toBe(200);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual({
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [
        {
          name: 'external.metrics.k8s.io',
          versions: [{ groupVersion: 'external.metrics.k8s.io/v1beta1', version: 'v1beta1' }],
          preferredVersion: { groupVersion: 'external.metrics.k8s.io/v1beta1', version: 'v1beta1' },
        },
      ],
    });
    expect(authorize).not.toHaveBeenCalled();
  });

  it('GET /apis/external.metrics.k8s.io answers the APIGroup', async () => {
    const { app } = harness();
    const response = await get(app, '/apis/external.metrics.k8s.io');
    expect(response.status).toBe(200);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual({
      kind: 'APIGroup',
      apiVersion: 'v1',
      name: 'external.metrics.k8s.io',
      versions: [{ groupVersion: 'external.metrics.k8s.io/v1beta1', version: 'v1beta1' }],
      preferredVersion: { groupVersion: 'external.metrics.k8s.io/v1beta1', version: 'v1beta1' },
    });
  });

  it('the APIResourceList of an empty store holds only the placeholder', async () => {
    const { app } = harness();
    const response = await get(app, BASE);
    expect(response.status).toBe(200);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual({
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: 'external.metrics.k8s.io/v1beta1',
      resources: [
        {
          name: 'externalmetrics',
          singularName: '',
          namespaced: true,
          kind: 'ExternalMetricValueList',
          verbs: ['get'],
        },
      ],
    });
  });

  it("lists only KEDA's placeholder, never a namespace's metric names, without a SubjectAccessReview", async () => {
    const { app, store, authorize } = harness({ user: { username: 'system:kube-aggregator', groups: [], extra: {} } });
    store.set(series({ namespace: 'shop', metricName: 's0-rabbitmq-orders' }));
    store.set(series({ namespace: 'billing', metricName: 's0-rabbitmq-orders', owner: 'billing/other' }));
    store.set(series({ namespace: 'billing', metricName: 's1-aws-sqs-queue-invoices' }));
    const response = await get(app, `${BASE}/`);
    expect(response.status).toBe(200);
    const body = response.body as { resources: { name: string; singularName: string }[] };
    expect(body.resources.map((r) => r.name)).toEqual(['externalmetrics']);
    expect(JSON.stringify(response.body)).not.toContain('orders');
    expect(body.resources.every((r) => r.singularName === '')).toBe(true);
    expect(authorize).not.toHaveBeenCalled();
  });

  it.each(['/openapi/v2', '/openapi/v3'])('%s answers 404 Status so the aggregator skips it', async (url) => {
    const { app } = harness();
    const response = await get(app, url);
    expect(response.status).toBe(404);
    expect(response.type).toBe('application/json');
    expect(response.body).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound' });
  });
});

describe('metric reads', () => {
  function stocked(h: Harness): void {
    h.store.set(
      series({ namespace: 'shop', metricName: 's0-rabbitmq-orders', labels: { [SO_LABEL]: 'my-so' }, value: 57 }),
    );
    h.store.set(
      series({
        namespace: 'shop',
        metricName: 's0-rabbitmq-orders',
        labels: { [SO_LABEL]: 'other-so' },
        value: 3,
        owner: 'shop/other-so',
      }),
    );
    h.store.set(
      series({ namespace: 'billing', metricName: 's0-rabbitmq-orders', labels: { [SO_LABEL]: 'my-so' }, value: 99 }),
    );
  }

  /** What `stocked` serves for my-so's s0-rabbitmq-orders in shop. */
  const ORDERS_LIST = {
    kind: 'ExternalMetricValueList',
    apiVersion: 'external.metrics.k8s.io/v1beta1',
    metadata: {},
    items: [
      {
        metricName: 's0-rabbitmq-orders',
        metricLabels: { [SO_LABEL]: 'my-so' },
        timestamp: '2026-11-24T10:48:17Z',
        value: '57',
      },
    ],
  };

  it('serves the matching series of the namespace as an ExternalMetricValueList', async () => {
    const h = harness();
    stocked(h);
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-rabbitmq-orders?labelSelector=${SO_LABEL}%3Dmy-so`);
    expect(response.status).toBe(200);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual(ORDERS_LIST);
  });

  it('writes the exact bytes JSON.stringify would, two series in store order', async () => {
    const h = harness();
    stocked(h);
    h.store.set(
      series({
        namespace: 'shop',
        metricName: 's0-rabbitmq-orders',
        labels: { [SO_LABEL]: 'my-so', queue: 'b' },
        value: 0.25,
        owner: 'shop/third',
      }),
    );
    const url = `${BASE}/namespaces/shop/s0-rabbitmq-orders?labelSelector=${SO_LABEL}%3Dmy-so`;
    const response = await h.app.inject({ method: 'GET', url, headers: { accept: HPA_ACCEPT } });
    expect(response.headers['content-type']).toBe('application/json');
    expect(response.body).toBe(
      JSON.stringify({
        ...ORDERS_LIST,
        items: [
          ...ORDERS_LIST.items,
          {
            metricName: 's0-rabbitmq-orders',
            metricLabels: { [SO_LABEL]: 'my-so', queue: 'b' },
            timestamp: '2026-11-24T10:48:17Z',
            value: '250m',
          },
        ],
      }),
    );
  });

  it('serialises a series once: a new value is a new series object, and only that is written again', async () => {
    const h = harness();
    const first = series({ namespace: 'shop', metricName: 'm', labels: { [SO_LABEL]: 'my-so' }, value: 3 });
    h.store.set(first);
    const url = `${BASE}/namespaces/shop/m?labelSelector=${SO_LABEL}%3Dmy-so`;
    const value = async () => ((await get(h.app, url)).body as { items: { value: string }[] }).items[0]?.value;
    expect(await value()).toBe('3');
    // The store never changes a series in place; one that did would not be seen (the body is made once per object).
    (first as { value: number }).value = 4;
    expect(await value()).toBe('3');
    h.store.set({ ...first, value: 5 });
    expect(await value()).toBe('5');
    // The same series asked for under another spelling of its name is answered under that spelling.
    const upper = await get(h.app, `${BASE}/namespaces/shop/M?labelSelector=${SO_LABEL}%3Dmy-so`);
    expect(upper.body).toMatchObject({ items: [{ metricName: 'M', value: '5' }] });
  });

  it('logs a served request once, at debug (fastify would log two info lines per request)', async () => {
    const h = harness();
    stocked(h);
    await get(h.app, `${BASE}/namespaces/shop/s0-rabbitmq-orders?labelSelector=${SO_LABEL}%3Dmy-so`);
    expect(h.logger.records.map((r) => [r.level, r.args.at(-1)])).toStrictEqual([['debug', 'request completed']]);
  });

  it('asks the authorizer for verb list on the metric in the namespace', async () => {
    const h = harness();
    stocked(h);
    await get(h.app, `${BASE}/namespaces/shop/s0-rabbitmq-orders?labelSelector=${SO_LABEL}%3Dmy-so`);
    expect(h.authorize).toHaveBeenCalledTimes(1);
    expect(h.authorize).toHaveBeenCalledWith(HPA, {
      namespace: 'shop',
      verb: 'list',
      group: 'external.metrics.k8s.io',
      version: 'v1beta1',
      resource: 's0-rabbitmq-orders',
    } satisfies ResourceAttributes);
  });

  it('reads the selector as the aggregator re-encodes it (%2F, %3D, %28, + as space)', async () => {
    const h = harness();
    stocked(h);
    const url = `${BASE}/namespaces/shop/s0-rabbitmq-orders?labelSelector=scaledobject.sluice.dev%2Fname+in+%28my-so%2Cnone%29`;
    const response = await get(h.app, url);
    expect(response.status).toBe(200);
    const body = response.body as { items: { value: string }[] };
    expect(body.items.map((i) => i.value)).toEqual(['57']);
  });

  it('without a selector serves every series of the metric in the namespace', async () => {
    const h = harness();
    stocked(h);
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-rabbitmq-orders`);
    expect(response.status).toBe(200);
    const body = response.body as { items: { value: string }[] };
    expect(body.items.map((i) => i.value).sort()).toEqual(['3', '57']);
  });

  it('formats values as canonical KEDA quantities', async () => {
    const h = harness();
    const values: { comment: string; value: number; want: string }[] = [
      { comment: 'fraction', value: 1.5, want: '1500m' },
      { comment: 'thousands', value: 3000, want: '3k' },
      { comment: 'float noise', value: 2.01, want: '2010m' },
      { comment: 'zero is a real zero', value: 0, want: '0' },
      { comment: 'negative clamps like KEDA', value: -4, want: '0' },
    ];
    for (const [index, row] of values.entries()) {
      h.store.set(series({ namespace: 'ns', metricName: `s${index}-m`, value: row.value }));
      const response = await get(h.app, `${BASE}/namespaces/ns/s${index}-m`);
      expect(response.status, row.comment).toBe(200);
      expect((response.body as { items: { value: string }[] }).items[0]?.value, row.comment).toBe(row.want);
    }
  });

  it('answers 404 NotFound when no series matches the selector', async () => {
    const h = harness();
    stocked(h);
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-rabbitmq-orders?labelSelector=${SO_LABEL}%3Dgone`);
    expect(response.status).toBe(404);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `the server could not find the metric s0-rabbitmq-orders for ${SO_LABEL}=gone in namespace shop`,
      reason: 'NotFound',
      code: 404,
    });
  });

  it('answers 404 for a metric that only exists in another namespace', async () => {
    const h = harness();
    h.store.set(series({ namespace: 'billing', metricName: 's0-only-billing' }));
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-only-billing`);
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({
      reason: 'NotFound',
      message: 'the server could not find the metric s0-only-billing for any labels in namespace shop',
    });
  });

  it('never serves an unknown value as 0: the failed poll becomes a 500 Status naming the metric', async () => {
    const h = harness();
    h.store.set(
      series({
        namespace: 'shop',
        metricName: 's0-rabbitmq-orders',
        labels: { [SO_LABEL]: 'my-so' },
        value: undefined,
        error: 'rabbitmq: connection refused',
      }),
    );
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-rabbitmq-orders?labelSelector=${SO_LABEL}%3Dmy-so`);
    expect(response.status).toBe(500);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'unable to get metric s0-rabbitmq-orders in namespace shop: the last poll failed: rabbitmq: connection refused',
      code: 500,
    });
  });

  it('fails the whole answer when any matching series is unknown (the HPA sums items)', async () => {
    const h = harness();
    h.store.set(series({ namespace: 'ns', metricName: 's0-m', owner: 'ns/a', labels: { part: 'a' }, value: 10 }));
    h.store.set(
      series({ namespace: 'ns', metricName: 's0-m', owner: 'ns/b', labels: { part: 'b' }, value: undefined }),
    );
    const response = await get(h.app, `${BASE}/namespaces/ns/s0-m`);
    expect(response.status).toBe(500);
    expect(response.body).toMatchObject({ message: /s0-m.*last poll failed: no successful poll yet/ });
    expect(JSON.stringify(response.body)).not.toContain('"items"');
  });

  it('a failed series outside the selector does not affect the answer', async () => {
    const h = harness();
    h.store.set(series({ namespace: 'ns', metricName: 's0-m', owner: 'ns/a', labels: { part: 'a' }, value: 10 }));
    h.store.set(
      series({ namespace: 'ns', metricName: 's0-m', owner: 'ns/b', labels: { part: 'b' }, value: undefined }),
    );
    const response = await get(h.app, `${BASE}/namespaces/ns/s0-m?labelSelector=part%3Da`);
    expect(response.status).toBe(200);
  });

  it('answers 400 BadRequest for a malformed selector, naming the problem', async () => {
    const h = harness();
    stocked(h);
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-rabbitmq-orders?labelSelector=a+in+b`);
    expect(response.status).toBe(400);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `invalid label selector "a in b": at position 5: found 'b', expected '('`,
      reason: 'BadRequest',
      code: 400,
    });
  });

  it('answers 400 for a repeated labelSelector parameter', async () => {
    const h = harness();
    const response = await get(h.app, `${BASE}/namespaces/shop/m?labelSelector=a%3Db&labelSelector=c%3Dd`);
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ kind: 'Status', reason: 'BadRequest', code: 400 });
  });
});

describe('authentication and authorization', () => {
  it.each([
    { comment: 'metric path', url: `${BASE}/namespaces/shop/s0-m` },
    { comment: 'resource list', url: BASE },
    { comment: 'group list', url: '/apis' },
    { comment: 'openapi', url: '/openapi/v2' },
  ])('an unauthenticated request to the $comment gets 401 Unauthorized', async ({ url }) => {
    const h = harness({ user: undefined });
    h.store.set(series({ namespace: 'shop', metricName: 's0-m' }));
    const response = await get(h.app, url);
    expect(response.status).toBe(401);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    });
    expect(h.authenticate).toHaveBeenCalledTimes(1);
    expect(h.authorize).not.toHaveBeenCalled();
  });

  it('a denied user gets 403 Forbidden with the Kubernetes message, and no data', async () => {
    const h = harness({
      user: { username: 'bob', groups: ['dev'], extra: {} },
      decision: { allowed: false, reason: '' },
    });
    h.store.set(series({ namespace: 'shop', metricName: 's0-m', value: 42 }));
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-m`);
    expect(response.status).toBe(403);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        's0-m.external.metrics.k8s.io is forbidden: User "bob" cannot list resource "s0-m" in API group ' +
        '"external.metrics.k8s.io" in the namespace "shop"',
      reason: 'Forbidden',
      details: { group: 'external.metrics.k8s.io', kind: 's0-m' },
      code: 403,
    });
  });

  it('appends the authorizer reason to the 403 message', async () => {
    const h = harness({ decision: { allowed: false, reason: 'no RBAC policy matched' } });
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-m`);
    expect(response.status).toBe(403);
    expect(response.body).toMatchObject({ message: /in the namespace "shop": no RBAC policy matched$/ });
  });

  it('authorization comes before selector validation (no information to the unauthorized)', async () => {
    const h = harness({ decision: { allowed: false, reason: '' } });
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-m?labelSelector=%3D%3D%3D`);
    expect(response.status).toBe(403);
  });

  it('a failed authorization is a generic 500: never allowed, details only in the log', async () => {
    const h = harness({ decision: new Error('dial tcp 10.0.0.1:443: connection refused; token=secret') });
    h.store.set(series({ namespace: 'shop', metricName: 's0-m', value: 42 }));
    const response = await get(h.app, `${BASE}/namespaces/shop/s0-m`);
    expect(response.status).toBe(500);
    expect(response.type).toBe('application/json');
    expect(response.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Internal error occurred: the request could not be served',
      reason: 'InternalError',
      code: 500,
    });
    const errors = h.logger.records.filter((r) => r.level === 'error');
    expect(errors).toHaveLength(1);
    expect(JSON.stringify(errors[0]?.args[0], (_k, v: unknown) => (v instanceof Error ? v.message : v))).toContain(
      'connection refused',
    );
  });
});

describe('other paths', () => {
  it.each(['/apis/external.metrics.k8s.io/v1beta2', '/api/v1/namespaces', `${BASE}/namespaces/shop`])(
    'unknown path %s answers the generic 404 Status',
    async (url) => {
      const h = harness();
      const response = await get(h.app, url);
      expect(response.status).toBe(404);
      expect(response.type).toBe('application/json');
      expect(response.body).toEqual({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'the server could not find the requested resource',
        reason: 'NotFound',
        details: {},
        code: 404,
      });
    },
  );

  it('a non-GET method on a metric path is not served', async () => {
    const h = harness();
    h.store.set(series({ namespace: 'shop', metricName: 's0-m' }));
    const response = await h.app.inject({ method: 'POST', url: `${BASE}/namespaces/shop/s0-m`, payload: {} });
    expect(response.statusCode).toBe(404);
    expect(h.authorize).not.toHaveBeenCalled();
  });

  it('health endpoints need no authentication; /readyz follows ready()', async () => {
    const h = harness({ user: undefined });
    for (const url of ['/healthz', '/livez']) {
      const response = await h.app.inject({ url });
      expect(response.statusCode, url).toBe(200);
      expect(response.body).toBe('ok');
    }
    const before = await h.app.inject({ url: '/readyz' });
    expect(before.statusCode).toBe(503);
    h.setReady(true);
    const after = await h.app.inject({ url: '/readyz' });
    expect(after.statusCode).toBe(200);
    expect(after.body).toBe('ok');
    expect(h.authenticate).not.toHaveBeenCalled();
  });
});

describe('metrics on demand (MetricSources, src/metric-demand.ts)', () => {
  /** A server whose demand answers what the test says, recording what it was asked (after authorization). */
  function demandHarness(answer: (selector: string) => DemandAnswer, authorized = true) {
    const store = new MetricStore();
    const asked: string[] = [];
    const demand: MetricDemand = {
      owns: (_namespace, metric) => metric === 'queue_messages_ready',
      request: (namespace, metric, selector) => {
        const shown = formatSelector(selector);
        asked.push(`${namespace}/${metric}?${shown}`);
        return answer(shown);
      },
    };
    const app = buildServer({
      store,
      demand,
      authenticate: () => HPA,
      authorize: () => Promise.resolve({ allowed: authorized, reason: '' }),
      ready: () => true,
    });
    current = app;
    return { app, store, asked };
  }
  const url = (selector: string) =>
    `${BASE}/namespaces/shop/queue_messages_ready?labelSelector=${encodeURIComponent(selector)}`;

  it('a refusal is the Status the demand names (404, 429), not the store’s answer', async () => {
    const { app, store } = demandHarness((selector) =>
      selector === 'app=x'
        ? { kind: 'refused', code: 404, message: 'the label selector names label "app", which is no placeholder' }
        : { kind: 'refused', code: 429, message: 'already serves 2 label selectors' },
    );
    store.set(series({ namespace: 'shop', metricName: 'queue_messages_ready', labels: { app: 'x' } }));
    const missing = await get(app, url('app=x'));
    expect(missing).toEqual({
      status: 404,
      type: 'application/json',
      body: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'the label selector names label "app", which is no placeholder',
        reason: 'NotFound',
        code: 404,
      },
    });
    const full = await get(app, url('queue=c'));
    expect(full.status).toBe(429);
    expect(full.body).toMatchObject({ reason: 'TooManyRequests', code: 429 });
  });

  it('a served selector is answered from the store once its first read settled', async () => {
    let release: () => void = () => undefined;
    const firstRead = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { app, store, asked } = demandHarness(() => ({ kind: 'served', firstRead }));
    const pending = get(app, url('queue=worker_tasks'));
    // The read lands in the store, then settles the wait: the answer has it.
    await new Promise((resolve) => setImmediate(resolve));
    store.set(
      series({ namespace: 'shop', metricName: 'queue_messages_ready', labels: { queue: 'worker_tasks' }, value: 42 }),
    );
    release();
    const response = await pending;
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ items: [{ metricLabels: { queue: 'worker_tasks' }, value: '42' }] });
    expect(asked).toEqual(['shop/queue_messages_ready?queue=worker_tasks']);
  });

  it('an unowned name is the store’s, and a request that is not authorized never reaches the demand', async () => {
    const owned = demandHarness(() => ({ kind: 'unowned' }));
    owned.store.set(series({ namespace: 'shop', metricName: 'queue_messages_ready', value: 3 }));
    expect((await get(owned.app, url(''))).status).toBe(200);
    await current?.close();
    const forbidden = demandHarness(() => ({ kind: 'unowned' }), false);
    expect((await get(forbidden.app, url('queue=a'))).status).toBe(403);
    expect(forbidden.asked).toEqual([]);
  });
});

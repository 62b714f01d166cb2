import type { AuthorizationV1Api } from '@kubernetes/client-node';
import { describe, expect, expectTypeOf, it, vi } from 'vitest';

import {
  AuthorizationError,
  createSarAuthorizer,
  forbiddenMessage,
  type SubjectAccessReviewAnswer,
  type SubjectAccessReviewPort,
  type SubjectAccessReviewRequest,
} from '../../../src/server/authorizer.ts';
import type { ResourceAttributes, UserInfo } from '../../../src/server/identity.ts';

const BOB: UserInfo = {
  username: 'bob',
  uid: 'u-1',
  groups: ['dev', 'system:authenticated'],
  extra: { 'authentication.kubernetes.io/credential-id': ['X509SHA256=abc'] },
};
const READ_ORDERS: ResourceAttributes = {
  namespace: 'shop',
  verb: 'list',
  group: 'external.metrics.k8s.io',
  version: 'v1beta1',
  resource: 's0-rabbitmq-orders',
};

function stubPort(answer: (request: SubjectAccessReviewRequest) => Promise<SubjectAccessReviewAnswer>) {
  const createSubjectAccessReview = vi.fn(({ body }: { body: SubjectAccessReviewRequest }) => answer(body));
  return { createSubjectAccessReview } satisfies SubjectAccessReviewPort;
}

function clock(start = 1_000_000) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('createSarAuthorizer', () => {
  it('the real AuthorizationV1Api fits the port', () => {
    expectTypeOf<AuthorizationV1Api>().toExtend<SubjectAccessReviewPort>();
  });

  it('allows when the review allows, sending the full user and resource attributes', async () => {
    const api = stubPort(() => Promise.resolve({ status: { allowed: true } }));
    const authorize = createSarAuthorizer({ api });
    await expect(authorize(BOB, READ_ORDERS)).resolves.toEqual({ allowed: true, reason: '' });
    expect(api.createSubjectAccessReview).toHaveBeenCalledWith({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: 'bob',
          uid: 'u-1',
          groups: ['dev', 'system:authenticated'],
          extra: { 'authentication.kubernetes.io/credential-id': ['X509SHA256=abc'] },
          resourceAttributes: {
            namespace: 'shop',
            verb: 'list',
            group: 'external.metrics.k8s.io',
            version: 'v1beta1',
            resource: 's0-rabbitmq-orders',
          },
        },
      },
    });
  });

  it('omits uid when the user has none', async () => {
    const api = stubPort(() => Promise.resolve({ status: { allowed: true } }));
    await createSarAuthorizer({ api })({ username: 'x', groups: [], extra: {} }, READ_ORDERS);
    const body = api.createSubjectAccessReview.mock.calls[0]?.[0].body;
    expect(body?.spec).not.toHaveProperty('uid');
  });

  it('denies with the reviewer reason', async () => {
    const api = stubPort(() => Promise.resolve({ status: { allowed: false, reason: 'no RBAC policy matched' } }));
    await expect(createSarAuthorizer({ api })(BOB, READ_ORDERS)).resolves.toEqual({
      allowed: false,
      reason: 'no RBAC policy matched',
    });
  });

  it('denies when the review says denied, even with allowed set', async () => {
    const api = stubPort(() => Promise.resolve({ status: { allowed: true, denied: true } }));
    await expect(createSarAuthorizer({ api })(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: false });
  });

  it('a failing review rejects with AuthorizationError (never allows) and is not cached', async () => {
    let fail = true;
    const api = stubPort(() =>
      fail ? Promise.reject(new Error('connect ECONNREFUSED')) : Promise.resolve({ status: { allowed: true } }),
    );
    const authorize = createSarAuthorizer({ api });
    const rejection = authorize(BOB, READ_ORDERS);
    await expect(rejection).rejects.toBeInstanceOf(AuthorizationError);
    await expect(rejection).rejects.toMatchObject({
      code: 'AUTHORIZATION_FAILED',
      cause: { message: 'connect ECONNREFUSED' },
    });
    fail = false;
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(2);
  });

  it('an answer without status is an error, not an allow', async () => {
    const api = stubPort(() => Promise.resolve({}));
    await expect(createSarAuthorizer({ api })(BOB, READ_ORDERS)).rejects.toBeInstanceOf(AuthorizationError);
  });

  it('reuses allow and deny decisions within the TTL, asks again after it', async () => {
    const time = clock();
    let allowed = true;
    const api = stubPort(() => Promise.resolve({ status: { allowed } }));
    const authorize = createSarAuthorizer({ api, now: time.now, refreshAfterMs: 10_000 });

    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    allowed = false;
    time.advance(9_999);
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(1);

    time.advance(1);
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: false });
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(2);

    allowed = true;
    time.advance(5_000);
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: false });
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(2);
  });

  it('a decision in use is reviewed again in the background after 5 s: no request waits, a revocation lands within the TTL', async () => {
    const time = clock();
    let allowed = true;
    /** Answers the review waiting, if any. */
    const pending: (() => void)[] = [];
    const api = stubPort(
      () =>
        new Promise((resolve) => {
          pending.push(() => {
            resolve({ status: { allowed } });
          });
        }),
    );
    const authorize = createSarAuthorizer({ api, now: time.now });
    const first = authorize(BOB, READ_ORDERS);
    await vi.waitFor(() => {
      expect(pending).toHaveLength(1);
    });
    pending.shift()?.();
    await expect(first).resolves.toMatchObject({ allowed: true });

    // Younger than 5 s: from the cache, no review.
    time.advance(4_999);
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(1);

    // Older: answered at once from the cache while a review runs; its answer (revoked) replaces the decision.
    allowed = false;
    time.advance(1);
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(2);
    expect(pending).toHaveLength(1);
    pending.shift()?.();
    await vi.waitFor(async () => {
      expect(await authorize(BOB, READ_ORDERS)).toMatchObject({ allowed: false });
    });
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(2);
  });

  it('a failing background review keeps the decision until its TTL, then the ask fails', async () => {
    const time = clock();
    let fail = false;
    const api = stubPort(() =>
      fail ? Promise.reject(new Error('connection refused')) : Promise.resolve({ status: { allowed: true } }),
    );
    const authorize = createSarAuthorizer({ api, now: time.now });
    await authorize(BOB, READ_ORDERS);
    fail = true;
    time.advance(6_000);
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    await vi.waitFor(() => {
      expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(2);
    });
    time.advance(3_999);
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    time.advance(1);
    await expect(authorize(BOB, READ_ORDERS)).rejects.toBeInstanceOf(AuthorizationError);
  });

  it('caches per user and per attributes', async () => {
    const api = stubPort((request) =>
      Promise.resolve({
        status: { allowed: request.spec.resourceAttributes.namespace === 'shop' && request.spec.user === 'bob' },
      }),
    );
    const authorize = createSarAuthorizer({ api });
    await expect(authorize(BOB, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    await expect(authorize(BOB, { ...READ_ORDERS, namespace: 'billing' })).resolves.toMatchObject({ allowed: false });
    await expect(authorize({ ...BOB, username: 'eve' }, READ_ORDERS)).resolves.toMatchObject({ allowed: false });
    await expect(authorize({ ...BOB, groups: ['admins'] }, READ_ORDERS)).resolves.toMatchObject({ allowed: true });
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(4);
  });

  it('shares one review between concurrent identical requests', async () => {
    let release: (() => void) | undefined;
    const api = stubPort(
      () =>
        new Promise((resolve) => {
          release = () => {
            resolve({ status: { allowed: true } });
          };
        }),
    );
    const authorize = createSarAuthorizer({ api });
    const first = authorize(BOB, READ_ORDERS);
    const second = authorize(BOB, READ_ORDERS);
    await vi.waitFor(() => {
      expect(release).toBeDefined();
    });
    release?.();
    await expect(Promise.all([first, second])).resolves.toEqual([
      { allowed: true, reason: '' },
      { allowed: true, reason: '' },
    ]);
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(1);
  });

  it('allows system:masters without a review', async () => {
    const api = stubPort(() => Promise.resolve({ status: { allowed: false } }));
    const authorize = createSarAuthorizer({ api });
    const admin: UserInfo = { username: 'admin', groups: ['system:masters', 'system:authenticated'], extra: {} };
    await expect(authorize(admin, READ_ORDERS)).resolves.toEqual({ allowed: true, reason: '' });
    expect(api.createSubjectAccessReview).not.toHaveBeenCalled();
  });

  it('stays bounded: the oldest decisions are evicted first', async () => {
    const api = stubPort(() => Promise.resolve({ status: { allowed: true } }));
    const authorize = createSarAuthorizer({ api, maxEntries: 2 });
    for (const namespace of ['a', 'b', 'c']) await authorize(BOB, { ...READ_ORDERS, namespace });
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(3);
    await authorize(BOB, { ...READ_ORDERS, namespace: 'c' }); // cached
    await authorize(BOB, { ...READ_ORDERS, namespace: 'b' }); // cached
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(3);
    await authorize(BOB, { ...READ_ORDERS, namespace: 'a' }); // evicted
    expect(api.createSubjectAccessReview).toHaveBeenCalledTimes(4);
  });
});

describe('forbiddenMessage', () => {
  it('reads like the apiserver', () => {
    expect(forbiddenMessage(BOB, READ_ORDERS, '')).toBe(
      's0-rabbitmq-orders.external.metrics.k8s.io is forbidden: User "bob" cannot list resource "s0-rabbitmq-orders" ' +
        'in API group "external.metrics.k8s.io" in the namespace "shop"',
    );
    expect(forbiddenMessage(BOB, READ_ORDERS, 'RBAC: no match')).toMatch(/"shop": RBAC: no match$/);
  });
});

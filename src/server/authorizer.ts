/**
 * Delegated authorization through SubjectAccessReview (docs/kubernetes-interfaces.md#authorization), as generic
 * apiservers do it:
 * members of `system:masters` are allowed without a review; other decisions come from kube-apiserver and are cached
 * (allowed and denied alike) for 10 s. A review that fails is an error, never an allow, and is not cached.
 *
 * The HPA controller asks for the same metric every sync (15 s by default) and, with sluice's HPAs, several times in a
 * sync window; so that none of its requests waits on a review, a decision older than `refreshAfterMs` (5 s) that is
 * used again is answered from the cache and reviewed again in the background. A decision still never outlives
 * `ttlMs`: a revoked permission stops working within 10 s, as before; only an unused decision costs a wait.
 */
import { SluiceError } from '../errors.ts';
import type { AuthorizationDecision, Authorize, ResourceAttributes, UserInfo } from './identity.ts';

/** The request body of a SubjectAccessReview (the subset of `V1SubjectAccessReview` this sends). */
export interface SubjectAccessReviewRequest {
  readonly apiVersion: 'authorization.k8s.io/v1';
  readonly kind: 'SubjectAccessReview';
  readonly spec: {
    readonly user: string;
    readonly uid?: string;
    readonly groups: string[];
    readonly extra: Record<string, string[]>;
    readonly resourceAttributes: {
      readonly namespace: string;
      readonly verb: string;
      readonly group: string;
      readonly version: string;
      readonly resource: string;
    };
  };
}

/** The part of the answer this reads (`V1SubjectAccessReview` is assignable to it). */
export interface SubjectAccessReviewAnswer {
  readonly status?: { readonly allowed: boolean; readonly denied?: boolean; readonly reason?: string };
}

/**
 * The one method of `AuthorizationV1Api` this needs: pass `kc.makeApiClient(AuthorizationV1Api)` (structurally
 * compatible; checked in the tests), or a stub.
 */
export interface SubjectAccessReviewPort {
  createSubjectAccessReview(args: { body: SubjectAccessReviewRequest }): Promise<SubjectAccessReviewAnswer>;
}

export interface SarAuthorizerOptions {
  readonly api: SubjectAccessReviewPort;
  /** How long a decision is reused; 10 s like the apiserver's authorization webhook cache. */
  readonly ttlMs?: number;
  /** Age after which a decision still in use is reviewed again in the background (at most ttlMs). */
  readonly refreshAfterMs?: number;
  /** Groups allowed without a review. */
  readonly alwaysAllowGroups?: readonly string[];
  /** Bound on cached decisions; the oldest go first. */
  readonly maxEntries?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/** The authorization group of the external metrics API; resources are metric names. */
export const EXTERNAL_METRICS_GROUP = 'external.metrics.k8s.io';
export const EXTERNAL_METRICS_VERSION = 'v1beta1';

/** The SubjectAccessReview could not be made or answered. */
export class AuthorizationError extends SluiceError {
  override name = 'AuthorizationError';

  constructor(message: string, options?: ErrorOptions) {
    super('AUTHORIZATION_FAILED', message, options);
  }
}

interface CacheEntry {
  readonly decision: AuthorizationDecision;
  readonly refreshAt: number;
  readonly expiresAt: number;
}

function cacheKey(user: UserInfo, attributes: ResourceAttributes): string {
  const extra = Object.keys(user.extra)
    .sort()
    .map((key) => [key, [...(user.extra[key] ?? [])].sort()]);
  return JSON.stringify([
    user.username,
    user.uid ?? '',
    [...user.groups].sort(),
    extra,
    attributes.namespace,
    attributes.verb,
    attributes.group,
    attributes.version,
    attributes.resource,
  ]);
}

function reviewFor(user: UserInfo, attributes: ResourceAttributes): SubjectAccessReviewRequest {
  return {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user: user.username,
      ...(user.uid === undefined ? {} : { uid: user.uid }),
      groups: [...user.groups],
      extra: Object.fromEntries(Object.entries(user.extra).map(([key, values]) => [key, [...values]])),
      resourceAttributes: {
        namespace: attributes.namespace,
        verb: attributes.verb,
        group: attributes.group,
        version: attributes.version,
        resource: attributes.resource,
      },
    },
  };
}

/** An Authorize function backed by SubjectAccessReviews, with a TTL cache and de-duplication of concurrent asks. */
export function createSarAuthorizer(options: SarAuthorizerOptions): Authorize {
  const {
    api,
    ttlMs = 10_000,
    refreshAfterMs = 5_000,
    alwaysAllowGroups = ['system:masters'],
    maxEntries = 4096,
    now = Date.now,
  } = options;
  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<AuthorizationDecision>>();

  async function review(user: UserInfo, attributes: ResourceAttributes): Promise<AuthorizationDecision> {
    let answer: SubjectAccessReviewAnswer;
    try {
      answer = await api.createSubjectAccessReview({ body: reviewFor(user, attributes) });
    } catch (err) {
      throw new AuthorizationError('SubjectAccessReview request failed', { cause: err });
    }
    const status = answer.status;
    if (status === undefined) throw new AuthorizationError('SubjectAccessReview answer has no status');
    const reason = status.reason ?? '';
    return { allowed: status.allowed && status.denied !== true, reason };
  }

  function remember(key: string, decision: AuthorizationDecision): void {
    cache.delete(key);
    const time = now();
    cache.set(key, { decision, refreshAt: time + Math.min(refreshAfterMs, ttlMs), expiresAt: time + ttlMs });
    // Map iteration is insertion order: evict expired entries, then the oldest, to stay bounded.
    for (const [k, entry] of cache) {
      if (cache.size <= maxEntries && entry.expiresAt > time) break;
      cache.delete(k);
    }
  }

  /** One review per key at a time; its decision replaces the cached one. */
  function ask(key: string, user: UserInfo, attributes: ResourceAttributes): Promise<AuthorizationDecision> {
    const pending = inFlight.get(key);
    if (pending !== undefined) return pending;
    const asked = review(user, attributes).then(
      (decision) => {
        inFlight.delete(key);
        remember(key, decision);
        return decision;
      },
      (err: unknown) => {
        inFlight.delete(key);
        throw err;
      },
    );
    inFlight.set(key, asked);
    return asked;
  }

  return async (user, attributes) => {
    if (user.groups.some((group) => alwaysAllowGroups.includes(group))) return { allowed: true, reason: '' };
    const key = cacheKey(user, attributes);
    const cached = cache.get(key);
    if (cached !== undefined) {
      const time = now();
      if (cached.expiresAt > time) {
        // A failed background review changes nothing: the entry expires at its time, and the next ask reports it.
        if (cached.refreshAt <= time) ask(key, user, attributes).catch(() => undefined);
        return cached.decision;
      }
      cache.delete(key);
    }
    return ask(key, user, attributes);
  };
}

/**
 * The apiserver's 403 message (`responsewriters.Forbidden` + `errors.NewForbidden`), e.g.
 * `s0-x.external.metrics.k8s.io is forbidden: User "bob" cannot list resource "s0-x" in API group
 * "external.metrics.k8s.io" in the namespace "shop"`, followed by `: <reason>` when the authorizer gave one.
 */
export function forbiddenMessage(user: UserInfo, attributes: ResourceAttributes, reason: string): string {
  const base =
    `${attributes.resource}.${attributes.group} is forbidden: User ${JSON.stringify(user.username)} cannot ` +
    `${attributes.verb} resource ${JSON.stringify(attributes.resource)} in API group ` +
    `${JSON.stringify(attributes.group)} in the namespace ${JSON.stringify(attributes.namespace)}`;
  return reason === '' ? base : `${base}: ${reason}`;
}

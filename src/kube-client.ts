/**
 * API clients for @kubernetes/client-node with a deadline on every call: client-node sets none, and one hung request
 * (an apiserver that accepted the connection and never answered) would stall whatever awaited it for good, a scaling
 * decision or a reconcile. Every request made through these clients is aborted after `timeoutMs` (default 10 s) and
 * fails like any other API error; the caller's error handling (retry, backoff, a condition) takes it from there.
 *
 * Watches are not made through these clients (the informers' watch connections are long-lived by design).
 *
 * One connection pool per kubeconfig: client-node 2 makes a new undici Agent for every request, so every call would
 * open a new TLS connection (a handshake and a new SecureContext: the largest CPU cost of a reconcile, seen in a CPU
 * profile of 1,000 objects). `pooledAuthentication` applies the kubeconfig's credentials as client-node does and
 * sends every request through one keep-alive Agent, replaced when the TLS material changes (a rotated client
 * certificate file).
 *
 * Three pools, so that one kind of traffic never waits behind another (client-go gives each client its own rate
 * limiter for the same reason): `leader-election` (the Lease: a renewal that waits more than 10 s behind a burst of
 * reconcile writes loses the lease; it did at 10,000 objects), `events` (best effort, at most EVENT_CONNECTIONS at
 * once, so a burst of Events after a mass create never holds the connections HPA creation needs) and `default`
 * (everything else, MAX_CONNECTIONS). No client-side QPS limit: the API server's priority and fairness does that.
 *
 * Every request is also counted by verb and resource (`kubeRequests`), so that what sluice asks of the API server at
 * rest and per tick can be read from its own metrics rather than guessed.
 */
import { createHash } from 'node:crypto';
import type { RequestOptions } from 'node:https';
import {
  ApiException,
  ServerConfiguration,
  createConfiguration,
  type Configuration,
  type KubeConfig,
  type SecurityAuthentication,
} from '@kubernetes/client-node';
import { Agent } from 'undici';
import { describeError } from './errors.ts';
import packageJson from '../package.json' with { type: 'json' };

export const DEFAULT_API_TIMEOUT_MS = 10_000;

/** What a request does, as kube-apiserver's own `apiserver_request_total` names it. */
export interface KubeRequestKind {
  /** get, list, create, update, patch (server-side apply included), delete. */
  readonly verb: string;
  /** `group/resource[/subresource]` (`apps/deployments/scale`; the core group is empty: `/secrets`). */
  readonly resource: string;
}

/**
 * The verb and resource of a request to the API server, from its method and path. Paths that name no resource
 * (discovery, `/version`) are `resource: ""`.
 */
export function requestKind(method: string, path: string): KubeRequestKind {
  const parts =
    path
      .split('?', 1)[0]
      ?.split('/')
      .filter((p) => p !== '') ?? [];
  let rest: string[];
  let group: string;
  if (parts[0] === 'api' && parts.length >= 2) {
    group = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    group = parts[1] ?? '';
    rest = parts.slice(3);
  } else {
    return { verb: method.toLowerCase(), resource: '' };
  }
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [resource, name, subresource] = rest;
  if (resource === undefined) return { verb: method.toLowerCase(), resource: '' };
  const verb = verbOf(method.toUpperCase(), name !== undefined);
  return { verb, resource: `${group}/${resource}${subresource === undefined ? '' : `/${subresource}`}` };
}

function verbOf(method: string, named: boolean): string {
  switch (method) {
    case 'GET':
      return named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    default:
      return method.toLowerCase();
  }
}

/** The connection pools of a kubeconfig, and how many connections each may open at once (more requests wait). */
export type KubePool = 'default' | 'events' | 'leader-election';
const POOL_CONNECTIONS: Readonly<Record<KubePool, number>> = {
  default: 32,
  events: 8,
  'leader-election': 2,
};

const pools = new WeakMap<KubeConfig, Map<KubePool, { material: string; agent: Agent }>>();
const authentications = new WeakMap<KubeConfig, Map<KubePool, SecurityAuthentication>>();

/**
 * The kubeconfig's credentials (headers: a bearer token, an exec plugin's token, basic auth) applied per request as
 * client-node does, over one keep-alive connection pool per kubeconfig and TLS material. A cluster reached through a
 * proxy keeps client-node's own handling.
 */
export function pooledAuthentication(kc: KubeConfig, pool: KubePool = 'default'): SecurityAuthentication {
  let ofConfig = authentications.get(kc);
  if (ofConfig === undefined) {
    ofConfig = new Map();
    authentications.set(kc, ofConfig);
  }
  const known = ofConfig.get(pool);
  if (known !== undefined) return known;
  const authentication: SecurityAuthentication = {
    getName: () => 'kubeconfig authentication over one connection pool',
    async applySecurityAuthentication(context) {
      if (kc.getCurrentCluster()?.proxyUrl !== undefined) {
        await kc.applySecurityAuthentication(context);
        return;
      }
      const options: RequestOptions = {};
      await kc.applyToHTTPSOptions(options);
      for (const [name, value] of Object.entries(options.headers ?? {})) {
        if (value !== undefined) context.setHeaderParam(name, String(value));
      }
      if (typeof options.auth === 'string') {
        context.setHeaderParam('Authorization', `Basic ${Buffer.from(options.auth).toString('base64')}`);
      }
      context.setDispatcher(poolFor(kc, pool, options));
    },
  };
  ofConfig.set(pool, authentication);
  return authentication;
}

function poolFor(kc: KubeConfig, name: KubePool, options: RequestOptions): Agent {
  const tls = {
    ...(options.ca === undefined ? {} : { ca: options.ca as string | Buffer }),
    ...(options.cert === undefined ? {} : { cert: options.cert as string | Buffer }),
    ...(options.key === undefined ? {} : { key: options.key as string | Buffer }),
    ...(options.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: options.rejectUnauthorized }),
    ...(options.servername === undefined ? {} : { servername: options.servername }),
  };
  const digest = createHash('sha256');
  for (const part of [tls.ca, tls.cert, tls.key, String(tls.rejectUnauthorized), tls.servername ?? '']) {
    digest.update(part ?? '').update('\0');
  }
  const material = digest.digest('hex');
  let ofConfig = pools.get(kc);
  if (ofConfig === undefined) {
    ofConfig = new Map();
    pools.set(kc, ofConfig);
  }
  const pool = ofConfig.get(name);
  if (pool?.material === material) return pool.agent;
  // New material (the first request, or a rotated certificate): requests in flight finish on the old pool.
  void pool?.agent.close().catch(() => undefined);
  const agent = new Agent({ connect: tls, connections: POOL_CONNECTIONS[name], keepAliveTimeout: 30_000 });
  ofConfig.set(name, { material, agent });
  return agent;
}

const counts = new Map<string, number>();

/** Requests made through apiClient since the process started, by `verb resource`. */
export function kubeRequests(): ReadonlyMap<string, number> {
  return counts;
}

function count(kind: KubeRequestKind): void {
  const key = `${kind.verb} ${kind.resource}`;
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

export function apiClient<T>(
  kc: KubeConfig,
  Api: new (configuration: Configuration) => T,
  timeoutMs = DEFAULT_API_TIMEOUT_MS,
  pool: KubePool = 'default',
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  return new Api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: pooledAuthentication(kc, pool) },
      promiseMiddleware: [
        {
          pre: (context) => {
            count(requestKind(context.getHttpMethod(), new URL(context.getUrl()).pathname));
            context.setSignal(AbortSignal.timeout(timeoutMs));
            context.setHeaderParam('User-Agent', `sluice/${packageJson.version}`);
            return Promise.resolve(context);
          },
          post: (context) => Promise.resolve(context),
        },
      ],
    }),
  );
}

/**
 * An API error in the API server's own words (the `message` of its Status body; client-node's own message holds the
 * whole body and its headers), else the error's description.
 */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    let message: string | undefined;
    try {
      const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      const text = (body as { message?: unknown } | null)?.message;
      if (typeof text === 'string') message = text;
    } catch {
      message = undefined;
    }
    return `the API server answered ${err.code}${message === undefined ? '' : `: ${message}`}`;
  }
  return describeError(err);
}

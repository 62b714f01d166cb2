/**
 * The external.metrics.k8s.io/v1beta1 API, served from the MetricStore only (no backend calls on the request path).
 * Wire formats: docs/kubernetes-interfaces.md#external-metrics-api. A metric a MetricSource owns is announced to the
 * demand side first (src/metric-demand.ts): a selector it cannot serve is its 404 or 429, and a selector named for the
 * first time waits for its shared reader's first read (docs/metric-sources.md).
 *
 * Access rules (docs/kubernetes-interfaces.md#authorization):
 * - every route here needs an authenticated user (the aggregator always comes with its front-proxy certificate), so
 *   metric names are never listed to anonymous clients; unauthenticated requests get 401 `Unauthorized`;
 * - discovery (`/apis`, `/apis/<group>`, `/apis/<group>/<version>`) and OpenAPI (`/openapi/v2`, `/openapi/v3`) need
 *   no SubjectAccessReview: the aggregator fetches them as `system:kube-aggregator` / `system:aggregator`, sometimes
 *   with no groups, and discovery that fails goes stale and blocks namespace deletion;
 * - metric reads are authorized per request with verb `list` on resource `<metric>` in the request's namespace.
 *
 * Proxy mode (proxy.ts, `--proxy-to`): a metric name sluice does not own in the namespace (`owns`) is forwarded to the
 * upstream adapter after the same authentication, authorization and selector check; a name sluice owns is always
 * answered here, from the store, even when the upstream knows it too. Discovery lists sluice's placeholder and then
 * the upstream's resources.
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';

import { formatSelector, LabelSelectorError, matches, parseSelector, type Selector } from '../labels.ts';
import type { MetricDemand } from '../metric-demand.ts';
import type { MetricStore, Series } from '../metric-store.ts';
import { formatQuantity } from '../quantity.ts';
import { EXTERNAL_METRICS_GROUP, EXTERNAL_METRICS_VERSION, forbiddenMessage } from './authorizer.ts';
import type { Authenticate, Authorize, ResourceAttributes, UserInfo } from './identity.ts';
import { mergeResources, type ApiResource, type Upstream } from './proxy.ts';
import { failureStatus, NOT_FOUND, sendJson, sendStatus, UNAUTHORIZED } from './status.ts';

/**
 * Whether sluice answers a metric name in a namespace itself. Only consulted in proxy mode: the names it does not own
 * go to the upstream adapter. The default (`storeOwns`) owns every name the store has a series of in the namespace.
 */
export type Owns = (namespace: string, metric: string) => boolean;

/** Ownership by the store: a name is sluice's where some ScaledObject (or other writer) has a series of it. */
export function storeOwns(store: MetricStore): Owns {
  return (namespace, metric) => store.find(namespace, metric).length > 0;
}

export interface ExternalMetricsOptions {
  readonly store: MetricStore;
  /** Who serves metrics on demand (MetricSources): told of every authorized read before the store is asked. */
  readonly demand?: MetricDemand;
  readonly authenticate: Authenticate;
  readonly authorize: Authorize;
  /** Proxy mode: where the metrics sluice does not own go, and whose discovery is merged with sluice's. */
  readonly upstream?: Upstream | undefined;
  /** What sluice answers itself in proxy mode; default `storeOwns(store)`. */
  readonly owns?: Owns | undefined;
}

export const GROUP_VERSION = `${EXTERNAL_METRICS_GROUP}/${EXTERNAL_METRICS_VERSION}`;
const GROUP_PATH = `/apis/${EXTERNAL_METRICS_GROUP}`;
const VERSION_PATH = `${GROUP_PATH}/${EXTERNAL_METRICS_VERSION}`;
/** KEDA's discovery placeholder (≥ 2.11); the HPA never needs a metric in discovery. */
const PLACEHOLDER_RESOURCE = 'externalmetrics';

const groupVersion = { groupVersion: GROUP_VERSION, version: EXTERNAL_METRICS_VERSION } as const;
const apiGroup = { name: EXTERNAL_METRICS_GROUP, versions: [groupVersion], preferredVersion: groupVersion } as const;

const MetricParams = Type.Object({ namespace: Type.String({ minLength: 1 }), metric: Type.String({ minLength: 1 }) });
const MetricQuery = Type.Object({ labelSelector: Type.Optional(Type.String()) });
interface MetricRoute {
  Params: { namespace: string; metric: string };
  Querystring: { labelSelector?: string };
}

export interface ExternalMetricValue {
  readonly metricName: string;
  readonly metricLabels: Readonly<Record<string, string>> | null;
  readonly timestamp: string;
  readonly value: string;
}

/** RFC 3339, UTC, whole seconds (Go `metav1.Time` truncates). */
export function formatTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function apiResource(name: string): ApiResource {
  return { name, singularName: '', namespaced: true, kind: 'ExternalMetricValueList', verbs: ['get'] };
}

/** The caller's Audit-Id (kube-apiserver sets one on every proxied request), for the upstream's logs. */
function auditIdOf(request: FastifyRequest): string | undefined {
  const value = request.headers['audit-id'];
  return typeof value === 'string' ? value : undefined;
}

export const externalMetricsRoutes: FastifyPluginCallback<ExternalMetricsOptions> = (app, options, done) => {
  const { store, demand, authenticate, authorize, upstream } = options;
  const owns = options.owns ?? storeOwns(store);
  const ownResources = [apiResource(PLACEHOLDER_RESOURCE)];
  const users = new WeakMap<FastifyRequest, UserInfo>();
  const items: ItemCache = new WeakMap();

  // Encapsulated: applies to the routes of this plugin only (health and unknown paths are outside).
  app.addHook('onRequest', async (request, reply) => {
    const user = authenticate(request);
    if (user === undefined) return sendStatus(reply, UNAUTHORIZED);
    users.set(request, user);
    return undefined;
  });

  app.get('/apis', async (_request, reply) =>
    sendJson(reply, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [apiGroup] }),
  );

  app.get(GROUP_PATH, async (_request, reply) =>
    sendJson(reply, 200, { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup }),
  );

  // One placeholder, as KEDA ≥ 2.11 answers: the HPA never needs a metric in discovery, and listing the store's names
  // would show every namespace's queue names and JSON paths to anyone the aggregator authenticates. In proxy mode the
  // upstream's resources follow, as the upstream lists them to this caller (what it showed before sluice came), or
  // none when it cannot answer in time: discovery never fails for the upstream's sake (the aggregator's availability
  // check reads it).
  app.get(VERSION_PATH, async (request, reply) => {
    const user = users.get(request);
    const resources =
      upstream === undefined || user === undefined
        ? ownResources
        : mergeResources(ownResources, await upstream.resources(user, auditIdOf(request)));
    return sendJson(reply, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: GROUP_VERSION, resources });
  });

  // No OpenAPI: the aggregator skips a 404 gracefully (v3 falls back to v2, v2 is skipped;
  // docs/kubernetes-interfaces.md#openapi).
  for (const path of ['/openapi/v2', '/openapi/v3']) {
    app.get(path, async (_request, reply) => sendStatus(reply, NOT_FOUND));
  }

  app.get<MetricRoute>(
    `${VERSION_PATH}/namespaces/:namespace/:metric`,
    { schema: { params: MetricParams, querystring: MetricQuery } },
    async (request, reply) => {
      const { namespace, metric } = request.params;
      const user = users.get(request);
      if (user === undefined) return sendStatus(reply, UNAUTHORIZED);

      const attributes: ResourceAttributes = {
        namespace,
        verb: 'list',
        group: EXTERNAL_METRICS_GROUP,
        version: EXTERNAL_METRICS_VERSION,
        resource: metric,
      };
      const decision = await authorize(user, attributes); // a failed review rejects → generic 500
      if (!decision.allowed) {
        return sendStatus(
          reply,
          failureStatus(403, forbiddenMessage(user, attributes, decision.reason), {
            details: { group: EXTERNAL_METRICS_GROUP, kind: metric },
          }),
        );
      }

      let selector: Selector;
      try {
        selector = parseSelector(request.query.labelSelector ?? '');
      } catch (err) {
        if (err instanceof LabelSelectorError) return sendStatus(reply, failureStatus(400, err.message));
        throw err;
      }
      // A MetricSource's metric: the selector must fill its placeholders, and a new one waits for its first read.
      const demanded = demand?.request(namespace, metric, selector);
      if (demanded?.kind === 'refused') return sendStatus(reply, failureStatus(demanded.code, demanded.message));
      if (demanded?.kind === 'served') {
        await demanded.firstRead;
      } else if (upstream !== undefined && !owns(namespace, metric)) {
        // Proxy mode: a name no ScaledObject and no MetricSource of sluice's has goes to the other adapter.
        const answer = await upstream.metric({
          namespace,
          metric,
          labelSelector: request.query.labelSelector ?? '',
          user,
          auditId: auditIdOf(request),
        });
        return sendBody(reply, answer.code, answer.body);
      }
      return answerMetric(reply, items, store.find(namespace, metric), { namespace, metric, selector });
    },
  );
  done();
};

/**
 * The JSON of one item, made once per series object and requested name. The store never changes a series in place: a
 * new value, error or confirmation time is a new object (src/metric-store.ts), so an entry is right for as long as
 * its key lives, and goes with it. Between two reads of a backend every request is answered from these strings.
 */
type ItemCache = WeakMap<Series, { readonly metric: string; readonly json: string }>;

function itemJson(cache: ItemCache, s: Series, value: number, metric: string): string {
  const cached = cache.get(s);
  if (cached?.metric === metric) return cached.json;
  const item: ExternalMetricValue = {
    metricName: metric,
    metricLabels: s.labels,
    timestamp: formatTimestamp(s.timestamp),
    value: formatQuantity(value),
  };
  const json = JSON.stringify(item);
  cache.set(s, { metric, json });
  return json;
}

/** An ExternalMetricValueList as JSON.stringify writes it, around items already serialised. */
const LIST_HEAD = `{"kind":"ExternalMetricValueList","apiVersion":${JSON.stringify(GROUP_VERSION)},"metadata":{},"items":[`;
const LIST_TAIL = ']}';

function answerMetric(
  reply: FastifyReply,
  cache: ItemCache,
  found: readonly Series[],
  query: { readonly namespace: string; readonly metric: string; readonly selector: Selector },
): FastifyReply {
  const { namespace, metric, selector } = query;
  const series = found.filter((s) => matches(selector, s.labels));
  if (series.length === 0) {
    const shown = formatSelector(selector);
    return sendStatus(
      reply,
      failureStatus(
        404,
        `the server could not find the metric ${metric} for ${shown === '' ? 'any labels' : shown} in namespace ${namespace}`,
      ),
    );
  }
  // The HPA sums all items: one unknown series must fail the whole answer (a partial sum could scale in), and an
  // unknown value is never served as 0. The series error is written by the poller without credentials.
  const items: string[] = [];
  for (const s of series) {
    if (s.value === undefined) {
      const why = s.error ?? 'no successful poll yet';
      const message = `unable to get metric ${metric} in namespace ${namespace}: the last poll failed: ${why}`;
      return sendStatus(reply, failureStatus(500, message, { reason: null }));
    }
    items.push(itemJson(cache, s, s.value, metric));
  }
  return sendBody(reply, 200, Buffer.from(LIST_HEAD + items.join(',') + LIST_TAIL));
}

/** JSON already serialised. A Buffer goes out as it is: for a string fastify would add `; charset=utf-8`. */
function sendBody(reply: FastifyReply, code: number, body: Buffer): FastifyReply {
  return reply.code(code).type('application/json').send(body);
}

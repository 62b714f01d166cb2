/**
 * The external.metrics.k8s.io/v1beta1 API, served from the MetricStore only (no backend calls on the request path).
 * Wire formats: docs/kubernetes-contracts.md#external-metrics-api. A metric a MetricSource owns is announced to the
 * demand side first (src/metric-demand.ts): a selector it cannot serve is its 404 or 429, and a selector named for the
 * first time waits for its shared reader's first read (docs/metric-sources.md).
 *
 * Access rules (docs/kubernetes-contracts.md#authorization):
 * - every route here needs an authenticated user (the aggregator always comes with its front-proxy certificate), so
 *   metric names are never listed to anonymous clients; unauthenticated requests get 401 `Unauthorized`;
 * - discovery (`/apis`, `/apis/<group>`, `/apis/<group>/<version>`) and OpenAPI (`/openapi/v2`, `/openapi/v3`) need
 *   no SubjectAccessReview: the aggregator fetches them as `system:kube-aggregator` / `system:aggregator`, sometimes
 *   with no groups, and discovery that fails goes stale and blocks namespace deletion;
 * - metric reads are authorized per request with verb `list` on resource `<metric>` in the request's namespace.
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';

import { formatSelector, LabelSelectorError, matches, parseSelector, type Selector } from '../labels.ts';
import type { MetricDemand } from '../metric-demand.ts';
import type { MetricStore, Series } from '../metric-store.ts';
import { formatQuantity } from '../quantity.ts';
import { EXTERNAL_METRICS_GROUP, EXTERNAL_METRICS_VERSION, forbiddenMessage } from './authorizer.ts';
import type { Authenticate, Authorize, ResourceAttributes, UserInfo } from './identity.ts';
import { failureStatus, NOT_FOUND, sendJson, sendStatus, UNAUTHORIZED } from './status.ts';

export interface ExternalMetricsOptions {
  readonly store: MetricStore;
  /** Who serves metrics on demand (MetricSources): told of every authorized read before the store is asked. */
  readonly demand?: MetricDemand;
  readonly authenticate: Authenticate;
  readonly authorize: Authorize;
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

function apiResource(name: string) {
  return { name, singularName: '', namespaced: true, kind: 'ExternalMetricValueList', verbs: ['get'] };
}

export const externalMetricsRoutes: FastifyPluginCallback<ExternalMetricsOptions> = (app, options, done) => {
  const { store, demand, authenticate, authorize } = options;
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
  // would show every namespace's queue names and JSON paths to anyone the aggregator authenticates.
  app.get(VERSION_PATH, async (_request, reply) =>
    sendJson(reply, 200, {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: GROUP_VERSION,
      resources: [apiResource(PLACEHOLDER_RESOURCE)],
    }),
  );

  // No OpenAPI: the aggregator skips a 404 gracefully (v3 falls back to v2, v2 is skipped;
  // docs/kubernetes-contracts.md#openapi).
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
      if (demanded?.kind === 'served') await demanded.firstRead;
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
  // A Buffer goes out as it is: for a string fastify would add `; charset=utf-8`, which kube-apiserver never sends.
  return reply
    .code(200)
    .type('application/json')
    .send(Buffer.from(LIST_HEAD + items.join(',') + LIST_TAIL));
}

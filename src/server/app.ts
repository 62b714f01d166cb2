/**
 * The external-metrics API server: builds the fastify instance, never listens (the composition root does).
 *
 * Who may call what:
 * - `/healthz`, `/livez`, `/readyz`: anyone, no client certificate (kubelet probes);
 * - discovery and OpenAPI: any user authenticated by the front proxy, no SubjectAccessReview (external-metrics.ts);
 * - metric reads: authenticated and authorized by SubjectAccessReview (external-metrics.ts); in proxy mode the ones
 *   sluice does not own are then forwarded to the upstream adapter (proxy.ts);
 * - anything else: 404 `Status` (nothing to protect).
 */
import { Server as TlsServer } from 'node:tls';

import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';

import type { MetricDemand } from '../metric-demand.ts';
import { MAX_METRIC_NAME_LENGTH, type MetricStore } from '../metric-store.ts';
import { externalMetricsRoutes, type Owns } from './external-metrics.ts';
import { healthRoutes } from './health.ts';
import type { Authenticate, Authorize } from './identity.ts';
import type { Upstream } from './proxy.ts';
import { failureStatus, INTERNAL_ERROR, NOT_FOUND, sendStatus } from './status.ts';

/** TLS for the server. Client certificates are requested but not required, so unauthenticated probes connect. */
export interface ServerTlsOptions {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
  /** Trust store for client certificates: must contain the requestheader client CA. */
  readonly ca?: readonly (string | Buffer)[];
  /** Ask clients for a certificate (needed for front-proxy authentication). Default true. */
  readonly requestCert?: boolean;
}

export interface BuildServerOptions {
  readonly store: MetricStore;
  /** MetricSources: told of every authorized metric read (src/metric-demand.ts). */
  readonly demand?: MetricDemand;
  readonly authenticate: Authenticate;
  readonly authorize: Authorize;
  /** Readiness for /readyz (e.g. informers synced). */
  readonly ready: () => boolean;
  /** A pino-compatible logger instance, fastify logger options, or false (default) for none. */
  readonly logger?: FastifyBaseLogger | FastifyServerOptions['logger'];
  /** Serve HTTPS with these options; plain HTTP without (tests). */
  readonly https?: ServerTlsOptions;
  /** The longest metric name served (fastify's router refuses longer path segments; its default is 100). */
  readonly maxMetricNameLength?: number;
  /**
   * Called once per response with the route's pattern (`/apis/external.metrics.k8s.io/v1beta1/namespaces/:namespace/:metric`,
   * never the path asked for; `unmatched` for a 404 of no route), the status code and the time taken (/metrics).
   */
  readonly onResponse?: (route: string, statusCode: number, seconds: number) => void;
  /** Proxy mode (proxy.ts): the adapter that answers the metrics sluice does not own. */
  readonly upstream?: Upstream;
  /** Which metric names sluice answers itself in proxy mode (external-metrics.ts `Owns`; default: the store's). */
  readonly owns?: Owns;
}

/**
 * The TLS server of an app built with `https` (fastify creates it with the instance, before `listen`), for replacing
 * its certificates while it runs (certificates.ts `createServerTls`). Throws for a plain-HTTP app.
 */
export function tlsServerOf(app: FastifyInstance): TlsServer {
  const server: unknown = app.server;
  if (!(server instanceof TlsServer)) throw new TypeError('the server was built without https options');
  return server;
}

function isLoggerInstance(logger: BuildServerOptions['logger']): logger is FastifyBaseLogger {
  return typeof logger === 'object' && 'child' in logger && typeof logger.child === 'function';
}

function statusCodeOf(error: Partial<FastifyError>): number {
  const code = error.statusCode;
  return typeof code === 'number' && code >= 400 && code <= 599 ? code : 500;
}

/**
 * fastify logs two info lines per request by default: with every HPA asking every 15 s, that was most of sluice's log
 * and a good part of the metrics API's CPU per request. Here one line per request, at debug; a failed reply at error.
 */
class RequestsAtDebug extends LogController {
  override incomingRequest(): void {
    // The completed line says it all.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      reply.log.error({ err: error, statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request errored');
      return;
    }
    reply.log.debug(
      { method: request.method, url: request.url, statusCode: reply.statusCode, ms: reply.elapsedTime },
      'request completed',
    );
  }
}

export function buildServer(options: BuildServerOptions): FastifyInstance {
  const { logger = false, https } = options;
  const app = Fastify({
    ...(isLoggerInstance(logger) ? { loggerInstance: logger } : { logger }),
    // Correlate log lines with kube-apiserver's audit log.
    requestIdHeader: 'audit-id',
    logController: new RequestsAtDebug(),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: options.maxMetricNameLength ?? MAX_METRIC_NAME_LENGTH },
    ...(https === undefined
      ? {}
      : {
          https: {
            key: https.key,
            cert: https.cert,
            ...(https.ca === undefined ? {} : { ca: [...https.ca] }),
            requestCert: https.requestCert ?? true,
            // Verification is the authenticator's job, per request; probes must still connect without a certificate.
            rejectUnauthorized: false,
          },
        }),
  });

  app.setErrorHandler<FastifyError>((error, request, reply) => {
    const code = statusCodeOf(error);
    if (code >= 500) {
      request.log.error({ err: error }, 'request failed');
      return sendStatus(reply, code === 500 ? INTERNAL_ERROR : failureStatus(code, INTERNAL_ERROR.message));
    }
    // Client errors (validation, malformed requests) say what was wrong, as the apiserver does.
    return sendStatus(reply, failureStatus(code, error.message));
  });
  app.setNotFoundHandler((_request, reply) => sendStatus(reply, NOT_FOUND));
  // A connection's client certificate is fixed by its handshake: one that did not authenticate never will, even after
  // the trust store changes (a front-proxy CA rotation, certificates.ts). Closing it after a 401 makes the client
  // (the aggregator keeps connections alive) come back with a new handshake against the current trust store.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (reply.statusCode === 401) void reply.header('connection', 'close');
    done(null, payload);
  });

  const { onResponse } = options;
  if (onResponse !== undefined) {
    app.addHook('onResponse', (request, reply, done) => {
      onResponse(request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
      done();
    });
  }

  void app.register(healthRoutes, { ready: options.ready });
  void app.register(externalMetricsRoutes, {
    store: options.store,
    ...(options.demand === undefined ? {} : { demand: options.demand }),
    authenticate: options.authenticate,
    authorize: options.authorize,
    upstream: options.upstream,
    owns: options.owns,
  });
  return app;
}
